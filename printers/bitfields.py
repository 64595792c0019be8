"""Printer for structs with DWARF bitfields: each field with its bits, enums named, flags as true/false.

``print g_status`` shows::

    {channel [0..3] = 5, unit [4..5] = UNIT_FAHRENHEIT, valid [6] = true, ...,
     mode [14..16] = <invalid 7>}

Bit ranges count from bit 0 of the struct, inclusive.  With ``set gdbext
show-raw on`` the raw storage words come first.  Members that are not
bitfields print as gdb prints them.
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Tuple

import gdb  # type: ignore[import-not-found]

from gdbext.packed import format_enum, format_flags

from ._base import ProgramCache, SubPrinter, ValuePrinter, leaf, raw_view, unreadable

__all__ = ["BitfieldStructPrinter", "subprinters", "PRIORITY"]

#: Order among printer modules (generic: any struct with bitfields, asked last).
PRIORITY = 90

_HAS_BITFIELDS = ProgramCache()


def _has_bitfields(gtype: gdb.Type) -> bool:
    key = (gtype.name or gtype.tag, gtype.sizeof)
    hit = _HAS_BITFIELDS.data.get(key)
    if hit is None:
        hit = any(f.bitsize for f in gtype.fields() if not f.is_base_class)
        _HAS_BITFIELDS.data[key] = hit
    return bool(hit)


def _enum_names(etype: gdb.Type) -> dict:
    return {int(f.enumval): f.name for f in etype.fields()}


def _is_flag_enum(names: dict) -> bool:
    values = [v for v in names if v]
    return len(values) > 1 and all(v > 0 and v & (v - 1) == 0 for v in values)


def bit_label(name: str, bitpos: int, bitsize: int) -> str:
    """``name [lo..hi]`` (or ``name [lo]`` for one bit)."""
    if bitsize == 1:
        return f"{name} [{bitpos}]"
    return f"{name} [{bitpos}..{bitpos + bitsize - 1}]"


def format_bitfield(value: int, ftype: gdb.Type, bitsize: int) -> str:
    """How one bitfield's value reads: enum name, ``<invalid N>``, true/false, or the number."""
    ftype = ftype.strip_typedefs()
    if ftype.code == gdb.TYPE_CODE_ENUM:
        names = _enum_names(ftype)
        if value not in names and _is_flag_enum(names):
            return format_flags(value, names)
        return format_enum(value, names)
    if ftype.code == gdb.TYPE_CODE_BOOL or (bitsize == 1 and getattr(ftype, "is_unsigned", True)):
        return "true" if value else "false"
    return str(value)


class BitfieldStructPrinter(ValuePrinter):
    """A struct with at least one bitfield."""

    def __init__(self, val: gdb.Value) -> None:
        self._val = val
        self._bad = unreadable(val)

    def to_string(self) -> Optional[str]:
        if self._bad:
            return self._bad
        if raw_view():
            return "raw " + raw_words(self._val)
        return None

    def children(self) -> Iterator[Tuple[str, object]]:
        if self._bad:
            return
        for f in self._val.type.strip_typedefs().fields():
            if f.is_base_class or f.bitpos is None:
                continue
            if not f.bitsize:
                yield (f.name or "<anonymous>"), self._val[f]
                continue
            try:
                value = int(self._val[f])
            except gdb.MemoryError:
                yield bit_label(f.name, f.bitpos, f.bitsize), "<unreadable>"
                continue
            text = format_bitfield(value, f.type, f.bitsize)
            label = bit_label(f.name or "<anonymous>", f.bitpos, f.bitsize)
            if f.type.strip_typedefs().code == gdb.TYPE_CODE_ENUM and not text.startswith(("<", "0x")):
                yield label, self._val[f]  # a named enum value: gdb's own enum value, MI shows the name
            else:
                yield label, leaf(value, text)


def raw_words(val: gdb.Value) -> str:
    """The value's bytes as little/big-endian words of up to 8 bytes: ``0x0002d5f5``."""
    size = val.type.sizeof
    data = bytes(gdb.selected_inferior().read_memory(val.address, size)) if val.address is not None else \
        val.bytes if hasattr(val, "bytes") else b""
    order = "big" if "big endian" in gdb.execute("show endian", to_string=True) else "little"
    words: List[str] = []
    for i in range(0, len(data), 8):
        chunk = data[i : i + 8]
        words.append(f"{int.from_bytes(chunk, order):#0{2 + 2 * len(chunk)}x}")
    return " ".join(words)


def _match(val: gdb.Value) -> Optional[BitfieldStructPrinter]:
    gtype = val.type.strip_typedefs()
    if gtype.code != gdb.TYPE_CODE_STRUCT or not _has_bitfields(gtype):
        return None
    return BitfieldStructPrinter(val)


def subprinters() -> List[SubPrinter]:
    return [SubPrinter("bitfield-structs", _match)]
