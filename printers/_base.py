"""Shared pieces of the printers: the value-printer base, subprinters, lazy caches, raw view."""
from __future__ import annotations

from typing import Callable, Dict, Optional

import gdb  # type: ignore[import-not-found]

__all__ = ["ValuePrinter", "SubPrinter", "ProgramCache", "raw_view", "unreadable", "type_names", "leaf", "prepare_bool_type"]

#: gdb 14 added ``gdb.ValuePrinter``; earlier gdbs take any object.
ValuePrinter = getattr(gdb, "ValuePrinter", object)


class SubPrinter:
    """A named, enable-able subprinter: ``match(value)`` returns a printer or None."""

    def __init__(self, name: str, match: Callable[[gdb.Value], Optional[object]]) -> None:
        self.name = name
        self.enabled = True
        self._match = match

    def match(self, val: gdb.Value) -> Optional[object]:
        return self._match(val)


class ProgramCache:
    """A dict emptied whenever the program or its state changes (new objfile, stop, exit)."""

    _all: list = []

    def __init__(self) -> None:
        self.data: Dict[object, object] = {}
        if not ProgramCache._all:
            for event in ("new_objfile", "clear_objfiles", "stop", "exited", "cont", "memory_changed"):
                registry = getattr(gdb.events, event, None)
                if registry is not None:
                    registry.connect(ProgramCache._clear_all)
        ProgramCache._all.append(self)

    @staticmethod
    def _clear_all(_event: object = None) -> None:
        for cache in ProgramCache._all:
            cache.data.clear()


def raw_view() -> bool:
    """``set gdbext show-raw on``: printers also show the raw word(s)."""
    try:
        return bool(gdb.parameter("gdbext show-raw"))
    except (gdb.error, RuntimeError):
        return False


def unreadable(val: gdb.Value) -> Optional[str]:
    """``<unreadable at 0x...>`` when ``val``'s bytes cannot be read, else None."""
    try:
        val.fetch_lazy()
        return None
    except gdb.MemoryError:
        addr = val.address
        return f"<unreadable at {int(addr):#x}>" if addr is not None else "<unreadable>"


def type_names(gtype: gdb.Type):
    """The names a value's type goes by, outermost typedef first (``const`` dropped)."""
    t = gtype.unqualified()
    seen = 0
    while t is not None and seen < 16:
        if t.name:
            yield t.name
        if t.code != gdb.TYPE_CODE_TYPEDEF:
            break
        t = t.target().unqualified()
        seen += 1


_BOOL: list = []


def prepare_bool_type() -> None:
    """Fetch gdb's builtin ``bool`` (a C++ type that prints true/false in every language) once.

    C programs rarely have ``_Bool`` in their debug info, and gdb's C parser
    has no boolean type; the C++ builtin is borrowed at registration time,
    never while a value is being printed.
    """
    if _BOOL:
        return
    language = gdb.parameter("language") or "auto"
    try:
        gdb.execute("set language c++", to_string=True)
        _BOOL.append(gdb.lookup_type("bool"))
    except gdb.error:
        _BOOL.append(None)
    finally:
        gdb.execute(f"set language {language}", to_string=True)


def leaf(value: int, text: str):
    """A child value: a real integer ``gdb.Value`` when the text is just the number, else the text.

    Integers stay integers for MI front-ends (VS Code shows them as numbers and
    can format them); names, flags and units have no C value and stay text.
    """
    if text == str(value):
        return gdb.Value(value).cast(gdb.lookup_type("long long"))
    if text in ("true", "false") and _BOOL and _BOOL[0] is not None:
        return gdb.Value(value).cast(_BOOL[0])
    return text
