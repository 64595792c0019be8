# tests/test_glibc_walk.py - gdbext.glibc.walk: chunk records, filters, the
# summary path, fenceposts, re-synchronisation after smashed headers, and
# walks that must terminate on any size.
from __future__ import annotations

from collections import Counter

import pytest
from glibc_heapimage import HEAP_BASE, HeapImage, _Source

from gdbext.glibc.freelists import build_free_index
from gdbext.glibc.locate import locate_heap
from gdbext.glibc.walk import CORRUPT_STATE, FREE, IN_USE, MMAPPED, TOP, HeapWalker

SIZES = (0x20, 0x30, 0x30, 0x90, 0x100, 0x420, 0x30, 0x500, 0x30, 0x30, 0x600, 0x30, 0x40, 0x30)


def build(version="2.36", thread=True, mmapped=True):
    img = HeapImage(version)
    m = img.main
    cs = [m.malloc(s) for s in SIZES]
    m.free(cs[1], "tcache")
    m.free(cs[2], "fast")
    m.free(cs[3], "unsorted")
    m.free(cs[5], "bin")
    m.free(cs[7], "bin")
    m.free(cs[10], "bin")
    m.free(cs[12], "bin")
    expected = {cs[1]: "tcache[1]", cs[2]: "fastbin[1]", cs[3]: "unsorted", cs[5]: "large[64]",
                cs[7]: "large[68]", cs[10]: "large[72]", cs[12]: "small[4]"}
    if thread:
        a2, t2 = img.add_arena()
        d = [a2.malloc(0x40) for _ in range(6)]
        a2.free(d[1], "tcache", tcache=t2)
        a2.free(d[3], "unsorted")
        old_top = a2.top
        a2.new_heap()  # the old top becomes a free chunk before the fenceposts
        e = [a2.malloc(0x50) for _ in range(3)]
        a2.free(e[1], "fast")
        expected.update({d[3]: "unsorted", old_top: "unsorted", e[1]: "fastbin[3]"})
    if mmapped:
        img.add_mmapped()
    return img, expected


def walker_for(img, **kw):
    return HeapWalker(locate_heap(img.source(), **kw))


@pytest.mark.parametrize("version", ["2.36", "2.31", "2.27"])
def test_records(version):
    img, expected = build(version)
    w = walker_for(img)
    recs = list(w.chunks())
    by_addr = {c.address: c for c in recs}
    for addr, label in expected.items():
        assert by_addr[addr].state == FREE and by_addr[addr].bin.split("@")[0] == label, hex(addr)
    m = img.main
    assert by_addr[m.chunks[0]].size == img.L.tcache_chunk_size  # the tcache struct
    assert by_addr[m.chunks[1 + 4]].state == IN_USE and by_addr[m.chunks[5]].usable == 0x100 - 8
    tops = [c for c in recs if c.state == TOP]
    assert [t.address for t in tops] == [img.main.top, img.arenas[1].top]
    assert recs[-1].state == MMAPPED and recs[-1].arena is None and recs[-1].usable == 0x21000 - 16
    assert all(c.arena == img.main_arena for c in recs if img.main.chunks[0] <= c.address < img.main.heap_end)
    assert not w.unparsed
    # address order inside each segment, and no overlap
    arena_recs = [c for c in recs if c.state != MMAPPED]
    for a, b in zip(arena_recs, arena_recs[1:]):
        if a.arena == b.arena and b.address > a.address:
            assert a.address + a.size <= b.address


def test_filters():
    img, expected = build()
    w = walker_for(img)
    assert {c.state for c in w.chunks(states={FREE})} == {FREE}
    assert all(0x30 <= c.size <= 0x90 for c in w.chunks(min_size=0x30, max_size=0x90))
    assert sorted(c.address for c in w.chunks(bins={"unsorted"})) == sorted(
        a for a, l in expected.items() if l == "unsorted")
    assert {c.bin.split("@")[0] for c in w.chunks(bins={"large"})} == {"large[64]", "large[68]", "large[72]"}
    assert len(list(w.chunks(bins={"tcache[1]"}))) == 1
    a2 = img.arenas[1].address
    assert {c.arena for c in w.chunks(arena=a2)} == {a2}
    assert not [c for c in w.chunks(arena=a2) if c.state == MMAPPED]
    assert [c.state for c in w.chunks(states={MMAPPED})] == [MMAPPED]
    assert not list(w.chunks(include_mmapped=False, states={MMAPPED}))


@pytest.mark.parametrize("version", ["2.36", "2.31"])
def test_summary_agrees_with_records(version):
    img, _ = build(version)
    w = walker_for(img)
    recs = [c for c in w.chunks() if c.state != MMAPPED]
    s = HeapWalker(w.heap).summary(verify_bins=True)
    assert s.chunks == len(recs)
    assert s.bytes == sum(c.size for c in recs)
    totals = s.state_totals()
    for state in (IN_USE, FREE, TOP):
        mine = [c for c in recs if c.state == state]
        assert totals[state] == [len(mine), sum(c.size for c in mine)], state
    assert totals[MMAPPED] == [1, 0x21000]
    main = s.arenas[0]
    per_size = Counter((c.size, c.state) for c in recs if c.arena == img.main_arena and c.state != TOP)
    for size, (used, free) in main.sizes.items():
        assert per_size[(size, IN_USE)] == used and per_size[(size, FREE)] == free
    assert main.free_kinds["tcache"][0] == 1 and main.free_kinds["fastbin"][0] == 1
    assert main.free_kinds["bins"][0] == main.bins_listed == 5
    assert s.arenas[1].fenceposts == 2
    assert not s.notes
    fast = HeapWalker(w.heap).summary()
    assert fast.arenas[0].bins_listed == -1 and fast.to_dict()["states"] == s.to_dict()["states"]
    d = s.to_dict()
    assert d["chunks"] == s.chunks and d["arenas"][0]["label"] == "main_arena"


def test_summary_of_one_arena_and_prebuilt_index():
    img, _ = build()
    heap = locate_heap(img.source())
    idx = build_free_index(heap)
    w = HeapWalker(heap, idx)
    s = w.summary(arena=img.arenas[1].address)
    assert len(s.arenas) == 1 and s.mmapped == [0, 0]
    assert s.arenas[0].free_kinds["bins"][0] == 2  # d[3] and the old top before the fenceposts
    assert w.index is idx


def smash(img, chunk, raw: bytes):
    """Overwrite the size field of ``chunk`` after the image is built."""
    src = img.source()
    img.put(chunk + 8, raw)
    return _Source({k: bytes(v) for k, v in img.segments.items()}, img.perms,
                   symbols={"main_arena": img.main_arena, "mp_": img.mp, "tcache_key": img.tcache_key_addr}), src


@pytest.mark.parametrize("raw", [b"=-9.3C,h", (0).to_bytes(8, "little"), (0x38 | 1).to_bytes(8, "little"),
                                 (1 << 60 | 1).to_bytes(8, "little"), (0x10 | 1).to_bytes(8, "little"),
                                 (0x40 | 3).to_bytes(8, "little"), (0xFFFFFFFFFFFFFFF1).to_bytes(8, "little")])
def test_resync_after_smashed_header(raw):
    img, _ = build(thread=False, mmapped=False)
    victim = img.main.chunks[9]  # an in-use 0x30 chunk between in-use chunks
    src, _ = smash(img, victim, raw)
    w = HeapWalker(locate_heap(src))
    recs = list(w.chunks())
    corrupt = [c for c in recs if c.state == CORRUPT_STATE]
    assert [c.address for c in corrupt] == [victim]
    assert corrupt[0].size == 0x30  # up to the next parsed header
    after = img.main.chunks[10:]
    addrs = {c.address for c in recs}
    assert all(a in addrs for a in after), "the walk resumed after the smashed header"
    assert [(u.start, u.end) for u in w.unparsed] == [(victim, victim + 0x30)]
    s = w.summary()
    assert s.state_totals()[CORRUPT_STATE] == [1, 0x30]
    assert s.chunks == len(recs)


def test_resync_lands_on_top_when_nothing_else_fits():
    img = HeapImage("2.36")
    m = img.main
    cs = [m.malloc(0x30) for _ in range(3)]
    img.source()
    for c in cs[1:]:
        img.put(c, b"\xff" * 0x30)  # headers and data garbage up to top
    src = _Source({k: bytes(v) for k, v in img.segments.items()}, img.perms,
                  symbols={"main_arena": img.main_arena, "mp_": img.mp})
    w = HeapWalker(locate_heap(src))
    recs = list(w.chunks())
    assert [c.state for c in recs] == [IN_USE, IN_USE, CORRUPT_STATE, TOP]
    assert recs[2].address == cs[1] - 0x30 + 0x30 and recs[2].size == m.top - cs[1]


def test_resync_prefers_free_list_nodes():
    img = HeapImage("2.36")
    m = img.main
    cs = [m.malloc(0x40) for _ in range(5)]
    m.free(cs[3], "tcache")
    img.source()
    img.put(cs[1] + 8, b"\xff" * 8)
    src = _Source({k: bytes(v) for k, v in img.segments.items()}, img.perms,
                  symbols={"main_arena": img.main_arena, "mp_": img.mp})
    w = HeapWalker(locate_heap(src))
    assert [c.address for c in w.chunks() if c.state == FREE] == [cs[3]]
    assert [u.start for u in w.unparsed] == [cs[1]]


def test_static_trap_first_chunk_found():
    img = HeapImage("2.36", sbrk_offset=0xD40, symbols=False)
    img.put(HEAP_BASE, b"\x07" * 0xD40)
    m = img.main
    cs = [m.malloc(0x40) for _ in range(4)]
    m.free(cs[1], "tcache")
    img.source()
    img.put(img.mp, b"\0" * 0x88)
    src = _Source({k: bytes(v) for k, v in img.segments.items()}, img.perms)
    w = HeapWalker(locate_heap(src))
    recs = list(w.chunks())
    assert recs[0].address == HEAP_BASE + 0xD40
    assert not w.unparsed and any("first chunk found" in n for n in w.notes)
    assert w.summary().chunks == len(recs)


def test_zero_and_huge_sizes_terminate_quickly():
    img = HeapImage("2.36")
    m = img.main
    for _ in range(50):
        m.malloc(0x20)
    img.source()
    for c in m.chunks[5::10]:
        img.put(c + 8, (0).to_bytes(8, "little"))
    img.put(m.chunks[10] + 8, (1 << 63).to_bytes(8, "little"))
    src = _Source({k: bytes(v) for k, v in img.segments.items()}, img.perms,
                  symbols={"main_arena": img.main_arena, "mp_": img.mp})
    w = HeapWalker(locate_heap(src))
    recs = list(w.chunks())
    assert recs[-1].state == TOP
    assert len([c for c in recs if c.state == CORRUPT_STATE]) == 1 + len(m.chunks[5::10])
    assert src.reads < 200


def test_short_old_top_before_fencepost():
    """sysmalloc keeps a too-small old top as a 0x20 in-use chunk without NON_MAIN_ARENA."""
    img = HeapImage("2.36")
    a2, _t = img.add_arena(heap_size=0x2000)
    while a2.heap_end - a2.top > 0x80:
        a2.malloc(0x40)
    a2.malloc(a2.heap_end - a2.top - 0x30)
    assert a2.heap_end - a2.top == 0x30
    old = a2.top
    a2.new_heap()
    a2.malloc(0x40)
    heap = locate_heap(img.source())
    w = HeapWalker(heap)
    rec = {c.address: c for c in w.chunks()}[old]
    assert rec.state == IN_USE and rec.size == 0x20 and not rec.flags & 4
    assert w.summary().arenas[1].fenceposts == 1
    from gdbext.glibc.checks import check_heap
    assert check_heap(heap).violations == []
