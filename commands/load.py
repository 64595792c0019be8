"""``gdbext load FILE``: load a spec file of packed words and pools."""
from __future__ import annotations

from typing import List

from gdbext.errors import GdbextError
from gdbext.specs import REGISTRY, load_file

from ._base import GdbextCommand

__all__ = ["LoadSpecsCommand"]


class LoadSpecsCommand(GdbextCommand):
    """Load a gdbext spec file: Python declaring packed words and pool allocators.

Usage: gdbext load FILE [FILE...]
The file calls gdbext.specs.packed_word(...) and gdbext.specs.pool(...); see
docs/specs.md.  Printers and commands use the declarations at once."""

    command_name = "gdbext load"

    def run(self, argv: List[str], from_tty: bool) -> None:
        if not argv:
            raise GdbextError("give the spec file(s) to load")
        for path in argv:
            before = (len(REGISTRY.packed), len(REGISTRY.pools))
            load_file(path)
            print(f"gdbext: loaded {path}: {len(REGISTRY.packed) - before[0]} packed word(s), "
                  f"{len(REGISTRY.pools) - before[1]} pool(s)")
