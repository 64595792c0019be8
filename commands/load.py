"""``gdbext load FILE``: load a spec file of packed words and pools."""
from __future__ import annotations

from typing import List

from gdbext.errors import GdbextError
from gdbext.kit import KIT
from gdbext.specs import REGISTRY, load_file

from ._base import GdbextCommand
from ._complete import Completion, file_names

__all__ = ["LoadSpecsCommand"]


class LoadSpecsCommand(GdbextCommand):
    """Load a gdbext spec file: Python declaring packed words and pool allocators.

Usage: gdbext load FILE [FILE...]
The file calls gdbext.kit.struct_printer(...), gdbext.specs.packed_word(...)
and gdbext.specs.pool(...); see docs/printer-kit.md and docs/specs.md.  Printers and commands use the declarations at once."""

    command_name = "gdbext load"
    completion = Completion(positional=file_names)

    def run(self, argv: List[str], from_tty: bool) -> None:
        if not argv:
            raise GdbextError("give the spec file(s) to load")
        for path in argv:
            before = _counts()
            load_file(path)
            added = [n - b for n, b in zip(_counts(), before)]
            print(f"gdbext: loaded {path}: {added[0]} struct printer(s), {added[1]} packed word(s), "
                  f"{added[2]} pool(s)")


def _counts():
    return len(KIT.structs), len(REGISTRY.packed), len(REGISTRY.pools)
