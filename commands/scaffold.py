"""``gdbext scaffold TYPE [--output FILE]``: write a starter printer module for a struct, from DWARF.

Reads the layout from gdb's types (member offsets, bitfield positions and
widths, enumerators, nested structs) into :mod:`gdbext.scaffold` records and
renders them as :mod:`gdbext.kit` declarations.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional

import gdb  # type: ignore[import-not-found]

from gdbext.errors import GdbextError
from gdbext.scaffold import MemberInfo, TypeInfo, join_type_words, render_module
from gdbext.specscaffold import PoolShape, propose_fields, render_packed, render_pool

from ._base import ArgumentParser, GdbextCommand

__all__ = ["ScaffoldCommand", "describe_type", "lookup_type"]

#: At most this many struct types in one scaffold (the requested ones plus nested ones).
MAX_TYPES = 64

_KINDS = {
    gdb.TYPE_CODE_INT: "int", gdb.TYPE_CODE_BOOL: "bool", gdb.TYPE_CODE_CHAR: "char", gdb.TYPE_CODE_ENUM: "enum",
    gdb.TYPE_CODE_FLT: "float", gdb.TYPE_CODE_PTR: "pointer", gdb.TYPE_CODE_ARRAY: "array",
    gdb.TYPE_CODE_STRUCT: "struct", gdb.TYPE_CODE_UNION: "union",
}


def lookup_type(name: str) -> gdb.Type:
    """The type the user named: ``struct foo``, ``union u``, a typedef (GdbextError if there is none)."""
    try:
        return gdb.lookup_type(name)
    except gdb.error:
        pass
    try:  # gdb.lookup_type misses some file-scope unions; the expression parser finds them
        return gdb.parse_and_eval(f"({name} *)0").type.target()
    except gdb.error as err:
        raise GdbextError(f"no type {name!r} in this program: {err}") from None


def _declared_name(given: str, gtype: gdb.Type) -> str:
    stripped = gtype.strip_typedefs()
    if stripped.tag:
        return f"{'union' if stripped.code == gdb.TYPE_CODE_UNION else 'struct'} {stripped.tag}"
    return given  # typedef struct { ... } name_t: only the typedef names it


def _signed(stripped: gdb.Type) -> bool:
    try:
        return bool(stripped.is_signed)  # gdb 12+
    except (AttributeError, ValueError):
        return "unsigned" not in str(stripped)


def _member(f: gdb.Field, base: int) -> MemberInfo:
    ftype = f.type
    st = ftype.strip_typedefs()
    info = MemberInfo(name=f.name, ctype=str(ftype), bitpos=base + (f.bitpos or 0), bitsize=f.bitsize or 0,
                      size=st.sizeof, kind=_KINDS.get(st.code, "other"))
    if st.code in (gdb.TYPE_CODE_INT, gdb.TYPE_CODE_CHAR, gdb.TYPE_CODE_ENUM):
        info.signed = _signed(st)
    if st.code == gdb.TYPE_CODE_ENUM:
        info.enum = {int(e.enumval): e.name for e in st.fields()}
    if st.code == gdb.TYPE_CODE_INT and ftype.code == gdb.TYPE_CODE_TYPEDEF:
        info.typedef = ftype.name
    element = ftype
    if st.code == gdb.TYPE_CODE_ARRAY:
        low, high = st.range()
        info.count = high - low + 1
        while element.strip_typedefs().code == gdb.TYPE_CODE_ARRAY:
            element = element.strip_typedefs().target()
    if element.strip_typedefs().code in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION):
        info.nested = _aggregate_name(element)
        if info.nested is None and f.name is None:
            info.members = _members(st, info.bitpos)
    return info


def _aggregate_name(gtype: gdb.Type) -> Optional[str]:
    """How to name a struct/union type: ``struct tag``, else its typedef, else None (anonymous)."""
    stripped = gtype.strip_typedefs()
    if stripped.tag:
        return _declared_name(str(stripped), stripped)
    return gtype.name if gtype.code == gdb.TYPE_CODE_TYPEDEF else None


def _members(gtype: gdb.Type, base: int = 0) -> List[MemberInfo]:
    return [_member(f, base) for f in gtype.fields()
            if not f.artificial and not f.is_base_class and (f.bitpos is not None or f.name is None)]


def describe_type(given: str, gtype: gdb.Type) -> TypeInfo:
    """``gtype`` (a struct or union, maybe behind typedefs) as a :class:`TypeInfo`."""
    stripped = gtype.strip_typedefs()
    if stripped.code not in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION):
        raise GdbextError(f"{given} is {stripped}, not a struct or union")
    return TypeInfo(_declared_name(given, gtype), stripped.sizeof, _members(stripped))


def _nested_names(members: List[MemberInfo]) -> List[str]:
    out: List[str] = []
    for m in members:
        if m.nested:
            out.append(m.nested)
        out.extend(_nested_names(m.members or []))
    return out


def collect(names: List[str]) -> List[TypeInfo]:
    """The requested types, then every named struct/union they contain (not through pointers)."""
    found: Dict[str, TypeInfo] = {}
    queue = [(name, lookup_type(name)) for name in names]
    while queue:
        given, gtype = queue.pop(0)
        info = describe_type(given, gtype)
        if info.name in found:
            continue
        if len(found) >= MAX_TYPES:
            raise GdbextError(f"more than {MAX_TYPES} nested types; scaffold fewer at a time")
        found[info.name] = info
        queue.extend((n, lookup_type(n)) for n in _nested_names(info.members) if n not in found)
    return list(found.values())


def _is_packed_typedef(gtype: gdb.Type) -> bool:
    return gtype.code == gdb.TYPE_CODE_TYPEDEF and gtype.strip_typedefs().code == gdb.TYPE_CODE_INT


def _macros() -> Dict[str, str]:
    """Object-like macros visible from main (the binary's -g3 macro information); empty without it."""
    for scope in ("main", ""):
        try:
            text = gdb.execute(f"info macros {scope}".strip(), to_string=True)
        except gdb.error:
            continue
        out = {}
        for line in text.splitlines():
            parts = line.split(None, 2)
            if len(parts) >= 3 and parts[0] == "#define" and "(" not in parts[1]:
                out[parts[1]] = parts[2]
        if out:
            return out
    return {}


def packed_module(name: str, gtype: gdb.Type) -> str:
    """A PackedWord skeleton for an integer typedef, fields proposed from its macro families."""
    macros = _macros()
    fields, others = propose_fields(macros, 8 * gtype.sizeof, name)
    return render_packed(name, gtype.sizeof, fields, others, binary=_program(), with_macros=bool(macros))


def pool_shape(var: str) -> PoolShape:
    """The pool variable's slot array, header and free-list candidates, from its DWARF type."""
    try:
        ptype = gdb.parse_and_eval(var).type.strip_typedefs()
    except gdb.error as err:
        raise GdbextError(f"--pool {var}: {err}") from None
    if ptype.code != gdb.TYPE_CODE_STRUCT:
        raise GdbextError(f"--pool {var}: {ptype} is not a struct holding a slot array")
    arrays = [f for f in ptype.fields() if f.name and f.type.strip_typedefs().code == gdb.TYPE_CODE_ARRAY
              and f.type.strip_typedefs().target().strip_typedefs().code == gdb.TYPE_CODE_STRUCT]
    if not arrays:
        raise GdbextError(f"--pool {var}: {ptype} has no array of structs (the slots)")
    slots = max(arrays, key=lambda f: f.type.strip_typedefs().sizeof)
    atype = slots.type.strip_typedefs()
    lo, hi = atype.range()
    slot = atype.target().strip_typedefs()
    members = [f for f in slot.fields() if f.name]
    first = members[0] if members else None
    header, header_member, payload, payload_size, after = slot, None, None, None, None
    if first is not None and first.type.strip_typedefs().code == gdb.TYPE_CODE_STRUCT and len(members) > 1:
        header, header_member = first.type.strip_typedefs(), first.name
        payload = members[1].bitpos // 8
        if len(members) > 2:
            payload_size, after = members[2].bitpos // 8 - payload, members[2].name
    selves = {str(header), str(slot)}
    fields = []
    for f in header.fields():
        if not f.name or f.bitpos is None:
            continue
        ft = f.type.strip_typedefs()
        self_ptr = ft.code == gdb.TYPE_CODE_PTR and str(ft.target().strip_typedefs()) in selves
        fields.append((f.name, str(f.type), ft.sizeof, self_ptr))
    head = next((f.name for f in ptype.fields() if f.name and f.type.strip_typedefs().code == gdb.TYPE_CODE_PTR
                 and str(f.type.strip_typedefs().target().strip_typedefs()) in selves), None)
    count = next((f.name for f in ptype.fields() if f.name and f.type.strip_typedefs().code == gdb.TYPE_CODE_INT
                  and any(w in f.name.lower() for w in ("nslot", "count", "num", "nelem", "capacity"))), None)
    return PoolShape(var, slots.name, hi - lo + 1, str(slot), str(header), header_member, payload, fields, head,
                     count, payload_size, after)


class ScaffoldCommand(GdbextCommand):
    """Write a starter gdbext module for struct types, packed words or a pool, from the program's DWARF.

Usage: gdbext scaffold [TYPE...] [--pool VAR] [--output FILE [--force]]
TYPE is 'struct NAME', 'union NAME' or a typedef name.  For a struct the module
declares a gdbext.kit printer (nested structs too): every member with its
offset, bitfields with their bit positions and widths, enums with their
names, and TODO comments where flag names and units belong.  For a typedef
of an integer it declares a PackedWord, its fields proposed from the
program's *_SHIFT/*_MASK/*_BITS macros when the binary has them (-g3).
--pool VAR proposes a pool spec from the variable's type: slot array, header,
free-list link and head, a magic-looking field.  Without --output it is
printed; load the file with `gdbext load FILE'.  See docs/printer-kit.md
and docs/specs.md."""

    command_name = "gdbext scaffold"

    def run(self, argv: List[str], from_tty: bool) -> None:
        parser = ArgumentParser(prog="gdbext scaffold", add_help=False)
        parser.add_argument("types", nargs="*")
        parser.add_argument("--pool")
        parser.add_argument("--output", "-o")
        parser.add_argument("--force", action="store_true")
        args = parser.parse_args(argv)
        if not args.types and not args.pool:
            raise GdbextError("give a TYPE or --pool VAR")
        names = join_type_words(args.types)
        packed = [n for n in names if _is_packed_typedef(lookup_type(n))]
        structs = [n for n in names if n not in packed]
        types = collect(structs) if structs else []
        parts = [render_module(types, binary=_program())] if types else []
        parts += [packed_module(n, lookup_type(n)) for n in packed]
        if args.pool:
            parts.append(render_pool(pool_shape(args.pool), binary=_program()))
        text = "\n".join(parts)
        if args.output is None:
            gdb.write(text)
            return
        if os.path.exists(args.output) and not args.force:
            raise GdbextError(f"{args.output} exists; add --force to overwrite it")
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
        what = [t.name for t in types] + packed + ([f"pool {args.pool}"] if args.pool else [])
        print(f"gdbext: wrote {args.output}: printers for {', '.join(what)}")


def _program() -> Optional[str]:
    progspace = gdb.current_progspace()
    return progspace.filename if progspace is not None else None
