"""gdbext: pretty-printers and heap forensics for C and C++ crashes, inside gdb and on plain cores.

Inside gdb: ``python import gdbext; gdbext.register()`` (``gdbinit.example``
does it).  The core library (memory sources, the glibc heap model, pools,
packed words, reports) imports without gdb; only ``gdbext.gdbmem``,
``gdbext.printers`` and ``gdbext.commands`` need it.
"""
from __future__ import annotations

import os

__all__ = ["__version__", "register"]

__version__ = "0.1.0"

# In a checkout, printers/ and commands/ sit beside this package; installed,
# setup.py maps them to gdbext.printers and gdbext.commands.  Letting the
# package path include the checkout root makes both layouts import the same.
_here = os.path.dirname(os.path.abspath(__file__))
_root = os.path.dirname(_here)
if not os.path.isdir(os.path.join(_here, "printers")) and os.path.isfile(
    os.path.join(_root, "printers", "__init__.py")
):
    __path__.append(_root)  # type: ignore[name-defined]  # noqa: F821

_registered = False


def register() -> None:
    """Register gdbext's printers, commands and settings in the running gdb (idempotent)."""
    global _registered
    from . import commands, printers  # noqa: F401  (gdb-only modules)

    printers.register()
    if not _registered:
        commands.register()
        _registered = True
