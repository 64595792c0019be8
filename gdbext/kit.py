"""Printers for your own structs, declared in a few lines: the printer kit.

A declaration names the type, how some fields read (enum names, flag names,
units, hex), and an optional one-line summary::

    from gdbext.kit import Flags, Hex, Names, Unit, struct_printer

    struct_printer(
        "struct conn",
        fields={
            "state": Names({0: "IDLE", 1: "OPEN", 2: "CLOSING"}),
            "flags": Flags({0x1: "READ", 0x2: "WRITE", 0x4: "TLS"}),
            "timeout": Unit("ms"),
            "peer_ip": Hex(width=8),
        },
        summary="fd {fd} {state}",
    )

gdb then prints every ``struct conn`` as ``fd 7 OPEN = {fd = 7, state = OPEN,
flags = 0x5 [READ | TLS], ...}``: the summary, then every member in the
order the struct declares them, with the declared formats applied.  Members
not named in ``fields`` print as gdb prints them.  docs/printer-kit.md is
the how-to.

This module only holds the declarations (it imports no gdb); the gdbext
printer collection reads :data:`KIT` when it matches values
(``printers/kit.py``).  A spec file that calls :func:`struct_printer` is
loaded with ``gdbext load FILE``, ``source FILE`` or gdb's auto-load.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .errors import SpecError
from .packed import format_enum, format_flags
from .specs import Observed

__all__ = [
    "Format",
    "Names",
    "Flags",
    "Unit",
    "Hex",
    "Bool",
    "Hidden",
    "Text",
    "FieldFormat",
    "Shown",
    "StructPrinter",
    "KitRegistry",
    "KIT",
    "struct_printer",
    "split_path",
    "c_string",
]

Number = Union[int, float]

#: What a format receives: the member's number, or its characters for a ``takes_text`` format.
Value = Union[int, float, str]


class Format:
    """How one field's number reads; subclasses implement :meth:`format`."""

    #: A hidden field is left out of the children (it can still appear in the summary).
    hidden = False

    #: The format takes the member's characters (a ``char`` array or ``char *``), not a number.
    takes_text = False

    def format(self, value: Value) -> str:
        """The text shown for ``value``: an int (a float for floating-point members; a str for text formats)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Names(Format):
    """Value names, like an enum: ``OPEN``; a value without a name reads ``<invalid 7>``.

    :param names: value -> name
    """

    names: Mapping[int, str]

    def format(self, value: Value) -> str:
        return format_enum(int(value), self.names)


@dataclass(frozen=True)
class Flags(Format):
    """A flag set, the way gdb prints a flag enum: ``0x5 [READ | TLS]``, unknown bits as ``<unknown: 0x8>``.

    :param names: bit mask -> name
    """

    names: Mapping[int, str]

    def format(self, value: Value) -> str:
        return format_flags(int(value), self.names)


@dataclass(frozen=True)
class Unit(Format):
    """A quantity: ``1500 ms``, or with ``scale=0.1``: ``-12.3 C``.

    :param unit: the unit appended after a space
    :param scale: multiply the stored value by this first; the decimals follow the scale
    """

    unit: str
    scale: Optional[float] = None

    def format(self, value: Value) -> str:
        if self.scale is not None:
            text = f"{float(value) * self.scale:.{_decimals(self.scale)}f}"
        elif isinstance(value, float):
            text = f"{value:g}"
        else:
            text = str(value)
        return f"{text} {self.unit}" if self.unit else text


@dataclass(frozen=True)
class Hex(Format):
    """Hexadecimal: ``0x1f``; ``width=8`` pads to ``0x0000001f``.

    :param width: hex digits to pad to (0: no padding)
    """

    width: int = 0

    def format(self, value: Value) -> str:
        value = int(value)
        if value < 0:
            return f"-{-value:#0{2 + self.width}x}"
        return f"{value:#0{2 + self.width}x}"


@dataclass(frozen=True)
class Bool(Format):
    """``true`` for any non-zero value, else ``false``."""

    def format(self, value: Value) -> str:
        return "true" if value else "false"


@dataclass(frozen=True)
class Hidden(Format):
    """Leave the field out of the children (padding, reserved bits, secrets)."""

    hidden = True

    def format(self, value: Value) -> str:
        return str(value)


@dataclass(frozen=True)
class Text(Format):
    """A ``char`` array or ``char *`` as a C string up to its first NUL: ``"10.0.0.7"``.

    gdb itself shows a ``char [16]`` with its NUL padding; the bytes after the
    NUL stay visible with ``print obj.member``.
    """

    takes_text = True

    def format(self, value: Value) -> str:
        return c_string(str(value))


def c_string(text: str) -> str:
    """``text`` as a C string literal: ``"a\\"b\\n"``; other unprintable characters as octal escapes."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.append({"\n": "\\n", "\t": "\\t"}.get(ch, f"\\{ord(ch) & 0xFF:03o}"))
    return '"' + "".join(out) + '"'


#: What ``fields=`` maps a member name to: a :class:`Format`, any ``number -> str`` callable,
#: or None for "as gdb prints it" (scaffolds list every member that way).
FieldFormat = Union[Format, Callable[[Number], str], None]


def _decimals(scale: float) -> int:
    """Digits after the point that a scale such as 0.1 or 0.05 needs."""
    text = repr(float(scale))
    return len(text.split(".")[1].rstrip("0")) if "." in text and "e" not in text else 3


class Shown:
    """One field as the summary template sees it: its text, and its number for format specs.

    ``{state}`` gives the text (``OPEN``); ``{state:d}`` or ``{flags:#x}``
    apply the spec to the number.
    """

    def __init__(self, text: str, number: Optional[Number] = None) -> None:
        self.text = text
        self.number = number

    def __str__(self) -> str:
        return self.text

    def __format__(self, spec: str) -> str:
        if spec and self.number is not None:
            return format(self.number, spec)
        return format(self.text, spec)


class _SummaryFormatter(string.Formatter):
    """Looks every ``{path}`` up through a callback instead of positional/keyword arguments."""

    def __init__(self, lookup: Callable[[str], Shown]) -> None:
        super().__init__()
        self._lookup = lookup

    def get_field(self, field_name: str, args: Sequence[object], kwargs: Mapping[str, object]) -> Tuple[object, str]:
        return self._lookup(field_name), field_name


_PATH_TOKEN = re.compile(r"\.?([A-Za-z_]\w*)|\[(\d+)\]")


def split_path(path: str) -> List[Union[str, int]]:
    """``"status.mode"`` -> ``["status", "mode"]``; ``"slots[2].hdr"`` -> ``["slots", 2, "hdr"]``.

    :raises SpecError: when ``path`` is not member names and ``[N]`` indices
    """
    parts: List[Union[str, int]] = []
    pos = 0
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if m is None or (pos == 0 and path.startswith(".")):
            raise SpecError(f"{{{path}}}: not a member path (write names, dots and [N])")
        parts.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if not parts or not isinstance(parts[0], str):
        raise SpecError(f"{{{path}}}: not a member path (write names, dots and [N])")
    return parts


@dataclass(frozen=True)
class StructPrinter:
    """The declaration of one struct's printer (see :func:`struct_printer`).

    :param type_name: ``"struct conn"``, ``"union u"`` or a typedef / C++ class name
    :param fields: member name -> :data:`FieldFormat`, for the members that need meaning
    :param summary: one-line template shown before the members, e.g. ``"fd {fd} {state}"``
    :param children: show the members (False: the summary alone, handy in big arrays)
    """

    type_name: str
    fields: Mapping[str, FieldFormat] = field(default_factory=dict)
    summary: Optional[str] = None
    children: bool = True

    def __post_init__(self) -> None:
        if not self.type_name or not self.type_name.strip():
            raise SpecError("struct_printer: give the type name, e.g. 'struct conn'")
        for name, fmt in self.fields.items():
            if fmt is not None and not isinstance(fmt, Format) and not callable(fmt):
                raise SpecError(f"{self.type_name}: field {name}: {fmt!r} is not a format "
                                f"(use Names, Flags, Unit, Hex, Bool, Text, Hidden, a function, or None)")
        if not self.children and not self.summary:
            raise SpecError(f"{self.type_name}: children=False needs a summary")
        self.placeholders()  # check the template now, not at print time

    @property
    def keyword(self) -> Optional[str]:
        """``struct``, ``union`` or ``class`` when the name carries one, else None."""
        head = self.type_name.split(None, 1)
        return head[0] if len(head) == 2 and head[0] in ("struct", "union", "class") else None

    @property
    def tag(self) -> str:
        """The name without its ``struct``/``union`` keyword."""
        return self.type_name.split(None, 1)[1].strip() if self.keyword else self.type_name.strip()

    @property
    def name(self) -> str:
        """The subprinter's name in ``info pretty-printer``: ``kit:struct_conn``."""
        return "kit:" + "_".join(self.type_name.split())

    def placeholders(self) -> List[str]:
        """The member paths the summary uses, in order."""
        if not self.summary:
            return []
        try:
            parsed = list(string.Formatter().parse(self.summary))
        except ValueError as err:
            raise SpecError(f"{self.type_name}: summary {self.summary!r}: {err}") from None
        paths = []
        for _text, path, _spec, _conv in parsed:
            if path is None:
                continue
            if not path:
                raise SpecError(f"{self.type_name}: summary {self.summary!r}: empty {{}}; name a member")
            split_path(path)
            paths.append(path)
        return paths

    def format_value(self, member: str, value: Value) -> str:
        """``value`` of ``member`` as the declared format shows it (the number when none is declared)."""
        fmt = self.fields.get(member)
        if fmt is None:
            return str(value)
        if isinstance(fmt, Format):
            return fmt.format(value)
        return str(fmt(value))  # type: ignore[arg-type]

    def takes_text(self, member: str) -> bool:
        fmt = self.fields.get(member)
        return isinstance(fmt, Format) and fmt.takes_text

    def is_hidden(self, member: str) -> bool:
        fmt = self.fields.get(member)
        return isinstance(fmt, Format) and fmt.hidden

    def render_summary(self, lookup: Callable[[str], Shown]) -> Optional[str]:
        """The summary line, each ``{path}`` filled in by ``lookup(path)``."""
        if not self.summary:
            return None
        return _SummaryFormatter(lookup).format(self.summary)


class KitRegistry(Observed):
    """Struct printers by type name; listeners hear of every change (the printer collection refreshes)."""

    def __init__(self) -> None:
        super().__init__()
        self.structs: Dict[str, StructPrinter] = {}

    def add(self, spec: StructPrinter) -> None:
        """Declare ``spec``, replacing an earlier declaration of the same type (re-loading is safe)."""
        self.structs[" ".join(spec.type_name.split())] = spec
        self._changed()

    def clear(self) -> None:
        self.structs.clear()
        self._changed()


#: The process-wide struct-printer declarations that ``printers/kit.py`` reads.
KIT = KitRegistry()


def struct_printer(
    type_name: str,
    fields: Optional[Mapping[str, FieldFormat]] = None,
    summary: Optional[str] = None,
    children: bool = True,
) -> StructPrinter:
    """Declare how gdb prints values of ``type_name``.

    :param type_name: ``"struct conn"``, ``"union reg"``, or a typedef name (matches that typedef only)
    :param fields: member name -> :class:`Names`, :class:`Flags`, :class:`Unit`, :class:`Hex`,
        :class:`Bool`, :class:`Text`, :class:`Hidden`, a ``number -> str`` function, or None
        (as gdb prints it)
    :param summary: a one-line template shown first: ``{member}`` is the member as shown,
        ``{member:#x}`` formats its number, ``{a.b}`` and ``{arr[2]}`` reach inside
    :param children: list the members after the summary (in the struct's own order)
    :returns: the declaration (already registered)
    :raises SpecError: for a malformed declaration
    """
    spec = StructPrinter(type_name, dict(fields or {}), summary, children)
    KIT.add(spec)
    return spec
