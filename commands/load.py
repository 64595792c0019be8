"""``gdbext load FILE``: load a spec file of packed words and pools."""
from __future__ import annotations

from typing import List

from gdbext.errors import GdbextError
from gdbext.kit import KIT
from gdbext.specs import REGISTRY

from ._base import GdbextCommand
from ._pools import load_validated

__all__ = ["LoadSpecsCommand"]


class LoadSpecsCommand(GdbextCommand):
    """Load a gdbext spec file: Python declaring packed words and pool allocators.

Usage: gdbext load FILE [FILE...]
The file calls gdbext.kit.struct_printer(...), gdbext.specs.packed_word(...)
and gdbext.specs.pool(...); see docs/printer-kit.md and docs/specs.md.  Printers and commands use the declarations at once.
Each pool spec is checked against the program's debug info (and its memory, with a process or core):
each mistake is one line naming the spec field, and a pool with a mistake is not loaded."""

    command_name = "gdbext load"

    def run(self, argv: List[str], from_tty: bool) -> None:
        if not argv:
            raise GdbextError("give the spec file(s) to load")
        problems = []
        for path in argv:
            before = _counts()
            _, bad = load_validated(path)
            added = [n - b for n, b in zip(_counts(), before)]
            print(f"gdbext: loaded {path}: {added[0]} struct printer(s), {added[1]} packed word(s), "
                  f"{added[2]} pool(s)")
            problems += [f"{path}: {line}" for line in bad]
        if problems:
            raise GdbextError(f"{len(problems)} problem(s) in pool specs, those pools not loaded:\n"
                              + "\n".join(problems))


def _counts():
    return len(KIT.structs), len(REGISTRY.packed), len(REGISTRY.pools)
