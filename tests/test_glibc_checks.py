# tests/test_glibc_checks.py - gdbext.glibc.checks: every kind of violation is
# caused once on a synthetic heap, with its chunk, field, raw bytes and glibc
# abort message; lists that loop must still terminate.
from __future__ import annotations

from typing import List

from glibc_heapimage import TCACHE_KEY, HeapImage, _Source

from gdbext.errors import MemoryReadError
from gdbext.glibc.checks import CHECK_IDS, check_heap
from gdbext.glibc.findings import Findings, Violation, printable_text
from gdbext.glibc.layouts import layout_for
from gdbext.glibc.locate import Limits, Overrides, locate_heap

L = layout_for("2.36")
PS = 8


class Heap:
    """A small 2.36 heap with one chunk in each kind of list, and handles to them."""

    def __init__(self, version: str = "2.36", thread: bool = False) -> None:
        self.img = img = HeapImage(version)
        m = img.main
        c = [m.malloc(s) for s in (0x30, 0x30, 0x30, 0x30, 0x30, 0x90, 0x30, 0x110, 0x30, 0x420, 0x30,
                                   0x430, 0x30, 0x420, 0x30, 0x50, 0x30, 0x460, 0x30)]
        self.c = c
        m.free(c[1], "tcache")
        m.free(c[3], "tcache")
        m.free(c[2], "fast")
        m.free(c[4], "fast")
        m.free(c[5], "unsorted")
        m.free(c[7], "bin")   # small[17]
        m.free(c[9], "bin")   # large[64]
        m.free(c[11], "bin")  # large[64], bigger: its own size group
        m.free(c[13], "bin")  # large[64], same size as c[9]
        self.inuse = c[15]
        self.thread = None
        if thread:
            a2, t2 = img.add_arena()
            d = [a2.malloc(0x40) for _ in range(4)]
            a2.free(d[1], "fast")
            self.thread, self.d = a2, d
        img.source()

    def source(self) -> _Source:
        img = self.img
        return _Source({k: bytes(v) for k, v in img.segments.items()}, img.perms,
                       symbols={"main_arena": img.main_arena, "mp_": img.mp, "tcache_key": img.tcache_key_addr,
                                "global_max_fast": img.global_max_fast_addr})

    def check(self, **kw):
        return check_heap(locate_heap(self.source(), **kw))


def only(report, check: str) -> List[Violation]:
    return [v for v in report.violations if v.check == check]


def test_clean_heap_has_no_violations():
    for version in ("2.36", "2.31", "2.27"):
        h = Heap(version, thread=True)
        report = h.check()
        assert report.violations == [], [str(v) for v in report.violations]
        assert report.ok and report.chunks == len(h.img.main.chunks) + 1 + len(h.thread.chunks) + 1


def test_size_minsize_alignment_mmapped_arena_bits():
    h = Heap()
    w = h.img.w
    w(h.c[6] + PS, 0x10 | 1)
    w(h.c[8] + PS, 0x38 | 1)
    w(h.c[10] + PS, 0x30 | 2 | 1)
    w(h.c[12] + PS, 0x30 | 4 | 1)
    r = h.check()
    assert only(r, "chunk.size.minsize")[0].chunk == h.c[6]
    v = only(r, "chunk.size.alignment")[0]
    assert v.chunk == h.c[8] and v.abort == "free(): invalid size" and v.field == "size"
    assert v.field_address == h.c[8] + PS and v.raw == (0x39).to_bytes(8, "little")
    assert only(r, "chunk.flags.mmapped")[0].abort == "munmap_chunk(): invalid pointer"
    assert only(r, "chunk.flags.arena")[0].chunk == h.c[12]
    assert {(u.start, u.end) for u in r.unparsed} == {(h.c[i], h.c[i] + 0x30) for i in (6, 8, 10, 12)}
    assert not r.ok


def test_arena_bit_clear_on_thread_chunk():
    h = Heap(thread=True)
    h.img.w(h.d[2] + PS, 0x40 | 1)  # NON_MAIN_ARENA dropped from an in-use chunk
    r = h.check()
    assert [v.chunk for v in only(r, "chunk.flags.arena")] == [h.d[2]]


def test_overflow_text_into_next_header():
    """heap_overflow-like: ASCII over the next chunk's prev_size and size."""
    h = Heap()
    h.img.put(h.c[18], b"0]ch09:t=-9.3C,h")
    r = h.check()
    v = only(r, "chunk.size.alignment")[0]
    assert v.chunk == h.c[18] and v.raw_text == "=-9.3C,h"
    nxt = only(r, "chunk.next_size")[0]
    assert nxt.chunk == h.c[17] and nxt.abort == "free(): invalid next size (normal)"
    assert nxt.raw_text == "=-9.3C,h" and "tcache" not in nxt.explanation
    # a smashed header after a free chunk: no derived PREV_INUSE complaints
    h2 = Heap()
    h2.img.put(h2.c[14], b"0]ch09:t=-9.3C,h")
    r2 = h2.check()
    assert only(r2, "chunk.size.alignment") and not only(r2, "chunk.prev_inuse.free_in_bin")
    assert not only(r2, "chunk.next_size")


def test_next_size_fast_and_bounds():
    h = Heap()
    h.img.w(h.c[16] + PS, 0x000B0178000A0300)  # binary_overflow-like: huge, flag bits clear
    r = h.check()
    v = only(r, "chunk.size.bounds")[0]
    assert v.chunk == h.c[16] and v.abort == "double free or corruption (out)"
    nxt = only(r, "chunk.next_size")[0]
    assert nxt.chunk == h.c[15] and nxt.abort == "free(): invalid next size (fast)"
    assert "tcache bin is full" in nxt.explanation


def test_size_mismatch_poison_null_byte():
    h = Heap()
    h.img.w(h.c[15] + PS, 0x40 | 1)  # 0x50 -> 0x40: the next header lands 16 bytes early
    r = h.check()
    assert only(r, "chunk.size.mismatch")[0].chunk == h.c[15]
    assert [v.check for v in r.violations] == ["chunk.size.mismatch"]
    assert [(u.start, u.end) for u in r.unparsed] == [(h.c[15] + 0x40, h.c[16])]


def test_prev_inuse_free_in_bin():
    h = Heap()
    nxt = h.c[6]
    h.img.w(nxt + PS, h.img.r(nxt + PS) | 1)  # after the unsorted chunk c[5]
    nxt2 = h.c[8]
    h.img.w(nxt2 + PS, h.img.r(nxt2 + PS) | 1)  # after the small-bin chunk c[7]
    r = h.check()
    got = {v.chunk: v for v in only(r, "chunk.prev_inuse.free_in_bin")}
    assert got[nxt].abort == "malloc(): invalid next->prev_inuse (unsorted)"
    assert got[nxt2].abort is None and "small[17]" in got[nxt2].explanation


def test_prev_inuse_cached_and_unlisted():
    h = Heap()
    h.img.w(h.c[2] + PS, h.img.r(h.c[2] + PS) & ~1)  # c[1] is in tcache
    h.img.w(h.c[2], 0x30)
    h.img.w(h.c[16] + PS, h.img.r(h.c[16] + PS) & ~1)  # c[15] is in use
    h.img.w(h.c[16], 0x50)
    r = h.check()
    assert only(r, "chunk.prev_inuse.cached")[0].chunk == h.c[2]
    assert only(r, "chunk.prev_inuse.cached")[0].abort == "double free or corruption (!prev)"
    assert only(r, "chunk.prev_inuse.unlisted")[0].chunk == h.c[16]
    first = Heap()
    first.img.w(first.c[0] - 0x290 + PS, 0x290)  # the tcache struct chunk, first in the heap
    assert only(first.check(), "chunk.prev_inuse.unlisted")[0].chunk == first.c[0] - 0x290


def test_prev_size_mismatch():
    h = Heap()
    h.img.w(h.c[6], 0x80)  # c[5] (unsorted, 0x90)
    h.img.w(h.c[8], 0x100)  # c[7] (small, 0x110)
    r = h.check()
    got = {v.chunk: v for v in only(r, "chunk.prev_size")}
    assert got[h.c[6]].abort == "malloc(): mismatching next->prev_size (unsorted)"
    assert got[h.c[8]].abort == "corrupted size vs. prev_size"
    assert got[h.c[8]].field == "prev_size" and got[h.c[8]].raw == (0x100).to_bytes(8, "little")


def test_fd_bk_reciprocity():
    h = Heap()
    h.img.w(h.c[7] + 3 * PS, 0x4141414141414140)  # small bin node's bk
    r = h.check()
    v = only(r, "list.fd_bk")
    assert v and v[0].chunk == h.c[7] and v[0].field == "bk" and v[0].abort == "corrupted double-linked list"


def test_unsorted_head_bk():
    h = Heap()
    h.img.w(L.bin_at(h.img.main_arena, 1) + 3 * PS, h.c[0])  # unsorted head's bk
    r = h.check()
    v = only(r, "list.fd_bk")[0]
    assert v.chunk == L.bin_at(h.img.main_arena, 1) and v.abort == "malloc(): unsorted double linked list corrupted"


def test_large_nextsize():
    h = Heap()
    h.img.w(h.c[11] + 4 * PS, h.c[0])  # fd_nextsize of the head of a size group
    r = h.check()
    v = only(r, "list.nextsize")
    assert v and v[0].chunk == h.c[11] and v[0].abort == "corrupted double-linked list (not small)"


def test_cycles_terminate():
    h = Heap()
    img = h.img
    e = h.c[3] + 16  # tcache head entry (c[3] freed last)
    img.w(e, img.protect(e, e))  # e->next = e
    f = h.c[4]  # fastbin head (c[4] freed last) -> c[2] -> c[4] ...
    img.w(h.c[2] + 16, img.protect(h.c[2] + 16, f))
    img.w(h.c[7] + 16, h.c[7])  # small bin node points to itself
    r = h.check()
    cyc = only(r, "list.cycle")
    labels = " ".join(v.explanation for v in cyc)
    assert "tcache[1]" in labels and "fastbin[1]" in labels and "small[17]" in labels
    tc = only(r, "tcache.count")  # the tcache list loops: count cannot be checked -> not reported
    assert not tc


def test_duplicate_membership():
    h = Heap()
    img = h.img
    # put tcache chunk c[1] also at the head of fastbin[1]
    img.w(img.main_arena + L.malloc_state["fastbinsY"] + PS, h.c[1])
    img.w(h.c[1] + 16, img.protect(h.c[1] + 16, h.c[4]))
    r = h.check()
    v = only(r, "list.duplicate")[0]
    assert v.chunk == h.c[1] and "tcache[1]" in v.explanation and "fastbin[1]" in v.explanation


def test_outside_heap_wrong_arena_not_chunk():
    h = Heap(thread=True)
    img = h.img
    e = h.c[3] + 16
    img.w(e, img.protect(e, 0x7FFFF7FA9000))  # aligned, mapped, not a heap
    img.w(h.c[5] + 2 * PS, 0x13370000)  # unsorted fd: unmapped
    fast = img.main_arena + L.malloc_state["fastbinsY"] + 3 * PS
    img.w(fast, h.d[2])  # main fastbin[3] holds a thread-arena chunk (0x40 -> index 2, wrong too)
    img.w(h.d[2] + 16, img.protect(h.d[2] + 16, 0))
    r = h.check()
    outside = only(r, "list.outside_heap")
    assert {v.chunk for v in outside} >= {h.c[3], h.c[5]}
    wrong = only(r, "list.wrong_arena")[0]  # named at the link leading there: main_arena's fastbinsY[3]
    assert (wrong.chunk, wrong.field) == (img.main_arena, "fastbinsY[3]") and f"{h.d[2]:#x}" in wrong.explanation
    assert only(r, "fastbin.size")[0].abort == "malloc(): memory corruption (fast)"
    h2 = Heap()
    e = h2.c[3] + 16
    h2.img.w(e, h2.img.protect(e, h2.c[0] + 0x20))  # into the middle of c[0]: aligned, in the heap
    r2 = h2.check()
    nc = only(r2, "list.not_chunk")
    assert nc and (nc[0].chunk, nc[0].field) == (h2.c[3], "next")  # the link holding the bad pointer
    assert f"{h2.c[0] + 0x10:#x}" in nc[0].explanation


def test_too_long():
    h = Heap()
    r = check_heap(locate_heap(h.source(), limits=Limits(max_list_nodes=1)))
    assert only(r, "list.too_long")


def test_bin_size_and_unaligned():
    h = Heap()
    img = h.img
    img.w(h.c[7] + PS, 0x200 | 1)  # small[17] holds 0x110
    img.w(h.c[9] + 2 * PS, h.c[9] + 8)  # large bin fd misaligned
    r = h.check()
    assert "small[17]" in only(r, "bin.size")[0].explanation
    assert only(r, "bin.unaligned")[0].chunk == h.c[9]
    h2 = Heap()
    h2.img.w(h2.c[5] + PS, (1 << 40) | 1)  # unsorted chunk bigger than system_mem
    assert only(h2.check(), "bin.size")[0].abort == "malloc(): invalid size (unsorted)"


def test_fastbin_and_tcache_unaligned_safe_linking():
    h = Heap()
    img = h.img
    img.w(h.c[4] + 16, 0x18BCFE56CCB)  # garbage fd: decodes to a misaligned pointer
    img.w(h.c[3] + 16, 0x0000018BCFE5687B)  # tcache_uaf-like timestamp in e->next
    r = h.check()
    fv = only(r, "fastbin.unaligned")[0]
    assert fv.chunk == h.c[4] and fv.field == "fd" and "safe-linking" in fv.explanation
    tv = only(r, "tcache.unaligned")[0]
    assert tv.chunk == h.c[3] and tv.abort == "malloc(): unaligned tcache chunk detected"
    h2 = Heap()
    head = h2.img.main_tcache + L.tcache_perthread["entries"] + PS
    h2.img.w(head, 0x18BCFE56CCB)  # the bin head itself
    v = only(h2.check(), "tcache.unaligned")[0]
    assert v.chunk == h2.img.main_tcache and v.field == "entries[1]" and v.field_address == head


def test_tcache_size_count_key():
    h = Heap()
    img = h.img
    img.w(h.c[1] + PS, 0x40 | 1)  # a tcache[1] chunk of size 0x40 (also breaks the walk)
    r = h.check()
    assert only(r, "tcache.size")[0].chunk == h.c[1]
    h2 = Heap()
    h2.img.w(h2.img.main_tcache + L.tcache_perthread["counts"] + 2, 5, 2)  # counts[1] = 5, list holds 2
    v = only(h2.check(), "tcache.count")[0]
    assert v.field == "counts[1]" and v.raw == (5).to_bytes(2, "little")
    h3 = Heap()
    h3.img.w(h3.c[1] + 16 + PS, 0x0000000500000002)  # key overwritten after free
    v = only(h3.check(), "tcache.key")[0]
    assert v.chunk == h3.c[1] and f"{TCACHE_KEY:#x}" in v.explanation
    h4 = Heap("2.31")
    h4.img.w(h4.c[1] + 16 + PS, 0)
    v = only(h4.check(), "tcache.key")[0]
    assert "not its tcache" in v.explanation


def test_tcache_key_without_symbol_by_majority():
    h = Heap()
    h.img.w(h.c[1] + 16 + PS, 0x1111)
    src = h.source()
    src._symbols.pop("tcache_key")
    r = check_heap(locate_heap(src))
    assert only(r, "tcache.key") == []  # two entries disagree: no majority, no claim
    assert any("disagree" in n for n in r.notes)
    h.img.w(h.c[1] + 16 + PS, TCACHE_KEY)
    h.img.w(h.c[0] + 16 + PS, TCACHE_KEY)  # stale key in an in-use chunk
    src = h.source()
    src._symbols.pop("tcache_key")
    r = check_heap(locate_heap(src))
    # alone it is what glibc leaves after a thread exit: a note, no finding
    assert only(r, "tcache.stale_key") == []
    assert any("still carry the tcache key" in n for n in r.notes)
    head = h.img.main_tcache + L.tcache_perthread["entries"] + PS
    h.img.w(head, 0x18BCFE56CCB)  # with a broken tcache list it may be a node lost from it
    r = check_heap(locate_heap(h.source()))
    assert only(r, "tcache.stale_key")[0].chunk == h.c[0]
    assert only(r, "tcache.stale_key")[0].severity == "warning"


def test_top_checks():
    h = Heap()
    img = h.img
    top = img.main.top
    img.w(top + PS, (1 << 30) | 1)
    r = h.check()
    assert only(r, "top.size")[0].abort == "malloc(): corrupted top size"
    assert only(r, "top.bounds")
    h2 = Heap()
    h2.img.w(h2.img.main.top + PS, h2.img.r(h2.img.main.top + PS) & ~1)
    h2.img.w(h2.img.main.top, 0x30)
    assert only(h2.check(), "top.prev_inuse")[0].abort.startswith("sysmalloc: Assertion")
    h3 = Heap()
    h3.img.w(h3.img.main.top + PS, 0x28 | 1)
    assert only(h3.check(), "top.bounds")


def test_thread_arena_system_mem_and_top():
    h = Heap(thread=True)
    a2 = h.thread
    h.img.w(a2.address + L.malloc_state["system_mem"], 0x10000)
    r = h.check()
    assert only(r, "arena.system_mem")[0].severity == "warning"
    h2 = Heap(thread=True)
    t = h2.thread.top
    h2.img.w(t + PS, 0x1000 | 1)
    assert only(h2.check(), "top.bounds")


def test_locate_violations_are_included():
    h = Heap(thread=True)
    h.img.w(h.thread.address + L.malloc_state["next"], h.thread.address)
    assert only(h.check(), "arena.ring")


def test_unreadable_segment():
    h = Heap()

    class NoBulk(_Source):
        def read_buffer(self, address, size):
            if size > 0x1000:
                raise MemoryReadError(address, size, "not dumped")
            return super().read_buffer(address, size)

    img = h.img
    src = NoBulk({k: bytes(v) for k, v in img.segments.items()}, img.perms,
                 symbols={"main_arena": img.main_arena, "mp_": img.mp})
    heap = locate_heap(src)
    r = check_heap(heap)
    assert only(r, "heap.unreadable")
    assert any("cannot read heap segment" in n for n in heap.notes + r.notes) or only(r, "heap.unreadable")


def test_all_violations_each_once():
    h = Heap()
    img = h.img
    img.put(h.c[18], b"0]ch09:t=-9.3C,h")
    img.w(h.c[7] + 3 * PS, 0x4141414141414140)
    img.w(h.c[3] + 16 + PS, 0x42)
    img.w(img.main.top + PS, (1 << 30) | 1)
    r = h.check()
    keys = [v.key for v in r.violations]
    assert len(keys) == len(set(keys))
    assert {"chunk.size.alignment", "chunk.next_size", "list.fd_bk", "tcache.key", "top.size"} <= \
        set(r.by_check())
    d = r.to_dict()
    assert not d["ok"] and len(d["violations"]) == len(r.violations) and d["unparsed"]
    for v in r.violations:
        assert v.check in CHECK_IDS and v.explanation
        assert str(v)


def test_findings_and_printable():
    f = Findings()
    v = Violation("x", None, 1, "size", 9, b"ABCDEFGH", "e")
    assert f.add(v) and not f.add(Violation("x", None, 1, "size", 9, b"", "again"))
    assert len(f) == 1 and v.key in f and f.checks() == ["x"]
    assert v.raw_text == "ABCDEFGH" and v.raw_hex == "4142434445464748"
    assert printable_text(b"\x01\x02\x03\x04") is None
    assert printable_text(b"AB\x00\x00") == "AB\\x00\\x00"
    assert v.to_dict()["raw_text"] == "ABCDEFGH"


def test_overrides_tcache_key():
    h = Heap()
    r = check_heap(locate_heap(h.source(), Overrides(tcache_key=0x99)))
    assert len(only(r, "tcache.key")) == 2  # both tcache entries disagree with the imposed key
