# gdbext/refs.py - "who points here": every pointer into a heap chunk from
# registers, stack frames, globals and the heap objects reachable from them.
"""Find the references into heap chunks (``referenced_by``), GDB-free.

The debugger adapter (``commands/_roots.py``) turns the program's registers,
frame variables and globals into :class:`Root` objects, each with a
:class:`TypeLayout` built from DWARF: where the object's pointer slots are,
their C member paths (``.next``, ``[3]``) and the static type they point to.
This module reads those slots through any
:class:`~gdbext.memory.MemorySource` and follows pointers that land in heap
chunks, breadth first and cycle-safe, bounded by depth and object count, so a
reference is named by a C path such as ``g_table[2]->next``.  Roots without a
type (registers, the raw words of a stack frame) are scanned word by word,
and an optional conservative scan reads every aligned word of every in-use
chunk for references from objects no typed path reaches.

Pointers to free chunks count (they are the dangling ones); interior
pointers count.  Offsets into a chunk are from the start of its user data.
No allocation record exists for glibc chunks, so the type of a chunk is
inferred from its referrers (:func:`infer_type`) and fields are named with
:func:`field_at`.

Typical use (``commands/whopoints.py`` does this)::

    index = ChunkIndex.from_heap(heap, pool_reports, mem.pointer_size)
    finder = ReferenceFinder(mem, roots, index)
    result = finder.find([chunk_address])[chunk_address]
    for ref in result.references:
        print(ref.path, ref.offset_into_target, ref.field)
"""
from __future__ import annotations

import bisect
import struct
import sys
from array import array
from collections import Counter, deque
from dataclasses import dataclass
from dataclasses import field as _field
from typing import (Any, Callable, Deque, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Set,
                    Tuple, Union)

from .errors import GdbextError, MemoryReadError
from .memory import MemorySource

__all__ = [
    "PointerSlot",
    "Member",
    "TypeLayout",
    "Root",
    "HeapObject",
    "ChunkIndex",
    "Reference",
    "TraversalStats",
    "ChunkReferences",
    "ReferenceFinder",
    "find_references",
    "references_for",
    "field_at",
    "infer_type",
    "ROOT_KINDS",
    "ALLOCATOR_TYPES",
    "LIVE_STATES",
    "MAX_DEPTH",
    "MAX_OBJECTS",
]

#: The kinds of roots; a reference found inside a heap object has kind ``"heap"``
#: (``"allocator"`` when that object is the allocator's own, e.g. a tcache).
ROOT_KINDS = ("register", "stack", "global")

MAX_DEPTH = 3  #: default: pointer hops followed from a root
MAX_OBJECTS = 100_000  #: default: heap objects read while following pointers
MAX_ROOT_READ = 64 << 20  #: bytes read of one root object (a huge global array)
MAX_OBJECT_READ = 1 << 20  #: bytes read of one typed heap object
MAX_UNTYPED_READ = 64 << 10  #: bytes scanned of one heap object reached through an untyped pointer
MAX_SCAN_RUN = 16 << 20  #: bytes per bulk read of the conservative heap scan
SCAN_GAP = 4096  #: chunks closer than this are read together by the heap scan
MAX_ALIASES = 3  #: other paths kept per pointer

#: A layout, a zero-argument callable giving one (built lazily: types refer to
#: themselves through pointers), or None for "unknown: scan the raw words".
LazyLayout = Union["TypeLayout", Callable[[], Optional["TypeLayout"]], None]


# -- type layouts ---------------------------------------------------------------
@dataclass(frozen=True)
class PointerSlot:
    """One pointer inside an object: where, its C member path, and what it points to.

    A slot may stand for ``count`` pointers ``stride`` bytes apart (an array):
    element ``i`` is named ``path[base + i]suffix``.

    :param offset: bytes from the start of the object
    :param path: the member path suffix, C style: ``".next"``, ``"[3]"``,
        ``".hdr.next_free"``; ``""`` when the object itself is the pointer
    :param target_name: the pointer's static target type (``"struct record"``);
        None when nothing is known
    :param target: the target's :class:`TypeLayout`, a callable giving it, or
        None (void, char, incomplete types: the target is scanned word by word)
    :param count: how many pointers this slot stands for
    :param stride: bytes between them
    :param suffix: the path after the index of a strided slot
    :param base: the index of the first element
    """

    offset: int
    path: str
    target_name: Optional[str] = None
    target: Any = None
    count: int = 1
    stride: int = 0
    suffix: str = ""
    base: int = 0

    def path_at(self, i: int) -> str:
        """The member path of element ``i`` (0 for a single slot)."""
        if self.count == 1 and not self.stride:
            return self.path
        return f"{self.path}[{self.base + i}]{self.suffix}"

    def layout(self) -> Optional["TypeLayout"]:
        """The target's layout, built now if it was lazy."""
        t = self.target
        found = t() if callable(t) else t
        return found if isinstance(found, TypeLayout) else None

    def shifted(self, offset: int, prefix: str) -> "PointerSlot":
        """This slot inside a bigger object: ``offset`` bytes further, ``prefix`` before its path."""
        return PointerSlot(self.offset + offset, prefix + self.path, self.target_name, self.target, self.count,
                           self.stride, self.suffix, self.base)


@dataclass(frozen=True)
class Member:
    """A direct member of a struct or union: for naming the field at an offset."""

    name: str  #: "" for an anonymous struct/union member or a base class
    offset: int
    size: int
    layout: Optional["TypeLayout"] = None  #: the member's own layout when it is a struct, union or array


class TypeLayout:
    """What gdbext knows of a type in memory: its size, pointer slots and members.

    :param name: the type's name as C spells it (``"struct record"``)
    :param size: ``sizeof``
    :param slots: the pointer slots, nested members and array elements flattened
    :param members: direct members (structs and unions), for :func:`field_at`
    :param kind: ``"struct"``, ``"union"``, ``"array"``, ``"pointer"``, ``"scalar"`` or ``"function"``
    :param element: the element type of an array
    :param count: the element count of an array
    :param truncated: True when slots were left out to bound the layout
    """

    __slots__ = ("name", "size", "slots", "members", "kind", "element", "count", "truncated")

    def __init__(self, name: str, size: int, slots: Sequence[PointerSlot] = (), members: Sequence[Member] = (),
                 kind: str = "struct", element: Optional["TypeLayout"] = None, count: int = 0,
                 truncated: bool = False) -> None:
        self.name = name
        self.size = size
        self.slots: Tuple[PointerSlot, ...] = tuple(sorted(slots, key=lambda s: s.offset))
        self.members: Tuple[Member, ...] = tuple(sorted(members, key=lambda m: m.offset))
        self.kind = kind
        self.element = element
        self.count = count
        self.truncated = truncated

    @property
    def is_composite(self) -> bool:
        """A struct, union or array: something with fields to name."""
        return self.kind in ("struct", "union", "array")

    def __repr__(self) -> str:
        return f"TypeLayout({self.name!r}, size={self.size}, slots={len(self.slots)}, kind={self.kind!r})"


def _join_field(name: str, sub: Optional[str]) -> str:
    if not sub:
        return name
    if sub.startswith(("[", "+")) or not name:
        return name + sub
    return f"{name}.{sub}"


def field_at(layout: Optional[TypeLayout], offset: int, _depth: int = 0) -> Optional[str]:
    """The member at ``offset`` bytes into an object of type ``layout``.

    ``"next"``, ``"hdr.next_free"``, ``"name[5]"``, ``"slots[3].hdr"``; a
    ``+N`` suffix when the offset falls inside a scalar member; ``""`` for
    offset 0 of a scalar; None for padding, offsets outside the type, or no
    layout.

    :param layout: the object's type
    :param offset: bytes from the start of the object
    """
    if layout is None or offset < 0 or _depth > 32:
        return None
    if layout.size and offset >= layout.size:
        return None
    if layout.kind == "array":
        elem = layout.element
        if elem is None or elem.size <= 0:
            return None
        i, rest = divmod(offset, elem.size)
        if layout.count and i >= layout.count:
            return None
        sub = field_at(elem, rest, _depth + 1)
        if i == 0 and sub == "":
            return ""
        return f"[{i}]" + ("" if sub is None else (f".{sub}" if sub and sub[0] not in "[+" else sub))
    if layout.kind in ("struct", "union"):
        for m in layout.members:
            if m.offset <= offset < m.offset + max(m.size, 1):
                rest = offset - m.offset
                if m.layout is not None and m.layout.is_composite:
                    return _join_field(m.name, field_at(m.layout, rest, _depth + 1))
                return m.name + (f"+{rest}" if rest else "")
        return None
    return "" if offset == 0 else f"+{offset}"


# -- roots and heap objects --------------------------------------------------------
@dataclass
class Root:
    """Where a search starts: a register, a frame's variable or stack words, a global.

    :param path: typed roots: the C expression naming the object (``"g_table"``,
        ``"rec"``); untyped roots: a name for the words (``"rax (thread 1)"``,
        ``"stack"``)
    :param address: where the object lives; None when it is not in memory (a register)
    :param size: bytes of the object
    :param layout: its type; None: every aligned pointer-sized word is a candidate
    :param kind: one of :data:`ROOT_KINDS`
    :param thread: gdb's thread number
    :param frame: the frame number
    :param function: the frame's function
    :param value: the object's bytes when it is not in memory
    :param context: what precedes the path in reports (``"frame 2 in parse_request"``)
    """

    path: str
    address: Optional[int]
    size: int
    layout: Optional[TypeLayout]
    kind: str
    thread: Optional[int] = None
    frame: Optional[int] = None
    function: Optional[str] = None
    value: Optional[bytes] = None
    context: Optional[str] = None

    def display(self, expr: str) -> str:
        """``expr`` with this root's context in front."""
        return f"{self.context}: {expr}" if self.context else expr


class HeapObject(NamedTuple):
    """One chunk as an object: its user data ``[start, end)`` and what the allocator says of it.

    ``chunk`` is the chunk's own address (the glibc header, the pool slot);
    ``size`` its size class; ``layer`` orders nested allocators (pools
    carved from a glibc chunk have a lower layer and win lookups).
    """

    start: int
    end: int
    chunk: int
    size: int
    state: str
    source: str = "glibc"
    bin: Optional[str] = None
    usable: int = 0
    label: Optional[str] = None  #: allocator-internal object (a tcache_perthread_struct)
    layer: int = 1

    @property
    def live(self) -> bool:
        return self.state in ("in-use", "mmapped")


#: Types of glibc's own malloc state: a global of one of them (libc with debug
#: info: ``main_arena``, ``mp_``) is reported as kind ``allocator``.
ALLOCATOR_TYPES = frozenset(("struct malloc_state", "mstate", "struct malloc_par", "tcache_perthread_struct",
                             "struct tcache_perthread_struct"))

#: Chunk states whose words the conservative heap scan reads.
LIVE_STATES = frozenset(("in-use", "mmapped"))


class _Layer:
    """One allocator's objects in columns (arrays), sorted by start: ~45 bytes per chunk, not a tuple each."""

    def __init__(self, layer: int) -> None:
        self.layer = layer
        self._states: List[str] = []
        self._sources: List[str] = []
        self._state_ids: Dict[str, int] = {}
        self._source_ids: Dict[str, int] = {}
        self.start, self.end, self.chunk, self.size, self.usable = (array("Q") for _ in range(5))
        self.state, self.source = array("B"), array("H")
        self.extra: Dict[int, Tuple[Optional[str], Optional[str]]] = {}
        self.by_chunk: Optional[List[int]] = None
        self.chunk_keys: Any = self.chunk

    def add(self, o: HeapObject) -> None:
        sid = self._state_ids.get(o.state)
        if sid is None:
            sid = self._state_ids[o.state] = len(self._states)
            self._states.append(o.state)
        src = self._source_ids.get(o.source)
        if src is None:
            src = self._source_ids[o.source] = len(self._sources)
            self._sources.append(o.source)
        if o.bin is not None or o.label is not None:
            self.extra[len(self.start)] = (o.bin, o.label)
        self.start.append(o.start)
        self.end.append(o.end)
        self.chunk.append(o.chunk)
        self.size.append(o.size)
        self.usable.append(o.usable)
        self.state.append(sid)
        self.source.append(src)

    def finish(self) -> None:
        """Sort by start (walks yield arenas one after the other) and index the chunk addresses."""
        start = self.start
        if any(start[i] > start[i + 1] for i in range(len(start) - 1)):
            order = sorted(range(len(start)), key=start.__getitem__)
            self.start, self.end, self.chunk, self.size, self.usable = (
                array("Q", (col[i] for i in order)) for col in (self.start, self.end, self.chunk, self.size,
                                                               self.usable))
            self.state = array("B", (self.state[i] for i in order))
            self.source = array("H", (self.source[i] for i in order))
            where = {old: new for new, old in enumerate(order)}
            self.extra = {where[k]: v for k, v in self.extra.items()}
        chunk = self.chunk
        if any(chunk[i] > chunk[i + 1] for i in range(len(chunk) - 1)):
            self.by_chunk = sorted(range(len(chunk)), key=chunk.__getitem__)
            self.chunk_keys = array("Q", (chunk[i] for i in self.by_chunk))
        else:
            self.by_chunk = None
            self.chunk_keys = chunk

    def __len__(self) -> int:
        return len(self.start)

    def get(self, i: int) -> HeapObject:
        bin_, label = self.extra.get(i, (None, None))
        return HeapObject(self.start[i], self.end[i], self.chunk[i], self.size[i], self._states[self.state[i]],
                          self._sources[self.source[i]], bin_, self.usable[i], label, self.layer)

    def live_codes(self) -> Set[int]:
        return {i for i, name in enumerate(self._states) if name in LIVE_STATES}

    def find(self, address: int) -> Optional[HeapObject]:
        i = bisect.bisect_right(self.start, address) - 1
        for j in (i, i - 1):
            if j >= 0 and self.start[j] <= address < self.end[j]:
                return self.get(j)
        return None

    def find_chunk(self, address: int) -> Optional[HeapObject]:
        k = bisect.bisect_right(self.chunk_keys, address) - 1
        if k < 0:
            return None
        i = self.by_chunk[k] if self.by_chunk is not None else k
        if self.chunk[i] <= address < self.end[i]:
            return self.get(i)
        return None


class ChunkIndex:
    """Every heap object, sorted, for O(log n) "which chunk holds this address".

    Objects are kept in columns (see :class:`_Layer`); a :class:`HeapObject` is
    built for each answer.  Iterating yields them all, innermost layer first.
    """

    def __init__(self, objects: Iterable[HeapObject]) -> None:
        layers: Dict[int, _Layer] = {}
        for o in objects:
            if o.end > o.start:
                lay = layers.get(o.layer)
                if lay is None:
                    lay = layers[o.layer] = _Layer(o.layer)
                lay.add(o)
        self._layers: List[_Layer] = [layers[k] for k in sorted(layers)]
        for lay in self._layers:
            lay.finish()
        self._count = sum(len(lay) for lay in self._layers)
        self.lo = min((min(lay.chunk) for lay in self._layers if len(lay)), default=0)
        self.hi = max((max(lay.end) for lay in self._layers if len(lay)), default=0)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[HeapObject]:
        for lay in self._layers:
            for i in range(len(lay)):
                yield lay.get(i)

    def live_spans(self) -> Iterator[Tuple[int, int]]:
        """``[start, end)`` of every live object (in use or mmapped), each layer in address order."""
        for lay in self._layers:
            codes = lay.live_codes()
            if not codes:
                continue
            start, end, state = lay.start, lay.end, lay.state
            for i in range(len(lay)):
                if state[i] in codes:
                    yield start[i], end[i]

    def find(self, address: int) -> Optional[HeapObject]:
        """The object whose user data holds ``address`` (the innermost allocator's first)."""
        if not self.lo <= address < self.hi:
            return None
        for lay in self._layers:
            o = lay.find(address)
            if o is not None:
                return o
        return None

    def chunk_at(self, address: int) -> Optional[HeapObject]:
        """The object whose chunk (header) starts exactly at ``address``."""
        if not self.lo <= address < self.hi:
            return None
        for lay in self._layers:
            o = lay.find_chunk(address)
            if o is not None and o.chunk == address:
                return o
        return None

    def lookup(self, address: int) -> Optional[HeapObject]:
        """The chunk at ``address`` (its header) or holding it (user data first, then headers).

        A chunk's own address wins over the usable tail of the chunk before it
        (glibc's ``prev_size`` word belongs to both).
        """
        exact = self.chunk_at(address)
        if exact is not None:
            return exact
        found = self.find(address)
        if found is not None:
            return found
        for lay in self._layers:
            o = lay.find_chunk(address)
            if o is not None:
                return o
        return None

    @classmethod
    def from_heap(cls, heap: Any = None, pools: Sequence[Any] = (), pointer_size: int = 8) -> "ChunkIndex":
        """Objects of a located glibc heap (a :class:`~gdbext.glibc.GlibcHeap`) and walked pools.

        glibc: a chunk's user data starts ``2 * pointer_size`` past its header and
        ends ``pointer_size`` past the chunk (the next chunk's ``prev_size`` is usable);
        top chunks are in (a pointer into top is a pointer to memory given back)
        but never followed.  Pools (:class:`~gdbext.pools.PoolReport`): the
        payload up to the end of the slot, guard bytes included.
        """
        return cls(_heap_objects(heap, pools, pointer_size))


def _heap_objects(heap: Any, pools: Sequence[Any], ps: int) -> Iterator[HeapObject]:
    if heap is not None:
        from .glibc import HeapWalker  # local: the glibc model is only needed here

        tcaches = {t.address for t in getattr(heap, "tcaches", ())}
        labels = {a.address: "glibc " + a.label for a in heap.arenas}
        for c in HeapWalker(heap).chunks():
            start = c.address + 2 * ps
            end = c.address + c.size + (ps if c.state in ("in-use", "free") else 0)
            label = "tcache_perthread_struct" if start in tcaches else None
            src = labels.get(c.arena, "glibc mmapped") if c.arena is not None else "glibc mmapped"
            yield HeapObject(start, end, c.address, c.size, c.state, src, c.bin,
                             c.usable if c.usable else max(end - start, 0), label, 1)
    for report in pools:
        name = report.pool.spec.name
        for pc in report.chunks:
            yield HeapObject(pc.user_address, pc.address + pc.size, pc.address, pc.size, pc.state,
                             f"pool {name}", "free-list" if pc.in_free_list else None, pc.usable_size, None, 0)


# -- references -----------------------------------------------------------------
def _hex(value: Optional[int]) -> Optional[str]:
    return None if value is None else f"{value:#x}"



@dataclass
class Reference:
    """One pointer into a target chunk.

    :ivar path: the pointer as C (``g_table[2]->next``) with its context
        (``frame 1 in main: victim``), or a raw location (``rax (thread 1)``,
        ``frame 2 in f: <stack 0x7ffe...+0x18>``, ``<heap 0x4b0710+0x10>``)
    :ivar kind: ``register``, ``stack``, ``global``, ``heap`` (the pointer lives in
        a heap object) or ``allocator`` (in the allocator's own object)
    :ivar address_of_pointer: where the pointer is stored; None in a register
    :ivar pointer_value: the pointer
    :ivar offset_into_target: ``pointer_value`` minus the start of the chunk's user data
    :ivar field: the member of the chunk's inferred type at that offset
    :ivar inferred_type: the pointer's static target type from DWARF
    :ivar root_kind: the kind of the root the path starts at
    :ivar depth: pointer hops from the root (0: the root holds the pointer itself)
    :ivar typed: every step of the path is typed (else part is raw words)
    :ivar holder: the chunk (its address) holding the pointer, for heap references
    :ivar holder_offset: the pointer's offset in the holder's user data
    :ivar holder_field: the holder's member at that offset, from DWARF
    :ivar stale: the path goes through a free chunk (its words are leftovers)
    :ivar aliases: other typed paths to the same pointer (at most :data:`MAX_ALIASES`)
    """

    path: str
    kind: str
    address_of_pointer: Optional[int]
    pointer_value: int
    offset_into_target: int
    field: Optional[str] = None
    inferred_type: Optional[str] = None
    root_kind: str = ""
    thread: Optional[int] = None
    frame: Optional[int] = None
    function: Optional[str] = None
    depth: int = 0
    typed: bool = True
    target: int = 0
    holder: Optional[int] = None
    holder_offset: Optional[int] = None
    holder_field: Optional[str] = None
    stale: bool = False
    aliases: List[str] = _field(default_factory=list)
    layout: Optional[TypeLayout] = _field(default=None, repr=False, compare=False)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready: addresses as hex strings."""
        return {"path": self.path, "kind": self.kind, "address_of_pointer": _hex(self.address_of_pointer),
                "pointer_value": _hex(self.pointer_value), "offset": self.offset_into_target, "field": self.field,
                "inferred_type": self.inferred_type, "root_kind": self.root_kind, "thread": self.thread,
                "frame": self.frame, "function": self.function, "depth": self.depth, "typed": self.typed,
                "holder": _hex(self.holder), "holder_offset": self.holder_offset, "holder_field": self.holder_field,
                "stale": self.stale, "aliases": list(self.aliases)}


@dataclass
class TraversalStats:
    """What a search did: objects read, bounds hit, what could not be read."""

    roots: int = 0
    objects: int = 0
    edges: int = 0
    words_scanned: int = 0
    depth_limited: int = 0  #: heap pointers not followed because of the depth bound
    object_limit_hit: bool = False
    unreadable: List[str] = _field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return {"roots": self.roots, "objects": self.objects, "edges": self.edges,
                "words_scanned": self.words_scanned, "depth_limited": self.depth_limited,
                "object_limit_hit": self.object_limit_hit, "unreadable": self.unreadable[:20],
                "unreadable_count": len(self.unreadable)}


class _Edge(NamedTuple):
    """A pointer seen during the walk that lands in the heap or a target."""

    value: int
    slot: Optional[int]
    expr: str
    root: Root
    depth: int
    typed: bool
    target_name: Optional[str]
    target_layout: Optional[TypeLayout]
    holder: Optional[HeapObject]
    holder_field: Optional[str]
    seq: int
    stale: bool = False  #: the path reads a free chunk's words


def _word_reader(mem: MemorySource) -> Tuple[int, str, struct.Struct, Optional[str]]:
    ps = mem.pointer_size
    if ps not in (4, 8):
        raise GdbextError(f"pointer size {ps} is not supported")
    code = "Q" if ps == 8 else "I"
    endian = "<" if mem.byteorder == "little" else ">"
    native = code if mem.byteorder == sys.byteorder else None
    return ps, mem.byteorder, struct.Struct(endian + code), native


def _words(buf: Any, ps: int, native: Optional[str], endian_fmt: str) -> Sequence[int]:
    """Every ``ps``-byte word of ``buf`` (whose length is a multiple of ``ps``)."""
    n = len(buf) // ps
    if native is not None:
        try:
            return memoryview(buf)[: n * ps].cast("B").cast("Q" if native == "Q" else "I")
        except (TypeError, ValueError):
            pass
    return struct.unpack_from(endian_fmt[0] + endian_fmt[1] * n, buf, 0)


#: Elements of an array of structs (each with its own nested arrays) scanned when a
#: typed pointer leads to a chunk holding several of its target.
MAX_ARRAY_ELEMENTS = 4096


def _array_of(layout: TypeLayout, count: int) -> TypeLayout:
    """``count`` elements of ``layout`` in a row: strided slots, or flattened when elements nest arrays."""
    es = layout.size
    if all(sl.count == 1 and not sl.stride for sl in layout.slots):
        slots = [PointerSlot(sl.offset, "", sl.target_name, sl.target, count, es, sl.path) for sl in layout.slots]
        truncated = False
    else:
        n = min(count, MAX_ARRAY_ELEMENTS)
        slots = [sl.shifted(i * es, f"[{i}]") for i in range(n) for sl in layout.slots]
        truncated = n < count
    return TypeLayout(f"{layout.name}[{count}]", es * count, slots, kind="array", element=layout, count=count,
                      truncated=truncated)


def _paren(expr: str) -> str:
    return f"({expr})" if expr.startswith(("*", "&")) or " " in expr else expr


def _compose(base: str, suffix: str, via_pointer: bool) -> str:
    """The C path of member ``suffix`` of the object ``base`` names (or points to)."""
    if not via_pointer:
        return base + suffix
    if suffix == "":
        return "*" + _paren(base)
    if suffix.startswith("."):
        return _paren(base) + "->" + suffix[1:]
    return f"(*{base}){suffix}"


class _Walk:
    """Breadth-first walk from the roots through heap pointers; records every heap-bound pointer."""

    def __init__(self, mem: MemorySource, index: ChunkIndex, extra: Sequence[Tuple[int, int]], max_depth: int,
                 max_objects: int) -> None:
        self.mem = mem
        self.index = index
        self.ps, self.order, self.fmt, self.native = _word_reader(mem)
        self.endian_fmt = ("<" if self.order == "little" else ">") + ("Q" if self.ps == 8 else "I")
        self.extra = sorted(extra)
        self.extra_starts = [a for a, _ in self.extra]
        los = [index.lo] if len(index) else []
        his = [index.hi] if len(index) else []
        if self.extra:
            los.append(self.extra[0][0])
            his.append(max(b for _, b in self.extra))
        self.lo = min(los) if los else 0
        self.hi = max(his) if his else 0
        self.max_depth = max_depth
        self.max_objects = max_objects
        self.edges: List[_Edge] = []
        self.visited: Set[Tuple[int, int]] = set()
        self.typed_slots: Set[int] = set()  #: heap-bound root slots read with a type: raw scans skip them
        self.queue: Deque[Tuple[int, int, Optional[TypeLayout], str, Root, int, bool, HeapObject, bool]] = deque()
        self.stats = TraversalStats()

    def _in_extra(self, v: int) -> bool:
        i = bisect.bisect_right(self.extra_starts, v) - 1
        return i >= 0 and v < self.extra[i][1]

    def _note(self, value: int, slot: Optional[int], expr: str, root: Root, depth: int, typed: bool,
              target_name: Optional[str], target: Optional[TypeLayout], holder: Optional[HeapObject],
              holder_field: Optional[str], follow: Optional[Tuple[Optional[TypeLayout], bool]],
              stale: bool = False) -> None:
        obj = self.index.find(value)
        if obj is None and not (self.extra and self._in_extra(value)) and self.index.chunk_at(value) is None:
            return
        if slot is not None and typed and depth == 0:
            self.typed_slots.add(slot)
        elif slot is not None and depth == 0 and slot in self.typed_slots:
            return  # a raw word a typed variable already explained
        self.edges.append(_Edge(value, slot, expr, root, depth, typed, target_name, target, holder, holder_field,
                                len(self.edges), stale))
        if obj is None or follow is None or obj.state == "top":
            return
        if depth + 1 > self.max_depth:
            self.stats.depth_limited += 1
            return
        layout, known = follow
        if known and (layout is None or not layout.slots):
            return  # a typed pointer to something holding no pointers (int *, struct of scalars)
        key = (value, id(layout)) if layout is not None else (obj.start, 0)
        if key in self.visited:
            return
        if len(self.visited) >= self.max_objects:
            self.stats.object_limit_hit = True
            return
        self.visited.add(key)
        start = value if layout is not None else obj.start
        self.queue.append((start, value, layout, expr, root, depth + 1, typed and layout is not None, obj,
                           stale or not obj.live))

    # -- scanning ---------------------------------------------------------------
    def _scan_typed(self, buf: Any, base: Optional[int], layout: TypeLayout, expr: str, via_pointer: bool,
                    root: Root, depth: int, typed: bool, holder: Optional[HeapObject], stale: bool = False) -> None:
        ps, lo, hi = self.ps, self.lo, self.hi
        n = len(buf)
        unpack = self.fmt.unpack_from
        words = None
        for slot in layout.slots:
            count = slot.count if (slot.count > 1 or slot.stride) else 1
            if slot.offset + ps > n or count <= 0:
                continue
            if count > 1 and slot.stride:
                count = min(count, (n - slot.offset - ps) // slot.stride + 1)
            if count > 8 and slot.offset % ps == 0 and slot.stride % ps == 0 and slot.stride:
                if words is None:
                    words = _words(buf, ps, self.native, self.endian_fmt)
                step = slot.stride // ps
                first = slot.offset // ps
                values = words[first: first + step * count: step]
                hits = [(i, v) for i, v in enumerate(values) if lo <= v < hi]
            else:
                hits = []
                for i in range(count):
                    v = unpack(buf, slot.offset + i * slot.stride)[0]
                    if lo <= v < hi:
                        hits.append((i, v))
            self.stats.words_scanned += count
            if not hits:
                continue
            target = slot.layout()
            for i, v in hits:
                off = slot.offset + i * slot.stride
                path = _compose(expr, slot.path_at(i), via_pointer)
                hf = field_at(layout, off) if holder is not None else None
                self._note(v, None if base is None else base + off, path, root, depth, typed, slot.target_name,
                           target, holder, hf, (target, target is not None), stale)

    def _scan_words(self, buf: Any, base: Optional[int], expr_of: Callable[[int], str], root: Root, depth: int,
                    holder: Optional[HeapObject], stale: bool = False) -> None:
        ps, lo, hi = self.ps, self.lo, self.hi
        skip = (-base) % ps if base is not None else 0
        view = buf[skip:]
        words = _words(view, ps, self.native, self.endian_fmt)
        self.stats.words_scanned += len(words)
        for i in [i for i, v in enumerate(words) if lo <= v < hi]:
            off = skip + i * ps
            self._note(words[i], None if base is None else base + off, expr_of(off), root, depth, False, None,
                       None, holder, None, (None, False), stale)

    def _read(self, address: int, size: int, what: str) -> Optional[Any]:
        try:
            return self.mem.read_buffer(address, size)
        except MemoryReadError:
            self.stats.unreadable.append(f"{what} @{address:#x}")
            return None

    def run(self, roots: Sequence[Root]) -> None:
        """Walk from ``roots``: typed roots first, so typed paths claim objects before raw words do."""
        ordered = [r for r in roots if r.layout is not None] + [r for r in roots if r.layout is None]
        self.stats.roots = len(ordered)
        for phase in (True, False):
            for root in ordered:
                if (root.layout is not None) != phase:
                    continue
                self._root(root)
            self._drain()

    def _root(self, root: Root) -> None:
        if root.value is not None:
            buf: Any = root.value
        elif root.address is None or root.size <= 0:
            return
        else:
            buf = self._read(root.address, min(root.size, MAX_ROOT_READ), root.display(root.path))
            if buf is None:
                return
        base = root.address
        if root.layout is not None:
            self._scan_typed(buf, base, root.layout, root.path, False, root, 0, True, None)
            return
        if base is None:
            self._scan_words(buf, None, lambda off: root.path if off == 0 else f"{root.path}+{off:#x}", root, 0, None)
        else:
            self._scan_words(buf, base, lambda off: f"<{root.path} {base:#x}+{off:#x}>", root, 0, None)

    def _drain(self) -> None:
        while self.queue:
            start, value, layout, expr, root, depth, typed, obj, stale = self.queue.popleft()
            self.stats.objects += 1
            if layout is not None:
                esize = layout.size
                avail = obj.end - start
                count = min(avail // esize, MAX_OBJECT_READ // esize) if esize > 0 else 0
                if _holds_array(esize, avail, self.ps):
                    # room for several, more than malloc's rounding leaves: an array, named P[i]
                    buf = self._read(start, count * esize, expr)
                    if buf is not None:
                        self._scan_typed(buf, start, _array_of(layout, count), _paren(expr), False, root, depth,
                                         typed, obj, stale)
                    continue
                size = min(esize, obj.end - start, MAX_OBJECT_READ)
                if size < self.ps:
                    continue
                buf = self._read(start, size, expr)
                if buf is not None:
                    self._scan_typed(buf, start, layout, expr, True, root, depth, typed, obj, stale)
                continue
            size = min(obj.end - obj.start, MAX_UNTYPED_READ)
            buf = self._read(obj.start, size, expr)
            if buf is None:
                continue
            ostart = obj.start
            self._scan_words(buf, ostart, lambda off: f"{expr} -> <heap {ostart:#x}+{off:#x}>", root, depth, obj,
                             stale)


class _Targets:
    """Which target a pointer value refers to.

    A value in a target's range refers to it, unless it is exactly the start
    of another chunk (glibc: the ``prev_size`` word both chunks share is the
    other chunk's header); a value equal to a target chunk's own address
    (``headers``) refers to that target, at a negative offset.
    """

    def __init__(self, targets: Sequence[Tuple[int, int]], index: Optional[ChunkIndex] = None,
                 headers: Optional[Dict[int, int]] = None) -> None:
        self.targets = list(targets)
        self.starts = [a for a, _ in self.targets]
        self.index = index
        self.headers = dict(headers or {})
        bounds = [a for a, _ in self.targets] + list(self.headers)
        self.lo = min(bounds, default=0)
        self.hi = max([b for _, b in self.targets] + [h + 1 for h in self.headers], default=0)

    def which(self, value: int) -> Optional[int]:
        """The start of the target ``value`` points into, or None."""
        t = self.headers.get(value)
        if t is not None:
            return t
        j = bisect.bisect_right(self.starts, value) - 1
        if j < 0 or value >= self.targets[j][1]:
            return None
        if self.index is not None:
            other = self.index.chunk_at(value)
            if other is not None and other.start != self.starts[j]:
                return None
        return self.starts[j]


def _scan_heap(mem: MemorySource, index: ChunkIndex, targets: _Targets, stats: TraversalStats,
               seq0: int) -> List[_Edge]:
    """Every aligned word of every live chunk that points into one of ``targets``."""
    ps, _, fmt, native = _word_reader(mem)
    endian_fmt = str(fmt.format)
    if not targets.targets or not len(index):
        return []
    tlo, thi = targets.lo, targets.hi
    runs: List[Tuple[int, int]] = []
    for lo, hi in index.live_spans():
        a = lo - lo % ps
        if runs and 0 <= a - runs[-1][1] <= SCAN_GAP and hi - runs[-1][0] <= MAX_SCAN_RUN:
            runs[-1] = (runs[-1][0], max(runs[-1][1], hi))
        else:
            runs.append((a, hi))
    edges: List[_Edge] = []
    heap_root = Root("heap", None, 0, None, "heap")
    seen: Set[int] = set()

    def scan(a: int, b: int) -> None:
        b -= (b - a) % ps
        if b <= a:
            return
        try:
            buf = mem.read_buffer(a, b - a)
        except MemoryReadError:
            if b - a > 64 << 10:
                mid = a + ((b - a) // 2) // ps * ps
                scan(a, mid)
                scan(mid, b)
            else:
                stats.unreadable.append(f"heap {a:#x}..{b:#x}")
            return
        words = _words(buf, ps, native, endian_fmt)
        stats.words_scanned += len(words)
        for i in [i for i, v in enumerate(words) if tlo <= v < thi]:
            v = words[i]
            if targets.which(v) is None:
                continue
            slot = a + i * ps
            holder = index.find(slot)
            if holder is None or not holder.live or slot + ps > holder.end or slot in seen:
                continue
            seen.add(slot)
            name = holder.label or "heap"
            edges.append(_Edge(v, slot, f"<{name} {holder.start:#x}+{slot - holder.start:#x}>", heap_root, 1,
                               False, None, None, holder, None, seq0 + len(edges)))

    for a, b in runs:
        scan(a, b)
    return edges


def _rank(edge: _Edge) -> Tuple[int, int, int, int]:
    if edge.root.kind == "heap":
        return (2, 0, edge.depth, edge.seq)
    return (0 if edge.typed else 1, int(edge.stale), edge.depth, edge.seq)


def _reference(edge: _Edge, target: int) -> Reference:
    root = edge.root
    holder = edge.holder
    if holder is not None:
        kind = "allocator" if holder.label else "heap"
    elif root.layout is not None and root.layout.name in ALLOCATOR_TYPES:
        kind = "allocator"
    else:
        kind = root.kind
    return Reference(
        path=root.display(edge.expr), kind=kind, address_of_pointer=edge.slot, pointer_value=edge.value,
        offset_into_target=edge.value - target, inferred_type=edge.target_name,
        root_kind=root.kind, thread=root.thread, frame=root.frame, function=root.function,
        depth=edge.depth, typed=edge.typed, target=target,
        holder=holder.chunk if holder is not None else None,
        holder_offset=(edge.slot - holder.start) if holder is not None and edge.slot is not None else None,
        holder_field=edge.holder_field, stale=edge.stale, layout=edge.target_layout)


def _match(edges: Iterable[_Edge], targets: _Targets) -> Dict[int, List[Reference]]:
    """The best edge per (target, pointer location), as references, best first."""
    found: Dict[Tuple[int, Any], List[_Edge]] = {}
    for e in edges:
        t = targets.which(e.value)
        if t is None:
            continue
        key: Tuple[int, Any] = (t, e.slot if e.slot is not None else ("reg", e.root.thread, e.expr))
        found.setdefault(key, []).append(e)
    best: Dict[Tuple[int, Any], Tuple[_Edge, List[str]]] = {}
    for key, group in found.items():
        group.sort(key=_rank)
        first = group[0]
        shown = {first.root.display(first.expr)}
        aliases: List[str] = []
        for e in group[1:]:
            path = e.root.display(e.expr)
            if e.typed and path not in shown and len(aliases) < MAX_ALIASES:
                shown.add(path)
                aliases.append(path)
        best[key] = (first, aliases)
    out: Dict[int, List[Reference]] = {a: [] for a in targets.starts}
    for (t, _), (e, aliases) in sorted(best.items(), key=lambda kv: _rank(kv[1][0])):
        ref = _reference(e, t)
        ref.aliases = aliases
        out[t].append(ref)
    return out


def _normalise(targets: Iterable[Tuple[int, int]]) -> List[Tuple[int, int]]:
    out = sorted({(int(a), int(b)) for a, b in targets if b > a})
    for (a0, b0), (a1, _) in zip(out, out[1:]):
        if a1 < b0:
            raise GdbextError(f"target ranges {a0:#x}..{b0:#x} and {a1:#x}.. overlap")
    return out


def infer_type(refs: Sequence[Reference]) -> Tuple[Optional[str], Optional[TypeLayout], Dict[str, int]]:
    """The chunk's type as its referrers see it: ``(name, layout, votes)``.

    Pointers to the start of the chunk vote with their static target type;
    struct, union and array types win over scalars, ``void`` and ``char``,
    then the most votes, then the first seen.
    """
    votes: "Counter[str]" = Counter()
    layouts: Dict[str, Optional[TypeLayout]] = {}
    for r in refs:
        if r.offset_into_target != 0 or not r.inferred_type or r.inferred_type == "void":
            continue
        votes[r.inferred_type] += 1
        if layouts.get(r.inferred_type) is None:
            layouts[r.inferred_type] = r.layout
    if not votes:
        return None, None, {}
    order = list(votes)
    name = max(order, key=lambda n: (layouts.get(n) is not None and layouts[n].is_composite,  # type: ignore[union-attr]
                                     votes[n], -order.index(n)))
    return name, layouts.get(name), dict(votes)


def _holds_array(size: int, avail: int, ps: int) -> bool:
    """Does ``avail`` bytes hold several objects of ``size`` bytes, beyond what malloc's rounding leaves?"""
    return size > 0 and avail // size >= 2 and avail - size >= 3 * ps


def _field_in_chunk(layout: Optional[TypeLayout], offset: int, avail: int = 0, ps: int = 8) -> Optional[str]:
    """:func:`field_at`; in a chunk holding several objects, offsets past the first name an element (``[1].next``)."""
    if layout is None or offset < 0:
        return None
    if layout.size <= 0 or offset < layout.size:
        return field_at(layout, offset)
    if not _holds_array(layout.size, avail, ps):
        return None
    i, rest = divmod(offset, layout.size)
    if rest == 0:
        return f"[{i}]"
    sub = field_at(layout, rest)
    return f"[{i}]" + (("." + sub if sub[0] not in "[+" else sub) if sub else "")


def _fill_fields(refs: List[Reference], layout: Optional[TypeLayout], avail: int = 0, ps: int = 8) -> None:
    for r in refs:
        if r.offset_into_target < 0:
            r.field = "<chunk header>"
        elif r.offset_into_target > 0 and r.field is None:
            r.field = _field_in_chunk(layout, r.offset_into_target, avail, ps)


def find_references(mem: MemorySource, targets: Sequence[Tuple[int, int]], roots: Sequence[Root],
                    chunk_index: Optional[ChunkIndex] = None, max_depth: int = MAX_DEPTH,
                    max_objects: int = MAX_OBJECTS, scan_heap: bool = False,
                    stats: Optional[TraversalStats] = None) -> Dict[int, List[Reference]]:
    """Every reference into each ``[start, end)`` of ``targets``, keyed by ``start``.

    Typed roots are read slot by slot; a pointer into a chunk of
    ``chunk_index`` is followed with its static target type (an unknown type:
    the chunk's raw words), breadth first, at most ``max_depth`` hops and
    ``max_objects`` objects, each object once.  Untyped roots are scanned word
    by word.  With ``scan_heap``, every aligned word of every live chunk is
    checked too (references from objects no path reaches).  Each pointer
    location is reported once, by its best path (typed before raw, then the
    fewest hops).  Fields are named from the inferred type (:func:`infer_type`).

    :param mem: the memory source
    :param targets: non-overlapping address ranges (usually chunks' user data)
    :param roots: registers, frame variables and stack words, globals
    :param chunk_index: the heap's objects; without it no pointer is followed
    :param max_depth: pointer hops followed from a root
    :param max_objects: heap objects read at most
    :param scan_heap: also scan every live chunk conservatively
    :param stats: filled with what the search did
    """
    tl = _normalise(targets)
    index = chunk_index if chunk_index is not None else ChunkIndex(())
    walk = _Walk(mem, index, tl, max_depth, max_objects)
    walk.run(roots)
    edges = list(walk.edges)
    matcher = _Targets(tl, index)
    if scan_heap:
        edges += _scan_heap(mem, index, matcher, walk.stats, len(edges))
    walk.stats.edges = len(edges)
    if stats is not None:
        for name in ("roots", "objects", "edges", "words_scanned", "depth_limited", "object_limit_hit"):
            setattr(stats, name, getattr(walk.stats, name))
        stats.unreadable[:] = walk.stats.unreadable
    out = _match(edges, matcher)
    for a, b in tl:
        _fill_fields(out[a], infer_type(out[a])[1], b - a, mem.pointer_size)
    return out


# -- the API for reports ------------------------------------------------------------
@dataclass
class ChunkReferences:
    """Who points into one chunk, and what its referrers say it is."""

    address: int  #: the address asked about
    obj: HeapObject
    references: List[Reference]
    inferred_type: Optional[str] = None
    type_layout: Optional[TypeLayout] = _field(default=None, repr=False)
    type_votes: Dict[str, int] = _field(default_factory=dict)

    @property
    def dangling(self) -> bool:
        """The chunk is not in use: every reference to it dangles."""
        return not self.obj.live

    def paths(self) -> List[str]:
        return [r.path for r in self.references]


def _disjoint_batches(objects: List[HeapObject]) -> Iterator[List[HeapObject]]:
    """``objects`` (sorted by start) in batches whose ranges do not overlap (a pool slot inside a glibc chunk)."""
    rest = objects
    while rest:
        batch: List[HeapObject] = []
        later: List[HeapObject] = []
        end = -1
        for o in rest:
            if o.start >= end:
                batch.append(o)
                end = o.end
            else:
                later.append(o)
        yield batch
        rest = later


class ReferenceFinder:
    """References into chunks, for reports that ask chunk by chunk.

    The walk from the roots is done once and kept; each batch of chunks asked
    about costs one match (and one conservative heap scan when enabled).
    ``references`` and ``field_at`` are the callbacks of the forensics report.

    Roots and index may be given as callables: they are then built on the
    first question, so a report that never asks costs nothing.

    :param mem: the memory source
    :param roots: from ``commands/_roots.collect_roots()`` (or built by hand), or a callable giving them
    :param index: the heap's objects (:meth:`ChunkIndex.from_heap`), or a callable giving it
    :param max_depth: pointer hops followed from a root
    :param max_objects: heap objects read at most
    :param scan_heap: also scan every live chunk's words conservatively
    """

    def __init__(self, mem: MemorySource, roots: Union[Sequence[Root], Callable[[], Sequence[Root]]],
                 index: Union[ChunkIndex, Callable[[], ChunkIndex]], max_depth: int = MAX_DEPTH,
                 max_objects: int = MAX_OBJECTS, scan_heap: bool = True) -> None:
        self.mem = mem
        self._roots = roots
        self._index = index
        self.max_depth = max_depth
        self.max_objects = max_objects
        self.scan_heap = scan_heap
        self.stats = TraversalStats()
        self._edges: Optional[List[_Edge]] = None
        self._cache: Dict[int, ChunkReferences] = {}

    @property
    def roots(self) -> List[Root]:
        """The roots (collected now if they were given as a callable)."""
        if callable(self._roots):
            self._roots = list(self._roots())
        return list(self._roots)

    @property
    def index(self) -> ChunkIndex:
        """The heap's objects (built now if given as a callable)."""
        if not isinstance(self._index, ChunkIndex):
            self._index = self._index()
        return self._index

    def object_of(self, address: int) -> Optional[HeapObject]:
        """The chunk holding ``address`` (user data or header)."""
        return self.index.lookup(address)

    def _walk_edges(self) -> List[_Edge]:
        if self._edges is None:
            walk = _Walk(self.mem, self.index, (), self.max_depth, self.max_objects)
            walk.run(self.roots)
            self._edges = walk.edges
            self.stats = walk.stats
        return self._edges

    def find(self, addresses: Iterable[int]) -> Dict[int, ChunkReferences]:
        """:class:`ChunkReferences` for each address (a chunk's header or any byte of its data).

        :raises GdbextError: an address is in no known chunk
        """
        wanted: Dict[int, HeapObject] = {}
        for address in addresses:
            obj = self.object_of(address)
            if obj is None:
                raise GdbextError(f"{address:#x} is in no heap chunk or pool slot gdbext knows")
            wanted[address] = obj
        missing = sorted({o.start: o for o in wanted.values() if o.start not in self._cache}.values(),
                         key=lambda o: (o.start, o.end))
        for batch in _disjoint_batches(missing):
            targets = _Targets([(o.start, o.end) for o in batch], self.index, {o.chunk: o.start for o in batch})
            edges = list(self._walk_edges())
            if self.scan_heap:
                edges += _scan_heap(self.mem, self.index, targets, self.stats, len(edges))
            matched = _match(edges, targets)
            for o in batch:
                refs = matched[o.start]
                name, layout, votes = infer_type(refs)
                _fill_fields(refs, layout, o.end - o.start, self.mem.pointer_size)
                self._cache[o.start] = ChunkReferences(o.start, o, refs, name, layout, votes)
        out = {}
        for address, obj in wanted.items():
            cr = self._cache[obj.start]
            out[address] = ChunkReferences(address, obj, cr.references, cr.inferred_type, cr.type_layout,
                                           cr.type_votes)
        return out

    def references(self, chunk_address: int) -> List[str]:
        """The paths of every reference into the chunk at ``chunk_address`` ([] when it is unknown)."""
        if self.object_of(chunk_address) is None:
            return []
        return self.find([chunk_address])[chunk_address].paths()

    def field_at(self, chunk_address: int, offset: int) -> Optional[str]:
        """The member at ``offset`` bytes into the chunk's user data, by its inferred type."""
        if self.object_of(chunk_address) is None:
            return None
        found = self.find([chunk_address])[chunk_address]
        return _field_in_chunk(found.type_layout, offset, found.obj.end - found.obj.start, self.mem.pointer_size)


def references_for(mem: MemorySource, heap: Any, pools: Sequence[Any], roots: Sequence[Root],
                   chunk_addresses: Iterable[int], max_depth: int = MAX_DEPTH, scan_heap: bool = True
                   ) -> Dict[int, List[str]]:
    """The reference paths into each chunk (``"g_table[3]"``, ``"rax (thread 1)"``), keyed as asked.

    Addresses in no known chunk map to ``[]``.

    :param mem: the memory source
    :param heap: a located :class:`~gdbext.glibc.GlibcHeap`, or None
    :param pools: walked :class:`~gdbext.pools.PoolReport` objects
    :param roots: the roots (``commands/_roots.collect_roots()``)
    :param chunk_addresses: chunk headers or addresses inside chunks
    """
    finder = ReferenceFinder(mem, roots, ChunkIndex.from_heap(heap, pools, mem.pointer_size), max_depth,
                             scan_heap=scan_heap)
    addresses = list(chunk_addresses)
    known = [a for a in addresses if finder.object_of(a) is not None]
    found = finder.find(known) if known else {}
    return {a: (found[a].paths() if a in found else []) for a in addresses}
