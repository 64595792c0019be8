# gdbext/glibc/model.py - the records of a located glibc heap: overrides,
# limits, arenas, tcaches, mmapped chunks and the GlibcHeap that holds them.
"""Data model of a located glibc heap (filled by :mod:`~gdbext.glibc.locate`)."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .tunables import Tunables

from ..errors import GdbextError
from ..memory import MemorySource
from .findings import Findings
from .layouts import GlibcVersion, Layout, LayoutMismatch, StructLayout
from .segments import ByteOrder, HeapMemory, HeapSegment
from .version import VersionInfo

__all__ = [
    "HeapNotFoundError",
    "Overrides",
    "Limits",
    "ArenaInfo",
    "TcacheInfo",
    "MmappedChunk",
    "GlibcHeap",
    "struct_field",
    "struct_words",
]


class HeapNotFoundError(GdbextError):
    """No glibc heap could be located (no main_arena, or malloc never ran)."""


@dataclass
class Overrides:
    """Addresses and facts a user (or a gdb parameter) imposes; None means "find it".

    :ivar tcaches: ``tcache_perthread_struct`` addresses, e.g. the value of
        each thread's TLS ``tcache`` as evaluated by a gdb adapter.
    :ivar debug_offsets: ``{struct: {field: offset, "__sizeof__": n}}`` from
        debug info, cross-checked against (and preferred to) the tables.
    """

    version: Union[None, str, Tuple[int, int], GlibcVersion] = None
    main_arena: Optional[int] = None
    mp: Optional[int] = None
    sbrk_base: Optional[int] = None
    tcaches: Optional[Sequence[int]] = None
    tcache_key: Optional[int] = None
    global_max_fast: Optional[int] = None
    heap_max_size: Optional[int] = None
    malloc_alignment: Optional[int] = None
    debug_offsets: Optional[Mapping[str, Mapping[str, int]]] = None
    scan_mmapped: bool = True
    tcache_heuristic: bool = True


@dataclass(frozen=True)
class Limits:
    """Bounds of every walk over target-controlled links."""

    max_arenas: int = 1024
    max_heaps: int = 1 << 16  #: heap_info heaps per arena
    max_list_nodes: int = 1 << 26  #: nodes per free list (also capped by heap size)
    max_mmap_pages: int = 1 << 20  #: pages probed for mmapped chunk headers
    max_mmapped: int = 1 << 20
    max_resync_bytes: int = 256 << 20  #: bytes scanned per re-synchronisation
    scan_budget: int = 64 << 20  #: bytes of data scanned for main_arena / mp_


@dataclass
class ArenaInfo:
    """One ``malloc_state`` and its heap segments.

    :ivar fastbins: raw ``fastbinsY`` heads.
    :ivar bins: raw ``bins[]`` words (``fd, bk`` pairs of bins 1..127).
    """

    address: int
    index: int
    is_main: bool
    top: int
    top_size: int
    next: int
    system_mem: int
    flags: int
    fastbins: Tuple[int, ...]
    bins: Tuple[int, ...]
    segments: List[HeapSegment] = field(default_factory=list)
    heap_infos: List[int] = field(default_factory=list)  #: oldest first
    #: False for a main_arena that malloc never set up (the program never called it):
    #: top and sbrk_base are 0 and the bins are still zero-filled, which is not corruption.
    initialized: bool = True

    @property
    def label(self) -> str:
        return "main_arena" if self.is_main else f"arena[{self.index}]@{self.address:#x}"


@dataclass
class TcacheInfo:
    """One thread's ``tcache_perthread_struct``."""

    address: int
    how: str  #: "override"/"tls" or "first-chunk"
    counts: Tuple[int, ...]
    entries: Tuple[int, ...]
    arena: Optional[int] = None  #: the arena whose heap holds it


@dataclass(frozen=True)
class MmappedChunk:
    """A chunk served by mmap (IS_MMAPPED), outside every arena."""

    address: int
    size: int
    prev_size: int


@dataclass
class GlibcHeap:
    """Everything located about one process's glibc heap."""

    source: MemorySource
    version: VersionInfo
    layout: Layout
    main_arena: int
    main_arena_how: str
    mp: Optional[int]
    mp_how: str
    mp_values: Dict[str, int]
    sbrk_base: Optional[int]
    heap_max_size: int
    global_max_fast: int
    arenas: List[ArenaInfo]
    tcaches: List[TcacheInfo]
    mmapped: List[MmappedChunk]
    memory: HeapMemory
    limits: Limits
    tcache_key: Optional[int] = None
    tcache_key_how: str = "unknown"
    violations: Findings = field(default_factory=Findings)
    notes: List[str] = field(default_factory=list)
    layout_mismatches: List[LayoutMismatch] = field(default_factory=list)
    #: GLIBC_TUNABLES as found in the image (empty when absent)
    tunables: Tunables = field(default_factory=Tunables)

    @property
    def segments(self) -> List[HeapSegment]:
        return [seg for arena in self.arenas for seg in arena.segments]

    def arena_at(self, address: int) -> Optional[ArenaInfo]:
        for arena in self.arenas:
            if arena.address == address:
                return arena
        return None

    def arena_of(self, chunk: int) -> Optional[ArenaInfo]:
        """The arena whose segment holds ``chunk``."""
        seg = self.memory.segment_of(chunk)
        if seg is None:
            return None
        return self.arena_at(seg.arena)


# -- helpers ---------------------------------------------------------------------


def struct_words(data: bytes, layout: Layout) -> Tuple[int, ...]:
    ps = layout.pointer_size
    code = ("<" if layout.byteorder == "little" else ">") + ("Q" if ps == 8 else "I")
    n = len(data) // ps
    return struct.unpack_from(code[0] + code[1] * n, data, 0)


def struct_field(data: bytes, layout_struct: StructLayout, name: str, byteorder: ByteOrder, index: int = 0) -> int:
    size = layout_struct.elem_size(name)
    off = layout_struct[name] + index * size
    return int.from_bytes(data[off : off + size], byteorder)
