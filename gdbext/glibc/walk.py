# gdbext/glibc/walk.py - the fast glibc heap walker: chunk records with cheap
# filters, and a summary path that creates no object per chunk.
"""Walk glibc heaps.

:class:`HeapWalker` reads each heap segment with one ``read_buffer`` (through
:class:`~gdbext.glibc.segments.HeapMemory`) and walks the chunk headers in a
tight loop over a word view.  Two paths:

* :meth:`HeapWalker.chunks` yields :class:`Chunk` records (a ``NamedTuple``)
  with state (``in-use``, ``free``, ``top``, ``mmapped``, ``corrupt``) and the
  free list holding the chunk (from a :class:`~gdbext.glibc.freelists.FreeIndex`
  built once); filters are tested before a record is built.
* :meth:`HeapWalker.summary` counts chunks and bytes per state and per chunk
  size for each arena without creating a Python object per chunk: chunks in
  unsorted/small/large bins are recognised by their boundary tags (the next
  chunk's PREV_INUSE is clear), tcache and fastbin chunks by a small index; on
  request the bin lists are counted too (bounded, cycle-safe) and their totals
  compared with the boundary tags.

``chunks`` totals include the top chunk and exclude fenceposts and mmapped
chunks, like the floor walker of the benchmark.  After a bad header the walk
re-synchronises (see :mod:`~gdbext.glibc.scan`); the bad stretch is listed as a
``corrupt`` chunk spanning up to the next parsed header and recorded in
:attr:`HeapWalker.unparsed`.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Collection, Dict, Iterator, List, NamedTuple, Optional, Set, Tuple

from .freelists import FASTBIN, TCACHE, FreeIndex, build_free_index
from .layouts import PREV_INUSE
from .model import ArenaInfo, GlibcHeap
from .scan import BREAK, END, SegmentScan
from .segments import HeapSegment

__all__ = [
    "Chunk",
    "Unparsed",
    "HeapWalker",
    "ArenaSummary",
    "HeapSummary",
    "IN_USE",
    "FREE",
    "TOP",
    "MMAPPED",
    "CORRUPT_STATE",
    "STATES",
]

IN_USE = "in-use"
FREE = "free"
TOP = "top"
MMAPPED = "mmapped"
CORRUPT_STATE = "corrupt"
STATES = (IN_USE, FREE, TOP, MMAPPED, CORRUPT_STATE)


class Chunk(NamedTuple):
    """One chunk.

    :ivar address: the chunk header (``mem - 2 * SIZE_SZ``).
    :ivar size: chunk size without flag bits (for ``corrupt``: bytes up to the
        next parsed header).
    :ivar flags: the low three bits of the size field.
    :ivar state: one of :data:`STATES`.
    :ivar bin: the free list holding it (``"tcache[3]"``, ``"fastbin[2]"``,
        ``"unsorted"``, ``"small[17]"``, ``"large[70]"``), None otherwise.
    :ivar usable: ``malloc_usable_size`` of an in-use chunk, else 0.
    :ivar arena: the owning arena, None for mmapped chunks.
    """

    address: int
    size: int
    flags: int
    state: str
    bin: Optional[str]
    usable: int
    arena: Optional[int]


class Unparsed(NamedTuple):
    """Bytes the walker could not parse as chunks (after a bad header)."""

    start: int
    end: int
    arena: int
    reason: str


@dataclass
class ArenaSummary:
    """Counts of one arena.

    ``states[state] = [count, bytes]``; ``free_kinds[kind] = [count, bytes]``
    with kind ``tcache``/``fastbin``/``bins``; ``sizes[size] = [in_use, free]``
    chunk counts per chunk size (the size class).
    """

    arena: int
    label: str
    segments: int
    chunks: int = 0
    bytes: int = 0
    states: Dict[str, List[int]] = field(default_factory=lambda: {s: [0, 0] for s in STATES if s != MMAPPED})
    free_kinds: Dict[str, List[int]] = field(default_factory=lambda: {TCACHE: [0, 0], FASTBIN: [0, 0], "bins": [0, 0]})
    sizes: Dict[int, List[int]] = field(default_factory=dict)
    fenceposts: int = 0
    unparsed_bytes: int = 0
    #: chunks the bin lists hold, to compare with ``free_kinds["bins"][0]`` (boundary
    #: tags); -1 when the bins were not walked
    bins_listed: int = 0
    #: bytes of memory its segments span, from each segment's base (``mp_.sbrk_base``
    #: or the heap_info) to its end: what glibc counts in ``system_mem``
    system_bytes: int = 0

    def to_dict(self) -> Dict[str, Any]:
        return {
            "arena": self.arena,
            "label": self.label,
            "segments": self.segments,
            "chunks": self.chunks,
            "bytes": self.bytes,
            "states": {k: {"count": v[0], "bytes": v[1]} for k, v in self.states.items()},
            "free": {k: {"count": v[0], "bytes": v[1]} for k, v in self.free_kinds.items()},
            "sizes": {f"{k:#x}": {"in-use": v[0], "free": v[1]} for k, v in sorted(self.sizes.items())},
            "fenceposts": self.fenceposts,
            "unparsed_bytes": self.unparsed_bytes,
            "bins_listed": self.bins_listed,
            "system_bytes": self.system_bytes,
        }


@dataclass
class HeapSummary:
    """Counts of the whole heap; ``chunks`` includes each arena's top chunk."""

    arenas: List[ArenaSummary]
    mmapped: List[int] = field(default_factory=lambda: [0, 0])
    notes: List[str] = field(default_factory=list)

    @property
    def chunks(self) -> int:
        return sum(a.chunks for a in self.arenas)

    @property
    def bytes(self) -> int:
        return sum(a.bytes for a in self.arenas)

    def state_totals(self) -> Dict[str, List[int]]:
        out: Dict[str, List[int]] = {s: [0, 0] for s in STATES}
        for a in self.arenas:
            for k, (n, b) in a.states.items():
                out[k][0] += n
                out[k][1] += b
        out[MMAPPED] = list(self.mmapped)
        return out

    def to_dict(self) -> Dict[str, Any]:
        return {
            "chunks": self.chunks,
            "bytes": self.bytes,
            "states": {k: {"count": v[0], "bytes": v[1]} for k, v in self.state_totals().items()},
            "mmapped": {"count": self.mmapped[0], "bytes": self.mmapped[1]},
            "arenas": [a.to_dict() for a in self.arenas],
            "notes": list(self.notes),
        }


class HeapWalker:
    """Walks the heap located by :func:`~gdbext.glibc.locate.locate_heap`.

    :param heap: the located heap.
    :param index: a prebuilt free index (else built on first need).
    """

    def __init__(self, heap: GlibcHeap, index: Optional[FreeIndex] = None) -> None:
        self.heap = heap
        self._index = index
        self._cached: Optional[FreeIndex] = None
        self._cached_counted = False
        #: stretches that could not be parsed, filled as segments are walked
        self.unparsed: List[Unparsed] = []
        self._unparsed_keys: Set[Tuple[int, int]] = set()
        self.notes: List[str] = []

    # -- indexes ---------------------------------------------------------------
    @property
    def index(self) -> FreeIndex:
        """Every free list, indexed (built once)."""
        if self._index is None:
            self._index = build_free_index(self.heap)
        return self._index

    def _cached_index(self, verify_bins: bool) -> FreeIndex:
        """tcache + fastbins indexed; regular bins counted (``verify_bins``) or skipped."""
        if self._index is not None:
            return self._index
        if self._cached is None or (verify_bins and not self._cached_counted):
            self._cached = build_free_index(self.heap, regular=False, count_regular=verify_bins)
            self._cached_counted = verify_bins
        return self._cached

    def _scan(self, arena: ArenaInfo, seg: HeapSegment, anchors: Any) -> Optional[SegmentScan]:
        entry = self.heap.memory.buffer(seg)
        if entry is None:
            return None
        return SegmentScan(self.heap.layout, seg, entry, arena.is_main, anchors, self.heap.limits.max_resync_bytes)

    def _note_unparsed(self, scan: SegmentScan, i: int, j: int, arena: int, reason: str) -> None:
        start, end = scan.addr(i), scan.addr(j)
        if (start, end) not in self._unparsed_keys:
            self._unparsed_keys.add((start, end))
            self.unparsed.append(Unparsed(start, end, arena, reason))

    def _note_foreign(self, scan: SegmentScan, i: int, resume: int) -> None:
        """Bytes between glibc's fenceposts at ``i`` and the next stretch of the main heap."""
        start = scan.addr(i) + 4 * scan.ps
        note = (f"main heap: fenceposts at {scan.addr(i):#x}, then {scan.addr(resume) - start:#x} bytes that are "
                f"not malloc's (another sbrk() user) up to {scan.addr(resume):#x}")
        if note not in self.notes:
            self.notes.append(note)

    def _first(self, scan: SegmentScan) -> int:
        """Where the chunks of a segment start (searched when the start is a guess)."""
        if scan.segment.exact_start:
            return scan.start
        i = scan.resync(scan.start, inclusive=True)
        if i != scan.start:
            note = (f"main heap: first chunk found at {scan.addr(i):#x}, "
                    f"{scan.addr(i) - scan.addr(scan.start):#x} bytes into its mapping")
            if note not in self.notes:
                self.notes.append(note)
        return i

    # -- records -----------------------------------------------------------------
    def chunks(
        self,
        arena: Optional[int] = None,
        states: Optional[Collection[str]] = None,
        min_size: int = 0,
        max_size: Optional[int] = None,
        bins: Optional[Collection[str]] = None,
        include_mmapped: bool = True,
    ) -> Iterator[Chunk]:
        """Chunks in address order per segment, arenas in ring order, mmapped last.

        :param arena: only this arena's chunks (mmapped chunks belong to none).
        :param states: only these states.
        :param min_size: only chunks at least this big.
        :param max_size: only chunks at most this big.
        :param bins: only chunks in these free lists (labels, or kinds such as
            ``"tcache"``, ``"fastbin"``, ``"small"``).
        :param include_mmapped: also yield the mmapped chunks.
        """
        index = self.index
        lists = index.lists
        owner_get = index.owner.get
        want_state = None if states is None else frozenset(states)
        maxs = max_size if max_size is not None else 1 << 64
        want_bins = None if bins is None else frozenset(bins)
        lay = self.heap.layout
        size_sz = lay.size_sz

        def label_ok(lid: Optional[int]) -> bool:
            if want_bins is None:
                return True
            if lid is None:
                return False
            fl = lists[lid]
            return fl.label in want_bins or fl.kind in want_bins or fl.label.split("@")[0] in want_bins

        for ar in self.heap.arenas:
            if arena is not None and ar.address != arena:
                continue
            a_addr = ar.address
            for seg in ar.segments:
                scan = self._scan(ar, seg, index.owner)
                if scan is None:
                    continue
                words, stop, mask, expect, minsize, sh, base = (
                    scan.words, scan.stop, scan.mask, scan.expect, scan.minsize, scan.sh, scan.base)
                i = self._first(scan)
                while True:
                    while i < stop:
                        w = words[i + 1]
                        sz = w & -8
                        j = i + (sz >> sh)
                        if w & mask != expect or sz < minsize or j > stop:
                            break
                        if min_size <= sz <= maxs:
                            addr = base + (i << sh)
                            lid = owner_get(addr)
                            if lid is not None:
                                state, label, usable = FREE, lists[lid].label, 0
                            elif j < scan.nwords - 1 and not words[j + 1] & PREV_INUSE:
                                state, label, usable = FREE, None, 0  # free by boundary tags, in no list
                            else:
                                state, label, usable = IN_USE, None, sz - size_sz
                            if (want_state is None or state in want_state) and label_ok(lid):
                                yield Chunk(addr, sz, w & 7, state, label, usable, a_addr)
                        i = j
                    if i >= stop:
                        break
                    an = scan.classify(i)
                    if an.kind == END:
                        break
                    if an.kind == BREAK:
                        self._note_foreign(scan, i, an.resume)
                        i = an.resume
                        continue
                    self._note_unparsed(scan, i, an.resume, a_addr, an.reason)
                    span = scan.addr(an.resume) - scan.addr(i)
                    if (want_state is None or CORRUPT_STATE in want_state) and want_bins is None \
                            and min_size <= span <= maxs:
                        yield Chunk(scan.addr(i), span, words[i + 1] & 7, CORRUPT_STATE, None, 0, a_addr)
                    i = an.resume
                if seg.top is not None and i == stop:
                    tw = words[stop + 1]
                    tsz = tw & -8
                    if (want_state is None or TOP in want_state) and want_bins is None and min_size <= tsz <= maxs:
                        yield Chunk(seg.top, tsz, tw & 7, TOP, None, 0, a_addr)
        if include_mmapped and arena is None and want_bins is None:
            for mc in self.heap.mmapped:
                if (want_state is None or MMAPPED in want_state) and min_size <= mc.size <= maxs:
                    yield Chunk(mc.address, mc.size, 2, MMAPPED, None, mc.size - 2 * size_sz, None)

    # -- summary -----------------------------------------------------------------
    def summary(self, arena: Optional[int] = None, verify_bins: bool = False) -> HeapSummary:
        """Counts per arena, per state and per chunk size; no object per chunk.

        Chunks in the unsorted/small/large bins are counted by their boundary
        tags (the next chunk's PREV_INUSE is clear); tcache and fastbin chunks
        (which keep it set) by walking those lists.

        :param arena: only this arena.
        :param verify_bins: also walk the regular bins (bounded, cycle-safe) and
            note when their lengths disagree with the boundary tags
            (``ArenaSummary.bins_listed``; -1 when not walked).  The checks
            (:func:`~gdbext.glibc.checks.check_heap`) reconcile node by node.
        """
        index = self._cached_index(verify_bins)
        counted = verify_bins or self._index is not None
        out = HeapSummary([])
        for ar in self.heap.arenas:
            if arena is not None and ar.address != arena:
                continue
            out.arenas.append(self._summarize_arena(ar, index))
            if not counted:
                out.arenas[-1].bins_listed = -1
        if arena is None:
            out.mmapped = [len(self.heap.mmapped), sum(m.size for m in self.heap.mmapped)]
        for a in out.arenas:
            if counted and a.bins_listed != a.free_kinds["bins"][0]:
                out.notes.append(
                    f"{a.label}: boundary tags mark {a.free_kinds['bins'][0]} chunks free, "
                    f"its bins list {a.bins_listed}: run the checks")
        out.notes.extend(self.notes)
        return out

    def _segment_base(self, seg: HeapSegment) -> int:
        """Where glibc's count of a segment's memory starts."""
        if seg.heap_info is not None:
            return seg.heap_info
        sbrk = self.heap.sbrk_base
        if sbrk and sbrk <= seg.start and seg.start - sbrk < self.heap.layout.malloc_alignment * 2:
            return sbrk
        return seg.base

    def _summarize_arena(self, ar: ArenaInfo, index: FreeIndex) -> ArenaSummary:
        res = ArenaSummary(ar.address, "main_arena" if ar.is_main else f"arena@{ar.address:#x}", len(ar.segments))
        res.bins_listed = sum(fl.length for fl in index.lists if fl.regular and fl.arena == ar.address)
        res.system_bytes = sum(seg.end - self._segment_base(seg) for seg in ar.segments)
        lists = index.lists
        raw_sizes: List[int] = []  # raw size words (flag bits included)
        tagfree: List[int] = []
        cached: List[Tuple[int, int]] = []
        corrupt = [0, 0]
        for seg in ar.segments:
            scan = self._scan(ar, seg, index.owner)
            if scan is None:
                continue
            base, sh = scan.base, scan.sh
            # tcache/fastbin nodes of this segment, by word index
            cidx = {(a - base) >> sh: lid for a, lid in index.owner.items()
                    if seg.start <= a < seg.end and not lists[lid].regular}
            loop = _summary_loop64 if sh == 3 else _summary_loop
            seg_cached: List[Tuple[int, int]] = []
            i = self._first(scan)
            prev_w = 0
            while True:
                i, prev_w = loop(scan.words, i, scan.stop, scan.mask, scan.expect, scan.minsize, cidx,
                                 raw_sizes.append, tagfree.append, seg_cached.append, prev_w)
                if i >= scan.stop:
                    break
                an = scan.classify(i)
                if an.kind in (END, BREAK):
                    res.fenceposts += an.fenceposts
                    fw = scan.size_word(i)
                    if fw is not None and not fw & PREV_INUSE and prev_w:
                        tagfree.append(prev_w)  # an old top freed into a bin before the fenceposts
                    if an.kind == END:
                        break
                    self._note_foreign(scan, i, an.resume)
                    i = an.resume
                    prev_w = 0
                    continue
                self._note_unparsed(scan, i, an.resume, ar.address, an.reason)
                span = scan.addr(an.resume) - scan.addr(i)
                corrupt[0] += 1
                corrupt[1] += span
                res.unparsed_bytes += span
                i = an.resume
                prev_w = 0
            if seg.top is not None and i == scan.stop:
                tw = scan.words[scan.stop + 1]
                res.states[TOP][0] += 1
                res.states[TOP][1] += tw & -8
                if not tw & PREV_INUSE and prev_w:
                    tagfree.append(prev_w)
            cached.extend((cidx[k], w) for k, w in seg_cached)
        total = _merge_flags(Counter(raw_sizes))
        free_tags = _merge_flags(Counter(tagfree))
        free_tags.pop(0, None)  # P clear right after a resync: previous size unknown
        free_cached: Counter[int] = Counter()
        for lid, w in cached:
            kind = lists[lid].kind
            sz = w & -8
            free_cached[sz] += 1
            res.free_kinds[kind][0] += 1
            res.free_kinds[kind][1] += sz
        res.free_kinds["bins"] = [sum(free_tags.values()), sum(k * v for k, v in free_tags.items())]
        for sz, n in total.items():
            free = free_tags.get(sz, 0) + free_cached.get(sz, 0)
            res.sizes[sz] = [max(n - free, 0), min(free, n)]
        n_all = len(raw_sizes)
        b_all = sum(k * v for k, v in total.items())
        n_free = res.free_kinds["bins"][0] + res.free_kinds[TCACHE][0] + res.free_kinds[FASTBIN][0]
        b_free = res.free_kinds["bins"][1] + res.free_kinds[TCACHE][1] + res.free_kinds[FASTBIN][1]
        res.states[FREE] = [n_free, b_free]
        res.states[IN_USE] = [max(n_all - n_free, 0), max(b_all - b_free, 0)]
        res.states[CORRUPT_STATE] = corrupt
        res.chunks = n_all + res.states[TOP][0] + corrupt[0]
        res.bytes = b_all + res.states[TOP][1] + corrupt[1]
        return res


def _merge_flags(counts: "Counter[int]") -> "Counter[int]":
    """Fold raw size words into chunk sizes (drop the flag bits)."""
    out: Counter[int] = Counter()
    for w, n in counts.items():
        out[w & -8] += n
    return out


def _summary_loop64(words: Any, i: int, stop: int, mask: int, expect: int, minsize: int, cset: Any,
                    ap: Any, tag_ap: Any, cached_ap: Any, prev_w: int) -> Tuple[int, int]:
    """The hot loop for 8-byte words: raw size words are collected (flag bits
    and all: ``w >> 3`` is the size in words because the flags fit in 3 bits).
    Returns where it stopped and the last chunk's raw size word."""
    while i < stop:
        w = words[i + 1]
        j = i + (w >> 3)
        if w & mask != expect or w < minsize or j > stop:
            return i, prev_w
        if not w & 1:
            tag_ap(prev_w)
        ap(w)
        if i in cset:
            cached_ap((i, w))
        prev_w = w
        i = j
    return i, prev_w


def _summary_loop(words: Any, i: int, stop: int, mask: int, expect: int, minsize: int, cset: Any,
                  ap: Any, tag_ap: Any, cached_ap: Any, prev_w: int) -> Tuple[int, int]:
    """The same loop for 4-byte words (NON_MAIN_ARENA would leak into ``w >> 2``)."""
    while i < stop:
        w = words[i + 1]
        sz = w & -8
        j = i + (sz >> 2)
        if w & mask != expect or sz < minsize or j > stop:
            return i, prev_w
        if not w & 1:
            tag_ap(prev_w)
        ap(w)
        if i in cset:
            cached_ap((i, w))
        prev_w = w
        i = j
    return i, prev_w
