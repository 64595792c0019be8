"""Resolving a pool spec: header layouts, the evaluator, and a :class:`ResolvedPool` of plain numbers.

An :class:`Evaluator` turns a spec's expressions into numbers and header
types into field offsets: the gdb adapter evaluates with gdb, tests and the
core-only path with symbols and construct layouts.  :func:`resolve` runs the
checks of :mod:`.validate` that need no memory, so a mistaken spec fails with
one line naming the field before anything is walked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple, Union

import construct

from ..errors import SpecError
from .spec import MAX_POOL_CHUNKS, Chained, Expr, FixedSlots, Magic, Nodes, PoolSpec, Tree

__all__ = ["HeaderField", "HeaderLayout", "Evaluator", "ResolvedPool", "resolve", "layout_from_construct"]


@dataclass(frozen=True)
class HeaderField:
    """A header field as bytes: offset, size, and (for arrays) element count."""

    name: str
    offset: int
    size: int
    count: int = 1
    signed: bool = False

    @property
    def element_size(self) -> int:
        return self.size // self.count if self.count else self.size


@dataclass(frozen=True)
class HeaderLayout:
    """A chunk header's fields by name, and its size."""

    name: str
    size: int
    fields: Mapping[str, HeaderField]

    def get(self, name: Optional[str], role: str) -> Optional[HeaderField]:
        if name is None:
            return None
        try:
            return self.fields[name]
        except KeyError:
            known = ", ".join(self.fields) or "none"
            raise SpecError(f"{role}: header {self.name} has no field {name!r} (fields: {known})") from None


class Evaluator:
    """Turns a spec's expressions and type names into numbers; adapters subclass it."""

    def eval_int(self, expr: Expr) -> int:
        """The integer value of ``expr`` (an int passes through)."""
        if isinstance(expr, int):
            return expr
        raise SpecError(f"cannot evaluate {expr!r} without a debugger")

    def eval_address(self, expr: Expr) -> int:
        """The address of the object ``expr`` names (an int passes through)."""
        return self.eval_int(expr)

    def header_layout(self, header: Union[str, construct.Construct]) -> HeaderLayout:
        """Field offsets of a header type (a DWARF type name or a construct struct)."""
        if isinstance(header, construct.Construct):
            return layout_from_construct(header)
        raise SpecError(f"cannot look up type {header!r} without debug info")


def layout_from_construct(struct: construct.Construct, name: str = "header") -> HeaderLayout:
    """Offsets of a fixed-size construct ``Struct``'s named fields."""
    try:
        subcons = struct.subcons  # type: ignore[attr-defined]
        total = struct.sizeof()
    except (AttributeError, construct.SizeofError) as err:
        raise SpecError(f"{name}: a header layout must be a fixed-size construct Struct ({err})") from None
    fields: Dict[str, HeaderField] = {}
    offset = 0
    for sub in subcons:
        size = sub.sizeof()
        if sub.name:
            core = sub
            while isinstance(core, construct.Renamed):  # "name" / Array(...) wraps the array
                core = core.subcon
            count = core.count if isinstance(core, construct.Array) and isinstance(core.count, int) else 1
            inner = core.subcon if isinstance(core, construct.Array) else core
            signed = bool(getattr(inner, "signed", False))
            fields[sub.name] = HeaderField(sub.name, offset, size, int(count), signed)
        offset += size
    return HeaderLayout(name, total, fields)


@dataclass(frozen=True)
class ResolvedPool:
    """A pool spec with every expression evaluated: only numbers and offsets.

    For a :class:`~gdbext.pools.spec.Tree` or :class:`~gdbext.pools.spec.Nodes`, ``first`` is the
    root (head) header until the walk has run; the walk's report then carries the span of what it found.
    """

    spec: PoolSpec
    header: HeaderLayout
    first: int
    slot_size: int = 0  #: fixed slots only
    count: int = 0  #: fixed slots only
    end: int = 0  #: chained: end of the pool; fixed: first + count * slot_size
    free_head: Optional[int] = None
    root: Optional[int] = None
    magic_used: Tuple[int, ...] = ()  #: Magic predicate: the in-use values (after the mask)
    magic_free: Tuple[int, ...] = ()

    @property
    def payload_offset(self) -> int:
        spec = self.spec
        return spec.payload_offset if spec.payload_offset is not None else spec.header_offset + self.header.size


def resolve(spec: PoolSpec, ev: Evaluator) -> ResolvedPool:
    """Evaluate ``spec``'s expressions; raises :class:`SpecError` naming the field that failed."""
    from .validate import check_layout, check_static  # local: validate imports this module

    check_static(spec)
    try:
        header = ev.header_layout(spec.header)
    except SpecError as err:
        raise SpecError(f"pool {spec.name}: header: {err}") from None
    try:
        check_layout(spec, header)
    except SpecError as err:
        raise SpecError(f"pool {spec.name}: {err}") from None
    geo = spec.geometry

    def num(expr: Expr, what: str) -> int:
        try:
            value = ev.eval_int(expr)
        except SpecError as err:
            raise SpecError(f"pool {spec.name}: {what}: {expr!r}: {err}") from None
        if not isinstance(value, int):
            raise SpecError(f"pool {spec.name}: {what}: {expr!r} is not a number ({value!r})")
        return value

    try:
        root = ev.eval_address(spec.root) if spec.root is not None else None
    except SpecError as err:
        raise SpecError(f"pool {spec.name}: root: {spec.root!r}: {err}") from None
    free_head = num(spec.free_list.head, "free_list.head") if spec.free_list is not None else None
    used: Tuple[int, ...] = ()
    free: Tuple[int, ...] = ()
    if isinstance(spec.in_use, Magic):
        u, f = spec.in_use.values()
        mask = spec.in_use.mask
        used = tuple(num(v, "in_use.used") & mask for v in u)
        free = tuple(num(v, "in_use.free") & mask for v in f)
    common = dict(free_head=free_head, root=root, magic_used=used, magic_free=free)
    if isinstance(geo, (Tree, Nodes)):
        first = num(geo.root if isinstance(geo, Tree) else geo.head, f"geometry.{'root' if isinstance(geo, Tree) else 'head'}")
        return ResolvedPool(spec, header, first, end=first + header.size, **common)  # type: ignore[arg-type]
    first = num(geo.first, "geometry.first")
    if isinstance(geo, FixedSlots):
        slot_size = num(geo.slot_size, "geometry.slot_size")
        count = num(geo.count, "geometry.count")
        if slot_size <= 0 or slot_size < spec.header_offset + header.size:
            raise SpecError(f"pool {spec.name}: geometry.slot_size: {slot_size} is smaller than header "
                            f"{header.name} ({header.size} bytes at header_offset {spec.header_offset})")
        if not 0 <= count <= MAX_POOL_CHUNKS:
            raise SpecError(f"pool {spec.name}: geometry.count: {count} slots is not plausible")
        return ResolvedPool(spec, header, first, slot_size, count, first + slot_size * count,
                            **common)  # type: ignore[arg-type]
    assert isinstance(geo, Chained)
    end = num(geo.end, "geometry.end")
    if end < first:
        raise SpecError(f"pool {spec.name}: geometry.end: {end:#x} is below geometry.first {first:#x}")
    return ResolvedPool(spec, header, first, end=end, **common)  # type: ignore[arg-type]
