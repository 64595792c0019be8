# gdbext/glibc/layouts.py - glibc malloc's structures and release facts, one
# declarative table (2.27-2.43, x86-64 first; pointer size a parameter).
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
* 2.41: free() of a chunk too big for a fastbin whose tcache bin is full puts
  it straight into its small bin (no longer the unsorted bin).
* 2.42: large tcache bins: ``TCACHE_SMALL_BINS`` 64 plus ``TCACHE_LARGE_BINS``
  12 (76 bins; bin 64 + i holds chunks of bit length 11 + i, up to 4 MiB,
  kept ordered by size, smallest first), used only when the
  ``glibc.malloc.tcache_max`` tunable raises ``mp_.tcache_max_bytes``;
  ``counts[]`` becomes ``num_slots[]`` and counts *down* (free slots left,
  ``tcache_count - chunks held``), so the struct is 0x2f8 bytes (chunk 0x300);
  ``mp_.tcache_bins`` is renamed ``tcache_small_bins`` (same place); the
  default ``tcache_max_bytes`` became ``tidx2usize(63)`` = 0x408 compared with
  ``<`` against the chunk size, so the default tcache ends at 0x400.
* 2.43: fastbins are gone (``have_fastchunks`` and ``fastbinsY`` leave
  ``malloc_state``: top moves from 0x60 to 0x08, the struct from 0x898 to
  0x840 on x86-64; every fastbin abort message left with them);
  ``TCACHE_FILL_COUNT`` 7 -> 16; ``tcache_max_bytes`` default is
  ``tidx2csize(63) + 1`` (0x410 cached again); ``malloc_par`` gains ``enum
  thp_mode`` after ``arena_max`` (everything after it moves by 8:
  ``sbrk_base`` 0x60 -> 0x68); an mmapped chunk's size no longer covers its
  mapping's last ``CHUNK_HDR_SZ`` bytes (they hold a fake next header, like a
  heap chunk); a thread's ``tcache`` is never NULL but may point to a zeroed
  static dummy in libc.  Checked against the DWARF of Debian's libc6-dbg
  2.43-7.

Every fact that differs between releases is one entry of :data:`RELEASES`
(what changed, from which release on); the struct tables and the rest of the
model ask :class:`ReleaseFacts`, never compare version numbers themselves.
Adding a release is adding its row there (see docs/heapwalk.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import construct

from ..errors import SpecError

__all__ = [
    "GlibcVersion",
    "ReleaseFacts",
    "RELEASES",
    "facts_for",
    "first_release",
    "release_in",
    "table_releases",
    "releases_where",
    "shape_representatives",
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
#: TCACHE_MAX_BINS of 2.26-2.41 (and TCACHE_SMALL_BINS since); a layout's own
#: count of tcache bins is :attr:`Layout.tcache_bins`
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


# -- the release table -------------------------------------------------------


@dataclass(frozen=True)
class ReleaseFacts:
    """What one glibc release's malloc looks like, as the model needs it.

    Built by :func:`facts_for` from :data:`RELEASES`: each row changes some
    facts from its release on; the defaults are glibc 2.26's.
    """

    version: "GlibcVersion"
    #: 2.27: ``malloc_state.have_fastchunks`` replaces FASTCHUNKS_BIT of flags
    have_fastchunks: bool = False
    #: fastbins exist (``fastbinsY``); 2.43 removed them
    fastbins: bool = True
    #: ``tcache_entry.key``: "none", "tcache" (2.29: the owning struct) or "random" (2.34)
    tcache_key: str = "none"
    #: 2.30: the tcache counts are ``uint16_t`` (else ``char``)
    tcache_counts_u16: bool = False
    #: 2.32: safe-linking of tcache next / fastbin fd
    safe_linking: bool = False
    #: 2.35: ``heap_info.pagesize``
    heap_info_pagesize: bool = False
    #: 2.35: ``malloc_par.thp_pagesize``, ``hp_pagesize``, ``hp_flags``
    mp_hugepages: bool = False
    #: 2.41: free() sends a small chunk to its small bin, not the unsorted bin
    free_small_to_smallbin: bool = False
    #: TCACHE_SMALL_BINS (TCACHE_MAX_BINS before 2.42)
    tcache_small_bins: int = 64
    #: 2.42: TCACHE_LARGE_BINS, size-ordered bins for larger chunks
    tcache_large_bins: int = 0
    #: 2.42: ``num_slots[]`` counting down replaces ``counts[]``
    tcache_num_slots: bool = False
    #: TCACHE_FILL_COUNT: default ``mp_.tcache_count``
    tcache_fill_count: int = 7
    #: 2.42: free()/malloc() cache a chunk when its *chunk* size is below
    #: ``mp_.tcache_max_bytes``; before, when its bin index is below ``mp_.tcache_bins``
    tcache_max_by_chunk_size: bool = False
    #: 2.43: default ``mp_.tcache_max_bytes`` is ``tidx2csize(63) + 1`` (before: ``tidx2usize(63)``)
    tcache_max_bytes_csize: bool = False
    #: 2.43: ``malloc_par.thp_mode`` after ``arena_max``
    mp_thp_mode: bool = False
    #: 2.43: an mmapped chunk's size leaves CHUNK_HDR_SZ of its mapping past its end
    mmap_chunk_trailer: bool = False
    #: 2.43: an idle thread's ``tcache`` points to a static zeroed dummy, not NULL
    tcache_dummy: bool = False
    #: the tcache is its heap's first chunk (made by the thread's first malloc);
    #: 2.43 makes it at the first free(), anywhere in the heap
    tcache_first_chunk: bool = True


#: (first release, facts that change there, why): one row per divergence.
RELEASES: Tuple[Tuple[Tuple[int, int], Mapping[str, object], str], ...] = (
    ((2, 26), {}, "tcache appears (counts char[64], no key)"),
    ((2, 27), {"have_fastchunks": True}, "malloc_state.have_fastchunks"),
    ((2, 29), {"tcache_key": "tcache"}, "tcache_entry.key = the owning tcache"),
    ((2, 30), {"tcache_counts_u16": True}, "tcache counts uint16_t (BZ #24531)"),
    ((2, 32), {"safe_linking": True}, "safe-linking"),
    ((2, 34), {"tcache_key": "random"}, "random process-wide tcache_key"),
    ((2, 35), {"heap_info_pagesize": True, "mp_hugepages": True}, "huge page arenas"),
    ((2, 41), {"free_small_to_smallbin": True}, "free() of a small chunk goes to its small bin"),
    ((2, 42), {"tcache_large_bins": 12, "tcache_num_slots": True,
               "tcache_max_by_chunk_size": True},
     "large tcache bins, num_slots counting down"),
    ((2, 43), {"fastbins": False, "have_fastchunks": False, "tcache_fill_count": 16,
               "tcache_max_bytes_csize": True, "mp_thp_mode": True, "mmap_chunk_trailer": True,
               "tcache_dummy": True, "tcache_first_chunk": False},
     "fastbins removed, tcache fill count 16, malloc_par.thp_mode, mmapped chunk layout"),
)

MIN_VERSION = GlibcVersion(2, 27)
#: the newest release in :data:`RELEASES`
MAX_VERSION = GlibcVersion(*RELEASES[-1][0])

_FACTS: Dict[GlibcVersion, ReleaseFacts] = {}


def facts_for(version: "GlibcVersion | str | Tuple[int, int]") -> ReleaseFacts:
    """The facts of ``version`` (a release past the table gets the newest row's)."""
    ver = GlibcVersion.parse(version)
    cached = _FACTS.get(ver)
    if cached is None:
        changes: Dict[str, object] = {}
        for first, delta, _why in RELEASES:
            if ver >= first:
                changes.update(delta)
        cached = _FACTS[ver] = ReleaseFacts(ver, **changes)  # type: ignore[arg-type]
    return cached


def first_release(fact: str, value: object = True) -> GlibcVersion:
    """The first release of :data:`RELEASES` where ``fact`` has ``value``.

    :raises SpecError: when no release has it (a typo in the caller).
    """
    for first, delta, _why in RELEASES:
        if delta.get(fact, None) == value:
            return GlibcVersion(*first)
    raise SpecError(f"no glibc release in the table has {fact}={value!r}")


def release_in(version: "GlibcVersion | str | Tuple[int, int]", versions: str) -> bool:
    """Whether ``version`` is in a range written as in the abort table:
    ``"2.27+"``, ``"2.32-2.42"``, ``"2.27"`` (text after the range is ignored)."""
    ver = GlibcVersion.parse(version)
    word = versions.split()[0] if versions.split() else ""
    try:
        if word.endswith("+"):
            return ver >= GlibcVersion.parse(word[:-1])
        if "-" in word:
            lo, hi = word.split("-", 1)
            return GlibcVersion.parse(lo) <= ver <= GlibcVersion.parse(hi)
        return ver == GlibcVersion.parse(word)
    except SpecError:
        return False

# C types of the tables: (size, signed) with size None meaning "pointer sized".
_PTR = "ptr"
_SIZE_T = "size_t"  # INTERNAL_SIZE_T, size_t, unsigned long, uintptr_t
_INT = "int"
_UINT = "uint"
_U16 = "u16"
_CHAR = "char"

_Row = Tuple[str, str, int]  # (field, ctype, count)

# -- the tables --------------------------------------------------------------


def _malloc_chunk_rows(f: ReleaseFacts) -> List[_Row]:
    return [
        ("mchunk_prev_size", _SIZE_T, 1),
        ("mchunk_size", _SIZE_T, 1),
        ("fd", _PTR, 1),
        ("bk", _PTR, 1),
        ("fd_nextsize", _PTR, 1),  # large bins only
        ("bk_nextsize", _PTR, 1),
    ]


def _malloc_state_rows(f: ReleaseFacts, nfastbins: int) -> List[_Row]:
    rows: List[_Row] = [("mutex", _INT, 1), ("flags", _INT, 1)]
    if f.have_fastchunks:
        rows.append(("have_fastchunks", _INT, 1))  # 2.27: was FASTCHUNKS_BIT in flags
    if f.fastbins:
        rows.append(("fastbinsY", _PTR, nfastbins))  # 2.43: gone
    rows += [
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


def _heap_info_rows(f: ReleaseFacts) -> List[_Row]:
    rows: List[_Row] = [
        ("ar_ptr", _PTR, 1),
        ("prev", _PTR, 1),
        ("size", _SIZE_T, 1),
        ("mprotect_size", _SIZE_T, 1),
    ]
    if f.heap_info_pagesize:
        rows.append(("pagesize", _SIZE_T, 1))  # 2.35: huge page arenas
    return rows  # pad[] is added by layout_for (alignment rule, not a field)


def _malloc_par_rows(f: ReleaseFacts) -> List[_Row]:
    rows: List[_Row] = [
        ("trim_threshold", _SIZE_T, 1),
        ("top_pad", _SIZE_T, 1),
        ("mmap_threshold", _SIZE_T, 1),
        ("arena_test", _SIZE_T, 1),
        ("arena_max", _SIZE_T, 1),
    ]
    if f.mp_thp_mode:
        rows.append(("thp_mode", _INT, 1))  # 2.43: enum malloc_thp_mode_t
    if f.mp_hugepages:
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
        # USE_TCACHE (2.26+); 2.42 renamed tcache_bins to tcache_small_bins
        ("tcache_small_bins" if f.tcache_large_bins else "tcache_bins", _SIZE_T, 1),
        ("tcache_max_bytes", _SIZE_T, 1),
        ("tcache_count", _SIZE_T, 1),
        ("tcache_unsorted_limit", _SIZE_T, 1),
    ]
    return rows


def _tcache_perthread_rows(f: ReleaseFacts) -> List[_Row]:
    # 2.30: counts char -> uint16_t; 2.42: num_slots (counting down), 76 bins
    counts = _U16 if f.tcache_counts_u16 else _CHAR
    nbins = f.tcache_small_bins + f.tcache_large_bins
    name = "num_slots" if f.tcache_num_slots else "counts"
    return [(name, counts, nbins), ("entries", _PTR, nbins)]


def _tcache_entry_rows(f: ReleaseFacts) -> List[_Row]:
    rows: List[_Row] = [("next", _PTR, 1)]
    if f.tcache_key == "random":
        rows.append(("key", _SIZE_T, 1))  # 2.34: random uintptr_t tcache_key
    elif f.tcache_key == "tcache":
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

    :param version: glibc release; releases outside 2.27-2.43 get the nearest
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
    eff = facts_for(max(min(ver, MAX_VERSION), GlibcVersion(*RELEASES[0][0])))
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
        facts=eff,
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


def table_releases() -> List[GlibcVersion]:
    """Every release from :data:`MIN_VERSION` to :data:`MAX_VERSION`, oldest first."""
    out = []
    for minor in range(MIN_VERSION.minor, MAX_VERSION.minor + 1):
        out.append(GlibcVersion(MIN_VERSION.major, minor))
    return out


def releases_where(predicate: "Callable[[Layout], bool]", pointer_size: int = 8) -> Tuple[GlibcVersion, GlibcVersion]:
    """``(oldest, newest)`` release of the table whose layout satisfies
    ``predicate`` (for version inference from what a heap shows: a struct
    size, a field); ``(MAX_VERSION, MIN_VERSION)`` (empty) when none does."""
    hits = [v for v in table_releases() if predicate(layout_for(v, pointer_size))]
    if not hits:
        return MAX_VERSION, MIN_VERSION
    return hits[0], hits[-1]


def shape_representatives(struct: str, pointer_size: int = 8) -> List[GlibcVersion]:
    """The newest release of each distinct layout of ``struct`` (newest first):
    the candidates to try when the release is unknown."""
    seen: Dict[Tuple[object, ...], GlibcVersion] = {}
    for v in table_releases():
        sl: StructLayout = getattr(layout_for(v, pointer_size), struct)
        seen[(tuple(sorted(sl.offsets.values())), sl.size)] = v  # a renamed field is the same shape
    return sorted(seen.values(), reverse=True)
