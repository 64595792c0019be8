# gdbext/glibc/checks.py - one-pass invariant checks of a glibc heap, each
# violation tied to the glibc abort message it corresponds to.
"""Heap invariant checks.

:func:`check_heap` gathers, each once, every :class:`~gdbext.glibc.findings.Violation`
from three sources:

* locating (:mod:`~gdbext.glibc.locate`): ``arena.ring`` (cycles or breaks in
  the ``next`` ring), ``arena.top``, ``heap_info.*`` (``prev`` cycles, wrong
  ``ar_ptr``, sizes);
* the free lists walked once (:mod:`~gdbext.glibc.freelists`, thorough mode):
  ``list.fd_bk``, ``list.nextsize``, ``list.cycle``, ``list.duplicate``,
  ``list.outside_heap``, ``list.wrong_arena``, ``list.too_long``,
  ``bin.size``, ``bin.unaligned``, ``fastbin.size``, ``fastbin.unaligned``,
  ``tcache.size``, ``tcache.unaligned`` (safe-linking decode failures),
  ``tcache.count``;
* one walk over every segment (this module): ``chunk.size.minsize``,
  ``chunk.size.alignment``, ``chunk.flags.mmapped``, ``chunk.flags.arena``,
  ``chunk.size.bounds``, ``chunk.size.mismatch``, ``chunk.prev_inuse.free_in_bin``,
  ``chunk.prev_inuse.cached``, ``chunk.prev_inuse.unlisted``,
  ``chunk.prev_size``, ``list.not_chunk``, ``tcache.key``,
  ``tcache.stale_key``, ``top.size``, ``top.bounds``, ``top.prev_inuse``,
  ``arena.system_mem``, ``heap.unreadable``, plus ``chunk.next_size`` (the
  in-use chunk whose free() would trip over a smashed next header).

The per-chunk work is a tight loop over the segment's word view that records
only anomalies (position and code); explanations and raw bytes are built
afterwards for the few chunks concerned.
"""
from __future__ import annotations

from array import array

import bisect
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set, Tuple

from .findings import Findings, Violation
from .freelists import UNSORTED, FreeIndex, build_free_index
from .layouts import PREV_INUSE
from .model import ArenaInfo, GlibcHeap
from .scan import END, Anomaly, SegmentScan
from .segments import HeapSegment
from .tunables import malloc_params
from .walk import Unparsed

__all__ = ["CheckReport", "check_heap", "CHECK_IDS"]

#: every check id this package reports, with the glibc abort message it maps to (None: no direct abort)
CHECK_IDS: Dict[str, Optional[str]] = {
    "arena.ring": None,
    "arena.top": None,
    "arena.system_mem": None,
    "heap_info.cycle": None,
    "heap_info.ar_ptr": None,
    "heap_info.size": None,
    "heap_info.prev": None,
    "heap_info.unreadable": None,
    "heap.unreadable": None,
    "list.fd_bk": "corrupted double-linked list",
    "list.nextsize": "corrupted double-linked list (not small)",
    "list.cycle": None,
    "list.duplicate": "free(): double free detected in tcache 2",
    "list.outside_heap": None,
    "list.wrong_arena": "invalid fastbin entry (free)",
    "list.too_long": "free(): too many chunks detected in tcache",
    "list.not_chunk": None,
    "bin.size": "malloc(): invalid size (unsorted)",
    "bin.unaligned": "corrupted double-linked list",
    "fastbin.size": "malloc(): memory corruption (fast)",
    "fastbin.unaligned": "malloc(): unaligned fastbin chunk detected",
    "tcache.size": None,
    "tcache.unaligned": "malloc(): unaligned tcache chunk detected",
    "tcache.count": "free(): too many chunks detected in tcache",
    "tcache.key": None,
    "tcache.stale_key": None,
    "chunk.size.minsize": "free(): invalid size",
    "chunk.size.alignment": "free(): invalid size",
    "chunk.flags.mmapped": "munmap_chunk(): invalid pointer",
    "chunk.flags.arena": None,
    "chunk.size.bounds": "double free or corruption (out)",
    "chunk.next_size": "free(): invalid next size (normal)",
    "chunk.size.mismatch": "corrupted size vs. prev_size",
    "chunk.prev_inuse.free_in_bin": "malloc(): invalid next->prev_inuse (unsorted)",
    "chunk.prev_inuse.cached": "double free or corruption (!prev)",
    "chunk.prev_inuse.unlisted": "double free or corruption (!prev)",
    "chunk.prev_size": "corrupted size vs. prev_size",
    "top.size": "malloc(): corrupted top size",
    "top.bounds": "malloc(): corrupted top size",
    "top.prev_inuse": "sysmalloc: Assertion `(old_top == initial_top (av) && old_size == 0) || "
                      "((unsigned long) (old_size) >= MINSIZE && prev_inuse (old_top) && "
                      "((unsigned long) old_end & (pagesize - 1)) == 0)' failed.",
}

# codes recorded by the tight loop
_PREV_SIZE = 3
_STALE_KEY = 4
_ARENA_BIT = 5

@dataclass
class CheckReport:
    """The outcome of :func:`check_heap`."""

    violations: List[Violation]
    index: FreeIndex
    unparsed: List[Unparsed] = field(default_factory=list)
    chunks: int = 0
    notes: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(v.severity == "error" for v in self.violations)

    def by_check(self) -> Dict[str, List[Violation]]:
        out: Dict[str, List[Violation]] = {}
        for v in self.violations:
            out.setdefault(v.check, []).append(v)
        return out

    def to_dict(self) -> Dict[str, Any]:
        return {
            "ok": self.ok,
            "chunks": self.chunks,
            "violations": [v.to_dict() for v in self.violations],
            "unparsed": [{"start": u.start, "end": u.end, "arena": u.arena, "reason": u.reason}
                         for u in self.unparsed],
            "notes": list(self.notes),
        }


def _check_loop64(words: Any, i: int, stop: int, mask: int, expect: int, minsize: int, marks: Any,
                  abit: int, pclear: Any, seen: Any, out: Any, prev_w: int) -> Tuple[int, int, int]:
    """Walk 8-byte-word headers of a main_arena segment from ``i``, recording only
    what needs a second look.

    ``pclear`` gets the word index of the chunk before each chunk whose
    PREV_INUSE is clear (``-1 - i`` when unknown), ``seen`` the indexes in
    ``marks`` met (cached nodes and chunks holding a tcache key), ``out``
    anomalies as ``(code, i, prev_w)``.  Returns ``(i, prev_w, chunks)``.
    (``abit`` is unused: main_arena's NON_MAIN_ARENA bit is in ``mask``.)
    """
    n = 0
    while i < stop:
        w = words[i + 1]
        j = i + (w >> 3)
        if w & mask != expect or w < minsize or j > stop:
            return i, prev_w, n
        n += 1
        if not w & 1:
            if prev_w:
                pclear(i - (prev_w >> 3))
                if words[i] != prev_w & -8:
                    out((_PREV_SIZE, i, prev_w))
            else:
                pclear(-1 - i)
        if i in marks:
            seen(i)
        prev_w = w
        i = j
    return i, prev_w, n


def _check_loop64_abit(words: Any, i: int, stop: int, mask: int, expect: int, minsize: int, marks: Any,
                       abit: int, pclear: Any, seen: Any, out: Any, prev_w: int) -> Tuple[int, int, int]:
    """:func:`_check_loop64` for non-main arenas: also records chunks without NON_MAIN_ARENA."""
    n = 0
    while i < stop:
        w = words[i + 1]
        j = i + (w >> 3)
        if w & mask != expect or w < minsize or j > stop:
            return i, prev_w, n
        n += 1
        if not w & 1:
            if prev_w:
                pclear(i - (prev_w >> 3))
                if words[i] != prev_w & -8:
                    out((_PREV_SIZE, i, prev_w))
            else:
                pclear(-1 - i)
        if i in marks:
            seen(i)
        if not w & abit:
            out((_ARENA_BIT, i, prev_w))
        prev_w = w
        i = j
    return i, prev_w, n


def _check_loop(words: Any, i: int, stop: int, mask: int, expect: int, minsize: int, marks: Any,
                abit: int, pclear: Any, seen: Any, out: Any, prev_w: int) -> Tuple[int, int, int]:
    """:func:`_check_loop64_abit` for 4-byte words (``abit`` 0 in main_arena)."""
    n = 0
    while i < stop:
        w = words[i + 1]
        sz = w & -8
        j = i + (sz >> 2)
        if w & mask != expect or sz < minsize or j > stop:
            return i, prev_w, n
        n += 1
        if not w & 1:
            if prev_w:
                pclear(i - ((prev_w & -8) >> 2))
                if words[i] != prev_w & -8:
                    out((_PREV_SIZE, i, prev_w))
            else:
                pclear(-1 - i)
        if i in marks:
            seen(i)
        if w & abit != abit:
            out((_ARENA_BIT, i, prev_w))
        prev_w = w
        i = j
    return i, prev_w, n


def _key_positions(scan: SegmentScan, keys: Set[int]) -> Set[int]:
    """Word indexes of the chunks whose ``key`` slot (``mem + SIZE_SZ``) holds one of ``keys``.

    Found with a C-level search of the segment buffer, so the tight loop tests
    one set per chunk instead of reading the slot.
    """
    out: Set[int] = set()
    ps = scan.ps
    order = "big" if scan.layout.byteorder == "big" else "little"
    buf = scan.buf if isinstance(scan.buf, (bytes, bytearray, memoryview)) else memoryview(scan.buf)
    for key in keys:
        if not key:
            continue
        pattern = re.compile(re.escape(key.to_bytes(ps, order)))  # type: ignore[arg-type]
        for m in pattern.finditer(buf):
            off = m.start() - 3 * ps
            if off >= 0 and off % ps == 0:
                out.add(off // ps)
    return out


class _Checker:
    def __init__(self, heap: GlibcHeap, index: FreeIndex) -> None:
        self.heap = heap
        self.lay = heap.layout
        self.ps = heap.layout.pointer_size
        self.index = index
        self.found = Findings()
        self.unparsed: List[Unparsed] = []
        self.notes: List[str] = []
        self.chunks = 0
        self.key: Optional[int] = None
        #: headers the walk could not take (their neighbours' tag checks are moot)
        self.corrupt: Set[int] = set()

    # -- helpers -----------------------------------------------------------------
    def raw(self, address: int, size: Optional[int] = None) -> bytes:
        return self.heap.memory.bytes_at(address, size or self.ps) or b""

    def add(self, check: str, chunk: Optional[int], fieldname: str, faddr: Optional[int], text: str,
            arena: Optional[int], abort: Optional[str] = "", severity: str = "error",
            size: Optional[int] = None) -> None:
        if abort == "":
            abort = CHECK_IDS.get(check)
        raw = self.raw(faddr, size) if faddr is not None else b""
        self.found.add(Violation(check, abort, chunk, fieldname, faddr, raw, text, arena, severity))

    # -- tcache keys ------------------------------------------------------------------
    def tcache_keys(self) -> Set[int]:
        """Check every tcache entry's key; return the values that mark a chunk as tcache-free."""
        lay = self.lay
        entries = self.index.tcache_keys
        if not lay.has_tcache_key:
            return set()
        if not lay.random_tcache_key:
            # 2.29-2.33: key is the owning tcache_perthread_struct
            for chunk, found, tcache in entries:
                if found != tcache:
                    self.add("tcache.key", chunk, "key", chunk + 3 * self.ps,
                             f"tcache entry key is {found:#x}, not its tcache {tcache:#x} "
                             "(user data written after free?)", self.arena_of(chunk))
            return {t.address for t in self.heap.tcaches}
        key: Optional[int] = self.heap.tcache_key
        how = self.heap.tcache_key_how
        if key is None and entries:
            votes = Counter(k for _c, k, _t in entries)
            key, count = votes.most_common(1)[0]
            how = f"the value {count} of {len(entries)} entries share"
            if len(entries) > 1 and count * 2 <= len(entries):
                self.notes.append(f"tcache_key unknown and the {len(entries)} tcache entries disagree on it: "
                                  "keys not checked")
                return set()
        self.key = key
        if key is None:
            return set()
        for chunk, k, _t in entries:
            if k != key:
                self.add("tcache.key", chunk, "key", chunk + 3 * self.ps,
                         f"tcache entry key is {k:#x}, not tcache_key {key:#x} ({how}): "
                         "overwritten after free (use-after-free write?)", self.arena_of(chunk))
        return {key} if key else set()

    def arena_of(self, chunk: int) -> Optional[int]:
        seg = self.heap.memory.segment_of(chunk)
        return None if seg is None else seg.arena

    # -- walk ----------------------------------------------------------------------
    def run(self) -> None:
        heap = self.heap
        self.found.extend(heap.violations)
        self.found.extend(self.index.findings)
        keys = self.tcache_keys()
        lists = self.index.lists
        isreg = [fl.regular for fl in lists]
        #: chunks before a PREV_INUSE-clear chunk (free by boundary tags), per segment
        self.tag_free: List[Any] = []
        #: list ids of the regular bins; chunks in tcache/fastbins
        self.regular_ids = {fl.id for fl in lists if fl.regular}
        self.cached = sorted(a for a, lid in self.index.owner.items() if not isreg[lid])
        self.cached_seen: Set[int] = set()
        for arena in heap.arenas:
            if not arena.initialized:
                continue
            for seg in arena.segments:
                self.segment(arena, seg, keys)
            self.arena_totals(arena)
        self.reconcile()

    def segment(self, arena: ArenaInfo, seg: HeapSegment, keys: Set[int]) -> None:
        heap = self.heap
        entry = heap.memory.buffer(seg)
        if entry is None:
            self.add("heap.unreadable", seg.start, "", None,
                     f"heap segment [{seg.start:#x}, {seg.end:#x}) of arena {arena.address:#x} is unreadable",
                     arena.address)
            return
        scan = SegmentScan(self.lay, seg, entry, arena.is_main, self.index.owner, heap.limits.max_resync_bytes)
        base, sh = scan.base, scan.sh
        lo = bisect.bisect_left(self.cached, seg.start)
        hi = bisect.bisect_left(self.cached, seg.end)
        cset = {(a - base) >> sh for a in self.cached[lo:hi]}
        kset = _key_positions(scan, keys) - cset if keys else set()
        marks = cset | kset
        if sh != 3:
            loop = _check_loop
        else:
            loop = _check_loop64 if arena.is_main else _check_loop64_abit
        out: List[Tuple[int, int, int]] = []
        pclear = array("q")  # word positions (an array: a third of a big heap's chunks land here)
        seen: List[int] = []
        i = scan.start
        if not seg.exact_start:
            i = scan.resync(i, inclusive=True)
        prev_w = 0
        while True:
            i, prev_w, n = loop(scan.words, i, scan.stop, scan.mask, scan.expect, scan.minsize, marks,
                                scan.abit, pclear.append, seen.append, out.append, prev_w)
            self.chunks += n
            if i >= scan.stop:
                break
            an = scan.classify(i)
            if an.kind == END:
                fw = scan.size_word(i)
                if fw is not None and not fw & PREV_INUSE and prev_w:
                    # the chunk before the fenceposts is free (an old top freed into a bin)
                    pclear.append(i - ((prev_w & -8) >> sh))
                    if scan.words[i] != prev_w & -8:
                        out.append((_PREV_SIZE, i, prev_w))
                break
            self.corrupt_header(arena, scan, i, an, prev_w)
            self.chunks += 1
            i = an.resume
            prev_w = 0
        if seg.top is not None and i == scan.stop:
            tw = scan.words[i + 1]
            if not tw & PREV_INUSE:
                pclear.append(i - ((prev_w & -8) >> sh) if prev_w else -1 - i)
        # arrays filled from a generator, not lists: on a million-chunk heap a third of the chunks
        # are free, and each list of Python ints would cost ~12 MB at the peak
        self.tag_free.append(array("Q", (base + (pos << sh) for pos in pclear if pos >= 0)))
        for pos in [p for p in pclear if p < 0]:
            addr = base + ((-1 - pos) << sh)
            if addr == seg.start:
                self.add("chunk.prev_inuse.unlisted", addr, "size", addr + self.ps,
                         "PREV_INUSE is clear on the first chunk of a heap", arena.address)
            else:  # a consequence of the corrupt stretch before it, already reported
                self.add("chunk.prev_inuse.unlisted", addr, "size", addr + self.ps,
                         "PREV_INUSE is clear right after a corrupt stretch: the chunk before is unknown",
                         arena.address, severity="warning")
        self.cached_seen.update(base + (k << sh) for k in seen if k in cset)
        out.extend((_STALE_KEY, k, 0) for k in seen if k in kset)
        for code, pos, pw in out:
            self.loop_violation(arena, scan, code, pos, pw)
        if seg.top is not None:
            self.top(arena, scan, i, prev_w)

    def loop_violation(self, arena: ArenaInfo, scan: SegmentScan, code: int, pos: int, prev_w: int) -> None:
        ps = self.ps
        addr = scan.addr(pos)
        prev = addr - (prev_w & -8) if prev_w else None
        a = arena.address
        if code == _ARENA_BIT:
            # bin chunks of non-main arenas lose NON_MAIN_ARENA; cached and in-use ones keep it,
            # except the short old top sysmalloc leaves before a heap's final fencepost
            if self.next_prev_inuse_clear(scan, pos) or self.before_end_fencepost(scan, pos):
                return
            self.add("chunk.flags.arena", addr, "size", addr + ps,
                     f"NON_MAIN_ARENA is clear on an in-use chunk of {arena.label}: free() would hand it to "
                     "main_arena", a, "free(): invalid pointer")
        elif code == _STALE_KEY:
            self.add("tcache.stale_key", addr, "key", addr + 3 * ps,
                     "in-use chunk still carries the tcache key: it was in a tcache and left it without "
                     "tcache_get (lost from a corrupted tcache list?)", a, severity="warning")
        elif code == _PREV_SIZE:
            got = scan.words[pos]
            prev_label = self.index.label_of(prev) if prev is not None else None
            abort = ("malloc(): mismatching next->prev_size (unsorted)" if prev_label == UNSORTED
                     else "corrupted size vs. prev_size")
            self.add("chunk.prev_size", addr, "prev_size", addr,
                     f"PREV_INUSE is clear, so prev_size must be the size of the free chunk before it "
                     f"({prev:#x}, {prev_label or 'in no list'}, size {prev_w & -8:#x}), but it is {got:#x}", a,
                     abort)

    def reconcile(self) -> None:
        """Compare boundary tags with list membership, and list nodes with chunk starts.

        Sets are only built on the rare path: the common case is one membership
        test per boundary-tag-free chunk and a count comparison.
        """
        ps = self.ps
        owner = self.index.owner
        owner_get = owner.get
        lists = self.index.lists
        regular_ids = self.regular_ids
        mem = self.heap.memory
        unlisted: List[int] = []
        matched = 0
        for addrs in self.tag_free:
            bad = [a for a in addrs if owner_get(a) not in regular_ids]
            matched += len(addrs) - len(bad)
            unlisted.extend(bad)
        for chunk in sorted(unlisted):
            size = (mem.word(chunk + ps) or 0) & ~7
            nxt = chunk + size
            if nxt in self.corrupt:
                continue
            lid = owner_get(chunk)
            seg = mem.segment_of(chunk)
            a = seg.arena if seg is not None else None
            if lid is not None:
                self.add("chunk.prev_inuse.cached", nxt, "size", nxt + ps,
                         f"PREV_INUSE is clear but the previous chunk {chunk:#x} is in {lists[lid].label}, whose "
                         "chunks stay marked in use (freed twice?)", a)
            else:
                self.add("chunk.prev_inuse.unlisted", nxt, "size", nxt + ps,
                         f"PREV_INUSE is clear but the previous chunk {chunk:#x} is in no free list "
                         "(bit cleared by an overflow, or a node lost from its bin)", a)
        # every regular-bin node is boundary-tag free iff the counts agree (chunks are unique)
        n_listed = sum(1 for lid in owner.values() if lid in regular_ids)
        missing_cached = set(self.cached) - self.cached_seen
        if matched == n_listed and not missing_cached:
            return
        tags = set()
        for addrs in self.tag_free:
            tags.update(addrs)
        missing = {a for a, lid in owner.items() if lid in regular_ids and a not in tags} | missing_cached
        if not missing:
            return
        boundaries = self.boundaries()
        for chunk in sorted(missing):
            fl = lists[owner[chunk]]
            if chunk not in boundaries:
                # name the link that leads there: its bytes are the bad pointer
                via, via_field, via_addr = self.index.via_of(chunk) or (chunk, "", None)
                self.add("list.not_chunk", via, via_field, via_addr,
                         f"{fl.label} holds {chunk:#x} ({via_field or 'link'} of {via:#x}), which is not the "
                         "start of a chunk in the heap walk (fake or overlapping chunk?)", fl.arena)
            elif fl.regular:
                size = (mem.word(chunk + ps) or 0) & ~7
                nxt = chunk + size
                if nxt in self.corrupt:
                    continue
                abort = "malloc(): invalid next->prev_inuse (unsorted)" if fl.kind == UNSORTED else None
                self.add("chunk.prev_inuse.free_in_bin", nxt, "size", nxt + ps,
                         f"PREV_INUSE is set but the previous chunk {chunk:#x} is free in {fl.label}", fl.arena,
                         abort)

    @staticmethod
    def before_end_fencepost(scan: SegmentScan, pos: int) -> bool:
        w = scan.words[pos + 1]
        nxt = scan.size_word(pos + ((w & -8) >> scan.sh))
        return scan.top is None and nxt is not None and nxt & ~1 == 0

    @staticmethod
    def next_prev_inuse_clear(scan: SegmentScan, pos: int) -> bool:
        w = scan.words[pos + 1]
        j = pos + ((w & -8) >> scan.sh)
        nxt = scan.size_word(j)
        return nxt is not None and not nxt & PREV_INUSE

    def corrupt_header(self, arena: ArenaInfo, scan: SegmentScan, i: int, an: Anomaly, prev_w: int) -> None:
        """A header the walk could not take.

        When the walk resumes less than MINSIZE after it, ``i`` cannot have been a
        chunk: the previous chunk's size is what is wrong (``chunk.size.mismatch``).
        Otherwise the header itself is reported as free() of it would see it, and,
        when the chunk before it is in use, what free() of that one would say
        (``chunk.next_size``: the usual overflow crash).
        """
        ps = self.ps
        addr = scan.addr(i)
        end = scan.addr(an.resume)
        a = arena.address
        self.unparsed.append(Unparsed(addr, end, a, an.reason))
        self.corrupt.add(addr)
        w = scan.words[i + 1]
        sz = w & -8
        prev = addr - (prev_w & -8) if prev_w else None
        psz = prev_w & -8
        if prev is not None and an.resume - i < (self.lay.minsize >> scan.sh) and an.resume < scan.stop:
            self.add("chunk.size.mismatch", prev, "size", prev + ps,
                     f"size {psz:#x} ends at {addr:#x}, {end - addr:#x} bytes before the next valid header at "
                     f"{end:#x} (size field altered, e.g. by an off-by-one NUL?)", a)
            return
        check = {"minsize": "chunk.size.minsize", "alignment": "chunk.size.alignment",
                 "flags.mmapped": "chunk.flags.mmapped", "flags.arena": "chunk.flags.arena",
                 "bounds": "chunk.size.bounds", "fencepost": "chunk.size.minsize"}.get(an.code, "chunk.size.bounds")
        abort = CHECK_IDS[check]
        if check == "chunk.size.bounds" and not arena.is_main:
            abort = "free(): invalid next size (normal)"  # no "(out)" check outside the contiguous main heap
        overflow = ""
        if prev is not None and self.index.label_of(prev) is None:
            overflow = f"; the in-use chunk before it at {prev:#x} may have overflowed into it"
        self.add(check, addr, "size", addr + ps,
                 f"{an.reason}; walk resumed at {end:#x} ({end - addr:#x} bytes unparsed){overflow}", a, abort)
        # _int_free (2.36) of the previous chunk checks this header as its "next size"
        if overflow and (sz <= 2 * ps or sz >= arena.system_mem):
            kind = "fast" if self.lay.has_fastbins and psz <= self.heap.global_max_fast else "normal"
            caveat = (" once its tcache bin is full (until then free() caches it unchecked)"
                      if psz <= self.lay.tcache_max_chunk_for(
                          malloc_params(self.lay, self.heap.mp_values, self.heap.tunables)) else "")
            self.add("chunk.next_size", prev, "size", addr + ps,
                     f"the next chunk's size {sz:#x} at {addr:#x} is invalid: free() of this chunk "
                     f"aborts{caveat}", a, f"free(): invalid next size ({kind})")

    def top(self, arena: ArenaInfo, scan: SegmentScan, i: int, prev_w: int) -> None:
        lay = self.lay
        ps = self.ps
        a = arena.address
        top = arena.top
        if i != scan.stop:  # pragma: no cover - the walk always ends at stop
            return
        self.chunks += 1  # the top chunk
        tw = scan.words[scan.stop + 1]
        tsz = tw & -8
        if tsz > arena.system_mem:
            self.add("top.size", top, "size", top + ps,
                     f"top size {tsz:#x} exceeds system_mem {arena.system_mem:#x}", a)
        if tsz < lay.minsize or tsz & lay.align_mask or tw & 2:
            self.add("top.bounds", top, "size", top + ps, f"top size word {tw:#x} is malformed", a)
        seg_end = scan.segment.end
        if not arena.is_main and scan.segment.heap_info is not None:
            heap_end = scan.segment.heap_info + (self.heap.memory.word(scan.segment.heap_info + 2 * ps) or 0)
            if top + tsz != heap_end:
                self.add("top.bounds", top, "size", top + ps,
                         f"top ends at {top + tsz:#x}, its heap at {heap_end:#x}", a)
        elif arena.is_main and self.heap.sbrk_base and top + tsz > self.heap.sbrk_base + arena.system_mem + lay.malloc_alignment:
            self.add("top.bounds", top, "size", top + ps,
                     f"top ends at {top + tsz:#x}, beyond sbrk_base + system_mem "
                     f"{self.heap.sbrk_base + arena.system_mem:#x}", a)
        elif top + tsz > seg_end:
            self.add("top.bounds", top, "size", top + ps, f"top runs past its heap end {seg_end:#x}", a)
        if not tw & PREV_INUSE:
            self.add("top.prev_inuse", top, "size", top + ps,
                     "PREV_INUSE is clear on top: a free chunk before top should have merged into it", a)

    def arena_totals(self, arena: ArenaInfo) -> None:
        if arena.is_main or not arena.heap_infos:
            return
        total = 0
        for h in arena.heap_infos:
            total += self.heap.memory.word(h + self.lay.heap_info["size"]) or 0
        if total != arena.system_mem:
            self.add("arena.system_mem", arena.address, "system_mem",
                     arena.address + self.lay.malloc_state["system_mem"],
                     f"system_mem {arena.system_mem:#x} differs from the sum of its heap sizes {total:#x}",
                     arena.address, severity="warning")

    def boundaries(self) -> Set[int]:
        out: Set[int] = set()
        for arena in self.heap.arenas:
            for seg in arena.segments:
                entry = self.heap.memory.buffer(seg)
                if entry is None:
                    continue
                scan = SegmentScan(self.lay, seg, entry, arena.is_main, self.index.owner,
                                   self.heap.limits.max_resync_bytes)
                i = scan.start if seg.exact_start else scan.resync(scan.start, inclusive=True)
                while i < scan.stop:
                    j = scan.next_of(i)
                    if j < 0:
                        an = scan.classify(i)
                        if an.kind == END:
                            break
                        j = an.resume
                    else:
                        out.add(scan.addr(i))
                    i = j
        return out


def check_heap(heap: GlibcHeap, index: Optional[FreeIndex] = None) -> CheckReport:
    """Check every invariant of ``heap`` in one pass; every violation is reported once.

    :param heap: a located heap.
    :param index: a free index built with ``thorough=True`` (else built here).
    """
    if index is None:
        index = build_free_index(heap, thorough=True)
    checker = _Checker(heap, index)
    checker.run()
    return CheckReport(list(checker.found), index, checker.unparsed, checker.chunks, checker.notes)
