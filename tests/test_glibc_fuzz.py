# tests/test_glibc_fuzz.py - random corruption of synthetic glibc heaps: every
# walk, summary and check must terminate, read a bounded amount and raise
# nothing but our own errors.
from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from glibc_heapimage import HEAP_BASE, HeapImage, _Source

from gdbext.glibc.checks import check_heap
from gdbext.glibc.locate import HeapNotFoundError, locate_heap
from gdbext.glibc.walk import HeapWalker


def _base(version: str):
    img = HeapImage(version, heap_size=0x4000)
    m = img.main
    cs = [m.malloc(s) for s in (0x30, 0x30, 0x90, 0x30, 0x420, 0x30, 0x40, 0x30, 0x110, 0x30, 0x50, 0x30)]
    for i in (1, 6):
        m.free(cs[i], "tcache")
    m.free(cs[10], "fast")
    m.free(cs[2], "unsorted")
    m.free(cs[4], "bin")
    m.free(cs[8], "bin")
    a2, t2 = img.add_arena(heap_size=0x4000)
    d = [a2.malloc(0x40) for _ in range(4)]
    a2.free(d[1], "unsorted")
    a2.new_heap(0x4000)
    a2.malloc(0x30)
    img.source()
    return img


BASES = {v: _base(v) for v in ("2.36", "2.31")}

writes = st.lists(
    st.tuples(st.integers(0, 0x3FF8 // 8), st.sampled_from([
        0, 1, 0x10, 0x11, 0x21, 0x31, 0x38, 0x3F, 0x4141414141414141, 1 << 63, 0xFFFFFFFFFFFFFFFF,
        HEAP_BASE + 0x2A0, HEAP_BASE + 0x2A8, 0x7FFFF7FA8C60, 0x555555559010,
    ])),
    min_size=1, max_size=12,
)


MAX_EXAMPLES = int(os.environ.get("GDBEXT_FUZZ_EXAMPLES", "150"))


@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(version=st.sampled_from(sorted(BASES)), heap_writes=writes, arena_writes=writes, thread_writes=writes)
def test_random_corruption_terminates(version, heap_writes, arena_writes, thread_writes):
    img = BASES[version]
    segs = {k: bytearray(v) for k, v in img.segments.items()}
    heap = segs[HEAP_BASE]
    for word, value in heap_writes:
        heap[word * 8 : word * 8 + 8] = value.to_bytes(8, "little")
    thread_heap = segs[img.arenas[1].heap_infos[0]]
    for word, value in thread_writes:
        thread_heap[word * 8 : word * 8 + 8] = value.to_bytes(8, "little")
    arena_seg = segs[0x7FFFF7FA8000]
    for word, value in arena_writes:
        off = 0xC60 + (word % 0x113) * 8  # inside main_arena
        arena_seg[off : off + 8] = value.to_bytes(8, "little")
    src = _Source({k: bytes(v) for k, v in segs.items()}, img.perms,
                  symbols={"main_arena": img.main_arena, "mp_": img.mp})
    try:
        located = locate_heap(src)
    except HeapNotFoundError:
        return
    walker = HeapWalker(located)
    recs = list(walker.chunks())
    summary = walker.summary()
    report = check_heap(located)
    assert summary.chunks == len([c for c in recs if c.state != "mmapped"])
    assert report.chunks == summary.chunks
    assert src.reads < 20000
    keys = [v.key for v in report.violations]
    assert len(keys) == len(set(keys))
