# gdbext/glibc/layouts.py - glibc malloc's structures, one declarative table per
# struct and release range (2.27-2.41, x86-64 first; pointer size a parameter).
"""glibc malloc structure layouts, by glibc release.

Each structure is declared once as a table of ``(field, C type, count)`` rows
per release range.  :func:`layout_for` turns the tables into a :class:`Layout`
for one target: C alignment rules give the field offsets (precomputed plain
ints, which the walkers use; they never call construct per chunk) and the same
table gives a ``construct`` declaration for decoding a whole struct for display.

Divergences between releases (checked against glibc's ``malloc/malloc.c`` and
``malloc/arena.c`` at each tag; 2.36 also against the DWARF of Debian's
libc6-dbg):

* 2.26: tcache appears (``tcache_perthread_struct``: ``char counts[64]``).
* 2.27: ``malloc_state.have_fastchunks`` (an ``int``) replaces the
  FASTCHUNKS_BIT of ``flags``.
* 2.29: ``tcache_entry.key`` added; it holds the owning
  ``tcache_perthread_struct *`` and marks a chunk as sitting in a tcache.
* 2.30: ``tcache_perthread_struct.counts`` becomes ``uint16_t`` (BZ #24531), so
  the struct grows from 0x240 to 0x280 bytes (chunk 0x250 -> 0x290 on x86-64).
* 2.32: safe-linking: tcache ``next`` and fastbin ``fd`` are stored as
  ``PROTECT_PTR(pos, ptr) = (pos >> 12) ^ ptr``.
* 2.34: ``tcache_entry.key`` becomes a ``uintptr_t`` holding the random
  process-wide ``tcache_key`` (no longer the tcache address).
* 2.35: huge page support: ``malloc_par`` gains ``thp_pagesize``,
  ``hp_pagesize`` and ``hp_flags`` after ``arena_max`` (under HAVE_TUNABLES until
  2.39 made tunables unconditional), moving ``sbrk_base`` from 0x48 to 0x60 on
  x86-64; ``heap_info`` gains ``pagesize`` (0x20 -> 0x30 bytes on x86-64) and
  HEAP_MAX_SIZE becomes ``heap_max_size()`` (``4 * mp_.hp_pagesize`` when huge
  pages are in use).
* 2.42 (outside this table): 76 tcache bins, ``num_slots`` instead of counts.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import construct

from ..errors import SpecError

__all__ = [
    "GlibcVersion",
    "MIN_VERSION",
    "MAX_VERSION",
    "StructLayout",
    "Layout",
    "LayoutMismatch",
    "layout_for",
    "cross_check",
    "PREV_INUSE",
    "IS_MMAPPED",
    "NON_MAIN_ARENA",
    "SIZE_BITS",
    "NBINS",
    "NSMALLBINS",
    "TCACHE_MAX_BINS",
]

#: chunk size flag bits
PREV_INUSE = 0x1
IS_MMAPPED = 0x2
NON_MAIN_ARENA = 0x4
SIZE_BITS = PREV_INUSE | IS_MMAPPED | NON_MAIN_ARENA

NBINS = 128
NSMALLBINS = 64
BINMAPSIZE = 4
TCACHE_MAX_BINS = 64


class GlibcVersion(Tuple[int, int]):
    """A glibc release as ``(major, minor)``; compares like a tuple."""

    def __new__(cls, major: int, minor: int) -> "GlibcVersion":
        return super().__new__(cls, (major, minor))

    @property
    def major(self) -> int:
        return self[0]

    @property
    def minor(self) -> int:
        return self[1]

    @classmethod
    def parse(cls, text: "str | Tuple[int, int] | GlibcVersion") -> "GlibcVersion":
        """``"2.36"``, ``"2.36.9000"``, ``(2, 36)`` -> ``GlibcVersion(2, 36)``.

        :raises SpecError: when the text is not a version.
        """
        if isinstance(text, tuple):
            return cls(int(text[0]), int(text[1]))
        parts = str(text).strip().split(".")
        try:
            return cls(int(parts[0]), int(parts[1]))
        except (IndexError, ValueError):
            raise SpecError(f"not a glibc version: {text!r}") from None

    def __str__(self) -> str:
        return f"{self[0]}.{self[1]}"

    def __repr__(self) -> str:
        return f"GlibcVersion({self[0]}, {self[1]})"


MIN_VERSION = GlibcVersion(2, 27)
MAX_VERSION = GlibcVersion(2, 41)

# C types of the tables: (size, signed) with size None meaning "pointer sized".
_PTR = "ptr"
_SIZE_T = "size_t"  # INTERNAL_SIZE_T, size_t, unsigned long, uintptr_t
_INT = "int"
_UINT = "uint"
_U16 = "u16"
_CHAR = "char"

_Row = Tuple[str, str, int]  # (field, ctype, count)

# -- the tables --------------------------------------------------------------


def _malloc_chunk_rows(version: GlibcVersion) -> List[_Row]:
    return [
        ("mchunk_prev_size", _SIZE_T, 1),
        ("mchunk_size", _SIZE_T, 1),
        ("fd", _PTR, 1),
        ("bk", _PTR, 1),
        ("fd_nextsize", _PTR, 1),  # large bins only
        ("bk_nextsize", _PTR, 1),
    ]


def _malloc_state_rows(version: GlibcVersion, nfastbins: int) -> List[_Row]:
    rows: List[_Row] = [("mutex", _INT, 1), ("flags", _INT, 1)]
    if version >= (2, 27):
        rows.append(("have_fastchunks", _INT, 1))  # 2.27: was FASTCHUNKS_BIT in flags
    rows += [
        ("fastbinsY", _PTR, nfastbins),
        ("top", _PTR, 1),
        ("last_remainder", _PTR, 1),
        ("bins", _PTR, NBINS * 2 - 2),
        ("binmap", _UINT, BINMAPSIZE),
        ("next", _PTR, 1),
        ("next_free", _PTR, 1),
        ("attached_threads", _SIZE_T, 1),
        ("system_mem", _SIZE_T, 1),
        ("max_system_mem", _SIZE_T, 1),
    ]
    return rows


def _heap_info_rows(version: GlibcVersion) -> List[_Row]:
    rows: List[_Row] = [
        ("ar_ptr", _PTR, 1),
        ("prev", _PTR, 1),
        ("size", _SIZE_T, 1),
        ("mprotect_size", _SIZE_T, 1),
    ]
    if version >= (2, 35):
        rows.append(("pagesize", _SIZE_T, 1))  # 2.35: huge page arenas
    return rows  # pad[] is added by layout_for (alignment rule, not a field)


def _malloc_par_rows(version: GlibcVersion) -> List[_Row]:
    rows: List[_Row] = [
        ("trim_threshold", _SIZE_T, 1),
        ("top_pad", _SIZE_T, 1),
        ("mmap_threshold", _SIZE_T, 1),
        ("arena_test", _SIZE_T, 1),
        ("arena_max", _SIZE_T, 1),
    ]
    if version >= (2, 35):
        # 2.35: transparent/huge page tunables (HAVE_TUNABLES; always on since 2.39)
        rows += [("thp_pagesize", _SIZE_T, 1), ("hp_pagesize", _SIZE_T, 1), ("hp_flags", _INT, 1)]
    rows += [
        ("n_mmaps", _INT, 1),
        ("n_mmaps_max", _INT, 1),
        ("max_n_mmaps", _INT, 1),
        ("no_dyn_threshold", _INT, 1),
        ("mmapped_mem", _SIZE_T, 1),
        ("max_mmapped_mem", _SIZE_T, 1),
        ("sbrk_base", _PTR, 1),
        ("tcache_bins", _SIZE_T, 1),  # USE_TCACHE (2.26+)
        ("tcache_max_bytes", _SIZE_T, 1),
        ("tcache_count", _SIZE_T, 1),
        ("tcache_unsorted_limit", _SIZE_T, 1),
    ]
    return rows


def _tcache_perthread_rows(version: GlibcVersion) -> List[_Row]:
    # 2.30: counts char -> uint16_t
    counts = _U16 if version >= (2, 30) else _CHAR
    return [("counts", counts, TCACHE_MAX_BINS), ("entries", _PTR, TCACHE_MAX_BINS)]


def _tcache_entry_rows(version: GlibcVersion) -> List[_Row]:
    rows: List[_Row] = [("next", _PTR, 1)]
    if version >= (2, 34):
        rows.append(("key", _SIZE_T, 1))  # 2.34: random uintptr_t tcache_key
    elif version >= (2, 29):
        rows.append(("key", _PTR, 1))  # 2.29: the owning tcache_perthread_struct *
    return rows


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
    if ctype in (_PTR, _SIZE_T):
        size, signed = psize, False
    elif ctype in (_INT, _UINT):
        size, signed = 4, ctype == _INT
    elif ctype == _U16:
        size, signed = 2, False
    elif ctype == _CHAR:
        size, signed = 1, False
    else:  # pragma: no cover - table typo
        raise SpecError(f"unknown C type {ctype!r} in a glibc layout table")
    return size, signed, construct.BytesInteger(size, signed=signed, swapped=little)


def _build(name: str, rows: Sequence[_Row], psize: int, little: bool, align_to: int = 0) -> StructLayout:
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
    def nfastbins(self) -> int:
        return self.malloc_state.counts["fastbinsY"]

    @property
    def safe_linking(self) -> bool:
        """2.32+: tcache next / fastbin fd are PROTECT_PTR-mangled."""
        return self.version >= (2, 32)

    @property
    def has_tcache_key(self) -> bool:
        return "key" in self.tcache_entry

    @property
    def random_tcache_key(self) -> bool:
        """2.34+: the key is the random ``tcache_key``, else the tcache address."""
        return self.version >= (2, 34)

    @property
    def tcache_count_size(self) -> int:
        return self.tcache_perthread.elem_size("counts")

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
        """Largest chunk size a default tcache holds (0x410 on x86-64)."""
        return self.tidx2csize(TCACHE_MAX_BINS - 1)

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


_STRUCTS = ("malloc_chunk", "malloc_state", "heap_info", "malloc_par", "tcache_perthread", "tcache_entry")
#: names a debug-info adapter uses for our structs (DWARF tag name)
DWARF_NAMES = {
    "malloc_chunk": "malloc_chunk",
    "malloc_state": "malloc_state",
    "heap_info": "_heap_info",
    "malloc_par": "malloc_par",
    "tcache_perthread": "tcache_perthread_struct",
    "tcache_entry": "tcache_entry",
}

_CACHE: Dict[Tuple[GlibcVersion, int, str, int], Layout] = {}


def layout_for(
    version: "GlibcVersion | str | Tuple[int, int]",
    pointer_size: int = 8,
    byteorder: str = "little",
    malloc_alignment: Optional[int] = None,
) -> Layout:
    """The table layout of ``version`` for a target.

    :param version: glibc release; releases outside 2.27-2.41 get the nearest
        table (callers should warn, see :data:`MIN_VERSION`).
    :param pointer_size: 8 (LP64) or 4 (ILP32).
    :param byteorder: ``"little"`` or ``"big"``.
    :param malloc_alignment: MALLOC_ALIGNMENT; default ``2 * SIZE_SZ``
        (pass 16 for i386, whose glibc raised it in 2.26).
    :raises SpecError: for an unsupported pointer size.
    """
    ver = GlibcVersion.parse(version)
    if pointer_size not in (4, 8):
        raise SpecError(f"unsupported pointer size {pointer_size}")
    align = malloc_alignment or 2 * pointer_size
    key = (ver, pointer_size, byteorder, align)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    little = byteorder == "little"
    eff = max(min(ver, MAX_VERSION), GlibcVersion(2, 26))
    size_sz = pointer_size
    # NFASTBINS = fastbin_index(request2size(MAX_FAST_SIZE)) + 1
    max_fast = 80 * size_sz // 4
    req = (max_fast + size_sz + align - 1) & ~(align - 1)
    nfast = (req >> (4 if size_sz == 8 else 3)) - 2 + 1
    # heap_info's pad makes sizeof(heap_info) + 2 * SIZE_SZ a multiple of MALLOC_ALIGNMENT
    hi_rows = _heap_info_rows(eff)
    hi = _build("heap_info", hi_rows, pointer_size, little)
    hi_pad = -(hi.size + 2 * size_sz) % align
    if hi_pad:
        hi = _build("heap_info", hi_rows + [("pad", _CHAR, hi_pad)], pointer_size, little)
    layout = Layout(
        version=ver,
        pointer_size=pointer_size,
        byteorder=byteorder,
        malloc_alignment=align,
        malloc_chunk=_build("malloc_chunk", _malloc_chunk_rows(eff), pointer_size, little),
        malloc_state=_build("malloc_state", _malloc_state_rows(eff, nfast), pointer_size, little),
        heap_info=hi,
        malloc_par=_build("malloc_par", _malloc_par_rows(eff), pointer_size, little),
        tcache_perthread=_build("tcache_perthread", _tcache_perthread_rows(eff), pointer_size, little),
        tcache_entry=_build("tcache_entry", _tcache_entry_rows(eff), pointer_size, little),
    )
    _CACHE[key] = layout
    return layout


@dataclass(frozen=True)
class LayoutMismatch:
    """A field whose offset (or a struct whose size) differs from debug info."""

    struct: str
    field: str  #: "" for the struct size, else the field name
    table: Optional[int]  #: our value, None when the table lacks the field
    debug: Optional[int]  #: debug info's value, None when debug info lacks it

    def __str__(self) -> str:
        what = f"{self.struct}.{self.field}" if self.field else f"sizeof({self.struct})"
        return f"{what}: table says {self.table}, debug info says {self.debug}"


SIZEOF_KEY = "__sizeof__"


def cross_check(
    layout: Layout, debug: Mapping[str, Mapping[str, int]], adopt: bool = True
) -> Tuple[Layout, List[LayoutMismatch]]:
    """Compare ``layout`` with offsets from debug info; optionally prefer the latter.

    :param debug: ``{struct: {field: offset, "__sizeof__": size}}``, struct named
        as in :data:`DWARF_NAMES` keys or values (a gdb adapter fills it from
        ``gdb.Type.fields()``); missing structs are skipped.
    :param adopt: return a layout using debug info's offsets where they differ
        (DWARF describes the real build: a distribution patch, tunables off).
    :returns: ``(layout, mismatches)``.
    """
    mismatches: List[LayoutMismatch] = []
    result = layout
    for name in _STRUCTS:
        dbg = debug.get(name)
        if dbg is None:
            dbg = debug.get(DWARF_NAMES[name])
        if not dbg:
            continue
        ours: StructLayout = getattr(layout, name)
        offsets = dict(ours.offsets)
        changed = False
        for fname, off in ours.offsets.items():
            if fname == "pad":
                continue
            theirs = dbg.get(fname)
            if theirs is None:
                mismatches.append(LayoutMismatch(name, fname, off, None))
            elif theirs != off:
                mismatches.append(LayoutMismatch(name, fname, off, theirs))
                offsets[fname] = theirs
                changed = True
        for fname, theirs in dbg.items():
            if fname != SIZEOF_KEY and fname not in ours.offsets and fname != "pad":
                mismatches.append(LayoutMismatch(name, fname, None, theirs))
        size = ours.size
        dsize = dbg.get(SIZEOF_KEY)
        if dsize is not None and dsize != ours.size:
            mismatches.append(LayoutMismatch(name, "", ours.size, dsize))
            size = dsize
            changed = True
        if adopt and changed:
            patched = StructLayout(name, offsets, ours.sizes, ours.counts, size, ours.decl)
            result = result.with_struct(name, patched, "table+debuginfo")
    return result, mismatches
