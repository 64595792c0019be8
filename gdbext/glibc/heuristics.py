# gdbext/glibc/heuristics.py - finding main_arena and mp_ without symbols, and
# inferring the glibc release from the structures when no banner is mapped.
"""Symbol-less location of glibc's malloc globals.

* :func:`find_arenas` scans writable data for ``malloc_state`` candidates.  An
  arena's empty bins point at themselves (``bin->fd == bin->bk == bin``), so a
  pair of words equal to ``their own address - 2 * SIZE_SZ`` votes for the
  arena base ``X - offsetof(bins) - 16 * (i - 1)``; candidates with enough votes
  are then validated field by field (mutex, flags, top, next, system_mem).
* :func:`find_mp` looks for ``mp_`` by its default-constant pattern:
  ``tcache_bins = 64, tcache_max_bytes = 0x408, tcache_count = 7,
  tcache_unsorted_limit = 0`` (64-bit), then decides between the pre-2.35 and
  2.35+ ``malloc_par`` layouts.
* :func:`infer_version` narrows the release down from the facts (``mp_``
  layout, tcache chunk size, tcache key kind, safe-linking).

Every scan is bounded by a byte budget; regions larger than
:data:`MAX_DATA_REGION` (heaps, mapped files) are skipped.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ..errors import MemoryReadError
from ..memory import MemorySource, Region
from .layouts import MAX_VERSION, MIN_VERSION, GlibcVersion, Layout, first_release, releases_where
from .segments import ByteOrder, byteorder_of, word_view

__all__ = [
    "ArenaCandidate",
    "find_arenas",
    "find_mp",
    "mp_layout_score",
    "validate_arena",
    "VersionEvidence",
    "infer_version",
    "MAX_DATA_REGION",
    "SCAN_BUDGET",
]

#: writable regions larger than this are not scanned for malloc globals
MAX_DATA_REGION = 16 << 20
#: total bytes a heuristic scan may read
SCAN_BUDGET = 64 << 20
_MIN_VOTES = 4  #: empty bins needed before a candidate arena is validated
_MAX_VALIDATIONS = 1024  #: candidates validated per region


def _data_regions(source: MemorySource) -> List[Region]:
    rw = [r for r in source.regions() if "w" in r.perms and r.perms.startswith("r") and r.size <= MAX_DATA_REGION]
    rw = [r for r in rw if not r.path.startswith("[stack")]
    # file-backed data first (libc's .data, the binary's .data/.bss), then small to large
    rw.sort(key=lambda r: (r.path == "", r.size, r.start))
    return rw


def _read_region(source: MemorySource, region: Region) -> Any:
    try:
        return source.read_buffer(region.start, region.size)
    except MemoryReadError:
        return None


def _scanned_regions(source: MemorySource, budget: int) -> Iterator[Tuple[Region, Any]]:
    """``(region, buffer)`` of each readable data region, until ``budget`` bytes were read."""
    for region in _data_regions(source):
        if budget <= 0:
            break
        budget -= region.size
        buf = _read_region(source, region)
        if buf is not None:
            yield region, buf


@dataclass(frozen=True)
class ArenaCandidate:
    """A plausible ``malloc_state`` found by scanning."""

    address: int
    votes: int  #: empty bins pointing at themselves
    score: int  #: validation points
    next: int
    top: int


def validate_arena(source: MemorySource, layout: Layout, addr: int) -> Optional[Tuple[int, int, int]]:
    """(score, next, top) when ``addr`` looks like a malloc_state, else None."""
    ms = layout.malloc_state
    ps = layout.pointer_size
    try:
        data = source.read(addr, ms.size)
    except MemoryReadError:
        return None
    order = byteorder_of(source)
    def u32(off: int) -> int:
        return int.from_bytes(data[off : off + 4], order)

    def up(off: int) -> int:
        return int.from_bytes(data[off : off + ps], order)

    score = 0
    if u32(ms["mutex"]) > 2 or u32(ms["flags"]) > 7:
        return None
    if "have_fastchunks" in ms and u32(ms["have_fastchunks"]) > 1:
        return None
    top, nxt = up(ms["top"]), up(ms["next"])
    system_mem = up(ms["system_mem"])
    if nxt == 0 or nxt % ps:
        return None
    # not a page multiple in static binaries: sbrk_base is not page aligned there
    if system_mem == 0 or system_mem % layout.malloc_alignment or up(ms["max_system_mem"]) < system_mem:
        return None
    score += 2
    if top and source.region_of(top) is not None:
        try:
            tsize = source.read_pointer(top + ps) & ~7
        except MemoryReadError:
            tsize = 0
        if 0 < tsize <= system_mem:
            score += 2
    if nxt == addr:
        score += 1
    elif source.region_of(nxt) is not None:
        score += 1
    return score, nxt, top


def find_arenas(source: MemorySource, layout: Layout, budget: int = SCAN_BUDGET) -> List[ArenaCandidate]:
    """Validated ``malloc_state`` candidates in writable data, best first.

    :param layout: any 2.27+ layout of the target's pointer size (malloc_state
        did not change between 2.27 and 2.41).
    :param budget: bytes the scan may read.
    """
    ps = layout.pointer_size
    bins_off = layout.malloc_state["bins"]
    found: Dict[int, ArenaCandidate] = {}
    for region, buf in _scanned_regions(source, budget):
        words = word_view(buf, ps, source.byteorder)
        votes: Counter[int] = Counter()
        n = len(words)
        base = region.start
        k = 0
        while k < n - 1:
            w = words[k]
            x = base + k * ps
            if w == x - 2 * ps and words[k + 1] == w:
                # bin i's fd is at X; arena = X - bins_off - 2*ps*(i-1), i = 1..127
                first = x - bins_off
                for i in range(127):
                    votes[first - 2 * ps * i] += 1
                k += 2
                continue
            k += 1
        # near-miss bases (shifted by whole bins) collect almost as many votes as
        # the real one: validate every well-voted candidate, best first, bounded
        ranked = [(count, addr) for addr, count in votes.items() if count >= _MIN_VOTES]
        ranked.sort(key=lambda ca: (-ca[0], ca[1]))
        for count, addr in ranked[:_MAX_VALIDATIONS]:
            if addr in found:
                continue
            checked = validate_arena(source, layout, addr)
            if checked is not None:
                found[addr] = ArenaCandidate(addr, count, checked[0], checked[1], checked[2])
    return sorted(found.values(), key=lambda c: (-c.score, -c.votes, c.address))


def _mp_pattern(layout: Layout) -> bytes:
    order: ByteOrder = "big" if layout.byteorder == "big" else "little"
    ps = layout.pointer_size
    # tcache_bins, max_bytes, count, unsorted_limit (the release's defaults)
    vals = (layout.tcache_small_bins, layout.default_tcache_max_bytes, layout.default_tcache_count, 0)
    return b"".join(v.to_bytes(ps, order) for v in vals)


def mp_layout_score(source: MemorySource, layout: Layout, addr: int) -> int:
    """How well the bytes at ``addr`` fit ``layout.malloc_par`` (higher is better, <0 is a misfit)."""
    mp = layout.malloc_par
    try:
        data = source.read(addr, mp.size)
    except MemoryReadError:
        return -100
    order = byteorder_of(source)

    def val(name: str) -> int:
        off = mp[name]
        return int.from_bytes(data[off : off + mp.elem_size(name)], order)

    score = 0
    if 0 < val(layout.mp_tcache_bins_field) <= layout.tcache_small_bins:
        score += 2
    else:
        score -= 4
    if val("tcache_count") <= 0xFFFF:
        score += 1
    else:
        score -= 2
    if val("trim_threshold") >= 4096 or val("trim_threshold") == 0:
        score += 1
    else:
        score -= 2
    if val("n_mmaps_max") == 65536:
        score += 2
    if val("n_mmaps") <= val("max_n_mmaps") and val("n_mmaps") < (1 << 24):
        score += 1
    else:
        score -= 2
    sbrk = val("sbrk_base")
    if sbrk == 0 or source.region_of(sbrk) is not None:
        score += 1
    else:
        score -= 2
    if "hp_flags" in mp and val("hp_flags") > 0xFFFF:
        score -= 2
    return score


def find_mp(
    source: MemorySource, layouts: Sequence[Layout], budget: int = SCAN_BUDGET
) -> Optional[Tuple[int, Layout]]:
    """``(address, layout)`` of ``mp_`` found by its default tcache constants, or None.

    :param layouts: the candidate malloc_par layouts (pre-2.35 and 2.35+).
    """
    best: Optional[Tuple[int, int, Layout]] = None
    patterns = sorted({_mp_pattern(lay) for lay in layouts})
    for region, buf in _scanned_regions(source, budget):
        data = bytes(buf)
        for pattern in patterns:
            pos = data.find(pattern)
            while pos >= 0:
                hit = region.start + pos
                for lay in layouts:
                    if _mp_pattern(lay) != pattern:
                        continue  # the defaults found are another release's
                    addr = hit - lay.malloc_par[lay.mp_tcache_bins_field]
                    score = mp_layout_score(source, lay, addr)
                    if score > 0 and (best is None or score > best[0]):
                        best = (score, addr, lay)
                pos = data.find(pattern, pos + 1)
    if best is None:
        return None
    return best[1], best[2]


@dataclass
class VersionEvidence:
    """Facts that bound the glibc release when no banner or symbol says it."""

    low: GlibcVersion = MIN_VERSION
    high: GlibcVersion = MAX_VERSION
    reasons: List[str] = field(default_factory=list)

    def at_least(self, version: Tuple[int, int], why: str) -> None:
        v = GlibcVersion.parse(version)
        if v > self.low:
            self.low = v
        if why:
            self.reasons.append(why)

    def within(self, bounds: Tuple[GlibcVersion, GlibcVersion], why: str) -> None:
        """The release is in ``[bounds[0], bounds[1]]``."""
        self.at_least(bounds[0], why)
        if bounds[1] < self.high:
            self.high = bounds[1]

    def below(self, version: Tuple[int, int], why: str) -> None:
        """The release is older than ``version``."""
        v = GlibcVersion.parse(version)
        top = GlibcVersion(v.major, v.minor - 1)
        if top < self.high:
            self.high = top
        if why:
            self.reasons.append(why)

    @property
    def consistent(self) -> bool:
        return self.low <= self.high

    def pick(self) -> GlibcVersion:
        """The release to use: the newest one the evidence allows (layouts are equal across a range)."""
        return self.high if self.consistent else self.low

    def describe(self) -> str:
        rng = f"{self.low}" if self.low == self.high else f"{self.low}-{self.high}"
        return f"{rng} ({'; '.join(self.reasons)})" if self.reasons else rng


def infer_version(
    mp_newer: "Optional[bool | Layout]" = None,
    tcache_chunk_size: Optional[int] = None,
    layout_ps: int = 8,
    key_kind: Optional[str] = None,
    safe_linking: Optional[bool] = None,
    heap_info_size: Optional[int] = None,
) -> VersionEvidence:
    """Narrow the release from structural facts (the ranges come from the layout table).

    :param mp_newer: the ``malloc_par`` layout ``mp_`` matched (any release of
        it), or True / False for the 2.35+ / older huge-page fields.
    :param tcache_chunk_size: size of the tcache_perthread_struct chunk.
    :param key_kind: ``"random"``, ``"tcache"`` (key == tcache address) or ``"none"``.
    :param safe_linking: whether singly linked lists are PROTECT_PTR-mangled.
    :param heap_info_size: ``sizeof(heap_info)`` as seen from a non-main arena's
        offset in its heap.
    """
    ev = VersionEvidence()
    ps = layout_ps
    if heap_info_size is not None:
        rng = releases_where(lambda L: L.heap_info.size == heap_info_size, ps)
        if rng[0] <= rng[1]:
            ev.within(rng, f"heap_info is {heap_info_size:#x} bytes")
    if isinstance(mp_newer, Layout):
        mp_shape = sorted(mp_newer.malloc_par.offsets.values())
        rng = releases_where(lambda L: sorted(L.malloc_par.offsets.values()) == mp_shape, ps)
        if rng[0] <= rng[1]:
            ev.within(rng, f"mp_ has the malloc_par layout of {rng[0]}-{rng[1]}")
    elif mp_newer is not None:
        huge = releases_where(lambda L: L.has_huge_pages, ps)
        if mp_newer:
            ev.at_least(huge[0], f"mp_ has the {huge[0]}+ huge-page fields")
        else:
            ev.below(huge[0], f"mp_ lacks the {huge[0]} huge-page fields")
    if tcache_chunk_size is not None:
        rng = releases_where(lambda L: L.tcache_chunk_size == tcache_chunk_size, ps)
        if rng[0] <= rng[1]:
            ev.within(rng, f"tcache chunk {tcache_chunk_size:#x}")
    random_key = first_release("tcache_key", "random")
    if key_kind == "random":
        ev.at_least(random_key, "tcache key is a random tcache_key")
    elif key_kind == "tcache":
        ev.at_least(first_release("tcache_key", "tcache"), "tcache key is the tcache address")
        ev.below(random_key, "")
    elif key_kind == "none" and ev.high < random_key:
        ev.below(first_release("tcache_key", "tcache"), "tcache entries carry no key")
    if safe_linking is True:
        ev.at_least(first_release("safe_linking"), "safe-linking in use")
    elif safe_linking is False:
        ev.below(first_release("safe_linking"), "no safe-linking")
    return ev
