# tests/test_fuzz_heap_model.py - property-based fuzzing of the glibc heap model
# (locate, walk, summary, checks) over synthetic heaps with targeted and random
# corruption: every example stays within a read budget, raises only gdbext
# errors, and a targeted corruption is reported at the chunk and field broken.
"""Fuzzing the glibc heap model.

Three synthetic heaps (glibc 2.36, 2.31 and 2.27, built once with
:mod:`glibc_heapimage`) hold every kind of free list in three arenas: tcache
bins of two threads, fastbins, the unsorted bin, small bins and a large bin
with two size groups (``fd_nextsize``/``bk_nextsize`` rings), a thread arena
with two heaps (a ``heap_info.prev`` chain) and an mmapped chunk.  A
:class:`Model` knows the role of every chunk, node, list head and struct field.

A *targeted* corruption is drawn as ``kind + target + value`` (:data:`KINDS`):
the kind says which field (a chunk's size or boundary tags, a link of a list
node, a tcache count or key, a list head in an arena or tcache, an arena's
``next`` or ``top``, a ``heap_info`` field), the target which chunk, node,
arena or heap, the value which class of bad value (zero, huge, misaligned, past
the heap, unmapped, into the middle of a chunk, into another arena, into
another list, a cycle...).  Each builds a :class:`Corruption` whose
:class:`Expect` says what ``check_heap`` must report: a violation naming the
corrupted chunk (or list node, tcache, arena, heap_info) and field, or an
unparsed range covering the field.  *Random* corruption (many words anywhere in
the heaps, arenas, tcaches and heap_infos) asserts the universal properties
only.

Universal properties, checked on every example (:func:`run_pipeline`):

* the whole pipeline (locate, chunk records, summary with bin verification,
  checks) ends within :func:`read_budget` reads of the memory source and
  reads at most :data:`BYTES_FACTOR` times the image's bytes;
* it raises nothing but :class:`~gdbext.errors.GdbextError` subclasses (a
  ``HeapNotFoundError`` ends the example);
* record, summary and check chunk counts agree, and each violation is reported once.

The finite space of targeted corruptions (every kind, target and value class
with default parameters) is also enumerated whole; under hypothesis some value
classes draw their parameter (the garbage word, the misalignment, the wrong count).
Reporting gaps gdbext has today are listed in :data:`KNOWN_GAPS`, each with a
strict expected-failure reproducer (``test_gap_*``).

Example counts: :data:`MAX_EXAMPLES`; ``GDBEXT_FUZZ_EXAMPLES=N`` runs N examples
per test instead, ``GDBEXT_FUZZ_RANDOM=1`` drops derandomisation (docs/robustness.md).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import pytest
from glibc_heapimage import HEAP_BASE, TCACHE_KEY, HeapImage, _Source
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gdbext.errors import GdbextError
from gdbext.glibc import HeapNotFoundError, HeapWalker, Overrides, check_heap, locate_heap
from gdbext.glibc.layouts import IS_MMAPPED, NON_MAIN_ARENA, PREV_INUSE
from gdbext.glibc.walk import MMAPPED

# -- budgets and settings -------------------------------------------------------------

#: examples per test in CI; ``GDBEXT_FUZZ_EXAMPLES`` overrides every test's count
MAX_EXAMPLES = {"targeted": 3000, "random": 800}
#: the pipeline reads at most this many times the image's bytes
BYTES_FACTOR = 4


def read_budget(image_bytes: int) -> int:
    """Reads allowed for one pipeline run over an image of ``image_bytes``.

    A clean image takes about 20 reads (each heap segment is read once, in
    bulk; the structs and the mmapped-chunk probe a few each): 64 for the
    structs plus two per page of the image.  A walk falling back to one read
    per chunk or per word of a heap would exceed it.
    """
    return 64 + 2 * (image_bytes // 4096)


def fuzz_settings(name: str) -> settings:
    env = os.environ.get("GDBEXT_FUZZ_EXAMPLES")
    # derandomized: CI runs the same examples every time; GDBEXT_FUZZ_RANDOM=1 explores afresh
    return settings(max_examples=int(env) if env else MAX_EXAMPLES[name],
                    derandomize=os.environ.get("GDBEXT_FUZZ_RANDOM") != "1", database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


UNMAPPED = 0x13370000  #: aligned, in no mapping


# -- the synthetic heap and its roles -------------------------------------------------


class CountingSource(_Source):
    """The image's memory source, counting bytes read as well as reads."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.bytes_read = 0

    def read(self, address: int, size: int) -> bytes:
        data = super().read(address, size)
        self.bytes_read += len(data)
        return data


@dataclass(frozen=True)
class FreeListRole:
    """One free list of the image: its kind, where its head lives, its nodes head first."""

    kind: str  #: "tcache", "fast", "unsorted", "small", "large"
    owner: int  #: the tcache_perthread_struct (tcache) or the arena
    index: int  #: tcache/fastbin index, or glibc bin index
    arena: int  #: arena whose heap holds the nodes
    nodes: Tuple[int, ...]

    @property
    def regular(self) -> bool:
        return self.kind in ("unsorted", "small", "large")


@dataclass(repr=False)
class Model:
    """A base image, and the role of every chunk and struct in it."""

    version: str
    img: HeapImage
    segments: Dict[int, bytes]
    lists: List[FreeListRole]
    chunk_arena: Dict[int, int]  #: every chunk but the tops -> its arena
    next_chunk: Dict[int, int]  #: chunk -> the chunk after it (the top included)
    inuse: Dict[int, List[int]]  #: arena -> in-use chunks (not struct chunks)
    arenas: List[int]
    heaps: List[Tuple[int, int]]  #: (heap_info, arena) of the non-main heaps
    tcaches: Dict[int, int]  #: tcache address -> arena
    size_bytes: int

    def __repr__(self) -> str:  # hypothesis prints failing examples: keep the image out of it
        return f"Model(glibc {self.version})"

    @property
    def L(self):
        return self.img.L

    @property
    def ps(self) -> int:
        return self.img.L.pointer_size

    def word(self, addr: int, size: Optional[int] = None) -> int:
        size = size or self.ps
        for start, data in self.segments.items():
            if start <= addr and addr + size <= start + len(data):
                return int.from_bytes(data[addr - start : addr - start + size], "little")
        raise KeyError(hex(addr))

    def in_heap(self, addr: int) -> bool:
        """``addr`` lies in the main heap or a non-main heap (not libc data, not an mmapped chunk)."""
        heaps = [HEAP_BASE] + [h for h, _ in self.heaps]
        return any(h <= addr < h + len(self.segments[h]) for h in heaps)

    def size_of(self, chunk: int) -> int:
        return self.word(chunk + self.ps) & ~7

    def list_of(self, chunk: int) -> Optional[FreeListRole]:
        for fl in self.lists:
            if chunk in fl.nodes:
                return fl
        return None

    def protect(self, pos: int, ptr: int) -> int:
        return (pos >> 12) ^ ptr if self.L.safe_linking else ptr

    def source(self, writes: Sequence[Tuple[int, bytes]] = ()) -> CountingSource:
        segs = {k: bytearray(v) for k, v in self.segments.items()}
        for addr, data in writes:
            for start, buf in segs.items():
                if start <= addr and addr + len(data) <= start + len(buf):
                    buf[addr - start : addr - start + len(data)] = data
                    break
            else:
                raise KeyError(f"write at {addr:#x} is outside the image")
        syms = {"main_arena": self.img.main_arena, "mp_": self.img.mp,
                "global_max_fast": self.img.global_max_fast_addr}
        if self.L.random_tcache_key:
            syms["tcache_key"] = self.img.tcache_key_addr
        return CountingSource({k: bytes(v) for k, v in segs.items()}, self.img.perms, symbols=syms)


def count_field(model: "Model", index: int) -> str:
    """The tcache count word of a bin: ``counts[i]``, ``num_slots[i]`` from 2.42."""
    return f"{model.L.tcache_counts_field}[{index}]"


def build_model(version: str) -> Model:
    img = HeapImage(version, heap_size=0x4000)
    L = img.L
    m = img.main
    chunk_arena: Dict[int, int] = {}
    inuse: Dict[int, List[int]] = {}

    def carve(arena, size, used=False):
        c = arena.malloc(size)
        chunk_arena[c] = arena.address
        if used:
            inuse.setdefault(arena.address, []).append(c)
        s = arena.malloc(0x30)  # an in-use separator after every chunk
        chunk_arena[s] = arena.address
        inuse.setdefault(arena.address, []).append(s)
        return c

    chunk_arena[m.chunks[0]] = m.address  # the tcache struct chunk
    t_main = img.main_tcache
    tc1 = [carve(m, 0x30) for _ in range(3)]
    tc3 = carve(m, 0x50)
    # 2.42+: a large tcache bin (chunks of bit length 11), kept smallest first
    tcl = [carve(m, 0x430), carve(m, 0x420)] if L.tcache_bins > L.tcache_small_bins else []
    f2 = [carve(m, 0x40) for _ in range(2)]
    uns = [carve(m, 0x90), carve(m, 0xA0)]
    small = [carve(m, 0x110) for _ in range(2)]
    large = [carve(m, 0x420), carve(m, 0x430), carve(m, 0x420)]
    for s in (0x60, 0x100):
        carve(m, s, used=True)
    fast = "fast" if L.has_fastbins else "bin"  # 2.43: no fastbins, these go to small bins
    for c in tc1 + [tc3] + tcl:
        m.free(c, "tcache")
    for c in f2:
        m.free(c, fast)
    for c in uns:
        m.free(c, "unsorted")
    for c in small + large:
        m.free(c, "bin")
    # a thread arena with its own tcache and two heaps
    a2, t2 = img.add_arena(heap_size=0x4000)
    chunk_arena[a2.chunks[0]] = a2.address
    d_tc = carve(a2, 0x40)
    d_fast = carve(a2, 0x50)
    d_uns = carve(a2, 0x90)
    carve(a2, 0x70, used=True)
    a2.free(d_tc, "tcache", tcache=t2)
    a2.free(d_fast, fast)
    a2.free(d_uns, "unsorted")
    old_top = a2.top
    a2.new_heap(0x4000)
    chunk_arena[old_top] = a2.address
    e_fast = carve(a2, 0x30)
    carve(a2, 0x80, used=True)
    a2.free(e_fast, fast)
    # a third arena without a tcache (ring cycles need three arenas): a small-bin chunk
    a3, _ = img.add_arena(heap_size=0x4000, tcache=False)
    g_small = carve(a3, 0x100)
    carve(a3, 0x40, used=True)
    a3.free(g_small, "bin")
    img.add_mmapped(0x2000)
    img.source()
    segs = {k: bytes(v) for k, v in img.segments.items()}

    def size(c):
        return img.r(c + L.size_sz) & ~7

    lists = [
        FreeListRole("tcache", t_main, 1, m.address, tuple(tc1[::-1])),
        FreeListRole("tcache", t_main, 3, m.address, (tc3,)),
    ] + ([FreeListRole("tcache", t_main, L.tcache_small_bins, m.address, tuple(sorted(tcl, key=size)))]
         if tcl else []) + [
        FreeListRole("tcache", t2, L.csize2tidx(0x40), a2.address, (d_tc,)),
    ] + ([
        FreeListRole("fast", m.address, 2, m.address, tuple(f2[::-1])),
        FreeListRole("fast", a2.address, 3, a2.address, (d_fast,)),
        FreeListRole("fast", a2.address, 1, a2.address, (e_fast,)),
    ] if L.has_fastbins else [
        FreeListRole("small", m.address, L.bin_index(0x40), m.address, tuple(f2[::-1])),
        FreeListRole("small", a2.address, L.bin_index(0x50), a2.address, (d_fast,)),
        FreeListRole("small", a2.address, L.bin_index(0x30), a2.address, (e_fast,)),
    ]) + [
        FreeListRole("unsorted", m.address, 1, m.address, tuple(uns[::-1])),
        FreeListRole("small", m.address, 17, m.address, tuple(small[::-1])),
        FreeListRole("large", m.address, 64, m.address,
                     tuple(sorted(large[::-1], key=lambda c: -size(c)))),  # stable: newest first per size
        FreeListRole("unsorted", a2.address, 1, a2.address, (old_top, d_uns)),
        FreeListRole("small", a3.address, L.bin_index(0x100), a3.address, (g_small,)),
    ]
    next_chunk = {}
    for arena in img.arenas:
        for c in arena.chunks:
            n = c + size(c)
            next_chunk[c] = n
    model = Model(
        version=version, img=img, segments=segs, lists=lists, chunk_arena=chunk_arena, next_chunk=next_chunk,
        inuse=inuse, arenas=[m.address, a2.address, a3.address],
        heaps=[(a2.heap_infos[0], a2.address), (a2.heap_infos[1], a2.address), (a3.heap_infos[0], a3.address)],
        tcaches={t_main: m.address, t2: a2.address}, size_bytes=sum(len(v) for v in segs.values()),
    )
    check_roles(model)
    return model


def check_roles(model: Model) -> None:
    """The clean image has no violation, and every list holds what the model says, in order."""
    report = check_heap(locate_heap(model.source(), Overrides(version=model.version)))
    assert report.violations == [], [str(v) for v in report.violations]
    ps = model.ps
    for fl in model.lists:
        if fl.regular:
            b = model.L.bin_at(fl.owner, fl.index)
            walk, p = [], model.word(b + 2 * ps)
            while p != b:
                walk.append(p)
                p = model.word(p + 2 * ps)
        elif fl.kind == "tcache":
            e = model.word(fl.owner + model.L.tcache_perthread["entries"] + fl.index * ps)
            walk = []
            while e:
                walk.append(e - 2 * ps)
                e = model.word(e) ^ ((e >> 12) if model.L.safe_linking else 0)
        else:
            p = model.word(fl.owner + model.L.malloc_state["fastbinsY"] + fl.index * ps)
            walk = []
            while p:
                walk.append(p)
                p = model.word(p + 2 * ps) ^ (((p + 2 * ps) >> 12) if model.L.safe_linking else 0)
        assert tuple(walk) == fl.nodes, (fl, [hex(x) for x in walk])
        for n in fl.nodes:
            assert report.index.label_of(n) is not None


VERSIONS = ("2.36", "2.31", "2.27", "2.42", "2.43")
_MODELS: Dict[str, Model] = {}


def model_for(version: str) -> Model:
    if version not in _MODELS:
        _MODELS[version] = build_model(version)
    return _MODELS[version]


# -- corruptions and what they must produce ---------------------------------------------

#: Reporting gaps of gdbext known today (docs/robustness.md, "Findings").  While an id
#: is listed, a corruption tagged with it may miss its strict expectation as long as
#: its weaker one holds, and the matching ``test_gap_*`` reproducer is an expected
#: failure; once the fix lands, remove the id: every expectation is strict again.
KNOWN_GAPS: frozenset = frozenset()
#: known gaps that make gdbext raise a non-gdbext exception today (IndexError)
CRASH_GAPS = frozenset({"index-error"})


@dataclass(frozen=True)
class Want:
    """A violation at ``chunk`` naming ``field`` (any field when None), of one of ``checks`` (any when empty)."""

    chunk: int
    field: Optional[str]
    checks: Tuple[str, ...] = ()

    def matches(self, v) -> bool:
        return v.chunk == self.chunk and (self.field is None or v.field == self.field) \
            and (not self.checks or v.check in self.checks)


@dataclass(frozen=True)
class Expect:
    """What ``check_heap`` must report: one of ``wants``, or an unparsed range covering ``covered``."""

    wants: Tuple[Want, ...]
    covered: Optional[int] = None

    def met(self, report) -> bool:
        if any(w.matches(v) for w in self.wants for v in report.violations):
            return True
        return self.covered is not None and any(u.start <= self.covered < u.end for u in report.unparsed)

    def describe(self) -> str:
        wants = " or ".join(f"{w.chunk:#x}:{w.field or '*'}" + (f" ({'/'.join(w.checks)})" if w.checks else "")
                            for w in self.wants)
        cov = f" or an unparsed range over {self.covered:#x}" if self.covered is not None else ""
        return f"a violation at {wants}{cov}"


def at(chunk: int, *fields: str, covered: Optional[int] = None) -> Expect:
    return Expect(tuple(Want(chunk, f) for f in fields), covered)


@dataclass(frozen=True)
class Corruption:
    """Bytes to write, the report they must produce, and (for a known gap) the weaker report of today."""

    label: str
    writes: Tuple[Tuple[int, bytes], ...]
    expect: Expect
    gap: Optional[str] = None
    weak: Optional[Expect] = None  #: None with a gap: today nothing names it


@dataclass(frozen=True)
class Kind:
    """A corruption kind: its targets in a model, the value classes for a target, and the builder."""

    name: str
    targets: Callable[[Model], List]
    values: Callable[[Model, object], List[str]]
    build: Callable[..., Corruption]  #: (model, target, value, pick) -> Corruption


KINDS: Dict[str, Kind] = {}

#: ``pick(strategy, default)``: a value class's parameter, drawn under hypothesis, the default when enumerating
Pick = Callable[[st.SearchStrategy, int], int]


def fixed(strategy: st.SearchStrategy, default: int) -> int:
    return default


def kind(name: str, targets: Callable[[Model], List], values: Callable[[Model, object], List[str]]):
    def deco(fn: Callable[..., Corruption]):
        KINDS[name] = Kind(name, targets, values, fn)
        return fn
    return deco


def word_bytes(model: Model, value: int, size: Optional[int] = None) -> bytes:
    size = size or model.ps
    return (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def one_write(model: Model, label: str, addr: int, value: int, expect: Expect, size: Optional[int] = None,
              gap: Optional[str] = None, weak: Optional[Expect] = None) -> Corruption:
    return Corruption(label, ((addr, word_bytes(model, value, size)),), expect, gap, weak)


def mid_chunk(model: Model, arena: int) -> int:
    """An aligned address inside an in-use chunk of ``arena`` that starts no chunk."""
    return max(model.inuse[arena], key=model.size_of) + 0x20


def foreign_chunk(model: Model, arena: int) -> int:
    """An in-use chunk of another arena."""
    other = model.arenas[1] if arena == model.arenas[0] else model.arenas[0]
    return max(model.inuse[other], key=model.size_of)


def other_list_node(model: Model, fl: FreeListRole) -> int:
    """A node of another kind of free list, of the same arena when there is one."""
    others = [o for o in model.lists if o is not fl and o.kind != fl.kind]
    same = [o for o in others if o.arena == fl.arena]
    return (same or others)[0].nodes[0]


def garbage(model: Model, pick: Pick, addr: int, delta: int, mangled: bool) -> int:
    """A raw link word for the link at ``addr`` that decodes (safe-linking when ``mangled``, minus
    ``delta``) to a non-NULL pointer that is misaligned or outside every heap."""
    def decoded(raw: int) -> int:
        return (model.protect(addr, raw) if mangled else raw) - delta

    def bad(raw: int) -> bool:
        chunk = decoded(raw)
        return raw != 0 and chunk != -delta and (chunk & model.L.align_mask != 0 or not model.in_heap(chunk))
    return pick(st.integers(0, (1 << 64) - 1).filter(bad), 0x4141414141414141)


def in_old_heap(model: Model, chunk: int) -> bool:
    """The chunk lies in a non-main heap that does not hold its arena's top (ended by fenceposts)."""
    for h, arena in model.heaps:
        top = model.img.arenas[model.arenas.index(arena)].top
        if h <= chunk < h + 0x4000 and not h <= top < h + 0x4000:
            return True
    return False


# ---- chunk size fields ------------------------------------------------------------------


def sized_chunks(model: Model) -> List[int]:
    return sorted(c for c in model.chunk_arena if c in model.next_chunk)


def size_values(model: Model, chunk: int) -> List[str]:
    out = ["zero", "huge", "all-ones", "misaligned", "past-end", "shrink", "mmapped-bit"]
    fl = model.list_of(chunk)
    if model.chunk_arena[chunk] == model.arenas[0] or fl is None or not fl.regular:
        out.append("arena-bit")  # thread-arena bin chunks have NON_MAIN_ARENA clear already
    return out


@kind("chunk.size", sized_chunks, size_values)
def size_corruption(model: Model, chunk: int, value: str, pick: Pick = fixed) -> Corruption:
    """A chunk's size: zero, huge, all ones, misaligned, past its heap, short by 16, or a wrong flag bit."""
    ps = model.ps
    raw = model.word(chunk + ps)
    size, flags = raw & ~7, raw & 7
    minsize = model.L.minsize
    new = {
        "zero": flags & PREV_INUSE,
        "huge": (pick(st.integers(1 << 32, (1 << 64) - 1), 1 << 40) & ~7) | flags,
        "all-ones": (1 << (8 * ps)) - 1,
        "misaligned": (size + 8) | pick(st.integers(0, 7), flags),
        "past-end": (size + 16 * pick(st.integers(0x10000, 1 << 40), 0x10000)) | flags,
        "shrink": (size - 0x10 if size - 0x10 >= minsize else 0x10) | flags,
        "mmapped-bit": raw | IS_MMAPPED,
        "arena-bit": raw ^ NON_MAIN_ARENA,
    }[value]
    # a NULL header (or one the walk reaches through a short size) in a heap ended by
    # fenceposts is taken for the end of that heap, wherever it is
    gap = "fencepost" if value in ("zero", "shrink") and in_old_heap(model, chunk) else None
    return one_write(model, f"size of chunk {chunk:#x}: {value}", chunk + ps, new,
                     at(chunk, "size", covered=chunk + ps), gap=gap)


# ---- boundary tags: PREV_INUSE and prev_size ----------------------------------------------


def tag_values(model: Model, chunk: int) -> List[str]:
    fl = model.list_of(chunk)
    return ["flip-prev-inuse", "prev-size"] if fl is not None and fl.regular else ["flip-prev-inuse"]


@kind("chunk.tags", sized_chunks, tag_values)
def tag_corruption(model: Model, chunk: int, value: str, pick: Pick = fixed) -> Corruption:
    """The boundary tags of the chunk after ``chunk``: its PREV_INUSE bit, or (after a bin chunk) its prev_size."""
    ps = model.ps
    nxt = model.next_chunk[chunk]
    if value == "prev-size":
        return one_write(model, f"prev_size of {nxt:#x} (after free {chunk:#x})", nxt,
                         model.size_of(chunk) + 0x10, at(nxt, "prev_size"))
    raw = model.word(nxt + ps) ^ PREV_INUSE
    writes = [(nxt + ps, word_bytes(model, raw))]
    if not raw & PREV_INUSE:
        writes.append((nxt, word_bytes(model, model.size_of(chunk))))  # a consistent prev_size
    return Corruption(f"PREV_INUSE of {nxt:#x} flipped (chunk before: {chunk:#x})", tuple(writes),
                      at(nxt, "size", "prev_size"))


# ---- free-list links ---------------------------------------------------------------------------

#: the field that must point back along a doubly linked list
RECIPROCAL = {"fd": "bk", "fd_nextsize": "bk_nextsize", "bk_nextsize": "fd_nextsize"}
LINK_OFFSET = {"fd": 2, "bk": 3, "fd_nextsize": 4, "bk_nextsize": 5}


def link_targets(model: Model) -> List[Tuple[int, int, str]]:
    """(list number, node position, field) of every link of every list node."""
    out = []
    for n, fl in enumerate(model.lists):
        for k, node in enumerate(fl.nodes):
            if fl.kind == "tcache":
                out.append((n, k, "next"))
            elif fl.kind == "fast":
                out.append((n, k, "fd"))
            else:
                out += [(n, k, "fd"), (n, k, "bk")]
                if fl.kind == "large" and (k == 0 or model.size_of(fl.nodes[k - 1]) != model.size_of(node)):
                    out += [(n, k, "fd_nextsize"), (n, k, "bk_nextsize")]  # the head of a size group
    return out


def link_values(model: Model, target: Tuple[int, int, str]) -> List[str]:
    n, k, fieldname = target
    fl = model.lists[n]
    out = ["self", "unmapped", "misaligned", "mid-chunk", "other-arena", "other-list", "garbage"]
    if fieldname in ("next", "fd"):
        out.append("cycle")
    # a NULL fastbin fd just ends the list early (its chunks look in use): nothing tells
    if fl.regular or (fl.kind == "tcache" and k < len(fl.nodes) - 1):
        out.append("null")
    return out


def pointer_value(model: Model, fl: FreeListRole, node: int, value: str) -> int:
    """The chunk address a link is made to point to."""
    choices: Dict[str, Callable[[], int]] = {
        "self": lambda: node,
        "cycle": lambda: fl.nodes[0],
        "unmapped": lambda: UNMAPPED,
        "misaligned": lambda: node + 8,
        "mid-chunk": lambda: mid_chunk(model, fl.arena),
        "other-arena": lambda: foreign_chunk(model, fl.arena),
        "other-list": lambda: other_list_node(model, fl),
        "null": lambda: 0,
    }
    return choices[value]()


@kind("list.link", link_targets, link_values)
def link_corruption(model: Model, target: Tuple[int, int, str], value: str, pick: Pick = fixed) -> Corruption:
    """A node's tcache ``next``, fastbin ``fd`` (both safe-linked from 2.32), bin ``fd``/``bk`` or
    large-bin ``fd_nextsize``/``bk_nextsize``: a cycle, outside, misaligned, into a chunk's middle,
    another arena, another list, NULL or raw garbage."""
    n, k, fieldname = target
    fl = model.lists[n]
    node = fl.nodes[k]
    ps = model.ps
    hdr = 2 * ps
    label = f"{fl.kind}[{fl.index}] node {k} ({node:#x}) {fieldname}: {value}"
    to = None if value == "garbage" else pointer_value(model, fl, node, value)
    wants = [Want(node, fieldname)]
    if fl.kind == "tcache":
        addr = node + hdr
        raw = garbage(model, pick, addr, hdr, True) if to is None else model.protect(addr, to + hdr if to else 0)
        if value == "null":
            # the rest of the bin is cut off: only its count (and stale keys) can tell
            wants = [Want(fl.owner, count_field(model, fl.index))]
    else:
        addr = node + LINK_OFFSET[fieldname] * ps
        raw = garbage(model, pick, addr, 0, fl.kind == "fast") if to is None else \
            (model.protect(addr, to) if fl.kind == "fast" else to)
        if fieldname in RECIPROCAL:
            # a broken pair of a doubly linked list is reported at either end: the new
            # target's back link, or the old target that still points back here
            back = RECIPROCAL[fieldname]
            old = model.word(addr)
            wants += [Want(to, back)] if to else []
            wants += [Want(old, back)]
    if value == "other-list":
        wants.append(Want(to, None, ("list.duplicate",)))  # a chunk in two lists: a double free, told at the chunk
    if fl.kind == "tcache" and value == "other-arena":
        # a tcache may hold any arena's chunks: what is wrong is the chunk's size for that bin
        wants.append(Want(to, "size", ("tcache.size",)))
    gap = weak = None
    if value == "mid-chunk" or (value == "other-arena" and fl.kind != "tcache"):
        # today the bad pointee is named (list.not_chunk, list.wrong_arena), not the link leading to it
        gap, weak = "via-link", Expect((Want(to, None),))
    return Corruption(label, ((addr, word_bytes(model, raw)),), Expect(tuple(wants)), gap, weak)


# ---- list heads, tcache counts and keys -------------------------------------------------------


def head_values(model: Model, n: int) -> List[str]:
    fl = model.lists[n]
    out = ["unmapped", "misaligned", "mid-chunk", "garbage"]
    if fl.kind != "fast":  # fastbin chunks cut off the front of a list look in use: nothing tells
        out.append("null")
        if len(fl.nodes) > 1:
            out.append("second")
    if fl.regular:
        out.append("bk")
    if fl.kind == "fast":
        out.append("other-arena")
    if fl.kind == "tcache":
        out += ["count+1", "count-1", "count-max"]
        if model.L.has_tcache_key:
            out += ["key-zero", "key-garbage", "key-other"]
    return out


@kind("list.head", lambda model: list(range(len(model.lists))), head_values)
def head_corruption(model: Model, n: int, value: str, pick: Pick = fixed) -> Corruption:
    """A list's head (tcache ``entries[i]``, ``fastbinsY[i]``, a bin's ``fd``/``bk``), a tcache
    count, or the key of a tcache entry."""
    fl = model.lists[n]
    ps = model.ps
    L = model.L
    label = f"{fl.kind}[{fl.index}] of {fl.owner:#x}: {value}"
    if value.startswith("count"):
        cs = L.tcache_count_size
        fill = L.default_tcache_count
        right = L.tcache_raw_count(len(fl.nodes), fill)
        wrong = st.integers(0, (1 << (8 * cs)) - 1).filter(lambda v: v != right)
        new = {"count+1": L.tcache_raw_count(len(fl.nodes) + 1, fill),
               "count-1": L.tcache_raw_count(len(fl.nodes) - 1, fill),
               "count-max": pick(wrong, (1 << (8 * cs)) - 1)}[value]
        return one_write(model, label, fl.owner + L.tcache_perthread[L.tcache_counts_field] + fl.index * cs, new,
                         at(fl.owner, count_field(model, fl.index)), size=cs)
    if value.startswith("key"):
        node = fl.nodes[-1]
        other = [t for t in model.tcaches if t != fl.owner][0]
        key = TCACHE_KEY if L.random_tcache_key else fl.owner
        new = {"key-zero": 0, "key-other": other,
               "key-garbage": pick(st.integers(1, (1 << 64) - 1).filter(lambda v: v != key), 0x0000000500000002)}[value]
        return one_write(model, label, node + 3 * ps, new, at(node, "key"))
    if fl.kind == "tcache":
        addr = fl.owner + L.tcache_perthread["entries"] + fl.index * ps
        holder, fieldname, delta = fl.owner, f"entries[{fl.index}]", 2 * ps  # entries point to user data
    elif fl.kind == "fast":
        addr = fl.owner + L.malloc_state["fastbinsY"] + fl.index * ps
        holder, fieldname, delta = fl.owner, f"fastbinsY[{fl.index}]", 0
    else:
        holder = L.bin_at(fl.owner, fl.index)  # the bin's fake chunk in the arena
        if value == "bk":
            return one_write(model, label, holder + 3 * ps, UNMAPPED, at(holder, "bk"))
        addr, fieldname, delta = holder + 2 * ps, "fd", 0
    to = {
        "unmapped": UNMAPPED,
        "misaligned": fl.nodes[0] + 8,
        "mid-chunk": mid_chunk(model, fl.arena),
        "other-arena": foreign_chunk(model, fl.arena),
        "null": 0,
        "second": fl.nodes[-1],
    }.get(value)
    raw = garbage(model, pick, addr, delta, False) if to is None else (to + delta if to else 0)
    wants = [Want(holder, fieldname)]
    gap = weak = None
    if fl.kind == "tcache" and value in ("null", "second"):
        wants.append(Want(fl.owner, count_field(model, fl.index)))  # nodes cut off the front: the count tells
        if value == "null":
            gap = "tcache-empty-head"  # today a NULL head with a count is not checked
    if fl.regular and to:
        wants.append(Want(to, "bk"))  # the new first node's bk does not point back to the bin
    if value in ("mid-chunk", "other-arena"):
        gap, weak = "via-link", Expect((Want(to, None),))
    return one_write(model, label, addr, raw, Expect(tuple(wants)), gap=gap, weak=weak)


# ---- arenas: next, top; heap_info: prev, ar_ptr, size -----------------------------------------


def arena_values(model: Model, arena: int) -> List[str]:
    out = ["null", "unmapped", "misaligned", "mapped-garbage", "top-null", "top-unmapped", "top-other-arena",
           "top-last-word"]
    if arena != model.arenas[0]:
        out.append("self")  # main_arena alone is a valid ring
    if arena == model.arenas[2]:
        out.append("loop")  # third -> second: a ring that never comes back to main_arena
    return out


@kind("arena", lambda model: list(model.arenas), arena_values)
def arena_corruption(model: Model, arena: int, value: str, pick: Pick = fixed) -> Corruption:
    """An arena's ``next`` (NULL, unmapped, misaligned, a heap chunk, itself, a loop) or ``top``."""
    ms = model.L.malloc_state
    label = f"arena {arena:#x}: {value}"
    main = arena == model.arenas[0]
    if value.startswith("top"):
        heap_end = model.img.arenas[model.arenas.index(arena)].heap_end
        to = {"top-null": 0, "top-unmapped": UNMAPPED, "top-other-arena": foreign_chunk(model, arena),
              "top-last-word": heap_end - model.ps}[value]
        gap = weak = None
        if value == "top-last-word":
            gap = "index-error"  # today: IndexError reading top's size past the heap buffer
        elif not main:
            # today a thread arena's bad top is blamed on the heap_info it leads to (a NULL one on nothing)
            heap = to & ~(model.L.default_heap_max_size - 1)
            gap, weak = "heap-chain", Expect((Want(arena, None), Want(heap, None))) if to else None
        return one_write(model, label, arena + ms["top"], to, at(arena, "top"), gap=gap, weak=weak)
    to = {
        "null": 0,
        "unmapped": UNMAPPED,
        "misaligned": model.arenas[1] + 4,
        "mapped-garbage": max(model.inuse[model.arenas[0]], key=model.size_of),
        "self": arena,
        "loop": model.arenas[1],
    }[value]
    gap = weak = None
    if value in ("misaligned", "mapped-garbage"):
        # today any readable address is taken for the next arena: the ring breaks further on
        gap, weak = "arena-ring", Expect((Want(to, "next", ("arena.ring",)),))
    return one_write(model, label, arena + ms["next"], to, at(arena, "next"), gap=gap, weak=weak)


HEAP_VALUES = ["prev-self", "prev-null", "prev-misaligned", "prev-unmapped", "prev-other-arena",
               "ar_ptr-null", "ar_ptr-garbage", "ar_ptr-other-arena", "size-zero", "size-huge", "size-unaligned",
               "size-smaller", "size-tiny"]


@kind("heap_info", lambda model: list(range(len(model.heaps))), lambda model, n: list(HEAP_VALUES))
def heap_info_corruption(model: Model, n: int, value: str, pick: Pick = fixed) -> Corruption:
    """A ``heap_info``'s ``prev`` (a cycle, NULL, misaligned, unmapped, another arena's heap),
    ``ar_ptr`` (NULL, garbage, another arena) or ``size`` (zero, above HEAP_MAX_SIZE, not a page
    multiple, a page short)."""
    h, arena = model.heaps[n]
    hi = model.L.heap_info
    hms = model.L.default_heap_max_size
    fieldname = value.split("-", 1)[0]
    first = h == arena - hi.size
    new = {
        "prev-self": h,
        "prev-null": h if first else 0,  # the first heap's prev is NULL already: point it at itself
        "prev-misaligned": h + pick(st.integers(1, hms - 1), 0x1000),
        "prev-unmapped": h - 5 * hms,
        "prev-other-arena": [x for x, a in model.heaps if a != arena][0],
        "ar_ptr-null": 0,
        "ar_ptr-garbage": pick(st.integers(1, (1 << 64) - 1).filter(lambda v: v not in model.arenas),
                               0x4141414141414140),
        "ar_ptr-other-arena": [a for a in model.arenas if a not in (arena, model.arenas[0])][0],
        "size-zero": 0,
        "size-huge": pick(st.integers(hms + 1, (1 << 64) - 1), 2 * hms),
        "size-unaligned": model.word(h + hi["size"]) + 8,
        "size-smaller": model.word(h + hi["size"]) - 0x1000,
        "size-tiny": hi.size + 8,  # the heap ends one word into its first chunk
    }[value]
    expect = at(h, fieldname)
    gap = weak = None
    if value == "size-smaller":
        # a page-aligned size is plausible: the arena's system_mem no longer adds up
        expect = Expect((Want(h, "size"), Want(arena, "system_mem")))
    if value == "size-unaligned":
        gap, weak = "heap-size", Expect((Want(arena, "system_mem"),))  # today sizes are not checked for pages
    if value == "size-tiny":
        gap = "index-error"  # today: a walk position lands on the segment's last word (IndexError)
    if value in ("prev-unmapped", "prev-other-arena") and not first:
        # today the heap_info the bad prev leads to is named, not the prev
        gap, weak = "heap-chain", Expect((Want(new, None),))
    return one_write(model, f"heap_info {h:#x}: {value}", h + hi[fieldname], new, expect, gap=gap, weak=weak)


# -- strategies ---------------------------------------------------------------------------------


@st.composite
def targeted(draw) -> Tuple[str, Corruption]:
    """``version + kind + target + value``: one corruption whose report is known."""
    version = draw(st.sampled_from(VERSIONS))
    model = model_for(version)
    k = KINDS[draw(st.sampled_from(sorted(KINDS)))]
    target = draw(st.sampled_from(k.targets(model)))
    value = draw(st.sampled_from(k.values(model, target)))
    return version, k.build(model, target, value, lambda strategy, default: draw(strategy))


def interesting_words(model: Model) -> List[int]:
    """Values a random write puts in a word: heap addresses, sizes with flags, safe-linked links, garbage."""
    words = [0, 1, 7, 8, 0x10, 0x11, 0x20, 0x21, 0x31, 0x3F, 0x100, 0x421, 0x4141414141414141, 1 << 63,
             (1 << 64) - 1, UNMAPPED]
    for fl in model.lists:
        node = fl.nodes[0]
        words += [node, node + 2 * model.ps, model.protect(node + 2 * model.ps, node)]
    words += model.arenas + [h for h, _ in model.heaps] + list(model.tcaches)
    words += [model.L.bin_at(a, i) for a in model.arenas for i in (1, 17, 64)]
    return words


def writable_areas(model: Model) -> List[Tuple[int, int]]:
    """(start, words) ranges random writes hit: main_arena and mp_, every heap (heap_infos,
    thread arenas, tcaches, chunks) and the mmapped chunk's first page."""
    out = [(model.img.main_arena, model.L.malloc_state.size // model.ps),
           (model.img.mp, model.L.malloc_par.size // model.ps)]
    for start, data in model.segments.items():
        if not start <= model.img.main_arena < start + len(data):
            out.append((start, min(len(data), 0x4000) // model.ps))
    return out


@st.composite
def random_writes(draw) -> Tuple[str, Tuple[Tuple[int, bytes], ...]]:
    """1-24 words anywhere in the malloc state, each an interesting value, a neighbour of one, or any."""
    version = draw(st.sampled_from(VERSIONS))
    model = model_for(version)
    areas = writable_areas(model)
    words = interesting_words(model)
    value_st = st.one_of(st.sampled_from(words), st.integers(0, (1 << 64) - 1),
                         st.tuples(st.sampled_from(words), st.sampled_from([-16, -8, 8, 16])).map(sum))
    writes = []
    for _ in range(draw(st.integers(1, 24))):
        start, nwords = draw(st.sampled_from(areas))
        addr = start + model.ps * draw(st.integers(0, nwords - 1))
        writes.append((addr, word_bytes(model, draw(value_st))))
    return version, tuple(writes)


# -- the pipeline and its universal properties --------------------------------------------------------


@dataclass
class Outcome:
    report: object
    reads: int
    bytes_read: int
    error: Optional[GdbextError]


def run_pipeline(model: Model, writes: Sequence[Tuple[int, bytes]], pin_version: bool = True) -> Outcome:
    """Locate, walk (records, summary with bin verification) and check; assert the universal properties.

    Only :class:`GdbextError` may escape gdbext (anything else fails the test).
    """
    src = model.source(writes)
    report = None
    error: Optional[GdbextError] = None
    try:
        heap = locate_heap(src, Overrides(version=model.version) if pin_version else None)
        walker = HeapWalker(heap)
        records = list(walker.chunks())
        summary = walker.summary(verify_bins=True)
        report = check_heap(heap)
    except GdbextError as err:  # HeapNotFoundError among them
        error = err
    budget = read_budget(model.size_bytes)
    assert src.reads <= budget, f"{src.reads} reads > budget {budget}"
    assert src.bytes_read <= BYTES_FACTOR * model.size_bytes, f"{src.bytes_read} bytes read"
    if report is not None:
        assert summary.chunks == sum(1 for c in records if c.state != MMAPPED)
        assert report.chunks == summary.chunks
        keys = [v.key for v in report.violations]
        assert len(keys) == len(set(keys)), "a violation reported twice"
    return Outcome(report, src.reads, src.bytes_read, error)


def explain(report) -> str:
    got = "; ".join(f"{v.check}@{v.chunk:#x}:{v.field}" if v.chunk is not None else v.check
                    for v in report.violations)
    return f"got [{got}], unparsed [" + ", ".join(f"{u.start:#x}-{u.end:#x}" for u in report.unparsed) + "]"


def assert_reported(model: Model, corr: Corruption) -> None:
    if corr.gap in CRASH_GAPS and corr.gap in KNOWN_GAPS:
        try:
            out = run_pipeline(model, corr.writes)
        except IndexError:
            return
    else:
        out = run_pipeline(model, corr.writes)
    assert out.error is None, f"{corr.label}: {out.error!r}"
    report = out.report
    if corr.expect.met(report):
        return
    where = f"{corr.label} (glibc {model.version}): expected {corr.expect.describe()}; {explain(report)}"
    assert corr.gap in KNOWN_GAPS, where
    assert corr.weak is None or corr.weak.met(report), f"[known gap {corr.gap}, weaker report missing too] {where}"


# -- the tests -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_models_are_clean(version):
    model = model_for(version)
    out = run_pipeline(model, ())
    assert out.error is None and out.report.violations == []
    assert out.reads < 64
    assert issubclass(HeapNotFoundError, GdbextError)  # the one error a corrupt image may end with


def every_corruption(version: str):
    """Every kind x target x value class of a model, with the default parameters."""
    model = model_for(version)
    for k in KINDS.values():
        for target in k.targets(model):
            for value in k.values(model, target):
                yield k.build(model, target, value)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_targeted_corruption_class(version):
    """The whole finite space of targeted corruptions (about 870 per release), default parameters;
    every failure is listed at once."""
    model = model_for(version)
    failures = []
    for corr in every_corruption(version):
        try:
            assert_reported(model, corr)
        except AssertionError as err:
            failures.append(str(err).splitlines()[0])
    assert not failures, f"{len(failures)} corruptions not reported:\n" + "\n".join(failures[:40])


@fuzz_settings("targeted")
@given(case=targeted())
def test_targeted_corruption_is_reported(case):
    """One field broken on purpose: the pipeline is bounded and the report names that chunk and field."""
    version, corr = case
    assert_reported(model_for(version), corr)


@fuzz_settings("random")
@given(case=random_writes(), pin=st.booleans())
def test_random_corruption_is_bounded(case, pin):
    """Many random words: bounded, only gdbext errors, consistent counts (the version inferred or pinned)."""
    version, writes = case
    run_pipeline(model_for(version), writes, pin_version=pin)


# -- the known gaps, one reproducer each (strict expected failures until fixed) ----------------------


def gap_case(gap: str, version: str, kind_name: str, target_of: Callable[[Model], object], value: str):
    model = model_for(version)
    corr = KINDS[kind_name].build(model, target_of(model), value)
    assert corr.gap == gap
    return model, corr


def strict(model: Model, corr: Corruption) -> None:
    report = run_pipeline(model, corr.writes).report
    assert corr.expect.met(report), f"{corr.label}: expected {corr.expect.describe()}; {explain(report)}"


@pytest.mark.xfail("via-link" in KNOWN_GAPS, strict=True, reason="pointee named, not the link (docs/robustness.md)")
def test_gap_link_into_chunk_middle_names_the_link():
    strict(*gap_case("via-link", "2.36", "list.link", lambda m: (0, 0, "next"), "mid-chunk"))


@pytest.mark.xfail("tcache-empty-head" in KNOWN_GAPS, strict=True, reason="NULL tcache head with a count")
def test_gap_null_tcache_head_with_count():
    strict(*gap_case("tcache-empty-head", "2.27", "list.head", lambda m: 0, "null"))


@pytest.mark.xfail("fencepost" in KNOWN_GAPS, strict=True, reason="NULL size mid-heap taken for fenceposts")
def test_gap_null_size_inside_an_old_heap():
    strict(*gap_case("fencepost", "2.36", "chunk.size", lambda m: m.inuse[m.arenas[1]][0], "zero"))


@pytest.mark.xfail("heap-chain" in KNOWN_GAPS, strict=True, reason="unreadable prev blamed on the pointee")
def test_gap_heap_info_prev_unmapped():
    strict(*gap_case("heap-chain", "2.36", "heap_info", lambda m: 1, "prev-unmapped"))


@pytest.mark.xfail("arena-ring" in KNOWN_GAPS, strict=True, reason="any readable next is taken for an arena")
def test_gap_arena_next_into_a_heap_chunk():
    strict(*gap_case("arena-ring", "2.36", "arena", lambda m: m.arenas[0], "mapped-garbage"))


@pytest.mark.xfail("heap-size" in KNOWN_GAPS, strict=True, reason="heap_info.size not checked for page alignment")
def test_gap_heap_info_size_not_a_page_multiple():
    strict(*gap_case("heap-size", "2.36", "heap_info", lambda m: 0, "size-unaligned"))


@pytest.mark.xfail("index-error" in KNOWN_GAPS, strict=True, raises=IndexError,
                   reason="IndexError: top at the last word of its heap")
def test_gap_top_at_the_last_word_of_its_heap():
    strict(*gap_case("index-error", "2.36", "arena", lambda m: m.arenas[0], "top-last-word"))


@pytest.mark.xfail("index-error" in KNOWN_GAPS, strict=True, raises=IndexError,
                   reason="IndexError: a heap_info.size ending the heap one word into a chunk")
def test_gap_heap_info_size_one_word_into_the_first_chunk():
    strict(*gap_case("index-error", "2.31", "heap_info", lambda m: 1, "size-tiny"))
