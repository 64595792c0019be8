"""gdbext's pretty-printers, registered as one ``gdb.printing`` collection named ``gdbext``.

Each module in this package contributes subprinters through a module-level
``subprinters()`` function and says how early it is asked with ``PRIORITY``
(lower first: a team's declarations before generic printers).  The
collection asks every module again whenever a declaration is added (struct
printers, packed words and pools come from the user's files), keeping each
subprinter's enabled state, so ``info pretty-printer``,
``disable pretty-printer global gdbext;NAME`` and ``enable ...`` work.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Dict, List

import gdb  # type: ignore[import-not-found]
import gdb.printing  # type: ignore[import-not-found]

from gdbext.kit import KIT
from gdbext.specs import REGISTRY

__all__ = ["GdbextCollection", "collection", "register"]

COLLECTION_NAME = "gdbext"


def _modules():
    """The printer modules, most specific first (``PRIORITY``, then name)."""
    modules = [importlib.import_module(f"{__name__}.{info.name}")
               for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")]
    return sorted(modules, key=lambda m: (getattr(m, "PRIORITY", 50), m.__name__))


class GdbextCollection(gdb.printing.PrettyPrinter):
    """The ``gdbext`` collection: asks each enabled subprinter in turn."""

    def __init__(self) -> None:
        super().__init__(COLLECTION_NAME, [])
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the subprinter list from the modules, keeping enabled flags by name."""
        enabled: Dict[str, bool] = {sp.name: sp.enabled for sp in self.subprinters or []}
        subs: List[object] = []
        for module in _modules():
            subs.extend(module.subprinters())
        for sp in subs:
            sp.enabled = enabled.get(sp.name, True)
        self.subprinters = subs

    def __call__(self, val):
        if not self.enabled:
            return None
        for sp in self.subprinters:
            if sp.enabled:
                printer = sp.match(val)
                if printer is not None:
                    return printer
        return None


_COLLECTION: List[GdbextCollection] = []


def collection() -> GdbextCollection:
    """The one collection of this gdb session."""
    if not _COLLECTION:
        _COLLECTION.append(GdbextCollection())
        REGISTRY.subscribe(_COLLECTION[0].refresh)
        KIT.subscribe(_COLLECTION[0].refresh)
    return _COLLECTION[0]


def register() -> None:
    """Register the collection globally (idempotent: ``replace=True``).

    Global, not per objfile: the printers are driven by types and the user's
    declarations, apply to every objfile, and must work when gdbext is loaded
    before the program is.
    """
    from ._base import prepare_bool_type

    prepare_bool_type()
    gdb.printing.register_pretty_printer(None, collection(), replace=True)
