"""``set gdbext ...`` / ``show gdbext ...``: gdbext's settings as gdb Parameters."""
from __future__ import annotations

from typing import List

import gdb  # type: ignore[import-not-found]

__all__ = ["register_settings", "SETTINGS"]


class _Prefix(gdb.Command):
    """Generic prefix for gdbext settings."""

    def __init__(self, name: str) -> None:
        super().__init__(name, gdb.COMMAND_DATA, gdb.COMPLETE_NONE, True)


class _Bool(gdb.Parameter):
    def __init__(self, name: str, doc: str, default: bool) -> None:
        self.__doc__ = doc
        self.set_doc = doc
        self.show_doc = doc
        super().__init__(f"gdbext {name}", gdb.COMMAND_DATA, gdb.PARAM_BOOLEAN)
        self.value = default


class _Text(gdb.Parameter):
    def __init__(self, name: str, doc: str) -> None:
        self.__doc__ = doc
        self.set_doc = doc
        self.show_doc = doc
        super().__init__(f"gdbext {name}", gdb.COMMAND_DATA, gdb.PARAM_STRING)
        self.value = ""


#: (kind, name, help) of every setting; heap-model overrides join this list.
SETTINGS = [
    ("bool", "show-raw", "Whether gdbext printers also show the raw word(s) of bitfield structs and packed words.",
     False),
    ("bool", "debug", "Whether gdbext commands show a Python traceback on an internal error.", False),
]

def _all_settings():
    from ._heap import HEAP_SETTINGS  # heap overrides live with the heap commands

    return SETTINGS + HEAP_SETTINGS


_made: List[object] = []


def register_settings() -> None:
    """Create the ``set/show gdbext`` prefixes and every parameter once."""
    if _made:
        return
    _made.append(_Prefix("set gdbext"))
    _made.append(_Prefix("show gdbext"))
    for kind, name, doc, *default in _all_settings():
        if kind == "bool":
            _made.append(_Bool(name, doc, bool(default[0])))
        else:
            _made.append(_Text(name, doc))
