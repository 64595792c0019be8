# tests/test_glibc_locate.py - gdbext.glibc.locate and .heuristics on synthetic
# heaps: symbols, symbol-less scans, the arena ring, heap_info chains, tcaches,
# mmapped chunks, version inference and overrides.
from __future__ import annotations

import pytest
from glibc_heapimage import HEAP_BASE, LIBC_DATA, TCACHE_KEY, HeapImage, _Source

from gdbext.glibc.layouts import layout_for
from gdbext.glibc.locate import HeapNotFoundError, Limits, Overrides, locate_heap


def _image(version="2.36", **kw):
    img = HeapImage(version, **kw)
    m = img.main
    chunks = [m.malloc(s) for s in (0x20, 0x30, 0x30, 0x90, 0x30)]
    m.free(chunks[1], "tcache")
    m.free(chunks[3], "unsorted")
    return img, chunks


def checks_of(heap):
    return [v.check for v in heap.violations]


def test_symbols():
    img, _ = _image()
    heap = locate_heap(img.source())
    assert (heap.main_arena, heap.main_arena_how) == (img.main_arena, "symbol")
    assert (heap.mp, heap.mp_how) == (img.mp, "symbol")
    assert heap.sbrk_base == HEAP_BASE
    assert len(heap.arenas) == 1 and heap.arenas[0].is_main
    seg = heap.arenas[0].segments[0]
    assert seg.start == HEAP_BASE and seg.top == img.main.top and seg.end == img.main.heap_end
    assert [t.address for t in heap.tcaches] == [img.main_tcache]
    assert heap.tcaches[0].how == "first-chunk" and heap.tcaches[0].counts[1] == 1
    assert heap.tcache_key == TCACHE_KEY and heap.tcache_key_how == "symbol"
    assert heap.global_max_fast == 0x80
    assert heap.version.how == "inferred" and heap.version.version >= (2, 35)
    assert heap.violations.checks() == []
    assert heap.arena_of(img.main.chunks[2]).address == img.main_arena


@pytest.mark.parametrize("version, low, high", [("2.43", (2, 43), (2, 43)), ("2.42", (2, 42), (2, 42)),
                                                ("2.36", (2, 35), (2, 41)), ("2.33", (2, 32), (2, 33)),
                                                ("2.31", (2, 30), (2, 31)), ("2.29", (2, 29), (2, 29)),
                                                ("2.27", (2, 27), (2, 28))])
def test_heuristics_without_symbols(version, low, high):
    img, chunks = _image(version, symbols=False)
    img.main.free(chunks[2], "tcache")  # two entries: keys and links to compare
    heap = locate_heap(img.source())
    assert (heap.main_arena, heap.main_arena_how) == (img.main_arena, "heuristic")
    assert (heap.mp, heap.mp_how) == (img.mp, "heuristic")
    assert low <= heap.version.version <= high, heap.version.text
    assert heap.layout.malloc_par["sbrk_base"] == layout_for(version).malloc_par["sbrk_base"]
    assert heap.tcaches and heap.tcaches[0].address == img.main_tcache


def test_version_override_and_banner_free_symbols():
    img, _ = _image("2.31")
    heap = locate_heap(img.source(), Overrides(version="2.31"))
    assert heap.version.how == "override" and heap.layout.version == (2, 31)
    assert heap.tcache_key is None and heap.tcache_key_how == "tcache-address"


def test_thread_arenas_and_heaps():
    img, _ = _image()
    a2, t2 = img.add_arena()
    x = [a2.malloc(0x40) for _ in range(3)]
    a2.free(x[1], "tcache", tcache=t2)
    h2 = a2.new_heap()
    a2.malloc(0x50)
    a3, t3 = img.add_arena()
    heap = locate_heap(img.source())
    assert [a.address for a in heap.arenas] == [img.main_arena, a2.address, a3.address]
    assert heap.arenas[1].heap_infos == a2.heap_infos and heap.arenas[1].heap_infos[-1] == h2
    segs = heap.arenas[1].segments
    assert len(segs) == 2 and segs[0].top is None and segs[1].top == a2.top
    assert segs[0].start == layout_for("2.36").first_chunk(a2.address + 0x898)
    assert segs[1].start == h2 + 0x30
    assert {t.address for t in heap.tcaches} == {img.main_tcache, t2, t3}
    assert heap.violations.checks() == []


def test_tls_tcache_override():
    img, _ = _image()
    a2, t2 = img.add_arena(tcache=False)
    heap = locate_heap(img.source(), Overrides(tcaches=[img.main_tcache, 0]))
    assert [(t.address, t.how) for t in heap.tcaches] == [(img.main_tcache, "override")]
    only = locate_heap(img.source(), Overrides(tcaches=[img.main_tcache], tcache_heuristic=False))
    assert len(only.tcaches) == 1


def test_location_overrides():
    img, _ = _image(symbols=False)
    src = img.source()
    heap = locate_heap(src, Overrides(main_arena=img.main_arena, mp=img.mp, sbrk_base=HEAP_BASE,
                                      tcache_key=TCACHE_KEY, global_max_fast=0x60, heap_max_size=1 << 20))
    assert heap.main_arena_how == "override" and heap.mp_how == "override"
    assert heap.tcache_key_how == "override" and heap.global_max_fast == 0x60 and heap.heap_max_size == 1 << 20


def test_huge_page_heap_max_size():
    img, _ = _image()
    src = img.source()
    img.w(img.mp + layout_for("2.36").malloc_par["hp_pagesize"], 2 << 20)
    heap = locate_heap(img.source())
    assert heap.heap_max_size == 8 << 20
    assert locate_heap(src).heap_max_size == 64 << 20


def test_mmapped_chunks():
    img, _ = _image()
    m1 = img.add_mmapped(0x21000)
    m2 = img.add_mmapped(0x40000)
    heap = locate_heap(img.source())
    assert [(m.address, m.size) for m in heap.mmapped] == [(m1, 0x21000), (m2, 0x40000)]
    img.n_mmaps = 0  # mp_.n_mmaps == 0: nothing is scanned
    assert locate_heap(img.source()).mmapped == []
    assert locate_heap(img.source(), Overrides(scan_mmapped=False)).mmapped == []


def test_arena_ring_cycle_and_null():
    img, _ = _image()
    a2, _t = img.add_arena()
    a3, _t = img.add_arena()
    img.source()
    ms = layout_for("2.36").malloc_state
    img.w(a3.address + ms["next"], a2.address)  # a2 -> a3 -> a2 -> ...: never back to main_arena
    heap = locate_heap(_Source({k: bytes(v) for k, v in img.segments.items()}, img.perms,
                               symbols={"main_arena": img.main_arena, "mp_": img.mp}))
    assert [a.address for a in heap.arenas] == [img.main_arena, a2.address, a3.address]
    v = [v for v in heap.violations if v.check == "arena.ring"][0]
    assert v.chunk == a3.address and v.field == "next" and "loops back" in v.explanation
    img.w(a3.address + ms["next"], 0)
    heap = locate_heap(_Source({k: bytes(v) for k, v in img.segments.items()}, img.perms,
                               symbols={"main_arena": img.main_arena, "mp_": img.mp}))
    assert "is NULL" in [v for v in heap.violations if v.check == "arena.ring"][0].explanation
    img.w(a3.address + ms["next"], 0x12340000)  # unreadable
    heap = locate_heap(_Source({k: bytes(v) for k, v in img.segments.items()}, img.perms,
                               symbols={"main_arena": img.main_arena, "mp_": img.mp}))
    assert "unreadable" in [v for v in heap.violations if v.check == "arena.ring"][0].explanation


def test_arena_ring_limit():
    img, _ = _image()
    for _ in range(4):
        img.add_arena(tcache=False)
    heap = locate_heap(img.source(), limits=Limits(max_arenas=3))
    assert len(heap.arenas) == 3 and "arena.ring" in checks_of(heap)


def _src_of(img):
    return _Source({k: bytes(v) for k, v in img.segments.items()}, img.perms,
                   symbols={"main_arena": img.main_arena, "mp_": img.mp})


def test_heap_info_chain_problems():
    img, _ = _image()
    a2, _t = img.add_arena()
    a2.malloc(0x40)
    h2 = a2.new_heap()
    a2.malloc(0x40)
    h3 = a2.new_heap()
    img.source()
    hi = layout_for("2.36").heap_info
    img.w(h2 + hi["prev"], h3)  # h3 -> h2 -> h3: a cycle
    heap = locate_heap(_src_of(img))
    assert "heap_info.cycle" in checks_of(heap)
    img.w(h2 + hi["prev"], a2.heap_infos[0])
    img.w(h3 + hi["ar_ptr"], 0xDEAD0)
    img.w(h3 + hi["size"], 1 << 40)
    heap = locate_heap(_src_of(img))
    assert {"heap_info.ar_ptr", "heap_info.size"} <= set(checks_of(heap))
    img.w(h3 + hi["ar_ptr"], a2.address)
    img.w(h3 + hi["size"], 0x21000)
    img.w(h3 + hi["prev"], 0)  # chain ends before the first heap
    heap = locate_heap(_src_of(img))
    assert "heap_info.prev" in checks_of(heap)
    img.w(h3 + hi["prev"], h2 + 0x1000)  # misaligned
    heap = locate_heap(_src_of(img))
    assert "heap_info.prev" in checks_of(heap)
    img.w(h3 + hi["prev"], 0x7F0000000000)  # aligned but unmapped
    heap = locate_heap(_src_of(img))
    assert "heap_info.unreadable" in checks_of(heap)
    img.w(h3 + hi["prev"], h2)
    img.w(a2.heap_infos[0] + hi["prev"], 0x10)
    assert "heap_info.prev" in checks_of(locate_heap(_src_of(img)))


def test_top_outside_heap():
    img, _ = _image()
    img.source()
    img.w(img.main_arena + 0x60, 0x7FFFF7FA9000)  # top -> libc data
    heap = locate_heap(_src_of(img))
    assert "arena.top" in checks_of(heap)
    assert heap.arenas[0].segments and heap.arenas[0].segments[0].top is None


def test_not_found():
    src = _Source({0x1000: b"\0" * 0x1000}, {0x1000: ("rw-", "")})
    with pytest.raises(HeapNotFoundError):
        locate_heap(src)
    with pytest.raises(HeapNotFoundError):
        locate_heap(src, Overrides(main_arena=0x900000))


def test_static_tls_before_sbrk_base_without_mp():
    """The static-binary trap: the [heap] mapping starts below sbrk_base (TLS block there)."""
    img = HeapImage("2.36", sbrk_offset=0xD40, symbols=False)
    img.put(HEAP_BASE, b"\x07" * 0xD40)  # TLS-ish garbage
    m = img.main
    cs = [m.malloc(0x40) for _ in range(4)]
    m.free(cs[1], "tcache")
    img.source()
    img.put(img.mp, b"\0" * 0x88)  # no mp_ to find
    src = _Source({k: bytes(v) for k, v in img.segments.items()}, img.perms)
    heap = locate_heap(src)
    assert heap.mp is None and heap.mp_how == "missing"
    seg = heap.arenas[0].segments[0]
    assert seg.start == HEAP_BASE and not seg.exact_start
    assert any("sbrk_base unknown" in n for n in heap.notes)
    with_mp = locate_heap(img.source())
    assert with_mp.arenas[0].segments[0].start == HEAP_BASE + 0xD40


def test_reads_are_bounded():
    img, _ = _image(symbols=False)
    src = img.source()
    locate_heap(src)
    assert src.reads < 5000
    assert LIBC_DATA  # the scanned region


def test_heap_info_size_tells_the_release_without_mp():
    img, _ = _image("2.31", symbols=False)
    a2, t2 = img.add_arena()
    x = [a2.malloc(0x40) for _ in range(3)]
    a2.free(x[1], "tcache", tcache=t2)
    a2.new_heap()
    a2.malloc(0x50)
    img.source()
    img.put(img.mp, b"\0" * 0x70)
    heap = locate_heap(_Source({k: bytes(v) for k, v in img.segments.items()}, img.perms))
    assert heap.mp is None and heap.version.version < (2, 35)
    assert "heap_info is 0x20 bytes" in heap.version.text
    assert heap.arenas[1].segments[1].start == a2.heap_infos[1] + 0x20


def test_debug_offsets_are_cross_checked():
    img, _ = _image()
    debug = {"malloc_par": {"sbrk_base": 0x60, "tcache_bins": 0x68, "__sizeof__": 0x88},
             "_heap_info": {"ar_ptr": 0, "prev": 8, "size": 16, "mprotect_size": 24, "__sizeof__": 0x20}}
    heap = locate_heap(img.source(), Overrides(debug_offsets=debug))
    mism = {(m.struct, m.field) for m in heap.layout_mismatches}
    assert ("heap_info", "pagesize") in mism and ("heap_info", "") in mism
    assert heap.layout.heap_info.size == 0x20 and heap.layout.source == "table+debuginfo"
