# gdbext/forensics/chunks.py - one lookup for "which chunk holds this address"
# over glibc arenas, mmapped chunks and declared pools, with neighbours, header
# field names and bounded byte reads.
"""The chunk index of a forensic context.

:class:`ChunkIndex` turns glibc chunks (walked lazily, one arena at a time,
only when an address in that arena is asked about) and pool slots into
:class:`~gdbext.forensics.model.ChunkView` records, finds the chunk holding
an address, its neighbours, and names the header field at an address.
"""
from __future__ import annotations

import bisect
from array import array
from typing import Dict, Iterator, Optional, Sequence, Tuple

from ..errors import MemoryReadError
from ..glibc import CheckReport, GlibcHeap, HeapSegment
from ..glibc.layouts import PREV_INUSE
from ..glibc.scan import END, SegmentScan
from ..memory import MemorySource
from ..pools import PoolChunk, PoolReport
from .model import ChunkView

__all__ = ["ChunkIndex", "GLIBC_FIELDS", "read_upto"]

#: glibc chunk words by index from the chunk start, for free chunks (in-use
#: chunks only have the first two: the rest is user data).
GLIBC_FIELDS = ("prev_size", "size", "fd", "bk", "fd_nextsize", "bk_nextsize")
#: tcache entries name the first two user words differently.
TCACHE_FIELDS = ("prev_size", "size", "next", "key")

#: The most bytes :func:`read_upto` reads at once.
MAX_READ = 1 << 20


def read_upto(mem: MemorySource, address: int, size: int) -> bytes:
    """Up to ``size`` bytes at ``address``: fewer at the end of a mapping, b"" when none is readable."""
    size = max(0, min(size, MAX_READ))
    if size == 0 or address < 0:
        return b""
    try:
        return bytes(mem.read(address, size))
    except MemoryReadError:
        pass
    region = mem.region_of(address)
    if region is not None and region.end - address < size:
        try:
            return bytes(mem.read(address, region.end - address))
        except MemoryReadError:
            return b""
    return b""


_PLAIN, _CORRUPT, _TOP = 0, 1, 2


class _SegTable:
    """Chunk starts of one segment: plain chunks, corrupt stretches (after a bad header) and top.

    Built with the heap walker's rules (same first chunk, same re-synchronisation
    after a bad header) in one tight loop that only records addresses.
    """

    def __init__(self, scan: SegmentScan, label: str) -> None:
        self.scan = scan
        self.label = label
        starts = array("Q")
        kinds = bytearray()
        ap, kap = starts.append, kinds.append
        words, stop, mask, expect, minsize, sh, base = (
            scan.words, scan.stop, scan.mask, scan.expect, scan.minsize, scan.sh, scan.base)
        i = scan.start if scan.segment.exact_start else scan.resync(scan.start, inclusive=True)
        while True:
            while i < stop:
                w = words[i + 1]
                sz = w & -8
                j = i + (sz >> sh)
                if w & mask != expect or sz < minsize or j > stop:
                    break
                ap(base + (i << sh))
                kap(_PLAIN)
                i = j
            if i >= stop:
                break
            an = scan.classify(i)
            if an.kind == END:
                break
            ap(base + (i << sh))
            kap(_CORRUPT)
            i = an.resume
        if scan.segment.top is not None and i == stop:
            ap(scan.segment.top)
            kap(_TOP)
        self.starts = starts
        self.kinds = kinds


class ChunkIndex:
    """Chunks of the glibc heap and of the walked pools, by address.

    :param mem: the memory source.
    :param heap: the located glibc heap (or None).
    :param check: its check report (its free index is reused).
    :param pools: walked pools.
    """

    def __init__(self, mem: MemorySource, heap: Optional[GlibcHeap], check: Optional[CheckReport],
                 pools: Sequence[PoolReport]) -> None:
        self.mem = mem
        self.heap = heap
        self.check = check
        self.pools = list(pools)
        self._segments: Dict[int, Optional[_SegTable]] = {}
        #: chunks whose PREV_INUSE is clear although the chunk before them is in no free list
        self._unlisted = {v.chunk for v in check.violations if v.check == "chunk.prev_inuse.unlisted"} \
            if check is not None else set()

    # -- glibc -----------------------------------------------------------------
    @property
    def size_sz(self) -> int:
        return self.mem.pointer_size

    def _segment(self, seg: HeapSegment) -> Optional[_SegTable]:
        """The chunk starts of one heap segment (one tight pass, cached)."""
        if seg.base in self._segments:
            return self._segments[seg.base]
        table = None
        heap = self.heap
        assert heap is not None
        entry = heap.memory.buffer(seg)
        arena = heap.arena_at(seg.arena)
        if entry is not None and arena is not None:
            owner = self.check.index.owner if self.check is not None else {}
            scan = SegmentScan(heap.layout, seg, entry, arena.is_main, owner, heap.limits.max_resync_bytes)
            table = _SegTable(scan, arena.label)
        self._segments[seg.base] = table
        return table

    def _view_at(self, table: _SegTable, i: int) -> ChunkView:
        """The view of the ``i``-th chunk of a segment, its state decided as the heap walker decides it."""
        ssz = self.size_sz
        addr = table.starts[i]
        kind = table.kinds[i]
        scan = table.scan
        if kind == _TOP:
            size = (scan.size_word(scan.index(addr)) or 0) & ~7
            return ChunkView(addr, addr + 2 * ssz, size, max(size - 2 * ssz, 0), "top", table.label)
        nxt = table.starts[i + 1] if i + 1 < len(table.starts) else scan.addr(scan.stop)
        if kind == _CORRUPT:
            size = nxt - addr
            return ChunkView(addr, addr + 2 * ssz, size, max(size - 2 * ssz, 0), "corrupt", table.label)
        size = (scan.size_word(scan.index(addr)) or 0) & ~7
        label = self.check.index.label_of(addr) if self.check is not None else None
        if label is not None:
            return ChunkView(addr, addr + 2 * ssz, size, max(size - ssz, 0), "free", table.label, bin=label)
        following = table.kinds[i + 1] if i + 1 < len(table.kinds) else None
        nw = scan.size_word(scan.index(addr + size))
        # "free by boundary tags" means nothing when the next header is garbage, or when the chunk is in no
        # free list and the checks say the next chunk's PREV_INUSE was cleared (an off-by-one NUL does that)
        if following != _CORRUPT and nw is not None and not nw & PREV_INUSE and addr + size not in self._unlisted:
            return ChunkView(addr, addr + 2 * ssz, size, max(size - ssz, 0), "free", table.label)
        return ChunkView(addr, addr + 2 * ssz, size, max(size - ssz, 0), "in-use", table.label)

    def _mmapped_view(self, address: int) -> Optional[ChunkView]:
        if self.heap is None:
            return None
        ssz = self.size_sz
        for m in self.heap.mmapped:
            if m.address <= address < m.address + m.size:
                return ChunkView(m.address, m.address + 2 * ssz, m.size, max(m.size - 2 * ssz, 0), "mmapped",
                                 "mmapped")
        return None

    def _locate(self, address: int) -> Optional[Tuple[_SegTable, int]]:
        if self.heap is None:
            return None
        seg = self.heap.memory.segment_of(address)
        if seg is None:
            return None
        table = self._segment(seg)
        if table is None:
            return None
        i = bisect.bisect_right(table.starts, address) - 1
        if i < 0:
            return None
        return table, i

    def glibc_at(self, address: int) -> Optional[ChunkView]:
        """The glibc chunk (header included) holding ``address``."""
        got = self._locate(address)
        if got is not None:
            view = self._view_at(*got)
            if view.address <= address < view.end:
                return view
            return None
        return self._mmapped_view(address)

    def glibc_views(self, start: int, end: int) -> Iterator[ChunkView]:
        """glibc chunks that start in ``[start, end)``, in address order (arena heaps and mmapped chunks)."""
        if self.heap is None:
            return
        for seg in self.heap.segments:
            if seg.end <= start or seg.start >= end:
                continue
            table = self._segment(seg)
            if table is None:
                continue
            i = bisect.bisect_left(table.starts, start)
            while i < len(table.starts) and table.starts[i] < end:
                yield self._view_at(table, i)
                i += 1
        for m in self.heap.mmapped:
            if start <= m.address < end:
                view = self._mmapped_view(m.address)
                if view is not None:
                    yield view

    def glibc_neighbours(self, chunk: ChunkView) -> Tuple[Optional[ChunkView], Optional[ChunkView]]:
        """The chunks right before and after ``chunk`` in its heap segment (touching it)."""
        if chunk.is_pool or chunk.state == "mmapped":
            return None, None
        got = self._locate(chunk.address)
        if got is None:
            return None, None
        table, i = got
        if table.starts[i] != chunk.address:
            return None, None
        prev = nxt = None
        if i > 0:
            p = self._view_at(table, i - 1)
            prev = p if p.end == chunk.address else None
        if i + 1 < len(table.starts):
            n = self._view_at(table, i + 1)
            nxt = n if n.address == chunk.end else None
        return prev, nxt

    def glibc_chunk(self, address: int) -> Optional[ChunkView]:
        """The glibc chunk starting exactly at ``address``."""
        found = self.glibc_at(address)
        return found if found is not None and found.address == address else None

    # -- pools -------------------------------------------------------------------
    def pool_view(self, report: PoolReport, c: PoolChunk) -> ChunkView:
        """A :class:`ChunkView` of a pool slot."""
        # a free slot's requested size is its last owner's (or never set): not this slot's region
        requested = c.requested_size if c.state == "in-use" else None
        return ChunkView(c.address, c.user_address, c.size, c.usable_size, c.state, f"pool:{report.pool.spec.name}",
                         requested=requested, bin="free-list" if c.in_free_list else None, slot=c.index,
                         alloc_sites=tuple(c.alloc_sites))

    def pool_of(self, address: int) -> Optional[PoolReport]:
        for report in self.pools:
            if report.pool.first <= address < report.pool.end:
                return report
        return None

    def pool_report(self, name: str) -> Optional[PoolReport]:
        for report in self.pools:
            if report.pool.spec.name == name:
                return report
        return None

    def pool_at(self, address: int) -> Optional[ChunkView]:
        report = self.pool_of(address)
        if report is None:
            return None
        c = report.chunk_at(address)
        return self.pool_view(report, c) if c is not None else None

    def pool_chunk(self, view: ChunkView) -> Optional[Tuple[PoolReport, PoolChunk]]:
        """The pool report and record behind a pool view."""
        if not view.is_pool:
            return None
        report = self.pool_report(view.heap[5:])
        if report is None:
            return None
        for c in report.chunks:
            if c.index == view.slot:
                return report, c
        return None

    def pool_neighbours(self, chunk: ChunkView) -> Tuple[Optional[ChunkView], Optional[ChunkView]]:
        got = self.pool_chunk(chunk)
        if got is None:
            return None, None
        report, c = got
        pos = report.chunks.index(c)
        prev = report.chunks[pos - 1] if pos > 0 else None
        nxt = report.chunks[pos + 1] if pos + 1 < len(report.chunks) else None
        return (self.pool_view(report, prev) if prev is not None and prev.address + prev.size == c.address else None,
                self.pool_view(report, nxt) if nxt is not None and nxt.address == c.address + c.size else None)

    def pool_views(self) -> Iterator[Tuple[PoolReport, ChunkView]]:
        for report in self.pools:
            for c in report.chunks:
                yield report, self.pool_view(report, c)

    # -- both ----------------------------------------------------------------------
    def find(self, address: int) -> Optional[ChunkView]:
        """The chunk or pool slot holding ``address`` (pools first: a pool may live in a glibc chunk)."""
        return self.pool_at(address) or self.glibc_at(address)

    def neighbours(self, chunk: ChunkView) -> Tuple[Optional[ChunkView], Optional[ChunkView]]:
        """(previous, next) adjacent chunks."""
        if chunk.is_pool:
            return self.pool_neighbours(chunk)
        return self.glibc_neighbours(chunk)

    def field_name(self, chunk: ChunkView, address: int) -> Optional[str]:
        """The header field (``size``, ``fd``, ``next_free``...) at ``address`` of ``chunk``, if any."""
        if chunk.is_pool:
            got = self.pool_chunk(chunk)
            if got is None:
                return None
            pool = got[0].pool
            off = address - chunk.address - pool.spec.header_offset
            for f in pool.header.fields.values():
                if f.offset <= off < f.offset + f.size:
                    return f.name
            return None
        ps = self.size_sz
        k = (address - chunk.address) // ps
        if address < chunk.address or k < 0:
            return None
        if k < 2:
            return GLIBC_FIELDS[k]
        if chunk.state == "free" and chunk.bin and chunk.bin.startswith("tcache"):
            return TCACHE_FIELDS[k] if k < 4 else None
        if chunk.state == "free" and k < (6 if chunk.bin and chunk.bin.startswith("large") else 4):
            if chunk.bin and chunk.bin.startswith("fastbin") and k > 2:
                return None
            return GLIBC_FIELDS[k]
        return None

    def read(self, address: int, size: int) -> bytes:
        """Bytes from the heap buffers when possible (no extra reads), else from memory."""
        if self.heap is not None:
            got = self.heap.memory.bytes_at(address, size)
            if got is not None:
                return got
        return read_upto(self.mem, address, size)
