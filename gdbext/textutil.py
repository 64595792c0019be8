# gdbext/textutil.py - bytes as text for forensic reports: printable-text
# detection, C escaping, control-character escaping of any output line, and
# annotated hexdumps with ASan-style [..] marks.
"""Turning raw target bytes into report text.

* :func:`escape_controls` makes any text (a file name, a symbol, glibc's
  abort message) safe to print on one terminal or log line;
* :func:`printable_text` says whether bytes are (mostly) printable ASCII, the
  question behind "this pointer is really the text ``ndow=360``";
* :func:`c_escape` renders any bytes as a C string body;
* :func:`hexdump` prints address / hex / ASCII rows and marks labelled
  ranges the way ASan marks the bad shadow byte: the first byte of each range
  is bracketed (``00 00[fa]fa``), rows holding a marked byte start with
  ``=>`` and carry the labels, and a legend line follows.

Nothing here reads memory; callers pass the bytes.
"""
from __future__ import annotations

import unicodedata
from typing import List, Optional, Sequence, Tuple, Union

__all__ = [
    "printable_text",
    "c_escape",
    "escape_controls",
    "hexdump",
    "is_printable_byte",
    "Mark",
]

#: A labelled range ``(start address, end address (exclusive), label)``.
Mark = Tuple[int, int, str]

BytesLike = Union[bytes, bytearray, memoryview]

_SIMPLE_ESCAPES = {
    0x07: "\\a",
    0x08: "\\b",
    0x09: "\\t",
    0x0A: "\\n",
    0x0B: "\\v",
    0x0C: "\\f",
    0x0D: "\\r",
    0x22: '\\"',
    0x5C: "\\\\",
}

#: Whitespace that still counts as text.
_TEXT_CONTROLS = frozenset((0x09, 0x0A, 0x0D))


def is_printable_byte(b: int) -> bool:
    """True for printable ASCII (0x20..0x7e) and tab, newline, carriage return."""
    return 0x20 <= b < 0x7F or b in _TEXT_CONTROLS


def printable_text(data: BytesLike, threshold: float = 0.75, min_len: int = 1) -> Optional[str]:
    """The bytes as text when they are mostly printable ASCII, else None.

    A NUL ends the text, as in C (``b"abc\\0\\xff\\xff"`` is ``"abc"``); the
    bytes before it are judged.  Non-printable bytes inside accepted text are
    rendered as C octal escapes.

    :param data: the bytes to judge.
    :param threshold: the least fraction of printable bytes (0..1].
    :param min_len: the fewest bytes (before the NUL) that count as text.
    :returns: the text, or None (empty, too short, or not printable enough).
    """
    raw = bytes(data)
    nul = raw.find(b"\0")
    if nul >= 0:
        raw = raw[:nul]
    if not raw or len(raw) < max(1, min_len):
        return None
    good = sum(1 for b in raw if is_printable_byte(b))
    if good < threshold * len(raw):
        return None
    if good == len(raw) and not any(b in _TEXT_CONTROLS for b in raw):
        return raw.decode("ascii")
    return c_escape(raw)


def c_escape(data: BytesLike) -> str:
    """``data`` as the body of a C string literal (without the quotes).

    Printable ASCII stays as is; ``\\n``, ``\\t``, quotes and backslashes get
    their usual escapes; every other byte becomes a three-digit octal escape
    (``\\000``, ``\\377``), as GDB prints them, so no escape can swallow the
    character after it.
    """
    out = []
    for b in bytes(data):
        simple = _SIMPLE_ESCAPES.get(b)
        if simple is not None:
            out.append(simple)
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03o}")
    return "".join(out)


#: Unicode categories that move the cursor, end a line, reorder or hide text: controls (C0, DEL, C1),
#: format characters (bidi overrides, zero-width), line and paragraph separators, lone surrogates.
_CONTROL_CATEGORIES = frozenset(("Cc", "Cf", "Zl", "Zp", "Cs"))


def escape_controls(text: str) -> str:
    """``text`` with every control or invisible formatting character written as ``\\xNN`` / ``\\uNNNN``.

    What is left prints as it reads, on one line: no ANSI escape sequence,
    carriage return, line break or bidi override from a core, a binary or a
    file name reaches a terminal, a CI log or a report.
    """
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if unicodedata.category(ch) in _CONTROL_CATEGORIES:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def _addr_width(end: int) -> int:
    """Hex digits for addresses up to ``end``: 8, 12 or 16."""
    digits = len(f"{max(end - 1, 0):x}")
    for w in (8, 12, 16):
        if digits <= w:
            return w
    return digits


def hexdump(data: BytesLike, base: int, marks: Optional[Sequence[Mark]] = None, width: int = 16) -> List[str]:
    """Annotated hexdump lines of ``data`` located at ``base``.

    Rows are aligned to multiples of ``width`` in the target's address space
    (bytes before ``base`` or after the data are left blank).  For each mark
    ``(start, end, label)`` the first byte of the range that lies in the dump
    is bracketed, every row holding a byte of the range starts with ``=>`` and
    lists the label after the ASCII column, and a legend line closes the
    dump::

          0x004aa440: 61 6c 69 62 72 61 74 69 6f 6e 3f 63 68 61 6e 6e  |alibration?chann|
        =>0x004aa450: 65 6c 3d 30 39 26 75 6e 69 74 3d 6b 65 6c 76 69  |el=09&unit=kelvi|  payload overrun
        ...
        [..] = first byte of a marked range: 0x4aa448..0x4aa450 payload overrun

    :param data: the bytes.
    :param base: the address of ``data[0]``.
    :param marks: labelled ranges, ``end`` exclusive; ranges outside the dump are ignored.
    :param width: bytes per row (at least 1).
    :returns: the lines, without newlines; ``[]`` for empty data.
    """
    raw = bytes(data)
    if not raw:
        return []
    width = max(1, int(width))
    end = base + len(raw)
    shown = [
        (max(start, base), min(stop, end), label)
        for start, stop, label in (marks or ())
        if stop > start and start < end and stop > base
    ]
    firsts = {start for start, _stop, _label in shown}
    aw = _addr_width(end)
    lines: List[str] = []
    row = base - (base % width)
    while row < end:
        cells: List[str] = []
        text: List[str] = []
        for addr in range(row, row + width):
            if base <= addr < end:
                b = raw[addr - base]
                cells.append(f"{b:02x}")
                text.append(chr(b) if 0x20 <= b < 0x7F else ".")
            else:
                cells.append("  ")
                text.append(" ")
        # separators between cells; a marked cell replaces its neighbours with brackets
        # (two adjacent marked cells share one separator, drawn as "|": "[aa|bb]").
        seps = [" "] * (width + 1)
        for i in range(width):
            if row + i in firsts:
                seps[i] = "|" if seps[i] == "]" else "["
                seps[i + 1] = "]"
        body = "".join(seps[i] + cells[i] for i in range(width)) + seps[width]
        labels = [label for start, stop, label in shown if start < row + width and stop > row]
        prefix = "=>" if labels else "  "
        line = f"{prefix}0x{row:0{aw}x}:{body} |{''.join(text)}|"
        if labels:
            line += "  " + ", ".join(dict.fromkeys(labels))
        lines.append(line)
        row += width
    if shown:
        legend = "; ".join(f"{start:#x}..{stop:#x} {label}" for start, stop, label in shown)
        lines.append(f"[..] = first byte of a marked range: {legend}")
    return lines
