"""Checking a pool spec when it is loaded: each mistake is one line naming the spec field.

Three stages, each usable alone:

* :func:`check_static`: the spec's own values (a ``payload_offset`` written
  as an expression string, a ``points_to`` that is neither header nor payload,
  bytes outside 0..255, ...), before anything is evaluated;
* :func:`check_layout`: the spec against its header type (fields that do not
  exist, a header type that already holds the payload while
  ``payload_offset`` is missing, ...);
* :func:`check_pool`: the spec against the program's values and memory
  (slot size against the header and the slot type, links outside the chunk,
  a magic value that matches no slot), given a resolved pool and its walk.

:func:`validate` runs all three and returns :class:`Problem` lines instead of
raising, so ``check-spec`` can show every mistake at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import construct

from ..errors import SpecError
from ..memory import MemorySource
from .layout import Evaluator, HeaderLayout, ResolvedPool, resolve
from .spec import Chained, FixedSlots, FlagBit, InFreeList, Magic, Nodes, PointsTo, PoolSpec, Tree
from .walk import PoolReport, walk_pool

__all__ = ["Problem", "check_static", "check_layout", "check_pool", "validate", "Validation"]

#: A byte array (or blob) at least this long in a header, after every field a role names, looks like the payload.
_PAYLOAD_ARRAY_MIN = 16


@dataclass(frozen=True)
class Problem:
    """One mistake in a spec: the pool, the spec field, and what is wrong.

    ``certain`` is False for what memory suggests but corruption could also explain (a free-list
    head outside the pool): it is shown, and the spec is kept.
    """

    pool: str
    field: str
    message: str
    certain: bool = True

    def text(self) -> str:
        return f"pool {self.pool}: {self.field}: {self.message}" + ("" if self.certain else " (or corruption)")


def _fail(field: str, message: str) -> None:
    raise SpecError(f"{field}: {message}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_static(spec: PoolSpec) -> None:
    """The spec's own values; raises :class:`SpecError` ``"pool NAME: FIELD: what"``."""
    try:
        _check_static(spec)
    except SpecError as err:
        raise SpecError(f"pool {getattr(spec, 'name', '?')}: {err}") from None


def _check_static(spec: PoolSpec) -> None:
    if not isinstance(spec.name, str) or not spec.name.strip() or any(c.isspace() for c in spec.name):
        _fail("name", f"{spec.name!r} must be a non-empty word (heapwalk --pool NAME)")
    if not isinstance(spec.geometry, (FixedSlots, Chained, Tree, Nodes)):
        _fail("geometry", f"{type(spec.geometry).__name__} is not FixedSlots, Chained, Tree or Nodes")
    if not isinstance(spec.header, (str, construct.Construct)):
        _fail("header", f"{spec.header!r} is neither a type name nor a construct Struct")
    for name in ("header_offset", "payload_offset", "payload_size"):
        value = getattr(spec, name)
        if value is None and name != "header_offset":
            continue
        if isinstance(value, str):
            _fail(name, f"{value!r} is an expression; this field takes a number of bytes "
                        f"(evaluate it once, e.g. with gdb's `print {value}`)")
        if not _is_int(value) or value < 0:
            _fail(name, f"{value!r} is not a non-negative number of bytes")
    if not isinstance(spec.in_use, (Magic, FlagBit, InFreeList)):
        _fail("in_use", f"{type(spec.in_use).__name__} is not Magic, FlagBit or InFreeList")
    if isinstance(spec.in_use, Magic):
        used, free = spec.in_use.values()
        if not used:
            _fail("in_use.used", "no in-use magic value given")
        for v in used + free:
            if not (_is_int(v) or isinstance(v, str)):
                _fail("in_use.used" if v in used else "in_use.free", f"{v!r} is neither a number nor an expression")
        if not _is_int(spec.in_use.mask) or spec.in_use.mask == 0:
            _fail("in_use.mask", f"{spec.in_use.mask!r} must be a non-zero integer mask")
    if isinstance(spec.in_use, FlagBit) and (not _is_int(spec.in_use.mask) or spec.in_use.mask == 0):
        _fail("in_use.mask", f"{spec.in_use.mask!r} must be a non-zero integer mask")
    if isinstance(spec.in_use, InFreeList) and spec.free_list is None and not isinstance(spec.geometry, Nodes):
        _fail("in_use", "InFreeList() needs a free_list to tell free chunks")
    if spec.free_list is not None and spec.free_list.points_to not in {p.value for p in PointsTo}:
        _fail("free_list.points_to", f"{spec.free_list.points_to!r} is neither 'header' nor 'payload'")
    geo = spec.geometry
    if isinstance(geo, Tree) and geo.points_to not in {p.value for p in PointsTo}:
        _fail("geometry.points_to", f"{geo.points_to!r} is neither 'header' nor 'payload'")
    if isinstance(geo, Chained) and (not _is_int(geo.align) or geo.align <= 0 or geo.align & (geo.align - 1)):
        _fail("geometry.align", f"{geo.align!r} is not a power of two")
    if isinstance(geo, Tree) and isinstance(spec.in_use, InFreeList):
        _fail("in_use", "a Tree has no free list: use Magic or FlagBit")
    if spec.fill is not None:
        for name in ("free", "fresh"):
            value = getattr(spec.fill, name)
            if value is not None and not (_is_int(value) and 0 <= value <= 0xFF):
                _fail(f"fill.{name}", f"{value!r} is not a byte (0..255) or None")
    if spec.guard is not None:
        g = spec.guard
        if not (_is_int(g.byte) and 0 <= g.byte <= 0xFF):
            _fail("guard.byte", f"{g.byte!r} is not a byte (0..255)")
        if not (_is_int(g.size) and g.size > 0) or not _is_int(g.offset):
            _fail("guard", f"offset {g.offset!r} and size {g.size!r} must be numbers, size above 0")


def check_layout(spec: PoolSpec, header: HeaderLayout) -> None:
    """The spec against its header type; raises :class:`SpecError` ``"FIELD: what"``."""
    roles = [("requested_size", spec.requested_size), ("alloc_site", spec.alloc_site), ("label", spec.label)]
    if isinstance(spec.in_use, (Magic, FlagBit)):
        roles.append(("in_use.field", spec.in_use.field))
    if spec.free_list is not None:
        roles.append(("free_list.link", spec.free_list.link))
    geo = spec.geometry
    if isinstance(geo, Chained):
        roles.append(("geometry.size_field", geo.size_field))
    if isinstance(geo, Tree):
        roles += [("geometry.child", geo.child), ("geometry.sibling", geo.sibling),
                  ("geometry.size_field", geo.size_field)]
    if isinstance(geo, Nodes):
        roles += [("geometry.next", geo.next), ("geometry.used_end", geo.used_end), ("geometry.end", geo.end)]
    for role, name in roles:
        header.get(name, role)
    named = {name for _, name in roles if name}
    last_role = max((header.fields[n].offset for n in named), default=-1)
    if spec.payload_offset is None:
        for f in header.fields.values():
            blob = f.size >= _PAYLOAD_ARRAY_MIN and (f.element_size == 1 or (f.count == 1 and f.size > 8))
            if f.name not in named and blob and f.offset > last_role:
                _fail("payload_offset", f"missing, but header {header.name} holds {f.size}-byte array "
                                        f"'{f.name}' at offset {f.offset}, which looks like the payload: "
                                        f"set payload_offset={spec.header_offset + f.offset} or name the "
                                        f"header struct alone")
    for role, name in roles:
        f = header.get(name, role)
        if f is not None and role in ("free_list.link", "geometry.child", "geometry.sibling", "geometry.next",
                                      "geometry.used_end", "geometry.end") \
                and f.element_size not in (4, 8):
            _fail(role, f"field '{name}' is {f.size} bytes, not a pointer")


def check_pool(pool: ResolvedPool, report: Optional[PoolReport], slot_type_size: Optional[int] = None
               ) -> List[Problem]:
    """The resolved numbers and (when there is memory) the walk; every problem found."""
    spec = pool.spec
    out: List[Problem] = []

    def add(field: str, message: str, certain: bool = True) -> None:
        out.append(Problem(spec.name, field, message, certain))

    hdr_end = spec.header_offset + pool.header.size
    if isinstance(spec.geometry, FixedSlots):
        if slot_type_size is not None and slot_type_size != pool.slot_size:
            add("geometry.slot_size", f"{pool.slot_size} bytes, but geometry.first points to a "
                                      f"{slot_type_size}-byte slot type")
        if pool.payload_offset > pool.slot_size:
            add("payload_offset", f"{pool.payload_offset} is past the {pool.slot_size}-byte slot")
        elif spec.payload_size is not None and pool.payload_offset + spec.payload_size > pool.slot_size:
            add("payload_size", f"{spec.payload_size} bytes from payload offset {pool.payload_offset} run past "
                                f"the {pool.slot_size}-byte slot")
        if spec.payload_offset is None and spec.payload_size is None:
            guard = spec.guard.size if spec.guard is not None else 0
            if pool.slot_size - pool.payload_offset - guard <= 0:
                add("payload_offset", f"missing, and header {pool.header.name} ({pool.header.size} bytes) fills "
                                      f"the {pool.slot_size}-byte slot: the payload would be empty; the header "
                                      f"type seems to hold the payload")
        if spec.guard is not None:
            start = spec.guard.offset if spec.guard.offset >= 0 else pool.slot_size + spec.guard.offset
            if start < 0 or start + spec.guard.size > pool.slot_size:
                add("guard", f"bytes [{start}, {start + spec.guard.size}) are outside the {pool.slot_size}-byte slot")
            elif start < hdr_end:
                add("guard", f"bytes [{start}, {start + spec.guard.size}) overlap the header (ends at {hdr_end})")
    if spec.free_list is not None:
        link = pool.header.fields[spec.free_list.link]
        at = spec.header_offset + link.offset
        if pool.slot_size and at + link.size > pool.slot_size:
            add("free_list.link", f"field at chunk offset {at} lies outside the {pool.slot_size}-byte slot")
    if report is None:
        return out
    if isinstance(spec.in_use, Magic) and len(report.chunks) > 1 and not (report.in_use or report.free):
        f = spec.in_use.field
        seen = sorted({c.fields.get(f) for c in report.chunks if c.fields.get(f) is not None})[:3]
        width = (1 << (8 * pool.header.fields[f].size)) - 1
        add("in_use.used", f"magic {', '.join(f'{v & width:#x}' for v in pool.magic_used)} (mask "
                           f"{spec.in_use.mask & width:#x}) matches no slot of "
                           f"{len(report.chunks)}; field '{f}' holds " + ", ".join(f"{v:#x}" for v in seen))
    head_bad = [a for a in report.anomalies if a.kind.startswith("freelist") and "free-list head" in a.message]
    for a in head_bad:
        add("free_list.head", f"{a.message}: wrong head expression, or points_to?", certain=False)
    if spec.free_list is not None and report.free_list and report.chunks:
        listed_used = sum(1 for c in report.chunks if c.in_free_list and c.state == "in-use")
        if listed_used == len(report.free_list) and not isinstance(spec.in_use, InFreeList):
            add("free_list.link", f"every one of the {listed_used} free-list node(s) is an in-use chunk: "
                                  f"wrong link field, or points_to?", certain=len(report.free_list) > 1)
    return out


@dataclass
class Validation:
    """What :func:`validate` found for one pool: problems, and the walk when there was memory."""

    spec: PoolSpec
    problems: List[Problem]
    pool: Optional[ResolvedPool] = None
    report: Optional[PoolReport] = None

    @property
    def errors(self) -> List[Problem]:
        """The certain problems: the spec is wrong."""
        return [p for p in self.problems if p.certain]

    @property
    def warnings(self) -> List[Problem]:
        return [p for p in self.problems if not p.certain]


def validate(spec: PoolSpec, ev: Evaluator, mem: Optional[MemorySource] = None,
             slot_type_size: Optional[int] = None) -> Validation:
    """Every stage that can run: static, layout, numbers, and the walk when ``mem`` is given."""
    try:
        pool = resolve(spec, ev)
    except SpecError as err:
        text = str(err)
        prefix = f"pool {spec.name}: " if isinstance(spec.name, str) else "pool ?: "
        body = text[len(prefix):] if text.startswith(prefix) else text
        field, _, message = body.partition(": ")
        return Validation(spec, [Problem(str(spec.name), field, message or body)])
    report = walk_pool(mem, pool) if mem is not None else None
    if report is not None and isinstance(spec.geometry, (Tree, Nodes)):
        pool = report.pool
    return Validation(spec, check_pool(pool, report, slot_type_size), pool, report)
