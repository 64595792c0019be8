# tests/test_refs.py - gdbext.refs without gdb: typed paths, cycles, depth and
# object bounds, interior and header pointers, untyped scans, the heap scan,
# field names, and the finder API the forensics report calls.
from __future__ import annotations

import struct
import time
from types import SimpleNamespace

import pytest
from glibc_heapimage import HeapImage

from gdbext.errors import GdbextError
from gdbext.glibc import locate_heap
from gdbext.memory import BufferSource
from gdbext.refs import (ChunkIndex, HeapObject, Member, PointerSlot, ReferenceFinder, Root, TraversalStats,
                         TypeLayout, field_at, find_references, infer_type, references_for)

DATA = 0x1000  #: "globals"
HEAP = 0x100000  #: chunks of 0x30 bytes: 16-byte header, 40 usable bytes
STACK = 0x7F0000
CHUNK = 0x30


class Image:
    """A tiny address space: a data region, a heap of fixed-size chunks, a stack."""

    def __init__(self, nchunks: int = 16, ps: int = 8, order: str = "little") -> None:
        self.ps, self.order = ps, order
        self.data = bytearray(0x400)
        self.heap = bytearray(CHUNK * nchunks + 0x40)
        self.stack = bytearray(0x200)
        self.states = ["in-use"] * nchunks

    def user(self, i: int) -> int:
        return HEAP + i * CHUNK + 2 * self.ps

    def put(self, address: int, value: int) -> None:
        for base, buf in ((DATA, self.data), (HEAP, self.heap), (STACK, self.stack)):
            if base <= address < base + len(buf):
                buf[address - base: address - base + self.ps] = value.to_bytes(self.ps, self.order)
                return
        raise AssertionError(hex(address))

    def source(self) -> BufferSource:
        return BufferSource({DATA: bytes(self.data), HEAP: bytes(self.heap), STACK: bytes(self.stack)},
                            pointer_size=self.ps, byteorder=self.order)

    def index(self) -> ChunkIndex:
        ps = self.ps
        return ChunkIndex(HeapObject(HEAP + i * CHUNK + 2 * ps, HEAP + (i + 1) * CHUNK + ps, HEAP + i * CHUNK,
                                     CHUNK, st) for i, st in enumerate(self.states))


def node_layout() -> TypeLayout:
    """struct node { int id; struct node *next; char *name; double v; }: 32 bytes."""
    holder = {}
    node = TypeLayout("struct node", 32, [
        PointerSlot(8, ".next", "struct node", lambda: holder["node"]),
        PointerSlot(16, ".name", "char", None),
    ], [Member("id", 0, 4), Member("next", 8, 8), Member("name", 16, 8), Member("v", 24, 8)])
    holder["node"] = node
    return node


def ptr_to(layout: TypeLayout) -> TypeLayout:
    return TypeLayout(layout.name + " *", 8, [PointerSlot(0, "", layout.name, layout)], kind="pointer")


def array_of_ptrs(layout: TypeLayout, n: int) -> TypeLayout:
    return TypeLayout(f"{layout.name} *[{n}]", 8 * n,
                      [PointerSlot(0, "", layout.name, layout, count=n, stride=8)], kind="array",
                      element=ptr_to(layout), count=n)


def paths(refs):
    return [r.path for r in refs]


# -- typed paths -----------------------------------------------------------------
def test_a_list_is_named_by_its_c_path_and_a_cycle_terminates():
    img = Image()
    node = node_layout()
    for i in range(4):  # 0 -> 1 -> 2 -> 3 -> 0 (a cycle)
        img.put(img.user(i) + 8, img.user((i + 1) % 4))
    img.put(DATA, img.user(0))
    roots = [Root("g_head", DATA, 8, ptr_to(node), "global")]
    stats = TraversalStats()
    target = img.user(3)
    out = find_references(img.source(), [(target, target + 40)], roots, img.index(), max_depth=10, stats=stats)
    refs = out[target]
    assert paths(refs) == ["g_head->next->next->next"]
    r = refs[0]
    assert (r.kind, r.root_kind, r.depth, r.address_of_pointer) == ("heap", "global", 3, img.user(2) + 8)
    assert (r.holder, r.holder_offset, r.holder_field) == (HEAP + 2 * CHUNK, 8, "next")
    assert r.inferred_type == "struct node" and r.offset_into_target == 0
    assert stats.objects == 4  # each node read once, the cycle closed by the visited set


def test_depth_bound_and_the_heap_scan_fallback():
    img = Image()
    node = node_layout()
    for i in range(5):
        img.put(img.user(i) + 8, img.user(i + 1))
    img.put(DATA, img.user(0))
    roots = [Root("g_head", DATA, 8, ptr_to(node), "global")]
    target = img.user(5)
    stats = TraversalStats()
    out = find_references(img.source(), [(target, target + 40)], roots, img.index(), max_depth=3, stats=stats)
    assert out[target] == [] and stats.depth_limited >= 1
    deep = find_references(img.source(), [(target, target + 40)], roots, img.index(), max_depth=5)
    assert paths(deep[target]) == ["g_head->next->next->next->next->next"]
    scanned = find_references(img.source(), [(target, target + 40)], roots, img.index(), max_depth=3,
                              scan_heap=True)
    assert paths(scanned[target]) == [f"<heap {img.user(4):#x}+0x8>"]
    assert scanned[target][0].kind == "heap" and not scanned[target][0].typed


def test_object_bound():
    img = Image()
    node = node_layout()
    for i in range(8):
        img.put(img.user(i) + 8, img.user(i + 1))
    img.put(DATA, img.user(0))
    roots = [Root("g_head", DATA, 8, ptr_to(node), "global")]
    stats = TraversalStats()
    target = img.user(8)
    out = find_references(img.source(), [(target, target + 40)], roots, img.index(), max_depth=100,
                          max_objects=3, stats=stats)
    assert out[target] == [] and stats.objects == 3 and stats.object_limit_hit
    found = find_references(img.source(), [(target, target + 40)], roots, img.index(), max_depth=100)
    assert paths(found[target]) == ["g_head" + "->next" * 8]


def test_a_table_of_pointers_and_the_shortest_path_wins():
    img = Image()
    node = node_layout()
    table = array_of_ptrs(node, 12)  # more than 8 elements: the bulk (strided) path
    for i in range(12):
        img.put(DATA + 8 * i, img.user(i))
        img.put(img.user(i) + 8, img.user(i + 1) if i < 11 else 0)
    roots = [Root("g_table", DATA, table.size, table, "global")]
    target = img.user(3)
    refs = find_references(img.source(), [(target, target + 40)], roots, img.index())[target]
    assert paths(refs) == ["g_table[3]", "g_table[2]->next"]
    assert [r.kind for r in refs] == ["global", "heap"]
    assert [r.address_of_pointer for r in refs] == [DATA + 24, img.user(2) + 8]


def test_interior_pointers_get_the_field_of_the_inferred_type():
    img = Image()
    node = node_layout()
    img.put(DATA, img.user(2))            # g_node: struct node *, to the start
    img.put(DATA + 8, img.user(2) + 16)   # g_name_slot: char **, to the name member
    img.put(DATA + 16, img.user(2) + 27)  # g_byte: void *, inside v
    roots = [Root("g_node", DATA, 8, ptr_to(node), "global"),
             Root("g_name_slot", DATA + 8, 8, TypeLayout("char **", 8, [PointerSlot(0, "", "char *", None)],
                                                         kind="pointer"), "global"),
             Root("g_byte", DATA + 16, 8, TypeLayout("void *", 8, [PointerSlot(0, "", "void", None)],
                                                     kind="pointer"), "global")]
    target = img.user(2)
    refs = find_references(img.source(), [(target, target + 40)], roots, img.index())[target]
    got = {r.path: (r.offset_into_target, r.field) for r in refs}
    assert got == {"g_node": (0, None), "g_name_slot": (16, "name"), "g_byte": (27, "v+3")}
    assert infer_type(refs)[0] == "struct node"


def test_nested_structs_arrays_and_pointer_to_pointer_paths():
    img = Image()
    node = node_layout()
    inner = TypeLayout("struct inner", 16, [PointerSlot(8, ".ptr", "struct node", node)],
                       [Member("tag", 0, 8), Member("ptr", 8, 8)])
    outer = TypeLayout("struct outer", 48, [sl.shifted(0, ".in[0]") for sl in inner.slots]
                       + [sl.shifted(16, ".in[1]") for sl in inner.slots]
                       + [PointerSlot(32, ".pp", "struct node *", ptr_to(node))],
                       [Member("in", 0, 32, TypeLayout("struct inner[2]", 32, kind="array", element=inner, count=2)),
                        Member("pp", 32, 8)])
    img.put(DATA + 24, img.user(1))         # g_outer.in[1].ptr
    img.put(DATA + 32, img.user(5))         # g_outer.pp -> a heap slot holding a pointer
    img.put(img.user(5), img.user(6))       # *g_outer.pp
    roots = [Root("g_outer", DATA, 48, outer, "global")]
    t1, t6 = img.user(1), img.user(6)
    out = find_references(img.source(), [(t1, t1 + 40), (t6, t6 + 40)], roots, img.index())
    assert paths(out[t1]) == ["g_outer.in[1].ptr"]
    assert paths(out[t6]) == ["g_outer.pp[0]"]  # 40 bytes hold 5 pointers: read as an array
    assert field_at(outer, 24) == "in[1].ptr" and field_at(outer, 33) == "pp+1"


def test_untyped_roots_registers_and_stack_words():
    img = Image()
    target = img.user(4)
    img.put(STACK + 0x18, target + 8)
    roots = [Root("rax (thread 1)", None, 8, None, "register", thread=1, frame=0, function="f",
                  value=target.to_bytes(8, "little")),
             Root("rbx (thread 1)", None, 8, None, "register", thread=1, value=(0x1234).to_bytes(8, "little")),
             Root("stack", STACK + 0x10, 0x40, None, "stack", thread=1, frame=2, function="parse_request",
                  context="frame 2 in parse_request")]
    refs = find_references(img.source(), [(target, target + 40)], roots, img.index())[target]
    assert paths(refs) == ["rax (thread 1)", f"frame 2 in parse_request: <stack {STACK + 0x10:#x}+0x8>"]
    reg, stk = refs
    assert (reg.kind, reg.address_of_pointer, reg.thread, reg.typed) == ("register", None, 1, False)
    assert (stk.kind, stk.address_of_pointer, stk.offset_into_target, stk.frame) == ("stack", STACK + 0x18, 8, 2)


def test_typed_path_wins_over_raw_words_of_the_same_slot():
    img = Image()
    node = node_layout()
    target = img.user(3)
    img.put(STACK + 0x20, target)
    roots = [Root("stack", STACK, 0x80, None, "stack", frame=1, context="frame 1 in main"),
             Root("victim", STACK + 0x20, 8, ptr_to(node), "stack", frame=1, context="frame 1 in main")]
    refs = find_references(img.source(), [(target, target + 40)], roots, img.index())[target]
    assert paths(refs) == ["frame 1 in main: victim"]


def test_untyped_pointers_are_followed_as_raw_words():
    img = Image()
    ctx = TypeLayout("struct ctx", 16, [PointerSlot(8, ".data", "void", None)],
                     [Member("n", 0, 8), Member("data", 8, 8)])
    img.put(DATA + 8, img.user(2))          # g_ctx.data -> chunk 2 (type unknown)
    img.put(img.user(2) + 16, img.user(7))  # chunk 2 word 2 -> chunk 7
    img.put(STACK + 8, img.user(9))          # a raw stack word -> chunk 9
    img.put(img.user(9) + 8, img.user(7) + 4)
    roots = [Root("g_ctx", DATA, 16, ctx, "global"),
             Root("stack", STACK, 0x40, None, "stack", frame=0, context="frame 0 in f")]
    target = img.user(7)
    refs = find_references(img.source(), [(target, target + 40)], roots, img.index())[target]
    assert paths(refs) == [f"g_ctx.data -> <heap {img.user(2):#x}+0x10>",
                           f"frame 0 in f: <stack {STACK:#x}+0x8> -> <heap {img.user(9):#x}+0x8>"]
    assert [r.typed for r in refs] == [False, False] and refs[1].offset_into_target == 4


def test_free_chunks_are_targets_but_their_stale_words_are_not_scanned():
    img = Image()
    img.states[5] = "free"
    img.put(img.user(5), img.user(6))   # a stale pointer in a free chunk
    img.put(img.user(1), img.user(5))   # a live chunk still points to the free one
    target = img.user(5)
    out = find_references(img.source(), [(target, target + 40), (img.user(6), img.user(6) + 40)], [], img.index(),
                          scan_heap=True)
    assert paths(out[target]) == [f"<heap {img.user(1):#x}+0x0>"]
    assert out[img.user(6)] == []


def test_a_pointer_to_a_chunk_header_belongs_to_that_chunk():
    img = Image()
    img.put(DATA, HEAP + 3 * CHUNK)  # the header of chunk 3, which is also chunk 2's usable tail
    roots = [Root("raw", DATA, 8, None, "global")]
    index = img.index()
    finder = ReferenceFinder(img.source(), roots, index, scan_heap=False)
    r3 = finder.find([HEAP + 3 * CHUNK])[HEAP + 3 * CHUNK]
    assert [(r.offset_into_target, r.field) for r in r3.references] == [(-16, "<chunk header>")]
    assert finder.find([img.user(2)])[img.user(2)].references == []


def test_overlapping_targets_are_refused():
    img = Image()
    with pytest.raises(GdbextError):
        find_references(img.source(), [(HEAP, HEAP + 64), (HEAP + 32, HEAP + 96)], [], img.index())


def test_unreadable_roots_and_objects_are_noted_not_raised():
    img = Image()
    node = node_layout()
    index = ChunkIndex(list(img.index()) + [HeapObject(0x900010, 0x900040, 0x900000, 0x30, "in-use")])
    img.put(DATA, 0x900010)  # a chunk the source cannot read
    roots = [Root("g_head", DATA, 8, ptr_to(node), "global"), Root("g_gone", 0x5000, 8, ptr_to(node), "global")]
    stats = TraversalStats()
    out = find_references(img.source(), [(0x900010, 0x900040)], roots, index, stats=stats)
    assert paths(out[0x900010]) == ["g_head"]
    assert len(stats.unreadable) == 2


@pytest.mark.parametrize("ps,order", [(4, "big"), (4, "little"), (8, "big")])
def test_other_pointer_sizes_and_byte_orders(ps, order):
    img = Image(ps=ps, order=order)
    node = TypeLayout("struct n", 40, [PointerSlot(ps, ".next", "struct n", None)],
                      [Member("id", 0, ps), Member("next", ps, ps)])
    table = TypeLayout("struct n *[10]", 10 * ps, [PointerSlot(0, "", "struct n", node, count=10, stride=ps)],
                       kind="array")
    for i in range(10):
        img.put(DATA + i * ps, img.user(i))
    img.put(img.user(0) + ps, img.user(9) + 2)
    img.put(STACK + ps, img.user(9))
    roots = [Root("t", DATA, 10 * ps, table, "global"), Root("stack", STACK, 8 * ps, None, "stack")]
    target = img.user(9)
    refs = find_references(img.source(), [(target, target + 40)], roots, img.index())[target]
    assert paths(refs) == ["t[9]", "t[0]->next", f"<stack {STACK:#x}+{ps:#x}>"]


# -- field names and type inference ----------------------------------------------------
def test_field_at():
    name = TypeLayout("char[20]", 20, kind="array", element=TypeLayout("char", 1, kind="scalar"), count=20)
    rec = TypeLayout("struct record", 40, [], [Member("id", 0, 4), Member("name", 4, 20, name),
                                                Member("next", 24, 8), Member("value", 32, 8)])
    assert [field_at(rec, o) for o in (0, 2, 4, 9, 24, 31, 32, 40, -1)] == \
        ["id", "id+2", "name", "name[5]", "next", "next+7", "value", None, None]
    padded = TypeLayout("struct p", 16, [], [Member("c", 0, 1), Member("d", 8, 8)])
    assert field_at(padded, 3) is None
    arr = TypeLayout("struct record[4]", 160, kind="array", element=rec, count=4)
    assert field_at(arr, 40 + 24) == "[1].next" and field_at(arr, 80 + 6) == "[2].name[2]"
    assert field_at(None, 0) is None


def test_infer_type_prefers_structs_then_votes():
    node = node_layout()
    mk = lambda t, off=0, lay=None: SimpleNamespace(inferred_type=t, offset_into_target=off, layout=lay)  # noqa: E731
    name, layout, votes = infer_type([mk("char"), mk("char"), mk("struct node", 0, node), mk("void"),
                                      mk("struct other", 8, node)])
    assert (name, layout, votes) == ("struct node", node, {"char": 2, "struct node": 1})
    assert infer_type([])[0] is None


# -- the finder and references_for ---------------------------------------------------------
def test_references_for_a_synthetic_glibc_heap():
    img = HeapImage("2.36")
    m = img.main
    chunks = [m.malloc(0x30) for _ in range(6)]
    ps = 8
    user = [c + 2 * ps for c in chunks]
    img.w(user[0] + 8, user[3])          # chunk 0's next -> chunk 3
    img.w(user[3] + 8, user[4] + 8)      # chunk 3 -> inside chunk 4
    m.free(chunks[3], "fast")            # chunk 3 is now free: dangling
    img.region(DATA, 0x100)  # the "globals"
    img.w(DATA, user[0])
    src = img.source()
    heap = locate_heap(src)
    node = node_layout()
    roots = [Root("g_head", DATA, 8, ptr_to(node), "global")]
    out = references_for(src, heap, [], roots, [chunks[3], user[4] + 3, 0x10], scan_heap=True)
    assert out[chunks[3]] == ["g_head->next"]
    # chunk 3 is free: its stale words are not scanned, but the typed walk reads them (and says so)
    assert out[user[4] + 3] == ["g_head->next->next"]
    assert out[0x10] == []
    finder = ReferenceFinder(src, roots, ChunkIndex.from_heap(heap, [], ps))
    res = finder.find([chunks[3]])[chunks[3]]
    assert res.dangling and res.obj.state == "free" and res.obj.bin.startswith("fastbin")
    assert res.inferred_type == "struct node" and res.obj.size == 0x30
    assert finder.references(user[3] + 1) == ["g_head->next"]
    stale = finder.find([user[4]])[user[4]].references
    assert [(r.path, r.stale, r.offset_into_target, r.field) for r in stale] == [
        ("g_head->next->next", True, 8, None)]  # no pointer to its start: no type, no field
    assert finder.field_at(chunks[3], 8) == "next" and finder.field_at(0x10, 8) is None


def test_pool_slots_in_the_index():
    slots = [SimpleNamespace(address=DATA + 0x100 + i * 0x50, size=0x50, user_address=DATA + 0x118 + i * 0x50,
                             usable_size=48, state="in-use" if i != 1 else "free", in_free_list=i == 1)
             for i in range(3)]
    report = SimpleNamespace(pool=SimpleNamespace(spec=SimpleNamespace(name="g_pool")), chunks=slots)
    index = ChunkIndex.from_heap(None, [report], 8)
    obj = index.lookup(DATA + 0x118 + 0x50 + 3)
    assert (obj.chunk, obj.source, obj.state, obj.bin, obj.layer) == (DATA + 0x150, "pool g_pool", "free",
                                                                        "free-list", 0)
    assert index.lookup(DATA + 0x150) == obj  # the slot's header finds the slot
    img = Image()
    img.put(STACK, DATA + 0x168)
    roots = [Root("req", STACK, 8, TypeLayout("char *", 8, [PointerSlot(0, "", "char", None)], kind="pointer"),
                  "stack", frame=3, function="dispatch", context="frame 3 in dispatch")]
    finder = ReferenceFinder(img.source(), roots, index)
    res = finder.find([DATA + 0x168])[DATA + 0x168]
    assert res.paths() == ["frame 3 in dispatch: req"] and res.inferred_type == "char" and res.dangling


def test_the_walk_is_done_once_for_many_questions():
    img = Image()
    node = node_layout()
    for i in range(6):
        img.put(DATA + 8 * i, img.user(i))
    table = array_of_ptrs(node, 6)
    src = img.source()
    finder = ReferenceFinder(src, [Root("g_t", DATA, 48, table, "global")], img.index(), scan_heap=False)
    assert finder.references(img.user(1)) == ["g_t[1]"]
    reads = src.reads
    assert finder.references(img.user(2)) == ["g_t[2]"]
    assert finder.references(img.user(1)) == ["g_t[1]"]
    assert src.reads == reads  # no second walk, and cached answers


def test_the_heap_scan_is_bulk_and_fast():
    n = 200_000
    size = 0x20
    heap = bytearray(n * size + 16)
    words = memoryview(heap).cast("Q")
    target_chunk = n // 2
    tstart = HEAP + target_chunk * size + 16
    for i in range(0, n, 1000):  # sparse pointers elsewhere in the heap
        words[(i * size + 16) // 8] = HEAP + ((i + 7) % n) * size + 16
    words[(1234 * size + 24) // 8] = tstart + 4
    src = BufferSource({HEAP: bytes(heap)})
    index = ChunkIndex(HeapObject(HEAP + i * size + 16, HEAP + (i + 1) * size + 8, HEAP + i * size, size, "in-use")
                       for i in range(n))
    t0 = time.perf_counter()
    out = find_references(src, [(tstart, tstart + 24)], [], index, scan_heap=True)
    elapsed = time.perf_counter() - t0
    assert paths(out[tstart]) == [f"<heap {HEAP + 1234 * size + 16:#x}+0x8>"]
    assert src.reads <= 4  # a few bulk reads, not one per chunk
    assert elapsed < 5.0, elapsed


def test_struct_helpers():
    sl = PointerSlot(8, ".a", "T", None, count=4, stride=16, suffix=".p", base=1)
    assert sl.path_at(0) == ".a[1].p" and sl.shifted(32, ".x").path_at(2) == ".x.a[3].p"
    assert PointerSlot(0, ".n").path_at(0) == ".n"
    assert struct.calcsize("Q") == 8


def test_a_typed_pointer_to_a_chunk_of_several_objects_reads_them_as_an_array():
    img = Image()
    node = node_layout()
    big = HeapObject(HEAP + 0x310, HEAP + 0x310 + 4 * 32, HEAP + 0x300, 0x90, "in-use")
    img.heap.extend(bytes(0x100))
    index = ChunkIndex(list(img.index())[:10] + [big])  # chunks 0..9, then one of 4 nodes
    img.put(DATA, big.start)                          # g_nodes: struct node *, to an array of 4
    img.put(big.start + 2 * 32 + 8, img.user(1))      # g_nodes[2].next
    img.put(big.start + 3 * 32 + 8, big.start + 32)   # g_nodes[3].next -> the array's element 1
    roots = [Root("g_nodes", DATA, 8, ptr_to(node), "global")]
    t = img.user(1)
    out = find_references(img.source(), [(t, t + 40), (big.start, big.end)], roots, index)
    assert paths(out[t]) == ["g_nodes[2].next"]
    assert out[t][0].holder_field == "[2].next" and out[t][0].holder_offset == 72
    assert paths(out[big.start]) == ["g_nodes", "g_nodes[3].next"]
    assert out[big.start][1].offset_into_target == 32 and out[big.start][1].field == "[1]"
