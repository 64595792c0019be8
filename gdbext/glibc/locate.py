# gdbext/glibc/locate.py - find glibc malloc's state in an image: main_arena,
# mp_, the arena ring, each arena's heaps, the per-thread tcaches and the
# mmapped chunks; every location can be overridden.
"""Locate glibc malloc's structures through a :class:`~gdbext.memory.MemorySource`.

:func:`locate_heap` returns a :class:`GlibcHeap`: the version and layout used,
``main_arena`` and ``mp_`` (with how each was found), every arena reachable
through ``next`` (bounded, cycle-safe) with its heap segments, the tcaches,
the mmapped chunks and the violations met on the way (a broken arena ring, a
``heap_info`` chain that loops, a top chunk outside its heap...).

Evidence order for each location: :class:`Overrides` (filled by gdb
parameters or the CLI), then symbols (static binaries keep ``main_arena`` and
``mp_`` as local symbols; a gdb adapter may resolve them through debug info),
then the scans of :mod:`~gdbext.glibc.heuristics`.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Set, Tuple, Union

from ..errors import MemoryReadError
from ..memory import MemorySource
from .findings import Findings, Violation
from .heuristics import VersionEvidence, find_arenas, find_mp, infer_version, mp_layout_score, validate_arena
from .layouts import (
    MAX_VERSION,
    MIN_VERSION,
    GlibcVersion,
    Layout,
    cross_check,
    layout_for,
    releases_where,
    shape_representatives,
    table_releases,
)
from .mmapped import PAGE, MmappedLocator
from .model import (
    ArenaInfo,
    GlibcHeap,
    HeapNotFoundError,
    Limits,
    MmappedChunk,
    Overrides,
    TcacheInfo,
    struct_field,
    struct_words,
)
from .segments import HeapMemory, HeapSegment, byteorder_of, readable_extent
from .tcaches import TcacheLocator
from .tunables import malloc_params, read_tunables
from .version import VersionInfo, detect_version

__all__ = [
    "Overrides",
    "Limits",
    "ArenaInfo",
    "TcacheInfo",
    "MmappedChunk",
    "GlibcHeap",
    "locate_heap",
    "HeapNotFoundError",
]


class _Locator(TcacheLocator, MmappedLocator):
    def __init__(self, source: MemorySource, overrides: Overrides, limits: Limits) -> None:
        self.src = source
        self.ov = overrides
        self.limits = limits
        self.findings = Findings()
        self.notes: List[str] = []
        self.ps = source.pointer_size
        self.order = byteorder_of(source)
        #: structural facts for version inference (see heuristics.infer_version)
        self.mp_newer: "Optional[bool | Layout]" = None
        self.version_known = False
        self.state_shapes: List[Layout] = []  #: malloc_state layouts to try while the release is unknown
        self.tcache_fill = 0  #: mp_.tcache_count once read (0: the release's default)
        self.hi_size: Optional[int] = None

    # -- violations ------------------------------------------------------------
    def violation(self, check: str, abort: Optional[str], chunk: Optional[int], fieldname: str,
                  faddr: Optional[int], size: int, text: str, arena: Optional[int] = None,
                  severity: str = "error") -> None:
        raw = b""
        if faddr is not None and size:
            try:
                raw = self.src.read(faddr, size)
            except MemoryReadError:
                raw = b""
        self.findings.add(Violation(check, abort, chunk, fieldname, faddr, raw, text, arena, severity))

    # -- version and globals -----------------------------------------------------
    def layout(self, version: Union[GlibcVersion, Tuple[int, int]]) -> Layout:
        return layout_for(version, self.ps, self.order, self.ov.malloc_alignment)

    def run(self) -> GlibcHeap:
        ov = self.ov
        vinfo = detect_version(self.src, ov.version)
        evidence: Optional[VersionEvidence] = None
        probe = self.layout(vinfo.version or MAX_VERSION)
        if vinfo.version is not None and not (MIN_VERSION <= vinfo.version <= MAX_VERSION):
            self.notes.append(f"glibc {vinfo.version} is outside the supported {MIN_VERSION}-{MAX_VERSION}; "
                              "using the nearest layout")
        # mp_ first: with the release unknown, its layout tells which malloc_state shapes can be
        # (a 2.42 arena with empty fastbins also reads as a 2.43 one 0x58 bytes further on)
        mp, mp_how, mp_layout = self.find_mp(vinfo, probe)
        self.version_known = vinfo.version is not None
        self.state_shapes = [] if self.version_known else self.arena_shapes(mp_layout)
        # main_arena
        main, main_how = self.find_main(probe)
        if vinfo.version is None:
            probe = self.arena_shape(probe, main)
        # the ring (malloc_state: one layout 2.27-2.42, another from 2.43)
        arenas = self.arena_ring(probe, main)
        if vinfo.version is None:
            self.mp_newer = mp_layout
            self.hi_size = self.heap_info_size(probe, arenas)
            evidence = infer_version(mp_newer=self.mp_newer, layout_ps=self.ps, heap_info_size=self.hi_size)
            probe = self.layout(evidence.pick())
        layout = probe
        if ov.debug_offsets:
            layout, mismatches = cross_check(layout, ov.debug_offsets)
        else:
            mismatches = []
        mp_values: Dict[str, int] = {}
        if mp is not None:
            mp_values = self.read_mp(layout, mp)
        sbrk = ov.sbrk_base if ov.sbrk_base is not None else mp_values.get("sbrk_base") or None
        hms = self.heap_max_size(layout, mp_values)
        memory = HeapMemory(self.src)
        for arena in arenas:
            if arena.is_main:
                self.main_segment(layout, arena, sbrk)
            else:
                self.heap_segments(layout, arena, hms, {a.address for a in arenas})
            for seg in arena.segments:
                memory.add(seg)
        tunables = read_tunables(self.src)
        if tunables:
            self.notes.append(f"GLIBC_TUNABLES={tunables.text} (from {tunables.how})")
        self.tcache_fill = malloc_params(layout, mp_values, tunables)["tcache_count"]
        tcaches = self.find_tcaches(layout, arenas, memory)
        if evidence is not None:
            # refine the release with tcache facts, then rebuild the layout if it moved
            evidence = self.version_evidence(layout, tcaches, memory)
            picked = evidence.pick()
            if picked != layout.version:
                layout = self.layout(picked)
                if ov.debug_offsets:
                    layout, mismatches = cross_check(layout, ov.debug_offsets)
                tcaches = [self.read_tcache(layout, t.address, t.how, t.arena) or t for t in tcaches]
            vinfo = VersionInfo(picked, "inferred", None, evidence.describe())
            self.notes.append(f"glibc version inferred: {evidence.describe()}")
        gmf = ov.global_max_fast
        if gmf is None:
            addr = self.src.symbol("global_max_fast")
            if addr is not None:
                try:
                    gmf = self.src.read_uint(addr, self.ps) or None
                except MemoryReadError:
                    gmf = None
        if gmf is None:
            gmf = layout.default_global_max_fast
        key, key_how = self.tcache_key(layout)
        mmapped: List[MmappedChunk] = []
        if ov.scan_mmapped:
            mmapped = self.find_mmapped(layout, memory, mp_values, arenas)
        heap = GlibcHeap(
            source=self.src, version=vinfo, layout=layout, main_arena=main, main_arena_how=main_how,
            mp=mp, mp_how=mp_how, mp_values=mp_values, sbrk_base=sbrk, heap_max_size=hms,
            global_max_fast=gmf, arenas=arenas, tcaches=tcaches, mmapped=mmapped, memory=memory,
            limits=self.limits, tcache_key=key, tcache_key_how=key_how, violations=self.findings,
            notes=self.notes, layout_mismatches=mismatches, tunables=tunables,
        )
        for err in memory.read_errors:
            self.notes.append(f"cannot read heap segment {err[0]:#x}+{err[1]:#x}: {err[2]}")
        return heap

    def _heads_own_heap(self, arena: int, hms: int) -> bool:
        h = arena & ~(hms - 1)
        if arena - h > 0x40:
            return False
        try:
            return self.src.read_pointer(h) == arena
        except MemoryReadError:
            return False

    def heap_info_size(self, probe: Layout, arenas: List[ArenaInfo]) -> Optional[int]:
        """sizeof(heap_info) as a non-main arena's offset in its heap shows it (it follows the heap_info)."""
        hms = self.ov.heap_max_size or probe.default_heap_max_size
        for arena in arenas[1:]:
            off = arena.address & (hms - 1)
            if 0 < off <= 0x40 and off % self.ps == 0:
                return off
        return None

    def find_main(self, probe: Layout) -> Tuple[int, str]:
        if self.ov.main_arena is not None:
            return self.ov.main_arena, "override"
        addr = self.src.symbol("main_arena")
        if addr is not None:
            return addr, "symbol"
        # release unknown: each malloc_state shape mp_ allows, the older first (see arena_shapes)
        probes = [probe] if self.version_known else self.state_shapes
        cands = [c for lay in probes for c in find_arenas(self.src, lay, self.limits.scan_budget)]
        cands.sort(key=lambda c: (-c.score, -c.votes))
        if not cands:
            raise HeapNotFoundError(
                "main_arena not found: no symbol, and no malloc_state in writable data "
                "(set it by hand, e.g. the gdb parameter or --main-arena)"
            )
        hms = self.ov.heap_max_size or probe.default_heap_max_size
        # a non-main arena sits right after the heap_info (whose ar_ptr names it) at the start of its heap
        mains = [c for c in cands if not self._heads_own_heap(c.address, hms)]
        best = (mains or cands)[0]
        self.notes.append(f"main_arena found by scanning writable data at {best.address:#x} "
                          f"({best.votes} empty bins, score {best.score})")
        return best.address, "heuristic"

    def arena_shapes(self, mp_layout: Optional[Layout]) -> List[Layout]:
        """The malloc_state layouts the release can have, older first (a tie goes to them),
        narrowed to the releases of ``mp_``'s layout when it is known."""
        shapes = [self.layout(v) for v in reversed(shape_representatives("malloc_state", self.ps))]
        if mp_layout is None:
            return shapes
        mp_shape = sorted(mp_layout.malloc_par.offsets.values())
        lo, hi = releases_where(lambda L: sorted(L.malloc_par.offsets.values()) == mp_shape, self.ps)
        fits = [lay for lay in shapes
                if any(lo <= v <= hi for v in table_releases()
                       if self.layout(v).malloc_state.offsets == lay.malloc_state.offsets)]
        return fits or shapes

    def arena_shape(self, probe: Layout, main: int) -> Layout:
        """With the release unknown: the malloc_state layout ``main`` fits best."""
        best, best_score = probe, -1
        for lay in self.state_shapes:
            checked = validate_arena(self.src, lay, main)
            if checked is not None and checked[0] > best_score:
                best, best_score = lay, checked[0]
        return best

    def find_mp(self, vinfo: VersionInfo, probe: Layout) -> Tuple[Optional[int], str, Optional[Layout]]:
        shapes = [self.layout(v) for v in shape_representatives("malloc_par", self.ps)]
        addr: Optional[int]
        if self.ov.mp is not None:
            addr, how = self.ov.mp, "override"
        else:
            addr = self.src.symbol("mp_")
            how = "symbol"
        if addr is not None:
            if vinfo.version is not None:
                return addr, how, None
            scored = [(mp_layout_score(self.src, lay, addr), -i, lay) for i, lay in enumerate(shapes)]
            return addr, how, max(scored, key=lambda t: (t[0], t[1]))[2]
        found = find_mp(self.src, [probe] + [s for s in shapes if s is not probe] if vinfo.version is not None
                        else shapes, self.limits.scan_budget)
        if found is None:
            self.notes.append("mp_ not found: the main heap starts at its mapping (sbrk_base unknown)")
            return None, "missing", None
        self.notes.append(f"mp_ found by its default tcache constants at {found[0]:#x}")
        return found[0], "heuristic", found[1] if vinfo.version is None else None

    def read_mp(self, layout: Layout, mp: int) -> Dict[str, int]:
        mpl = layout.malloc_par
        try:
            data = self.src.read(mp, mpl.size)
        except MemoryReadError:
            self.notes.append(f"mp_ at {mp:#x} is unreadable")
            return {}
        return {name: struct_field(data, mpl, name, self.order) for name in mpl.offsets if name != "pad"}

    def heap_max_size(self, layout: Layout, mp_values: Mapping[str, int]) -> int:
        if self.ov.heap_max_size is not None:
            return self.ov.heap_max_size
        hp = mp_values.get("hp_pagesize", 0)
        if layout.has_huge_pages and hp and hp & (hp - 1) == 0:
            return 4 * hp  # 2.35: heap_max_size() with huge pages
        return layout.default_heap_max_size

    # -- arenas -----------------------------------------------------------------
    def plausible_thread_arena(self, layout: Layout, addr: int) -> bool:
        """Whether ``addr`` can be a non-main ``malloc_state``: one follows the
        ``heap_info`` at the (page-aligned) start of its first heap, whose
        ``ar_ptr`` names it; failing that, its own fields must look sane."""
        off = addr & (PAGE - 1)
        if addr % self.ps or not 0 < off <= 0x40:
            return False
        try:
            if self.src.read_pointer(addr - off) == addr:
                return True
        except MemoryReadError:
            return False
        return validate_arena(self.src, layout, addr) is not None

    def read_arena(self, layout: Layout, addr: int, index: int) -> Optional[ArenaInfo]:
        ms = layout.malloc_state
        try:
            data = self.src.read(addr, ms.size)
        except MemoryReadError:
            return None
        order = self.order

        def words_at(name: str) -> int:
            return struct_field(data, ms, name, order)

        # 2.43 has no fastbins: no heads at all (not empty ones)
        fast = tuple(struct_field(data, ms, "fastbinsY", self.order, i) for i in range(layout.nfastbins))
        nb = ms.counts["bins"]
        off = ms["bins"]
        bins = struct_words(data[off : off + nb * self.ps], layout)
        top = words_at("top")
        top_size = 0
        if top:
            try:
                top_size = self.src.read_pointer(top + self.ps) & ~7
            except MemoryReadError:
                top_size = 0
        return ArenaInfo(
            address=addr, index=index, is_main=index == 0, top=top, top_size=top_size,
            next=words_at("next"), system_mem=words_at("system_mem"), flags=words_at("flags"),
            fastbins=fast, bins=bins,
        )

    def arena_ring(self, layout: Layout, main: int) -> List[ArenaInfo]:
        first = self.read_arena(layout, main, 0)
        if first is None:
            raise HeapNotFoundError(f"main_arena at {main:#x} is not readable")
        arenas = [first]
        seen = {main}
        cur = first
        nxt_field = layout.malloc_state["next"]
        while len(arenas) < self.limits.max_arenas:
            nxt = cur.next
            if nxt == main:
                break
            if nxt == 0 or nxt in seen:
                what = "is NULL" if nxt == 0 else f"loops back to {nxt:#x} without reaching main_arena"
                self.violation("arena.ring", None, cur.address, "next", cur.address + nxt_field, self.ps,
                               f"arena ring broken: next of {cur.address:#x} {what}", cur.address)
                break
            arena = self.read_arena(layout, nxt, len(arenas))
            if arena is None or not self.plausible_thread_arena(layout, nxt):
                what = f"unreadable {nxt:#x}" if arena is None else f"{nxt:#x}, which is not a malloc_state"
                self.violation("arena.ring", None, cur.address, "next", cur.address + nxt_field, self.ps,
                               f"arena ring broken: next of {cur.address:#x} points to {what}", cur.address)
                break
            seen.add(nxt)
            arenas.append(arena)
            cur = arena
        else:
            self.violation("arena.ring", None, cur.address, "next", cur.address + nxt_field, self.ps,
                           f"arena ring longer than {self.limits.max_arenas} arenas", cur.address)
        return arenas

    def main_segment(self, layout: Layout, arena: ArenaInfo, sbrk: Optional[int]) -> None:
        top = arena.top
        if not top and not sbrk and not arena.system_mem and not any(arena.bins):
            arena.initialized = False
            self.notes.append("main_arena is not initialised: the program never called malloc")
            return
        top_region = self.src.region_of(top) if top else None
        exact = True
        if sbrk:
            start = layout.first_chunk(sbrk)
        elif top_region is not None:
            start = layout.first_chunk(top_region.start)
            exact = False  # the walker finds the first chunk itself (static TLS may precede it)
        else:
            self.violation("arena.top", "malloc(): corrupted top size", arena.address, "top",
                           arena.address + layout.malloc_state["top"], self.ps,
                           "main_arena.top is unmapped and mp_.sbrk_base is unknown: main heap not walked",
                           arena.address)
            return
        limit = max(arena.system_mem, 0) + (top - start if top > start else 0) + (1 << 20)
        extent = readable_extent(self.src, start, max(limit, 1 << 20))
        end = top + arena.top_size if top else extent
        if not (start <= top and top + layout.minsize <= extent):  # top's header must be in the heap
            self.violation("arena.top", None, arena.address, "top", arena.address + layout.malloc_state["top"],
                           self.ps, f"top {top:#x} lies outside the main heap [{start:#x}, {extent:#x})",
                           arena.address)
            end = extent
            top_in = None
        else:
            top_in = top
            if end > extent or end < top + layout.minsize:
                end = extent
        arena.segments.append(HeapSegment(start, end, arena.address, None, top_in, None, exact))

    def heap_segments(self, layout: Layout, arena: ArenaInfo, hms: int, ring: Set[int]) -> None:
        hi = layout.heap_info
        mask = ~(hms - 1)
        first_heap = arena.address - hi.size
        top = arena.top
        top_field = arena.address + layout.malloc_state["top"]
        chain: List[Tuple[int, int]] = []  # (heap_info, size), newest first
        h = (top & mask) if top else first_heap
        if not top:
            self.violation("arena.top", None, arena.address, "top", top_field, self.ps,
                           f"top of {arena.label} is NULL: only its first heap is walked", arena.address)
        seen = set()
        while h and len(chain) < self.limits.max_heaps:
            if h in seen:
                self.violation("heap_info.cycle", None, h, "prev", h + hi["prev"], self.ps,
                               f"heap_info prev chain of {arena.label} loops back to {h:#x}", arena.address)
                break
            seen.add(h)
            try:
                data = self.src.read(h, hi.size)
            except MemoryReadError:
                data = None
            ar_ptr = struct_field(data, hi, "ar_ptr", self.order) if data is not None else None
            # another arena's first heap (its malloc_state follows the heap_info): not ours
            foreign = ar_ptr != arena.address and ar_ptr in ring and h == ar_ptr - hi.size
            if data is None or foreign:
                # name the pointer that led here: top (the newest heap) or the newer heap's prev
                what = "is unreadable" if data is None else f"belongs to arena {ar_ptr:#x}"
                if not chain:
                    self.violation("arena.top", None, arena.address, "top", top_field, self.ps,
                                   f"top {top:#x} of {arena.label} is in no heap of its own (heap_info at "
                                   f"{h:#x} {what}): only its first heap is walked", arena.address)
                    if h != first_heap:
                        h = first_heap
                        continue
                else:
                    newer = chain[-1][0]
                    self.violation("heap_info.unreadable" if data is None else "heap_info.prev", None, newer,
                                   "prev", newer + hi["prev"], self.ps,
                                   f"heap_info prev of {newer:#x} ({arena.label}) leads to {h:#x}, which {what}",
                                   arena.address)
                break
            size = struct_field(data, hi, "size", self.order)
            prev = struct_field(data, hi, "prev", self.order)
            if ar_ptr != arena.address:
                self.violation("heap_info.ar_ptr", None, h, "ar_ptr", h + hi["ar_ptr"], self.ps,
                               f"heap_info at {h:#x} names arena {ar_ptr:#x}, not {arena.address:#x}",
                               arena.address)
            if size > hms or size < PAGE or size % PAGE:  # new_heap/grow_heap keep it page-aligned
                self.violation("heap_info.size", None, h, "size", h + hi["size"], self.ps,
                               f"heap_info size {size:#x} is not a page multiple in (0, HEAP_MAX_SIZE={hms:#x}]",
                               arena.address)
                size = hms
            chain.append((h, size))
            if h == first_heap:
                if prev != 0:
                    self.violation("heap_info.prev", None, h, "prev", h + hi["prev"], self.ps,
                                   f"first heap of {arena.label} has prev {prev:#x} (expected NULL)",
                                   arena.address, "warning")
                break
            if prev == 0:
                self.violation("heap_info.prev", None, h, "prev", h + hi["prev"], self.ps,
                               f"heap_info chain of {arena.label} ends at {h:#x} before its first heap "
                               f"{first_heap:#x}", arena.address)
                break
            if prev & ~mask:
                self.violation("heap_info.prev", None, h, "prev", h + hi["prev"], self.ps,
                               f"heap_info prev {prev:#x} is not HEAP_MAX_SIZE-aligned", arena.address)
                break
            h = prev
        chain.reverse()
        arena.heap_infos = [h for h, _ in chain]
        for h, size in chain:
            if h == first_heap:
                start = layout.first_chunk(arena.address + layout.malloc_state.size)
            else:
                start = layout.first_chunk(h + hi.size)
            extent = readable_extent(self.src, h, size)
            end = h + size
            holds_top = h <= top < h + hms
            if holds_top:
                if top + arena.top_size <= extent and arena.top_size >= layout.minsize:
                    end = top + arena.top_size
                if not (start <= top and top + layout.minsize <= min(end, extent)):
                    self.violation("arena.top", None, arena.address, "top",
                                   arena.address + layout.malloc_state["top"], self.ps,
                                   f"top {top:#x} lies outside its heap [{start:#x}, {end:#x})", arena.address)
                    holds_top = False
            end = min(end, extent)
            if end <= start:
                continue
            arena.segments.append(HeapSegment(start, end, arena.address, h, top if holds_top else None, h))

def locate_heap(
    source: MemorySource, overrides: Optional[Overrides] = None, limits: Optional[Limits] = None
) -> GlibcHeap:
    """Find glibc malloc's arenas, heaps, tcaches and mmapped chunks.

    :param source: the target's memory.
    :param overrides: locations and facts to impose (gdb parameters).
    :param limits: bounds of the walks.
    :raises HeapNotFoundError: when no main_arena can be found or read.
    """
    return _Locator(source, overrides or Overrides(), limits or Limits()).run()
