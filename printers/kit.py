"""Printers for the structs a team declares with :func:`gdbext.kit.struct_printer`.

Each declaration is its own subprinter, named ``kit:struct_NAME``, so
``disable pretty-printer global gdbext;kit:struct_conn`` switches one off.
A value matches when its type is the declared ``struct``/``union`` (through
any typedefs), or carries the declared typedef name.

Its ``PRIORITY`` puts it before the generic printers: a struct the user
described must not be claimed by the bitfield printer.

Output: the summary line (if declared), then every member in the struct's
order, formatted as declared; members of anonymous structs and unions are
listed in place.  Bytes that cannot be read show as ``<unreadable at 0x...>``
instead of raising.
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Tuple, Union

import gdb  # type: ignore[import-not-found]

from gdbext.kit import KIT, Shown, StructPrinter, c_string, split_path

from ._base import SubPrinter, ValuePrinter, type_names, unreadable

__all__ = ["KitStructPrinter", "subprinters", "PRIORITY"]

#: Asked first: what a team declared wins over generic printers.
PRIORITY = 10

_SCALARS = (gdb.TYPE_CODE_INT, gdb.TYPE_CODE_ENUM, gdb.TYPE_CODE_BOOL, gdb.TYPE_CODE_CHAR, gdb.TYPE_CODE_PTR)
_AGGREGATES = (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION)


def _unreadable_at(val: gdb.Value) -> str:
    addr = val.address
    return f"<unreadable at {int(addr):#x}>" if addr is not None else "<unreadable>"


def _number(val: gdb.Value) -> Optional[Union[int, float]]:
    """The value as a Python number when it is a scalar (reads memory), else None."""
    code = val.type.strip_typedefs().code
    if code == gdb.TYPE_CODE_FLT:
        return float(val)
    if code in _SCALARS:
        return int(val)
    return None


def _char_kind(val: gdb.Value) -> Optional[int]:
    """``gdb.TYPE_CODE_ARRAY`` / ``gdb.TYPE_CODE_PTR`` for a ``char [N]`` / ``char *``, else None."""
    t = val.type.strip_typedefs()
    if t.code not in (gdb.TYPE_CODE_PTR, gdb.TYPE_CODE_ARRAY):
        return None
    target = t.target().unqualified().strip_typedefs()
    if target.sizeof != 1 or target.code not in (gdb.TYPE_CODE_INT, gdb.TYPE_CODE_CHAR):
        return None
    return t.code


def _c_text(val: gdb.Value, kind: int) -> str:
    """A C string as a literal, without gdb's address (pointers) or NUL padding (arrays)."""
    if kind == gdb.TYPE_CODE_PTR:  # gdb bounds the read (print elements) and marks bad pointers
        return val.format_string(address=False) if int(val) else "NULL"
    return c_string(_array_chars(val))


def _array_chars(val: gdb.Value) -> str:
    """A ``char [N]``'s characters up to the first NUL."""
    return val.string(encoding="latin-1", length=val.type.strip_typedefs().sizeof).split("\0", 1)[0]


def _members(val: gdb.Value) -> Iterator[Tuple[str, gdb.Value]]:
    """(name, value) of every member in declaration order; anonymous struct/union members inline."""
    for f in val.type.strip_typedefs().fields():
        if f.artificial or (f.bitpos is None and not f.is_base_class):
            continue  # static members, vtable pointers
        if f.name is None and not f.is_base_class:
            yield from _members(val[f])
            continue
        yield f.name, val[f]


class KitStructPrinter(ValuePrinter):
    """A value of a declared struct: summary, then members formatted as declared."""

    def __init__(self, val: gdb.Value, spec: StructPrinter) -> None:
        self._val = val
        self._spec = spec
        self._bad = unreadable(val)

    def to_string(self) -> Optional[str]:
        if self._bad:
            return self._bad
        return self._spec.render_summary(self._summary_field)

    def children(self) -> Iterator[Tuple[str, object]]:
        if self._bad or not self._spec.children:
            return
        seen = set()
        for name, member in _members(self._val):
            seen.add(name)
            if self._spec.is_hidden(name):
                continue
            if self._spec.fields.get(name) is None:
                yield name, member
            else:
                yield name, self._shown(name, member, declared=True).text
        for name in self._spec.fields:
            if name not in seen:
                yield name, f"<no member {name} in {self._val.type}>"

    def _shown(self, name: str, member: gdb.Value, declared: bool) -> Shown:
        """The member as declared (``declared``) or as gdb shows it, with its number for ``{x:spec}``."""
        try:
            kind = _char_kind(member)
            if declared and self._spec.takes_text(name) and kind is not None:
                if kind == gdb.TYPE_CODE_PTR:
                    return Shown(_c_text(member, kind))
                return Shown(self._spec.format_value(name, _array_chars(member)))
            number = _number(member)
            if declared and number is not None:
                return Shown(self._spec.format_value(name, number), number)
            if kind is not None:  # C strings read best without gdb's address and NUL padding
                return Shown(_c_text(member, kind), number)
            return Shown(member.format_string() if number is not None else str(member), number)
        except gdb.MemoryError:
            return Shown(_unreadable_at(member))

    def _summary_field(self, path: str) -> Shown:
        """One ``{path}`` of the summary line."""
        val = self._val
        try:
            for step in split_path(path):
                val = val[step]
        except gdb.MemoryError:  # a pointer on the way cannot be read
            return Shown(_unreadable_at(val))
        except gdb.error:
            return Shown(f"<no member {path}>")
        return self._shown(path, val, declared=self._spec.fields.get(path) is not None)


def _matcher(spec: StructPrinter):
    keyword, tag = spec.keyword, spec.tag
    wanted_code = gdb.TYPE_CODE_UNION if keyword == "union" else gdb.TYPE_CODE_STRUCT

    def match(val: gdb.Value) -> Optional[KitStructPrinter]:
        stripped = val.type.strip_typedefs()
        if stripped.code not in _AGGREGATES:
            return None
        if keyword is not None:
            hit = stripped.code == wanted_code and stripped.tag == tag
        else:
            hit = tag in type_names(val.type) or stripped.tag == tag
        return KitStructPrinter(val, spec) if hit else None

    return match


def subprinters() -> List[SubPrinter]:
    return [SubPrinter(spec.name, _matcher(spec)) for spec in KIT.structs.values()]
