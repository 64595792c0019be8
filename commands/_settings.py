"""``set gdbext ...`` / ``show gdbext ...``: gdbext's settings as gdb Parameters.

``show gdbext`` alone lists every setting with its value, the way
``show print`` does for gdb's own.
"""
from __future__ import annotations

from typing import List

import gdb  # type: ignore[import-not-found]

__all__ = ["register_settings", "SETTINGS", "show_lines"]


class _Prefix(gdb.Command):
    """Generic prefix for gdbext settings."""

    def __init__(self, name: str) -> None:
        super().__init__(name, gdb.COMMAND_DATA, gdb.COMPLETE_NONE, True)


class _ShowPrefix(_Prefix):
    """Show every gdbext setting with its value; `show gdbext NAME' shows one."""

    def invoke(self, arg: str, from_tty: bool) -> None:
        if arg.strip():
            raise gdb.GdbError(f'Undefined show gdbext command: "{arg.strip()}".  Try "help show gdbext".')
        for line in show_lines():
            gdb.write(line + "\n")


class _Setting(gdb.Parameter):
    """What every gdbext parameter shares: its name and how ``show`` words its value."""

    def __init__(self, name: str, doc: str, kind: int) -> None:
        self.__doc__ = doc
        self.set_doc = doc
        self.show_doc = doc
        self.short_name = name
        super().__init__(f"gdbext {name}", gdb.COMMAND_DATA, kind)

    def get_set_string(self) -> str:
        return ""  # `set' is silent, as gdb's own settings are

    def get_show_string(self, svalue: str) -> str:
        return f"gdbext {self.short_name} is {svalue or 'unset'}."

    def show_line(self) -> str:
        """One line of ``show gdbext``: ``NAME:  value``."""
        value = self.value
        if isinstance(value, bool):
            text = "on" if value else "off"
        else:
            text = f'"{value}"' if value else "unset"
        return f"gdbext {self.short_name}:  {text}"


class _Bool(_Setting):
    def __init__(self, name: str, doc: str, default: bool) -> None:
        super().__init__(name, doc, gdb.PARAM_BOOLEAN)
        self.value = default


class _Text(_Setting):
    def __init__(self, name: str, doc: str) -> None:
        super().__init__(name, doc, gdb.PARAM_STRING)
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


def show_lines() -> List[str]:
    """Every gdbext setting with its value, sorted by name (what ``show gdbext`` prints)."""
    params = [p for p in _made if isinstance(p, _Setting)]
    return [p.show_line() for p in sorted(params, key=lambda p: p.short_name)]


def register_settings() -> None:
    """Create the ``set/show gdbext`` prefixes and every parameter once."""
    if _made:
        return
    _made.append(_Prefix("set gdbext"))
    _made.append(_ShowPrefix("show gdbext"))
    for kind, name, doc, *default in _all_settings():
        if kind == "bool":
            _made.append(_Bool(name, doc, bool(default[0])))
        else:
            _made.append(_Text(name, doc))
