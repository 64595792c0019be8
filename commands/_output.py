"""How gdbext commands write: within gdb's ``width``, through gdb's pager, coloured by gdb's styles.

* Width: a line longer than ``show width`` is wrapped at word boundaries,
  continuation lines indented two more spaces than the line's own indent
  (gdb's own wrapping would cut mid-word at the last column).  Unlimited
  width (gdb's batch default) leaves lines as they are.
* Paging: everything goes through ``gdb.write``, so gdb's pager stops every
  ``height`` lines; answering ``q`` raises KeyboardInterrupt out of the
  write, which ends the command the way gdb's own commands end.
* Colour: only when ``set style enabled`` is on (gdb turns it off in batch
  mode, for dumb terminals and when the user asks) and gdb writes to a
  terminal; the escapes are gdb's own (``ESC[32m`` ... ``ESC[m``); addresses take gdb's
  ``style address`` colours, severities (``error:``, ``==>``) ``style
  highlight``, section headings ``style title``.  A user's ``set style
  address foreground green`` recolours gdbext's addresses too.
"""
from __future__ import annotations

import os
import re
import textwrap
from typing import Dict, Iterable, List, Optional

import gdb  # type: ignore[import-not-found]

__all__ = ["begin", "write", "write_lines", "output_width", "fit", "styled", "style_enabled"]

#: Narrowest width we wrap to; below it lines are left whole.
MIN_WIDTH = 40

_ANSI_COLOURS: Dict[str, int] = {
    "black": 0, "red": 1, "green": 2, "yellow": 3, "blue": 4, "magenta": 5, "cyan": 6, "white": 7,
}  # fmt: skip
_INTENSITY = {"bold": "1", "dim": "2"}

_ADDRESS = re.compile(r"\b0x[0-9a-f]{4,16}\b")
_SEVERITY = re.compile(r"^(\s*)(==>|error:|warning:|problem:)")
_TITLE = re.compile(r"^(backtrace|heap|findings|signature|crash):")


def _parameter(name: str) -> object:
    try:
        return gdb.parameter(name)
    except (gdb.error, RuntimeError):
        return None


def output_width() -> Optional[int]:
    """gdb's ``width`` in columns, or None when unlimited (or too narrow to wrap sensibly)."""
    value = _parameter("width")
    if not isinstance(value, int) or value <= 0:
        return None
    return value if value >= MIN_WIDTH else None


def fit(line: str, width: Optional[int]) -> List[str]:
    """``line`` wrapped to fit in ``width - 1`` columns (gdb wraps at the last column itself)."""
    if width is None or len(line) < width:
        return [line]
    indent = line[: len(line) - len(line.lstrip(" "))]
    if len(indent) > width // 2:
        indent = ""
    wrapped = textwrap.wrap(line, width=width - 1, subsequent_indent=indent + "  ", break_on_hyphens=False,
                            drop_whitespace=True)
    return wrapped or [line]


def style_enabled() -> bool:
    """Whether gdb styles its output now: ``style enabled`` on and gdb's stdout a terminal (gdb's own rule)."""
    return _parameter("style enabled") is True and os.isatty(1)


def _sgr(style: str) -> str:
    """The ANSI SGR escape for one of gdb's styles (``address``, ``highlight``, ...), from its settings."""
    codes = []
    fg = _parameter(f"style {style} foreground")
    bg = _parameter(f"style {style} background")
    intensity = _parameter(f"style {style} intensity")
    if isinstance(intensity, str) and intensity in _INTENSITY:
        codes.append(_INTENSITY[intensity])
    if isinstance(fg, str) and fg in _ANSI_COLOURS:
        codes.append(str(30 + _ANSI_COLOURS[fg]))
    if isinstance(bg, str) and bg in _ANSI_COLOURS:
        codes.append(str(40 + _ANSI_COLOURS[bg]))
    return f"\x1b[{';'.join(codes)}m" if codes else ""


def styled(text: str, style: str) -> str:
    """``text`` in gdb's ``style`` when styling is on; the plain text otherwise."""
    if not style_enabled():
        return text
    start = _sgr(style)
    return f"{start}{text}\x1b[m" if start else text


class _Styler:
    """Colours one command's lines; the escapes are looked up once per command."""

    def __init__(self) -> None:
        self.on = style_enabled()
        self.codes = {name: _sgr(name) for name in ("address", "highlight", "title")} if self.on else {}

    def _wrap(self, text: str, style: str) -> str:
        start = self.codes.get(style, "")
        return f"{start}{text}\x1b[m" if start else text

    def __call__(self, line: str) -> str:
        if not self.on:
            return line
        line = _ADDRESS.sub(lambda m: self._wrap(m.group(0), "address"), line)
        line = _SEVERITY.sub(lambda m: m.group(1) + self._wrap(m.group(2), "highlight"), line)
        return _TITLE.sub(lambda m: self._wrap(m.group(1), "title") + ":", line)


class _Settings:
    """gdb's width and styles as one command saw them when it started (looked up once, not per line)."""

    def __init__(self) -> None:
        self.width = output_width()
        self.style = _Styler()


_current: List[_Settings] = []


def begin() -> None:
    """Read gdb's width and styles for the command that starts now (GdbextCommand.invoke calls it)."""
    _current[:] = [_Settings()]


def _settings() -> _Settings:
    return _current[0] if _current else _Settings()


def write_lines(lines: Iterable[str]) -> None:
    """Write lines (without their newlines), each fitted to the width and styled."""
    settings = _settings()
    for line in lines:
        for part in fit(line, settings.width):
            gdb.write(settings.style(part) + "\n")


def write(text: str) -> None:
    """Write ``text`` (one or more ``\\n``-terminated lines) fitted and styled; a partial last line too."""
    lines = text.split("\n")
    tail = lines.pop()
    write_lines(lines)
    if tail:
        gdb.write(_settings().style(tail))
