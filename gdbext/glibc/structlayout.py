# gdbext/glibc/structlayout.py - the Layout object the glibc model works with:
# field offsets of one target's malloc structs and malloc.c's size arithmetic.
"""Struct layouts and size arithmetic of glibc malloc for one target.

:func:`gdbext.glibc.layouts.layout_for` builds a :class:`Layout` from the
release table; this module holds what it builds: :class:`StructLayout` (C
alignment rules turning ``(field, C type, count)`` rows into offsets and a
``construct`` declaration) and :class:`Layout` (the structs, the release's
facts, and the malloc.c macros as methods).  Nothing here names a release:
every release-dependent answer comes from :attr:`Layout.facts`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Dict, Mapping, Optional, Sequence, Tuple

import construct

from ..errors import SpecError

if TYPE_CHECKING:  # pragma: no cover
    from .layouts import GlibcVersion, ReleaseFacts

__all__ = [
    "StructLayout",
    "Layout",
    "build_struct",
    "PREV_INUSE",
    "IS_MMAPPED",
    "NON_MAIN_ARENA",
    "SIZE_BITS",
    "NBINS",
    "NSMALLBINS",
    "BINMAPSIZE",
    "TCACHE_MAX_BINS",
    "Row",
    "C_PTR",
    "C_SIZE_T",
    "C_INT",
    "C_UINT",
    "C_U16",
    "C_CHAR",
]

#: chunk size flag bits
PREV_INUSE = 0x1
IS_MMAPPED = 0x2
NON_MAIN_ARENA = 0x4
SIZE_BITS = PREV_INUSE | IS_MMAPPED | NON_MAIN_ARENA

NBINS = 128
NSMALLBINS = 64
BINMAPSIZE = 4
#: TCACHE_MAX_BINS of 2.26-2.41 (and TCACHE_SMALL_BINS since); a layout's own
#: count of tcache bins is :attr:`Layout.tcache_bins`
TCACHE_MAX_BINS = 64

#: C types of the tables: (size, signed) with size None meaning "pointer sized".
C_PTR = "ptr"
C_SIZE_T = "size_t"  # INTERNAL_SIZE_T, size_t, unsigned long, uintptr_t
C_INT = "int"
C_UINT = "uint"
C_U16 = "u16"
C_CHAR = "char"

Row = Tuple[str, str, int]  # (field, ctype, count)

# -- building ------------------------------------------------------------------


@dataclass(frozen=True)
class StructLayout:
    """Offsets and sizes of one C struct for one target.

    ``offsets[name]`` is the byte offset of a field, ``sizes[name]`` its total
    size (element size times count), ``counts[name]`` its array length (1 for
    scalars) and ``size`` the ``sizeof`` of the struct.
    """

    name: str
    offsets: Mapping[str, int]
    sizes: Mapping[str, int]
    counts: Mapping[str, int]
    size: int
    decl: "construct.Construct" = field(compare=False, repr=False)

    def __getitem__(self, fieldname: str) -> int:
        return self.offsets[fieldname]

    def __contains__(self, fieldname: object) -> bool:
        return fieldname in self.offsets

    def elem_size(self, fieldname: str) -> int:
        """Size of one element of ``fieldname``."""
        return self.sizes[fieldname] // self.counts[fieldname]

    def parse(self, data: bytes) -> construct.Container:
        """Decode one whole struct (for display; not for hot paths)."""
        return self.decl.parse(bytes(data[: self.size]))


def _ctype(ctype: str, psize: int, little: bool) -> Tuple[int, bool, construct.Construct]:
    """(size, signed, construct field) of one C type."""
    if ctype in (C_PTR, C_SIZE_T):
        size, signed = psize, False
    elif ctype in (C_INT, C_UINT):
        size, signed = 4, ctype == C_INT
    elif ctype == C_U16:
        size, signed = 2, False
    elif ctype == C_CHAR:
        size, signed = 1, False
    else:  # pragma: no cover - table typo
        raise SpecError(f"unknown C type {ctype!r} in a glibc layout table")
    return size, signed, construct.BytesInteger(size, signed=signed, swapped=little)


def build_struct(name: str, rows: Sequence[Row], psize: int, little: bool, align_to: int = 0) -> StructLayout:
    """C layout of ``rows``: natural alignment, struct padded to its alignment."""
    offsets: Dict[str, int] = {}
    sizes: Dict[str, int] = {}
    counts: Dict[str, int] = {}
    subcons = []
    off = 0
    max_align = 1
    for fname, ctype, count in rows:
        size, _signed, con = _ctype(ctype, psize, little)
        align = size
        max_align = max(max_align, align)
        pad = -off % align
        if pad:
            subcons.append(construct.Padding(pad))
            off += pad
        offsets[fname] = off
        sizes[fname] = size * count
        counts[fname] = count
        subcons.append(fname / (construct.Array(count, con) if count > 1 else con))
        off += size * count
    total = off + (-off % max_align)
    if align_to:
        total += -total % align_to
    if total > off:
        subcons.append(construct.Padding(total - off))
    return StructLayout(name, offsets, sizes, counts, total, construct.Struct(*subcons))


@dataclass(frozen=True)
class Layout:
    """Everything the glibc model needs to know about one target's malloc.

    Plain attributes (``minsize``, ``tcache_chunk_size``, ...) are the
    precomputed constants of the hot paths; the ``StructLayout`` members give
    field offsets by name.
    """

    version: GlibcVersion
    pointer_size: int
    byteorder: str
    malloc_alignment: int
    facts: ReleaseFacts
    malloc_chunk: StructLayout
    malloc_state: StructLayout
    heap_info: StructLayout
    malloc_par: StructLayout
    tcache_perthread: StructLayout
    tcache_entry: StructLayout
    #: how this layout was obtained: "table" or "table+debuginfo"
    source: str = "table"
    _ranges: Dict[int, Tuple[int, int]] = field(default_factory=dict, compare=False, repr=False)

    # -- derived constants (precomputed: the walkers read them in loops) --------
    #: SIZE_SZ: sizeof(INTERNAL_SIZE_T)
    size_sz: int = field(init=False, compare=False)
    #: CHUNK_HDR_SZ: offset of the user data in a chunk
    chunk_hdr: int = field(init=False, compare=False)
    #: MALLOC_ALIGN_MASK
    align_mask: int = field(init=False, compare=False)
    #: MINSIZE: the smallest legal chunk
    minsize: int = field(init=False, compare=False)
    #: ``p & align_mask`` of every properly aligned chunk address
    chunk_align_residue: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "size_sz", self.pointer_size)
        setattr_(self, "chunk_hdr", 2 * self.pointer_size)
        mask = self.malloc_alignment - 1
        setattr_(self, "align_mask", mask)
        min_chunk = self.malloc_chunk["fd_nextsize"]
        setattr_(self, "minsize", (min_chunk + mask) & ~mask)
        setattr_(self, "chunk_align_residue", (-2 * self.pointer_size) & mask)

    @property
    def has_fastbins(self) -> bool:
        """Whether the release has fastbins at all (not before 2.43)."""
        return self.facts.fastbins

    @property
    def nfastbins(self) -> int:
        return self.malloc_state.counts["fastbinsY"] if self.facts.fastbins else 0

    @property
    def safe_linking(self) -> bool:
        """2.32+: tcache next / fastbin fd are PROTECT_PTR-mangled."""
        return self.facts.safe_linking

    @property
    def has_tcache_key(self) -> bool:
        return "key" in self.tcache_entry

    @property
    def random_tcache_key(self) -> bool:
        """2.34+: the key is the random ``tcache_key``, else the tcache address."""
        return self.facts.tcache_key == "random"

    @property
    def tcache_counts_field(self) -> str:
        """``counts`` (chunks held), or ``num_slots`` (free slots left, 2.42+)."""
        return "num_slots" if self.facts.tcache_num_slots else "counts"

    @property
    def tcache_count_size(self) -> int:
        return self.tcache_perthread.elem_size(self.tcache_counts_field)

    @property
    def tcache_bins(self) -> int:
        """TCACHE_MAX_BINS of this release (64; 76 from 2.42)."""
        return self.tcache_perthread.counts["entries"]

    @property
    def tcache_small_bins(self) -> int:
        return self.facts.tcache_small_bins

    @property
    def mp_tcache_bins_field(self) -> str:
        """``mp_.tcache_bins`` (``tcache_small_bins`` from 2.42)."""
        return "tcache_small_bins" if self.facts.tcache_large_bins else "tcache_bins"

    @property
    def has_huge_pages(self) -> bool:
        """2.35+: heap_max_size() follows ``mp_.hp_pagesize``."""
        return self.facts.mp_hugepages

    @property
    def default_tcache_count(self) -> int:
        """TCACHE_FILL_COUNT: chunks per tcache bin unless tuned (7; 16 from 2.43)."""
        return self.facts.tcache_fill_count

    @property
    def default_tcache_max_bytes(self) -> int:
        """The default ``mp_.tcache_max_bytes``."""
        last = self.facts.tcache_small_bins - 1
        if self.facts.tcache_max_bytes_csize:
            return self.tidx2csize(last) + 1
        return self.tidx2csize(last) - self.size_sz  # tidx2usize

    def tcache_held(self, raw: int, fill: int) -> int:
        """Chunks a tcache bin holds from its raw count word: ``counts[i]`` before
        2.42, ``fill - num_slots[i]`` since (may be negative when corrupt)."""
        return fill - raw if self.facts.tcache_num_slots else raw

    def tcache_raw_count(self, held: int, fill: int) -> int:
        """The inverse of :meth:`tcache_held` (what glibc stores)."""
        return fill - held if self.facts.tcache_num_slots else held

    def tcache_index(self, size: int) -> Optional[int]:
        """The tcache bin of a chunk size (small: ``csize2tidx``; 2.42 large
        bins: by bit length), or None when no bin of this release holds it."""
        idx = self.csize2tidx(size)
        small = self.facts.tcache_small_bins
        if idx < small:
            return idx
        if not self.facts.tcache_large_bins:
            return None
        # large_csize2tidx: small + clz(MAX_TCACHE_SMALL_SIZE) - clz(nb), 32-bit clz
        large = small + (size & 0xFFFFFFFF).bit_length() - self.tidx2csize(small - 1).bit_length()
        return large if large < self.tcache_bins else None

    def tcache_max_chunk_for(self, mp_values: Optional[Mapping[str, int]] = None) -> int:
        """Largest chunk size the tcache takes, from ``mp_`` when known (the
        ``glibc.malloc.tcache_max`` tunable changes it), else the default."""
        mp = mp_values or {}
        if self.facts.tcache_max_by_chunk_size:
            limit = mp.get("tcache_max_bytes") or self.default_tcache_max_bytes
            return (limit - 1) & ~self.align_mask  # 2.42+: chunk size < tcache_max_bytes
        nbins = mp.get(self.mp_tcache_bins_field) or TCACHE_MAX_BINS
        return self.tidx2csize(min(nbins, TCACHE_MAX_BINS) - 1)

    @property
    def mmap_trailer(self) -> int:
        """Bytes of an mmapped chunk's mapping past ``chunk + size`` (2.43: CHUNK_HDR_SZ)."""
        return self.chunk_hdr if self.facts.mmap_chunk_trailer else 0

    @property
    def tcache_chunk_size(self) -> int:
        """Chunk size holding a tcache_perthread_struct (0x290 on 2.30+ x86-64)."""
        return self.request2size(self.tcache_perthread.size)

    @property
    def default_heap_max_size(self) -> int:
        """HEAP_MAX_SIZE: 2 * DEFAULT_MMAP_THRESHOLD_MAX (64 MiB on 64-bit)."""
        threshold_max = 4 * 1024 * 1024 * self.pointer_size if self.pointer_size == 8 else 512 * 1024
        return 2 * threshold_max

    @property
    def default_global_max_fast(self) -> int:
        """global_max_fast after ``set_max_fast(DEFAULT_MXFAST)``."""
        mxfast = 64 * self.size_sz // 4
        return (mxfast + self.size_sz) & ~self.align_mask

    @property
    def tcache_max_chunk(self) -> int:
        """Largest chunk size a default tcache holds (0x410 on x86-64; 0x400 on 2.42)."""
        return self.tcache_max_chunk_for(None)

    # -- size arithmetic (malloc.c macros) --------------------------------------
    def request2size(self, req: int) -> int:
        if req + self.size_sz + self.align_mask < self.minsize:
            return self.minsize
        return (req + self.size_sz + self.align_mask) & ~self.align_mask

    def fastbin_index(self, size: int) -> int:
        return (size >> (4 if self.size_sz == 8 else 3)) - 2

    def fastbin_size(self, index: int) -> int:
        """The chunk size a fastbin index holds."""
        return (index + 2) << (4 if self.size_sz == 8 else 3)

    def csize2tidx(self, size: int) -> int:
        return (size - self.minsize + self.malloc_alignment - 1) // self.malloc_alignment

    def tidx2csize(self, index: int) -> int:
        return index * self.malloc_alignment + self.minsize

    @property
    def min_large_size(self) -> int:
        width = self.malloc_alignment
        correction = 1 if self.malloc_alignment > 2 * self.size_sz else 0
        return (NSMALLBINS - correction) * width

    def smallbin_index(self, size: int) -> int:
        correction = 1 if self.malloc_alignment > 2 * self.size_sz else 0
        shift = 4 if self.malloc_alignment == 16 else 3
        return (size >> shift) + correction

    def largebin_index(self, size: int) -> int:
        if self.size_sz == 8:
            if (size >> 6) <= 48:
                return 48 + (size >> 6)
        elif self.malloc_alignment == 16:  # largebin_index_32_big (i386)
            if (size >> 6) <= 45:
                return 49 + (size >> 6)
        elif (size >> 6) <= 38:
            return 56 + (size >> 6)
        if (size >> 9) <= 20:
            return 91 + (size >> 9)
        if (size >> 12) <= 10:
            return 110 + (size >> 12)
        if (size >> 15) <= 4:
            return 119 + (size >> 15)
        if (size >> 18) <= 2:
            return 124 + (size >> 18)
        return 126

    def bin_index(self, size: int) -> int:
        """The regular bin (2..126) a free chunk of ``size`` belongs in."""
        if size < self.min_large_size:
            return self.smallbin_index(size)
        return self.largebin_index(size)

    def bin_at(self, arena: int, index: int) -> int:
        """Address of the fake chunk heading bin ``index`` (1 = unsorted)."""
        return arena + self.malloc_state["bins"] + (index - 1) * 2 * self.pointer_size - 2 * self.pointer_size

    def aligned_ok(self, chunk: int) -> bool:
        """``misaligned_chunk`` negated: chunk2mem(p) is MALLOC_ALIGNMENT-aligned."""
        return chunk & self.align_mask == self.chunk_align_residue

    def bin_size_range(self, index: int) -> Tuple[int, int]:
        """``[lo, hi)`` of the chunk sizes regular bin ``index`` (2..126) holds."""
        cached = self._ranges.get(index)
        if cached is None:
            cached = self._ranges[index] = self._bin_range(index)
        return cached

    def _bin_range(self, index: int) -> Tuple[int, int]:
        step = self.malloc_alignment

        def first_at_least(target: int) -> int:
            lo, hi = self.minsize, 1 << (8 * self.pointer_size - 1)
            while lo < hi:  # bin_index is monotonic in the size
                mid = ((lo + hi) // 2) & ~self.align_mask
                if mid < lo:
                    mid = lo
                if self.bin_index(mid) >= target:
                    hi = mid
                else:
                    lo = mid + step
            return lo

        lo = first_at_least(index)
        hi = first_at_least(index + 1) if index < NBINS - 2 else 1 << (8 * self.pointer_size)
        return lo, hi

    def first_chunk(self, address: int) -> int:
        """The first chunk glibc would place at or after ``address``."""
        return address + (-(address + self.chunk_hdr) & self.align_mask)

    def with_struct(self, name: str, struct: StructLayout, source: str) -> "Layout":
        changes: Dict[str, object] = {name: struct, "source": source}
        return replace(self, **changes)  # type: ignore[arg-type]
