# gdbext/glibc/mmapped.py - chunks malloc served with mmap: found by scanning
# anonymous writable mappings for IS_MMAPPED headers, bounded by mp_.n_mmaps.
"""Mmapped chunks (a mixin of the locator).

A chunk malloc got from ``mmap`` starts a page of an anonymous mapping with
``prev_size = 0`` and ``size | IS_MMAPPED`` (page multiple).  The scan probes
page starts of anonymous writable regions that are not arena heaps, skips over
each chunk found, stops when ``mp_.n_mmaps`` chunks were found (and does not
start when it is 0), and never probes more than ``Limits.max_mmap_pages``.
Chunks from ``memalign`` with a large alignment (header not at a page start)
are not found.
"""
from __future__ import annotations

from typing import List, Mapping, Sequence

from ..errors import MemoryReadError
from ..memory import MemorySource
from .layouts import IS_MMAPPED, Layout
from .model import ArenaInfo, Limits, MmappedChunk
from .segments import ByteOrder, HeapMemory

__all__ = ["MmappedLocator", "PAGE"]

PAGE = 4096
_WINDOW = 1 << 20  #: bytes of a mapping read at once while probing page starts


class MmappedLocator:
    """The mmapped-chunk scan of the locator."""

    src: MemorySource
    limits: Limits
    ps: int
    order: ByteOrder
    notes: List[str]

    def find_mmapped(self, layout: Layout, memory: HeapMemory, mp_values: Mapping[str, int],
                     arenas: Sequence[ArenaInfo]) -> List[MmappedChunk]:
        expected = mp_values.get("n_mmaps")
        if expected == 0:
            return []
        ps = self.ps
        arena_addrs = {a.address for a in arenas}
        out: List[MmappedChunk] = []
        budget = self.limits.max_mmap_pages
        for region in self.src.regions():
            if budget <= 0 or len(out) >= self.limits.max_mmapped:
                break
            if "w" not in region.perms or not region.perms.startswith("r"):
                continue
            if region.path and not region.path.startswith("[anon"):
                continue
            if any(seg.base < region.end and region.start < seg.end for seg in memory.segments):
                continue  # an arena heap (or the sbrk heap)
            if any(region.start <= a < region.end for a in arena_addrs):
                continue
            addr = region.start
            window_start, window = addr, b""
            while addr + 2 * ps <= region.end and budget > 0:
                budget -= 1
                if not window_start <= addr < window_start + len(window) - 2 * ps + 1:
                    # page headers are read a window at a time: one read per MiB, not per page
                    size = min(_WINDOW, region.end - addr)
                    try:
                        window, window_start = self.src.read_buffer(addr, size), addr
                    except MemoryReadError:
                        break  # not dumped / unreadable: the rest of this mapping is too
                off = addr - window_start
                prev_size = int.from_bytes(window[off : off + ps], self.order)
                raw = int.from_bytes(window[off + ps : off + 2 * ps], self.order)
                size = raw & ~7
                chunk = addr + prev_size
                mapped = prev_size + size + layout.mmap_trailer  # 2.43: the size leaves CHUNK_HDR_SZ out
                if (raw & 7) == IS_MMAPPED and size >= PAGE - layout.mmap_trailer and mapped % PAGE == 0 \
                        and prev_size % layout.malloc_alignment == 0 and prev_size < size \
                        and addr + mapped <= region.end and prev_size == 0:
                    out.append(MmappedChunk(chunk, size, prev_size))
                    addr += mapped
                    if expected is not None and len(out) >= expected:
                        return out
                    continue
                addr += PAGE
        if expected is not None and len(out) != expected:
            self.notes.append(f"found {len(out)} mmapped chunks, mp_.n_mmaps says {expected}")
        return out
