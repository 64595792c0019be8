# gdbext/glibc/mainheap.py - the stretches of a non-contiguous main arena: when
# sbrk() cannot grow the heap, glibc grows main_arena with mmap.
"""The main arena's segments when it is non-contiguous.

When the break cannot move (something is mapped above it), sysmalloc falls
back to ``mmap`` (``MMAP_AS_MORECORE_SIZE``, 1 MiB at least) and marks the
arena ``NONCONTIGUOUS_BIT``.  Each time it moves on to a new stretch it ends
the old one with two ``CHUNK_HDR_SZ | PREV_INUSE`` fenceposts at the old,
page-aligned end and frees the old top; the new stretch starts at its
mapping's first byte and holds top until the next move.  Nothing records
the stretches: they are found here as the chains of main-arena chunks that
start a page of an anonymous writable region and end on top or on such
fenceposts at a page boundary.  The search stops when the stretches found
account for ``system_mem``; every read stays inside one region.
"""
from __future__ import annotations

from typing import Iterable, List, Optional, Sequence, Tuple

from ..errors import MemoryReadError
from ..memory import MemorySource, Region
from .layouts import IS_MMAPPED, NON_MAIN_ARENA, Layout
from .mmapped import subtract
from .segments import HeapSegment, word_view

__all__ = ["NONCONTIGUOUS_BIT", "find_stretches", "stretch_candidates"]

NONCONTIGUOUS_BIT = 2  #: malloc_state.flags: MORECORE does not return contiguous memory
_PAGE = 4096


def _chain_end(words, base: int, i: int, n: int, layout: Layout, top: int) -> Tuple[Optional[int], bool]:
    """Follow main-arena chunk headers from word ``i``: ``(end index, holds top)`` of a
    stretch (ending after top, or after fenceposts at a page boundary), else ``(None, False)``."""
    ps = layout.pointer_size
    sh = 3 if ps == 8 else 2
    hdr = 2 * ps
    bad = IS_MMAPPED | NON_MAIN_ARENA
    while i + 1 < n:
        addr = base + (i << sh)
        w = words[i + 1]
        sz = w & ~7
        if addr == top:
            j = i + (sz >> sh)
            return (j if sz >= layout.minsize and j <= n else None), True
        if w & ~1 == hdr and i + (hdr >> sh) + 1 < n and words[i + (hdr >> sh) + 1] == hdr | 1 \
                and (addr + 2 * hdr) % _PAGE == 0:
            return i + (2 * hdr >> sh), False  # the two fenceposts closing the stretch
        if w & bad or sz < layout.minsize or sz & layout.align_mask:
            return None, False
        i += sz >> sh
    return None, False


def find_stretches(source: MemorySource, layout: Layout, arena: int, top: int, missing: int,
                   candidates: Iterable[Region], budget: int) -> List[HeapSegment]:
    """Stretches of main_arena outside the sbrk heap, in address order.

    :param top: main_arena's top chunk (the stretch holding it ends after it).
    :param missing: ``system_mem`` not accounted for by the sbrk heap; the search
        ends once the stretches found cover it.
    :param candidates: anonymous writable regions that may hold stretches (not
        other arenas' heaps, not thread stacks), best first.
    :param budget: bytes the search may read.
    """
    out: List[HeapSegment] = []
    found = 0
    ps = layout.pointer_size
    sh = 3 if ps == 8 else 2
    for region in candidates:
        if found >= missing or budget <= 0:
            break
        size = min(region.size, budget)
        budget -= size
        try:
            buf = source.read_buffer(region.start, size)
        except MemoryReadError:
            continue
        words = word_view(buf, ps, source.byteorder)
        n = len(words)
        i = 0
        while i + 1 < n:
            end, holds_top = _chain_end(words, region.start, i, n, layout, top)
            if end is None:
                i += _PAGE >> sh  # not a stretch start: try the next page
                continue
            start = region.start + (i << sh)
            stop = region.start + (end << sh)
            out.append(HeapSegment(start, stop, arena, None, top if holds_top else None, None, True))
            found += stop - start
            i = end
    out.sort(key=lambda s: s.start)
    return out


def stretch_candidates(regions: Sequence[Region], top: int, skip: Sequence[Tuple[int, int]]) -> List[Region]:
    """Anonymous writable regions not in ``skip`` ranges, the one holding ``top`` first."""
    out = [r for r in regions
           if "w" in r.perms and r.perms.startswith("r") and not (r.path and not r.path.startswith("[anon"))]
    out = subtract(out, skip)
    out.sort(key=lambda r: (not (r.start <= top < r.end), r.start))
    return out
