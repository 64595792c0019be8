# gdbext/glibc/mmapped.py - chunks malloc served with mmap: found by scanning
# anonymous writable mappings for IS_MMAPPED headers, bounded by mp_.n_mmaps.
"""Mmapped chunks (a mixin of the locator).

A chunk malloc got from ``mmap`` starts a page of an anonymous mapping with
``prev_size = 0`` and ``size | IS_MMAPPED`` (page multiple).  Candidates are
the anonymous writable regions that are not arena heaps and hold no thread's
stack or thread pointer (a glibc thread stack also holds its TLS and struct
pthread; guard pages are not readable, file-backed mappings are skipped).  A
first pass follows the chunk chain from each candidate's first page (mmap
places a chunk at the start of its mapping; adjacent mappings merge into one
region); only while chunks are still missing does a second pass probe every
page start, within ``Limits.max_mmap_pages`` probes in all.  The scan stops
when ``mp_.n_mmaps`` chunks were found (and does not start when it is 0); a
note says when it found fewer, and why.  Chunks from ``memalign`` with a
large alignment (header not at a page start) are not found.
"""
from __future__ import annotations

from typing import List, Mapping, Sequence, Set, Tuple

from ..errors import MemoryReadError
from ..memory import MemorySource, Region
from .layouts import IS_MMAPPED, Layout
from .model import ArenaInfo, Limits, MmappedChunk, Overrides, ThreadRegs
from .segments import ByteOrder, HeapMemory

__all__ = ["MmappedLocator", "PAGE", "thread_ranges", "subtract"]

PAGE = 4096
_WINDOW = 1 << 20  #: bytes of a mapping read at once while probing page starts


def thread_ranges(source: MemorySource, threads: Sequence[ThreadRegs]) -> List[Tuple[int, int]]:
    """Address ranges of the threads' stacks and TLS blocks, which hold no chunk.

    A glibc thread stack is one mapping above a guard page: its stack, then its
    TLS and ``struct pthread`` (the thread pointer) at the top; the whole
    mapping goes.  Of any other region (the main thread's TLS block, which
    ld.so maps and the kernel may merge with neighbouring anonymous memory)
    only the pages around the thread pointer go.
    """
    out: List[Tuple[int, int]] = []
    for th in threads:
        sp, tp = th.stack_pointer, th.thread_pointer
        region = source.region_of(sp) if sp else None
        if region is not None and not region.path:
            below = source.region_of(region.start - 1)
            guarded = below is not None and not below.perms.startswith("r")
            top = tp + PAGE if tp and region.start <= tp < region.end else sp + PAGE
            out.append((region.start if guarded else sp & ~(PAGE - 1), min(region.end, top)))
        elif tp:
            out.append((tp & ~(PAGE - 1), (tp & ~(PAGE - 1)) + PAGE))
    return out


def subtract(regions: Sequence[Region], ranges: Sequence[Tuple[int, int]]) -> List[Region]:
    """``regions`` with the ``[lo, hi)`` ranges cut out (page-granular pieces kept in order)."""
    cuts = sorted(ranges)
    out: List[Region] = []
    for region in regions:
        start = region.start
        for lo, hi in cuts:
            if hi <= start or lo >= region.end:
                continue
            if lo > start:
                out.append(Region(start, lo, region.perms, region.path))
            start = max(start, hi)
        if start < region.end:
            out.append(Region(start, region.end, region.perms, region.path))
    return out


class MmappedLocator:
    """The mmapped-chunk scan of the locator."""

    src: MemorySource
    limits: Limits
    ov: Overrides
    ps: int
    order: ByteOrder
    notes: List[str]

    def _candidate_regions(self, memory: HeapMemory, arenas: Sequence[ArenaInfo]) -> Tuple[List[Region], int]:
        """Anonymous writable memory that can hold an mmapped chunk (regions minus arena
        heaps and thread stacks), and how many thread stacks were left out."""
        arena_addrs = [a.address for a in arenas]
        skip = [(seg.base, seg.end) for seg in memory.segments]
        stacks = thread_ranges(self.src, self.ov.threads or ())
        out: List[Region] = []
        for region in self.src.regions():
            if "w" not in region.perms or not region.perms.startswith("r"):
                continue  # guard pages (PROT_NONE) and read-only mappings
            if region.path and not region.path.startswith("[anon"):
                continue  # file-backed, [stack], [heap], [vvar]...
            if any(region.start <= a < region.end for a in arena_addrs):
                continue
            out.append(region)
        return subtract(out, skip + stacks), len(stacks)

    def find_mmapped(self, layout: Layout, memory: HeapMemory, mp_values: Mapping[str, int],
                     arenas: Sequence[ArenaInfo]) -> List[MmappedChunk]:
        """Two passes over the candidate regions: the chunk chain from each region's first
        page (where mmap puts a chunk; adjacent mappings merge), then, while chunks are
        missing, every page start, within ``Limits.max_mmap_pages`` probes."""
        expected = mp_values.get("n_mmaps")
        if expected == 0:
            return []
        regions, stacks = self._candidate_regions(memory, arenas)
        out: List[MmappedChunk] = []
        seen: Set[int] = set()
        budget = [self.limits.max_mmap_pages]
        for first_only in (True, False):
            for region in regions:
                if budget[0] <= 0 or len(out) >= self.limits.max_mmapped:
                    break
                if expected is not None and len(out) >= expected:
                    return out
                self._scan_region(layout, region, first_only, out, seen, budget)
            if expected is None or len(out) >= expected:
                break
        if expected is not None and len(out) < expected:
            why = (f"; the scan stopped after {self.limits.max_mmap_pages} page probes" if budget[0] <= 0 else "")
            skipped = f" ({stacks} thread stacks skipped)" if stacks else ""
            self.notes.append(f"found {len(out)} mmapped chunks, mp_.n_mmaps says {expected}{why}{skipped}")
        elif expected is not None and len(out) > expected:
            self.notes.append(f"found {len(out)} mmapped chunks, mp_.n_mmaps says {expected}")
        return out

    def _scan_region(self, layout: Layout, region: Region, first_only: bool, out: List[MmappedChunk],
                     seen: Set[int], budget: List[int]) -> None:
        ps = self.ps
        addr = region.start
        window_start, window = addr, b""
        while addr + 2 * ps <= region.end and budget[0] > 0:
            if not window_start <= addr < window_start + len(window) - 2 * ps + 1:
                # page headers are read a window at a time: one read per MiB, not per page
                size = min(_WINDOW, region.end - addr)
                try:
                    window, window_start = self.src.read_buffer(addr, size), addr
                except MemoryReadError:
                    return  # not dumped / unreadable: the rest of this mapping is too
            off = addr - window_start
            prev_size = int.from_bytes(window[off : off + ps], self.order)
            raw = int.from_bytes(window[off + ps : off + 2 * ps], self.order)
            size = raw & ~7
            mapped = size + layout.mmap_trailer  # 2.43: the size leaves CHUNK_HDR_SZ out
            if (raw & 7) == IS_MMAPPED and size >= PAGE - layout.mmap_trailer and mapped % PAGE == 0 \
                    and prev_size == 0 and addr + mapped <= region.end:
                if addr not in seen:
                    seen.add(addr)
                    out.append(MmappedChunk(addr, size, prev_size))
                addr += mapped  # the chunk chain: a chunk's mapping leads to the next mapping's start
                continue
            if first_only:
                return
            budget[0] -= 1
            addr += PAGE
