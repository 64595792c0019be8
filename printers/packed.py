"""Printer for hand-packed words declared with :func:`gdbext.specs.packed_word`.

A declaration binds a :class:`gdbext.packed.PackedWord` to a typedef name
(every value of that type, wherever gdb prints it) or to an expression (the
object at that address).  Each binding is its own subprinter, named
``packed:NAME``, so it can be disabled alone.
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Tuple

import gdb  # type: ignore[import-not-found]

from gdbext.packed import PackedWord
from gdbext.specs import REGISTRY, PackedBinding

from ._base import ProgramCache, SubPrinter, ValuePrinter, leaf, raw_view, type_names, unreadable

__all__ = ["PackedWordPrinter", "subprinters", "PRIORITY"]

#: Order among printer modules (declared words).
PRIORITY = 20

_ADDRESSES = ProgramCache()


class PackedWordPrinter(ValuePrinter):
    """One packed word: its fields as children, the raw word with ``show-raw``."""

    def __init__(self, val: gdb.Value, layout: PackedWord) -> None:
        self._val = val
        self._layout = layout
        self._bad = unreadable(val)

    def _word(self) -> int:
        return int(self._val.cast(gdb.lookup_type("unsigned long long"))) & ((1 << (8 * self._layout.size)) - 1)

    def to_string(self) -> Optional[str]:
        if self._bad:
            return self._bad
        if raw_view():
            return f"{self._word():#0{2 + 2 * self._layout.size}x}"
        return None

    def children(self) -> Iterator[Tuple[str, object]]:
        if self._bad:
            return
        for fv in self._layout.decode(self._word()).fields:
            yield fv.field.name, leaf(fv.value, fv.text)


def _fits(val: gdb.Value, layout: PackedWord) -> bool:
    t = val.type.strip_typedefs()
    return t.code in (gdb.TYPE_CODE_INT, gdb.TYPE_CODE_ENUM, gdb.TYPE_CODE_CHAR) and t.sizeof == layout.size


def _by_typedef(binding: PackedBinding):
    def match(val: gdb.Value) -> Optional[PackedWordPrinter]:
        if binding.typedef in type_names(val.type) and _fits(val, binding.layout):
            return PackedWordPrinter(val, binding.layout)
        return None

    return match


def _by_expression(binding: PackedBinding):
    def match(val: gdb.Value) -> Optional[PackedWordPrinter]:
        if val.address is None or not _fits(val, binding.layout):
            return None
        key = binding.expression
        if key not in _ADDRESSES.data:
            try:  # the user's own expression from their spec file, never text from the core
                _ADDRESSES.data[key] = int(gdb.parse_and_eval(f"&({binding.expression})"))
            except gdb.error:
                _ADDRESSES.data[key] = None
        if _ADDRESSES.data[key] == int(val.address):
            return PackedWordPrinter(val, binding.layout)
        return None

    return match


def subprinters() -> List[SubPrinter]:
    out = []
    for binding in REGISTRY.packed.values():
        if binding.typedef:
            out.append(SubPrinter(f"packed:{binding.typedef}", _by_typedef(binding)))
        else:
            out.append(SubPrinter(f"packed:{binding.layout.name}@{binding.expression}", _by_expression(binding)))
    return out
