"""Walking a resolved pool through a memory source: chunks, free list and anomalies, bounded.

:func:`walk_pool` reads every chunk of a :class:`~gdbext.pools.layout.ResolvedPool`
by its geometry (fixed slots, chunks laid end to end, or a tree of
allocations) and its free list, and records what is wrong as
:class:`PoolAnomaly` entries; it never raises on corruption and never reads
more than :data:`~gdbext.pools.spec.MAX_POOL_CHUNKS` chunks or nodes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

from ..errors import MemoryReadError
from ..memory import MemorySource
from ..textutil import c_escape
from .layout import HeaderField, HeaderLayout, ResolvedPool
from .spec import MAX_POOL_CHUNKS, FixedSlots, FlagBit, Magic, Nodes, PointsTo, Tree

__all__ = ["PoolAnomaly", "PoolChunk", "PoolReport", "walk_pool", "iter_chunk_spans"]


@dataclass
class PoolAnomaly:
    """Something wrong in a pool: which chunk (if any), what, and the evidence bytes."""

    kind: str  #: e.g. "bad-magic", "guard-overwritten", "freelist-outside", "freelist-cycle"
    message: str
    address: Optional[int] = None
    chunk: Optional[int] = None  #: chunk index
    data: bytes = b""
    field: Optional[str] = None  #: the header field that holds ``data``, when one does

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
    label: Optional[str] = None  #: the string the spec's ``label`` field points to (talloc: type or file:line)


@dataclass
class PoolReport:
    """The walk's result: chunks, free-list facts and anomalies."""

    pool: ResolvedPool
    chunks: List[PoolChunk] = field(default_factory=list)
    free_list: List[int] = field(default_factory=list)  #: chunk addresses in list order
    anomalies: List[PoolAnomaly] = field(default_factory=list)
    stopped: Optional[str] = None  #: why the walk ended early, if it did
    #: chunk address -> the anomaly that makes it corrupt, found while following the geometry (nodes)
    corrupt_at: Dict[int, PoolAnomaly] = field(default_factory=dict, repr=False)

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
        value = fields.get(pred.field)
        if value is None:
            return "corrupt", f"{pred.field} unreadable"
        if value & pred.mask in pool.magic_used:
            return "in-use", None
        if value & pred.mask in pool.magic_free:
            return "free", None
        width = (1 << (8 * pool.header.fields[pred.field].size)) - 1
        masked = "" if pred.mask & width == width else f" (under mask {pred.mask & width:#x})"
        return "corrupt", f"{pred.field} = {value:#x} is neither the in-use nor the free magic{masked}"
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


#: One chunk's place: (index, address, header bytes, bytes it spans).
Span = Tuple[int, int, bytes, int]


def iter_chunk_spans(mem: MemorySource, pool: ResolvedPool, report: PoolReport) -> Iterator[Span]:
    """(index, address, header bytes, span) for each chunk, by the pool's geometry; bounded."""
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
            yield i, addr, raw, pool.slot_size
        return
    if isinstance(geo, Tree):
        yield from _tree_spans(mem, pool, report)
        return
    if isinstance(geo, Nodes):
        yield from _node_spans(mem, pool, report)
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
        size = _read_field(raw, size_f, mem.byteorder) & geo.size_mask
        span = size if geo.size_includes_header else size + spec.header_offset + hsize
        if geo.round_up:
            span = (span + geo.align - 1) // geo.align * geo.align
        if span < hsize or span % geo.align or addr + span > pool.end:
            yield i, addr, raw, pool.end - addr
            report.anomalies.append(PoolAnomaly(
                "bad-size", f"chunk {i} at {addr:#x} has size field {size:#x}; the walk stops here",
                addr + spec.header_offset + size_f.offset, i, raw[size_f.offset : size_f.offset + size_f.size]))
            report.stopped = f"bad size at {addr:#x}"
            return
        yield i, addr, raw, span
        addr += span
        i += 1


def _tree_spans(mem: MemorySource, pool: ResolvedPool, report: PoolReport) -> Iterator[Span]:
    """Depth-first from the root header through child and sibling links; a corrupt node's links are not followed."""
    spec = pool.spec
    geo = spec.geometry
    assert isinstance(geo, Tree)
    hsize = pool.header.size
    child_f, sib_f = pool.header.fields[geo.child], pool.header.fields[geo.sibling]
    size_f = pool.header.fields[geo.size_field]
    to_chunk = pool.payload_offset if geo.points_to == PointsTo.PAYLOAD else spec.header_offset
    seen: Dict[int, int] = {}
    stack: List[Tuple[int, str]] = [(pool.first, "the root")]
    while stack:
        addr, via = stack.pop()
        if addr in seen:
            report.anomalies.append(PoolAnomaly(
                "tree-cycle", f"{via} leads back to {addr:#x}, already visited", addr, seen[addr]))
            continue
        if len(seen) >= MAX_POOL_CHUNKS:
            report.stopped = f"more than {MAX_POOL_CHUNKS} nodes"
            return
        try:
            raw = mem.read(addr + spec.header_offset, hsize)
        except MemoryReadError:
            report.anomalies.append(PoolAnomaly(
                "tree-unreadable", f"{via} points to {addr:#x}, which is not readable", addr))
            continue
        i = len(seen)
        seen[addr] = i
        size = _read_field(raw, size_f, mem.byteorder)
        yield i, addr, raw, spec.header_offset + hsize + min(size, 1 << 32)
        fields = _decode_fields(raw, pool.header, mem.byteorder)
        if _state(pool, fields, False)[0] == "corrupt":
            continue  # its links are as untrustworthy as its magic
        for f, what in ((sib_f, "sibling"), (child_f, "child")):
            link = _read_field(raw, f, mem.byteorder)
            if link:
                stack.append((link - to_chunk, f"the {what} link of {addr:#x} (at {addr + spec.header_offset + f.offset:#x})"))


#: A node larger than this is not believed (APR's nodes are a few pages; a huge one is corruption).
MAX_NODE_BYTES = 1 << 32


def _node_spans(mem: MemorySource, pool: ResolvedPool, report: PoolReport) -> Iterator[Span]:
    """Each node of the chain from the head; a node whose header does not hold together is corrupt."""
    spec = pool.spec
    geo = spec.geometry
    assert isinstance(geo, Nodes)
    hsize = pool.header.size
    fnext, fused, fend = (pool.header.fields[n] for n in (geo.next, geo.used_end, geo.end))
    order = mem.byteorder
    seen: Dict[int, int] = {}
    node = pool.first
    via = "the head"
    while node:
        if node in seen:
            if not (geo.ring and node == pool.first):
                report.anomalies.append(PoolAnomaly(
                    "node-cycle", f"{via} leads back to node {node:#x} before the chain ends", node, seen[node]))
            return
        if len(seen) >= MAX_POOL_CHUNKS:
            report.stopped = f"more than {MAX_POOL_CHUNKS} nodes"
            return
        try:
            raw = mem.read(node + spec.header_offset, hsize)
        except MemoryReadError:
            report.anomalies.append(PoolAnomaly("node-unreadable", f"{via} points to {node:#x}, not readable", node))
            report.stopped = f"node {node:#x} unreadable"
            return
        i = len(seen)
        seen[node] = i
        user = node + pool.payload_offset
        end, used, nxt = (_read_field(raw, f, order) for f in (fend, fused, fnext))
        span = end - node if user <= end <= node + MAX_NODE_BYTES else hsize + spec.header_offset
        problem = None
        if not user <= end <= node + MAX_NODE_BYTES:
            problem = (fend, f"node {i} at {node:#x}: {geo.end} {end:#x} is not past its header")
        elif not user <= used <= end:
            problem = (fused, f"node {i} at {node:#x}: {geo.used_end} {used:#x} is outside the node [{user:#x}, {end:#x}]")
        elif nxt and not _readable(mem, nxt):
            problem = (fnext, f"node {i} at {node:#x}: {geo.next} {nxt:#x} is not a readable node")
        if problem is not None:
            f, message = problem
            at = node + spec.header_offset + f.offset
            report.corrupt_at[node] = PoolAnomaly("bad-node", message, at, i, raw[f.offset : f.offset + f.size], f.name)
        yield i, node, raw, span
        if problem is not None and problem[0] is fnext:
            report.stopped = f"node {node:#x}: its {geo.next} link is broken"
            return
        via = f"the {geo.next} link of node {node:#x} (at {node + spec.header_offset + fnext.offset:#x})"
        node = nxt


def _readable(mem: MemorySource, address: int) -> bool:
    try:
        mem.read(address, 1)
        return True
    except MemoryReadError:
        return False


def _read_label(mem: MemorySource, pointer: int, limit: int = 80) -> Optional[str]:
    """The C string at ``pointer`` (at most ``limit`` bytes), escaped; None when unreadable or empty."""
    if not pointer:
        return None
    data = b""
    for n in (limit, 16):  # a string near the end of a mapping: try a shorter read
        try:
            data = mem.read(pointer, n)
            break
        except MemoryReadError:
            continue
    text = data.split(b"\0", 1)[0]
    if not text:
        return None
    return c_escape(text)


def walk_pool(mem: MemorySource, pool: ResolvedPool) -> PoolReport:
    """Read every chunk of ``pool`` and its free list, collecting anomalies; never raises on corruption."""
    report = PoolReport(pool)
    positions = _walk_free_list(mem, pool, report)
    spec = pool.spec
    order = mem.byteorder
    req_f = pool.header.get(spec.requested_size, "requested_size")
    geo = spec.geometry
    label_f = pool.header.get(spec.label, "label")
    spans = list(iter_chunk_spans(mem, pool, report))
    if isinstance(geo, (Tree, Nodes)):
        # in address order, so that neighbours in the list are neighbours in memory
        spans = [(n, a, raw, size) for n, (_, a, raw, size) in enumerate(sorted(spans, key=lambda s: s[1]))]
        if spans:
            pool = dataclasses.replace(pool, first=spans[0][1], end=max(a + size for _, a, _, size in spans))
            report.pool = pool
    for i, addr, raw, size in spans:
        fields = _decode_fields(raw, pool.header, order)
        user = addr + pool.payload_offset
        if spec.payload_size is not None:
            usable = spec.payload_size
        elif spec.guard is not None and spec.guard.offset >= 0:
            usable = spec.guard.offset - pool.payload_offset
        else:
            usable = size - pool.payload_offset - (spec.guard.size if spec.guard else 0)
        state, why = _state(pool, fields, addr in positions)
        fault = report.corrupt_at.get(addr)
        requested = _read_field(raw, req_f, order) if req_f is not None else None
        if isinstance(geo, Nodes):
            state = "corrupt" if fault is not None else state
            used = _read_field(raw, pool.header.fields[geo.used_end], order)
            requested = used - user if user <= used <= addr + size else None
            usable = size - pool.payload_offset
        chunk = PoolChunk(
            index=i, address=addr, size=size, user_address=user, usable_size=max(usable, 0), state=state,
            requested_size=requested,
            alloc_sites=_alloc_sites(raw, pool, order), fields=fields, in_free_list=addr in positions,
            label=_read_label(mem, _read_field(raw, label_f, order)) if label_f is not None else None,
        )
        if fault is not None:
            fault.chunk = i
            chunk.anomalies.append(fault)
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
