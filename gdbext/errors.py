"""The exception types of gdbext's GDB-free core.

Adapters (gdb commands, printers, the CLI) translate these in one place each:
a ``gdb.GdbError`` inside gdb, a one-line message and exit code 2 in the CLI.
Corruption found while walking memory is a ``CorruptionError``; the walkers
usually record it as a finding and go on rather than raise.
"""
from __future__ import annotations

__all__ = [
    "GdbextError",
    "MemoryReadError",
    "CoreFileError",
    "SpecError",
    "CorruptionError",
    "CycleError",
]


class GdbextError(Exception):
    """Base of every error gdbext raises on purpose; its text is one line for the user."""


class MemoryReadError(GdbextError):
    """Bytes at an address are not in the memory source (unmapped, not dumped, truncated)."""

    def __init__(self, address: int, size: int, why: str = "not readable") -> None:
        super().__init__(f"cannot read {size} bytes at {address:#x}: {why}")
        self.address = address
        self.size = size


class CoreFileError(GdbextError):
    """The core file (or its binary) is missing, empty, truncated or not an ELF core."""


class SpecError(GdbextError):
    """A user's declaration (packed-word layout, pool spec) is inconsistent or names nothing."""


class CorruptionError(GdbextError):
    """A structure read from the target breaks an invariant it must hold."""


class CycleError(CorruptionError):
    """A linked list read from the target loops back on itself."""
