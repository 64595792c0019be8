# gdbext/glibc/__init__.py - the glibc (ptmalloc2) heap model: layouts by
# release, version detection, location, free-list index, walker and checks.
"""glibc malloc heap model, GDB-free, over any :class:`~gdbext.memory.MemorySource`.

Typical use::

    heap = locate_heap(source)                 # arenas, heaps, tcaches, mmapped chunks
    walker = HeapWalker(heap)
    summary = walker.summary()                 # counts per arena/state/size, no per-chunk objects
    for chunk in walker.chunks(states={"free"}):
        ...
    report = check_heap(heap)                  # every violation, each once

Modules: :mod:`.layouts` (struct tables per release), :mod:`.version`,
:mod:`.heuristics` (symbol-less location), :mod:`.locate` (with :mod:`.model`,
:mod:`.tcaches`, :mod:`.mmapped`), :mod:`.segments` (bulk reads),
:mod:`.freelists`, :mod:`.scan`, :mod:`.walk`, :mod:`.checks`,
:mod:`.findings`.
"""
from __future__ import annotations

from .checks import CHECK_IDS, CheckReport, check_heap
from .findings import Findings, Violation
from .freelists import FreeIndex, FreeList, build_free_index
from .layouts import GlibcVersion, Layout, LayoutMismatch, cross_check, layout_for
from .locate import ArenaInfo, GlibcHeap, HeapNotFoundError, Limits, MmappedChunk, Overrides, TcacheInfo, ThreadRegs, locate_heap
from .segments import HeapMemory, HeapSegment
from .version import VersionInfo, detect_version
from .walk import STATES, ArenaSummary, Chunk, HeapSummary, HeapWalker, Unparsed

__all__ = [
    "CHECK_IDS",
    "CheckReport",
    "check_heap",
    "Findings",
    "Violation",
    "FreeIndex",
    "FreeList",
    "build_free_index",
    "GlibcVersion",
    "Layout",
    "LayoutMismatch",
    "cross_check",
    "layout_for",
    "ArenaInfo",
    "GlibcHeap",
    "HeapNotFoundError",
    "Limits",
    "MmappedChunk",
    "Overrides",
    "TcacheInfo",
    "ThreadRegs",
    "locate_heap",
    "HeapMemory",
    "HeapSegment",
    "VersionInfo",
    "detect_version",
    "STATES",
    "ArenaSummary",
    "Chunk",
    "HeapSummary",
    "HeapWalker",
    "Unparsed",
]
