"""``gdbext``: the prefix of gdbext's housekeeping commands; alone, says what is loaded."""
from __future__ import annotations

from typing import List

import gdbext
from gdbext.kit import KIT
from gdbext.specs import REGISTRY

from ._base import GdbextCommand

__all__ = ["GdbextPrefixCommand"]


class GdbextPrefixCommand(GdbextCommand):
    """gdbext: show what gdbext has loaded (version, declarations, spec files).

Usage: gdbext
Subcommands follow; `help gdbext' lists them."""

    command_name = "gdbext"
    prefix = True

    def run(self, argv: List[str], from_tty: bool) -> None:
        print(f"gdbext {gdbext.__version__}")
        print(f"spec files: {', '.join(REGISTRY.files) or 'none'}")
        for name in sorted(KIT.structs):
            print(f"struct printer {name}")
        for key, binding in sorted(REGISTRY.packed.items()):
            target = binding.typedef or binding.expression
            print(f"packed word {binding.layout.name}: {len(binding.layout.fields)} fields -> {target}")
        for name in sorted(REGISTRY.pools):
            print(f"pool {name}")
