"""Custom pool allocators described by a *pool spec*, walked without gdb.

A pool spec says where a pool lives and how to read it: the root, the
geometry (fixed-size slots in an array, or chunks laid end to end with a size
field), the chunk header (a DWARF type name, or a construct struct when there
is no debug info), how to tell an in-use chunk (magic values, a flag bit, or
absence from the free list), the requested-size and allocation-site fields,
the free list, and fill/guard bytes.  It is the single description that the
pool printer, ``heapwalk`` and ``poisonscan`` use.

Specs hold *expressions* (strings such as ``"g_pool.free_head"``) or plain
integers.  An :class:`Evaluator` turns them into numbers and header types into
field offsets: the gdb adapter evaluates with gdb, tests and the core-only
path with symbols and construct layouts.  :func:`resolve` produces a
:class:`ResolvedPool` (all numbers) and :func:`walk_pool` reads it through a
memory source, bounded however corrupt the pool is.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import construct

from .errors import MemoryReadError, SpecError
from .memory import MemorySource

__all__ = [
    "Expr",
    "FixedSlots",
    "Chained",
    "Magic",
    "FlagBit",
    "InFreeList",
    "FreeList",
    "Fill",
    "Guard",
    "PoolSpec",
    "HeaderField",
    "HeaderLayout",
    "Evaluator",
    "ResolvedPool",
    "PoolChunk",
    "PoolAnomaly",
    "PoolReport",
    "resolve",
    "walk_pool",
    "layout_from_construct",
    "MAX_POOL_CHUNKS",
]

#: A number, or an expression the evaluator understands (a C expression in gdb).
Expr = Union[int, str]

#: No pool walk visits more chunks or free-list nodes than this.
MAX_POOL_CHUNKS = 1_000_000


# -- declarations -----------------------------------------------------------
@dataclass(frozen=True)
class FixedSlots:
    """Slots of one size in an array: ``count`` slots of ``slot_size`` bytes from ``first``."""

    first: Expr
    slot_size: Expr
    count: Expr


@dataclass(frozen=True)
class Chained:
    """Chunks laid end to end from ``first`` to ``end``; each header's ``size_field`` gives its length.

    ``size_includes_header``: the size counts the header too (else header size is added).
    ``size_mask`` clears flag bits kept in the size's low bits (e.g. ``~7``).
    """

    first: Expr
    end: Expr
    size_field: str
    size_includes_header: bool = True
    size_mask: int = -1
    align: int = 8


@dataclass(frozen=True)
class Magic:
    """In use when ``field`` holds ``used``; free when it holds ``free``; anything else is corrupt."""

    field: str
    used: Union[int, Sequence[int]]
    free: Union[int, Sequence[int]] = ()

    def values(self) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
        as_tuple = lambda v: tuple(v) if isinstance(v, (list, tuple)) else (v,)  # noqa: E731
        return as_tuple(self.used), as_tuple(self.free)


@dataclass(frozen=True)
class FlagBit:
    """In use when ``field & mask`` is non-zero (or zero, with ``set_means_used=False``)."""

    field: str
    mask: int
    set_means_used: bool = True


@dataclass(frozen=True)
class InFreeList:
    """In use unless the chunk is on the free list."""


@dataclass(frozen=True)
class FreeList:
    """A singly linked free list: ``head`` (expression) and the header's ``link`` field.

    ``points_to`` says what the links address: the chunk's ``"header"`` or its ``"payload"``.
    """

    head: Expr
    link: str
    points_to: str = "header"


@dataclass(frozen=True)
class Fill:
    """Bytes the allocator writes into payloads: on free, and on a fresh allocation."""

    free: Optional[int] = None
    fresh: Optional[int] = None


@dataclass(frozen=True)
class Guard:
    """Guard bytes at ``offset`` from the chunk start (negative: from the chunk end)."""

    offset: int
    size: int
    byte: int


@dataclass(frozen=True)
class PoolSpec:
    """Everything needed to walk one custom pool.

    :param name: the pool's name in listings (``heapwalk --pool NAME``)
    :param geometry: :class:`FixedSlots` or :class:`Chained`
    :param header: header type: a DWARF type name (``"struct slot_hdr"``) or a construct ``Struct``
    :param root: the pool object (an expression); ``print ROOT`` shows the pool printer
    :param type_name: values of this type are printed as the pool too (e.g. ``"struct pool"``)
    :param header_offset: where the header starts in a chunk
    :param payload_offset: where the user's data starts in a chunk (default: right after the header)
    :param payload_size: usable bytes per chunk (fixed slots; default: up to the guard or slot end)
    :param in_use: :class:`Magic`, :class:`FlagBit` or :class:`InFreeList`
    :param requested_size: header field holding the size the caller asked for
    :param alloc_site: header field holding a return address, or an array of them
    :param free_list: the :class:`FreeList`, if any
    :param fill: payload fill bytes, if any
    :param guard: guard bytes, if any
    """

    name: str
    geometry: Union[FixedSlots, Chained]
    header: Union[str, construct.Construct]
    root: Optional[Expr] = None
    type_name: Optional[str] = None
    header_offset: int = 0
    payload_offset: Optional[int] = None
    payload_size: Optional[int] = None
    in_use: Union[Magic, FlagBit, InFreeList] = InFreeList()
    requested_size: Optional[str] = None
    alloc_site: Optional[str] = None
    free_list: Optional[FreeList] = None
    fill: Optional[Fill] = None
    guard: Optional[Guard] = None


# -- resolution ---------------------------------------------------------------
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
            raise SpecError(f"header {self.name} has no field {name!r} (needed for {role})") from None


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
            count = getattr(sub, "count", 1) if isinstance(sub, construct.Array) else 1
            inner = sub.subcon if isinstance(sub, construct.Array) else sub
            signed = bool(getattr(inner, "signed", False))
            fields[sub.name] = HeaderField(sub.name, offset, size, int(count), signed)
        offset += size
    return HeaderLayout(name, total, fields)


@dataclass(frozen=True)
class ResolvedPool:
    """A pool spec with every expression evaluated: only numbers and offsets."""

    spec: PoolSpec
    header: HeaderLayout
    first: int
    slot_size: int = 0  #: fixed slots only
    count: int = 0  #: fixed slots only
    end: int = 0  #: chained: end of the pool; fixed: first + count * slot_size
    free_head: Optional[int] = None
    root: Optional[int] = None

    @property
    def payload_offset(self) -> int:
        spec = self.spec
        return spec.payload_offset if spec.payload_offset is not None else spec.header_offset + self.header.size


def resolve(spec: PoolSpec, ev: Evaluator) -> ResolvedPool:
    """Evaluate ``spec``'s expressions; raises :class:`SpecError` naming what failed."""
    header = ev.header_layout(spec.header)
    for role, name in (("requested_size", spec.requested_size), ("alloc_site", spec.alloc_site)):
        header.get(name, role)
    if isinstance(spec.in_use, (Magic, FlagBit)):
        header.get(spec.in_use.field, "in_use")
    if spec.free_list is not None:
        header.get(spec.free_list.link, "free_list.link")
    geo = spec.geometry

    def num(expr: Expr, what: str) -> int:
        try:
            return ev.eval_int(expr)
        except SpecError as err:
            raise SpecError(f"pool {spec.name}: {what} {expr!r}: {err}") from None

    try:
        root = ev.eval_address(spec.root) if spec.root is not None else None
    except SpecError as err:
        raise SpecError(f"pool {spec.name}: root {spec.root!r}: {err}") from None
    free_head = num(spec.free_list.head, "free_list.head") if spec.free_list is not None else None
    first = num(geo.first, "first")
    if isinstance(geo, FixedSlots):
        slot_size = num(geo.slot_size, "slot_size")
        count = num(geo.count, "count")
        if slot_size <= 0 or slot_size < header.size:
            raise SpecError(f"pool {spec.name}: slot size {slot_size} is smaller than its header ({header.size})")
        if not 0 <= count <= MAX_POOL_CHUNKS:
            raise SpecError(f"pool {spec.name}: slot count {count} is not plausible")
        return ResolvedPool(spec, header, first, slot_size, count, first + slot_size * count, free_head, root)
    end = num(geo.end, "end")
    if end < first:
        raise SpecError(f"pool {spec.name}: end {end:#x} is below first {first:#x}")
    header.get(geo.size_field, "size_field")
    return ResolvedPool(spec, header, first, end=end, free_head=free_head, root=root)


# -- walking ------------------------------------------------------------------
@dataclass
class PoolAnomaly:
    """Something wrong in a pool: which chunk (if any), what, and the evidence bytes."""

    kind: str  #: e.g. "bad-magic", "guard-overwritten", "freelist-outside", "freelist-cycle"
    message: str
    address: Optional[int] = None
    chunk: Optional[int] = None  #: chunk index
    data: bytes = b""

    def text(self) -> str:
        where = f" at {self.address:#x}" if self.address is not None else ""
        return f"{self.kind}{where}: {self.message}"


@dataclass
class PoolChunk:
    """One chunk (slot) of a pool as read from memory."""

    index: int
    address: int  #: start of the chunk (its header)
    size: int  #: bytes the chunk spans
    user_address: int
    usable_size: int
    state: str  #: "in-use", "free" or "corrupt"
    requested_size: Optional[int] = None
    alloc_sites: List[int] = field(default_factory=list)
    fields: Dict[str, int] = field(default_factory=dict)
    in_free_list: bool = False
    anomalies: List[PoolAnomaly] = field(default_factory=list)


@dataclass
class PoolReport:
    """The walk's result: chunks, free-list facts and anomalies."""

    pool: ResolvedPool
    chunks: List[PoolChunk] = field(default_factory=list)
    free_list: List[int] = field(default_factory=list)  #: chunk addresses in list order
    anomalies: List[PoolAnomaly] = field(default_factory=list)
    stopped: Optional[str] = None  #: why the walk ended early, if it did

    @property
    def in_use(self) -> int:
        return sum(1 for c in self.chunks if c.state == "in-use")

    @property
    def free(self) -> int:
        return sum(1 for c in self.chunks if c.state == "free")

    @property
    def corrupt(self) -> int:
        return sum(1 for c in self.chunks if c.state == "corrupt")

    def chunk_at(self, address: int) -> Optional[PoolChunk]:
        """The chunk whose span holds ``address``."""
        for c in self.chunks:
            if c.address <= address < c.address + c.size:
                return c
        return None


def _read_field(raw: bytes, f: HeaderField, byteorder: str) -> int:
    return int.from_bytes(raw[f.offset : f.offset + f.size], byteorder, signed=f.signed)


def _decode_fields(raw: bytes, header: HeaderLayout, byteorder: str) -> Dict[str, int]:
    out = {}
    for f in header.fields.values():
        if f.count == 1 and f.size <= 8 and f.offset + f.size <= len(raw):
            out[f.name] = _read_field(raw, f, byteorder)
    return out


def _walk_free_list(mem: MemorySource, pool: ResolvedPool, report: PoolReport) -> Dict[int, int]:
    """Follow the free list from its head; returns chunk address -> position.  Bounded and cycle-safe."""
    spec = pool.spec
    positions: Dict[int, int] = {}
    if spec.free_list is None or pool.free_head is None:
        return positions
    link = pool.header.fields[spec.free_list.link]
    to_chunk = pool.payload_offset if spec.free_list.points_to == "payload" else spec.header_offset
    node = pool.free_head
    holder: Optional[int] = None  # the chunk whose link holds ``node`` (None: the head)
    mask = (1 << (8 * link.size)) - 1
    while node:
        chunk = node - to_chunk
        # ``address`` stays the bad pointer (consumers match it against written values); the
        # anomaly's slot is the one holding the bad link, and its bytes are that link's
        if holder is None:
            src, slot = "free-list head", None
        else:
            slot = (holder - pool.first) // pool.slot_size if pool.slot_size else None
            at = holder + spec.header_offset + link.offset
            src = f"link of {holder:#x}" + (f" (slot {slot}, at {at:#x})" if slot is not None else f" (at {at:#x})")
        raw = (node & mask).to_bytes(link.size, mem.byteorder)
        if chunk in positions:
            report.anomalies.append(PoolAnomaly(
                "freelist-cycle", f"free list loops back to {node:#x} after {len(positions)} nodes ({src})",
                node, slot, raw))
            break
        if not pool.first <= chunk < pool.end:
            report.anomalies.append(PoolAnomaly(
                "freelist-outside", f"{src} points to {node:#x}, outside the pool "
                f"[{pool.first:#x}, {pool.end:#x})", node, slot, raw))
            break
        if pool.slot_size and (chunk - pool.first) % pool.slot_size:
            report.anomalies.append(PoolAnomaly(
                "freelist-misaligned", f"free-list node {node:#x} is not at a slot boundary ({src})",
                node, slot, raw))
            break
        if len(positions) >= MAX_POOL_CHUNKS:
            report.anomalies.append(PoolAnomaly("freelist-too-long", f"free list longer than {MAX_POOL_CHUNKS}"))
            break
        positions[chunk] = len(positions)
        report.free_list.append(chunk)
        try:
            nxt = mem.read_uint(chunk + spec.header_offset + link.offset, link.size)
        except MemoryReadError as err:
            report.anomalies.append(PoolAnomaly("unreadable", str(err), chunk))
            break
        holder, node = chunk, nxt
    return positions


def _state(pool: ResolvedPool, fields: Dict[str, int], in_list: bool) -> Tuple[str, Optional[str]]:
    """(state, reason it is corrupt or None) from the in-use predicate."""
    pred = pool.spec.in_use
    if isinstance(pred, Magic):
        used, free = pred.values()
        value = fields.get(pred.field)
        if value in used:
            return "in-use", None
        if value in free:
            return "free", None
        return "corrupt", f"{pred.field} = {value:#x} is neither the in-use nor the free magic" if value is not None \
            else f"{pred.field} unreadable"
    if isinstance(pred, FlagBit):
        bit = bool(fields.get(pred.field, 0) & pred.mask)
        return ("in-use" if bit == pred.set_means_used else "free"), None
    return ("free" if in_list else "in-use"), None


def _alloc_sites(raw: bytes, pool: ResolvedPool, byteorder: str) -> List[int]:
    f = pool.header.get(pool.spec.alloc_site, "alloc_site")
    if f is None:
        return []
    size = f.element_size
    return [
        v for v in (
            int.from_bytes(raw[f.offset + i * size : f.offset + (i + 1) * size], byteorder) for i in range(f.count)
        ) if v
    ]


def _check_guard(mem: MemorySource, pool: ResolvedPool, chunk: PoolChunk) -> None:
    guard = pool.spec.guard
    if guard is None:
        return
    start = chunk.address + (guard.offset if guard.offset >= 0 else chunk.size + guard.offset)
    try:
        data = mem.read(start, guard.size)
    except MemoryReadError as err:
        chunk.anomalies.append(PoolAnomaly("unreadable", str(err), start, chunk.index))
        return
    bad = [i for i, b in enumerate(data) if b != guard.byte]
    if bad:
        first, last = bad[0], bad[-1]
        chunk.anomalies.append(PoolAnomaly(
            "guard-overwritten",
            f"guard bytes {first}..{last} of slot {chunk.index} overwritten "
            f"(first byte {data[first]:#04x} instead of {guard.byte:#04x})",
            start + first, chunk.index, bytes(data[first : last + 1])))


def iter_chunk_spans(mem: MemorySource, pool: ResolvedPool, report: PoolReport) -> Iterator[Tuple[int, int, bytes]]:
    """(index, address, header bytes) for each chunk, by the pool's geometry; bounded."""
    spec = pool.spec
    hsize = pool.header.size
    geo = spec.geometry
    if isinstance(geo, FixedSlots):
        for i in range(pool.count):
            addr = pool.first + i * pool.slot_size
            try:
                raw = mem.read(addr + spec.header_offset, hsize)
            except MemoryReadError:
                report.stopped = f"slot {i}: <unreadable at {addr + spec.header_offset:#x}>"
                return
            yield i, addr, raw
        return
    size_f = pool.header.fields[geo.size_field]
    addr, i = pool.first, 0
    while addr < pool.end:
        if i >= MAX_POOL_CHUNKS:
            report.stopped = f"more than {MAX_POOL_CHUNKS} chunks"
            return
        try:
            raw = mem.read(addr + spec.header_offset, hsize)
        except MemoryReadError:
            report.stopped = f"chunk {i}: <unreadable at {addr + spec.header_offset:#x}>"
            return
        yield i, addr, raw
        size = _read_field(raw, size_f, mem.byteorder) & geo.size_mask
        span = size if geo.size_includes_header else size + hsize
        if span < hsize or span % geo.align or addr + span > pool.end:
            report.anomalies.append(PoolAnomaly(
                "bad-size", f"chunk {i} at {addr:#x} has size field {size:#x}; the walk stops here",
                addr + spec.header_offset + size_f.offset, i, raw[size_f.offset : size_f.offset + size_f.size]))
            report.stopped = f"bad size at {addr:#x}"
            return
        addr += span
        i += 1


def walk_pool(mem: MemorySource, pool: ResolvedPool) -> PoolReport:
    """Read every chunk of ``pool`` and its free list, collecting anomalies; never raises on corruption."""
    report = PoolReport(pool)
    positions = _walk_free_list(mem, pool, report)
    spec = pool.spec
    order = mem.byteorder
    req_f = pool.header.get(spec.requested_size, "requested_size")
    geo = spec.geometry
    spans = list(iter_chunk_spans(mem, pool, report))
    for n, (i, addr, raw) in enumerate(spans):
        fields = _decode_fields(raw, pool.header, order)
        if isinstance(geo, FixedSlots):
            size = pool.slot_size
        else:
            size = (spans[n + 1][1] if n + 1 < len(spans) else pool.end) - addr
        user = addr + pool.payload_offset
        if spec.payload_size is not None:
            usable = spec.payload_size
        elif spec.guard is not None and spec.guard.offset >= 0:
            usable = spec.guard.offset - pool.payload_offset
        else:
            usable = size - pool.payload_offset - (spec.guard.size if spec.guard else 0)
        state, why = _state(pool, fields, addr in positions)
        chunk = PoolChunk(
            index=i, address=addr, size=size, user_address=user, usable_size=max(usable, 0), state=state,
            requested_size=_read_field(raw, req_f, order) if req_f is not None else None,
            alloc_sites=_alloc_sites(raw, pool, order), fields=fields, in_free_list=addr in positions,
        )
        if why:
            f = pool.header.fields[spec.in_use.field]  # type: ignore[union-attr]
            chunk.anomalies.append(PoolAnomaly(
                "bad-magic", why, addr + spec.header_offset + f.offset, i, raw[f.offset : f.offset + f.size]))
        if chunk.in_free_list and state == "in-use":
            chunk.anomalies.append(PoolAnomaly(
                "freelist-in-use", f"slot {i} is on the free list but marked in use", addr, i))
        if state == "free" and spec.free_list is not None and not chunk.in_free_list and "freelist" not in (
                report.stopped or "") and not any(a.kind.startswith("freelist") for a in report.anomalies):
            chunk.anomalies.append(PoolAnomaly(
                "free-not-listed", f"slot {i} is marked free but is not on the free list", addr, i))
        if (chunk.requested_size is not None and state == "in-use"
                and not 0 <= chunk.requested_size <= chunk.usable_size):
            chunk.anomalies.append(PoolAnomaly(
                "bad-requested-size", f"requested size {chunk.requested_size} exceeds usable {chunk.usable_size}",
                addr + spec.header_offset + req_f.offset, i))  # type: ignore[union-attr]
        _check_guard(mem, pool, chunk)
        report.chunks.append(chunk)
        report.anomalies.extend(chunk.anomalies)
    return report
