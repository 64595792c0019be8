# gdbext/glibc/tcaches.py - the per-thread tcaches (from TLS values or the
# first chunk of each arena), the tcache key, and what tcache contents tell
# about the glibc release (counts width, key kind, safe-linking).
"""Tcache location and tcache-based release evidence (a mixin of the locator).

A thread's ``tcache_perthread_struct`` is found from the TLS ``tcache``
pointers a gdb adapter evaluates (:attr:`Overrides.tcaches`) and, unless
disabled, from the heuristic that the first chunk of an arena's first heap is
the tcache of the thread that created the arena (0x290 bytes on 2.30+ x86-64,
0x250 before).  A candidate is kept when its counts fit and most bin heads are
aligned heap pointers, so one smashed head does not hide the tcache.
"""
from __future__ import annotations

from collections import Counter
from typing import List, Optional, Sequence, Tuple, Union

from ..errors import MemoryReadError
from ..memory import MemorySource
from .heuristics import VersionEvidence, infer_version
from .layouts import GlibcVersion, Layout, shape_representatives
from .model import ArenaInfo, Overrides, TcacheInfo, struct_field
from .segments import ByteOrder, HeapMemory

__all__ = ["TcacheLocator", "MAX_TCACHE_SCAN"]

#: bytes of each heap segment searched for 2.43 tcaches (not the first chunk there)
MAX_TCACHE_SCAN = 4 << 20


class TcacheLocator:
    """Tcache methods of the locator; expects the attributes declared here."""

    src: MemorySource
    ov: Overrides
    ps: int
    order: ByteOrder
    notes: List[str]
    mp_newer: "Optional[bool | Layout]"
    tcache_fill: int
    hi_size: Optional[int]

    def layout(self, version: Union[GlibcVersion, Tuple[int, int]]) -> Layout:  # pragma: no cover - abstract
        raise NotImplementedError

    def read_tcache(self, layout: Layout, addr: int, how: str, arena: Optional[int]) -> Optional[TcacheInfo]:
        tp = layout.tcache_perthread
        try:
            data = self.src.read(addr, tp.size)
        except MemoryReadError:
            return None
        # raw counts[] (chunks held) or num_slots[] (free slots left, 2.42+); see Layout.tcache_held
        counts = tuple(struct_field(data, tp, layout.tcache_counts_field, self.order, i)
                       for i in range(layout.tcache_bins))
        entries = tuple(struct_field(data, tp, "entries", self.order, i) for i in range(layout.tcache_bins))
        return TcacheInfo(addr, how, counts, entries, arena)

    def _plausible_tcache(self, layout: Layout, t: TcacheInfo, memory: HeapMemory) -> bool:
        """Counts in range and most bin heads aligned heap pointers (a corrupted
        head or two must not hide the tcache: the free-list walk reports them)."""
        limit = 0xFF if layout.tcache_count_size == 1 else 0xFFFF
        good = bad = 0
        for count, entry in zip(t.counts, t.entries):
            if count > limit:
                return False
            if entry == 0:
                continue
            if layout.aligned_ok(entry - layout.chunk_hdr) and memory.segment_of(entry) is not None:
                good += 1
            else:
                bad += 1
        return bad <= max(2, good // 4)

    def find_tcaches(self, layout: Layout, arenas: Sequence[ArenaInfo], memory: HeapMemory) -> List[TcacheInfo]:
        out: List[TcacheInfo] = []
        seen = set()
        for addr in self.ov.tcaches or ():
            if not addr or addr in seen:
                continue
            seg = memory.segment_of(addr)
            t = self.read_tcache(layout, addr, "override", seg.arena if seg else None)
            if t is None:
                self.notes.append(f"tcache at {addr:#x} is unreadable")
                continue
            if seg is None and layout.facts.tcache_dummy and not any(t.counts) and not any(t.entries):
                continue  # 2.43: a thread without a tcache points at libc's zeroed static dummy
            seen.add(addr)
            out.append(t)
        if not self.ov.tcache_heuristic:
            return out
        if not layout.facts.tcache_first_chunk:
            return out + self._scan_tcaches(layout, arenas, memory, seen)
        want = layout.tcache_chunk_size
        shapes = {}  # tcache chunk size -> a layout with that tcache_perthread_struct
        for version in shape_representatives("tcache_perthread", self.ps):
            shapes.setdefault(self.layout(version).tcache_chunk_size, self.layout(version))
        alt = set(shapes)
        for arena in arenas:
            if not arena.segments:
                continue
            first = arena.segments[0]
            if not first.exact_start:
                continue
            raw = memory.word(first.start + self.ps)
            if raw is None:
                continue
            size = raw & ~7
            if size != want and not (self.ov.version is None and size in alt):
                continue
            addr = first.start + layout.chunk_hdr
            if addr in seen:
                continue
            lay = layout if size == want else shapes[size]
            t = self.read_tcache(lay, addr, "first-chunk", arena.address)
            if t is None or not self._plausible_tcache(lay, t, memory):
                continue
            seen.add(addr)
            out.append(t)
        return out

    def _scan_tcaches(self, layout: Layout, arenas: Sequence[ArenaInfo], memory: HeapMemory,
                      seen: "set[int]") -> List[TcacheInfo]:
        """2.43: a thread makes its tcache at its first free(), so it is not the
        heap's first chunk: look at every aligned header position of the first
        :data:`MAX_TCACHE_SCAN` bytes of each heap segment (no chunk walk: the
        segment's first chunk is not always known) for a size word of the
        tcache's chunk whose struct's slot counts agree with its bin heads
        (``num_slots[i] == tcache_count`` exactly when ``entries[i]`` is NULL,
        a corrupted bin or two allowed)."""
        out: List[TcacheInfo] = []
        want = layout.tcache_chunk_size
        fill = self.tcache_fill or layout.default_tcache_count
        ps = self.ps
        step = layout.malloc_alignment
        for arena in arenas:
            for seg in arena.segments:
                base = layout.first_chunk(seg.start)
                size = min(seg.end - base, MAX_TCACHE_SCAN)
                if size < 2 * ps:
                    continue
                try:
                    data = bytes(self.src.read_buffer(base, size))
                except MemoryReadError:
                    continue
                for off in range(ps, size - ps + 1, step):  # the size word of a chunk at base + off - ps
                    if int.from_bytes(data[off : off + ps], self.order) & ~7 != want:
                        continue
                    addr = base + off - ps + layout.chunk_hdr
                    if addr in seen:
                        continue
                    t = self.read_tcache(layout, addr, "scan", arena.address)
                    if t is not None and self._slots_agree(layout, t, fill) \
                            and self._plausible_tcache(layout, t, memory):
                        seen.add(addr)
                        out.append(t)
        return out

    @staticmethod
    def _slots_agree(layout: Layout, t: TcacheInfo, fill: int) -> bool:
        bad = 0
        for raw, entry in zip(t.counts, t.entries):
            held = layout.tcache_held(raw, fill)
            if held < 0 or (held == 0) != (entry == 0):
                bad += 1
        # a zeroed chunk of that size fails every bin (num_slots 0: full, but no head)
        return bad <= 2

    def version_evidence(self, layout: Layout, tcaches: Sequence[TcacheInfo],
                         memory: HeapMemory) -> VersionEvidence:
        """Every structural fact about the release: mp_ and heap_info (found before),
        the tcache chunk size, the kind of tcache key and safe-linking."""
        size = None
        key_kind = None
        ps = self.ps
        keys: Counter[int] = Counter()
        heads: List[int] = []
        for t in tcaches:
            raw = memory.word(t.address - ps)
            if raw is not None:
                size = raw & ~7
            for entry in t.entries:
                if not entry:
                    continue
                heads.append(entry)
                key = memory.word(entry + ps)
                if key is not None:
                    if key == t.address:
                        key_kind = "tcache"
                    elif key:
                        keys[key] += 1
        if key_kind is None and heads:
            key_kind = "none"
            if keys:
                key, count = keys.most_common(1)[0]
                unmapped = memory.segment_of(key) is None and self.src.region_of(key) is None
                if unmapped and (count >= 2 or len(heads) == 1):
                    key_kind = "random"
        sl = self._probe_safe_linking(layout, memory, heads)
        return infer_version(self.mp_newer, size, ps, key_kind, sl, self.hi_size)

    def _probe_safe_linking(self, layout: Layout, memory: HeapMemory, heads: Sequence[int]) -> Optional[bool]:
        """Whether tcache links are PROTECT_PTR-mangled: follow each bin a few
        steps under both readings and keep the one whose links stay aligned
        heap addresses (or NULL)."""
        mask = layout.align_mask

        def good(ptr: int) -> bool:
            return ptr == 0 or (ptr & mask == 0 and memory.segment_of(ptr) is not None)

        score = {False: 0, True: 0}
        for mangled in (False, True):
            for head in heads:
                e = head
                for _ in range(8):
                    raw = memory.word(e)
                    if raw is None:
                        break
                    nxt = raw ^ (e >> 12) if mangled else raw
                    if not good(nxt):
                        score[mangled] -= 1
                        break
                    score[mangled] += 1
                    if nxt == 0:
                        break
                    e = nxt
        if score[True] == score[False]:
            return None
        return score[True] > score[False]

    def tcache_key(self, layout: Layout) -> Tuple[Optional[int], str]:
        if self.ov.tcache_key is not None:
            return self.ov.tcache_key, "override"
        if not layout.random_tcache_key:
            return None, "tcache-address"
        addr = self.src.symbol("tcache_key")
        if addr is not None:
            try:
                return self.src.read_uint(addr, self.ps), "symbol"
            except MemoryReadError:
                pass
        return None, "unknown"
