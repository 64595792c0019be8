# tests/test_glibc_cores.py - the glibc model on real cores: the fixture cores
# (compared with their GT truth files) and, when present, the benchmark cores
# made by the shared bench's make-cores.sh (compared with a floor-style count
# and, for small cores, with floor_walk.py itself under gdb).
from __future__ import annotations

import glob
import lzma
import os
import re
import shutil
import struct
import subprocess

import pytest
from conftest import CORES, Truth

from gdbext.glibc.checks import check_heap
from gdbext.glibc.locate import locate_heap
from gdbext.glibc.walk import FREE, IN_USE, HeapWalker

corefile = pytest.importorskip("gdbext.corefile")

FIXTURES = ["heap_overflow", "binary_overflow", "tcache_uaf", "double_free", "uaf_perturb", "threads",
            "pool_overflow", "sensor"]
_CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "gdbext-bench")
#: where benchmarks/heapwalk_bench.py keeps the reference cores (GDBEXT_BENCH_CORES: a ':'-separated list)
BENCH_DIRS = [d for d in os.environ.get("GDBEXT_BENCH_CORES", _CACHE).split(":") if d]
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLOOR = os.path.join(os.path.dirname(_REPO), "shared", "bench", "floor_walk.py")


@pytest.fixture(scope="module")
def fixture_core(tmp_path_factory):
    out = tmp_path_factory.mktemp("glibc-cores")
    cache = {}

    def get(name):
        if name not in cache:
            xz = os.path.join(CORES, name + ".core.xz")
            if not os.path.exists(xz) or not os.path.exists(os.path.join(CORES, name)):
                pytest.skip(f"fixture core {name} not built")
            path = out / (name.replace("/", "_") + ".core")
            with lzma.open(xz) as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst)
            core = corefile.CoreFile(str(path), os.path.join(CORES, name))
            heap = locate_heap(core)
            cache[name] = (heap, Truth(name))
        return cache[name]

    return get


def by_check(report):
    out = {}
    for v in report.violations:
        out.setdefault(v.check, []).append(v)
    return out


@pytest.mark.parametrize("name", ["heap_overflow", "glibc/heap_overflow-sid"])
def test_heap_overflow(fixture_core, name):
    heap, gt = fixture_core(name)
    report = check_heap(heap)
    v = by_check(report)
    victim = v["chunk.size.alignment"][0]
    assert victim.chunk == gt.int("b_chunk")
    assert victim.raw_text == gt["b_size_field_after_text"]
    assert int.from_bytes(victim.raw, "little") == gt.int("b_size_field_after")
    src = v["chunk.next_size"][0]
    assert src.chunk == gt.int("a_chunk") and src.abort == gt["abort_message"]
    recs = {c.address: c for c in HeapWalker(heap).chunks()}
    assert recs[gt.int("a_chunk")].state == IN_USE and recs[gt.int("a_chunk")].usable == gt.int("a_usable_size")
    assert recs[gt.int("guard_chunk")].state == IN_USE


def test_binary_overflow(fixture_core):
    heap, gt = fixture_core("binary_overflow")
    v = by_check(check_heap(heap))
    bad = v["chunk.size.bounds"][0]
    assert bad.chunk == gt.int("victim_chunk") and bad.abort == gt["abort_message"]
    assert int.from_bytes(bad.raw, "little") == gt.int("victim_size_field_after")


@pytest.mark.parametrize("name", ["tcache_uaf", "glibc/tcache_uaf-sid"])
def test_tcache_uaf(fixture_core, name):
    heap, gt = fixture_core(name)
    report = check_heap(heap)
    v = by_check(report)
    head = v["tcache.unaligned"][0]
    assert head.abort == gt["abort_message"]
    assert int.from_bytes(head.raw, "little") == gt.int("corrupt_tcache_head")
    stale = v["tcache.stale_key"][0]
    assert stale.chunk == gt.int("other_addr") - 16  # the node lost behind the smashed head
    assert heap.tcache_key == gt.int("victim_tcache_key")


@pytest.mark.parametrize("name", ["double_free", "glibc/double_free-sid"])
def test_double_free(fixture_core, name):
    heap, gt = fixture_core(name)
    report = check_heap(heap)
    assert report.ok, [str(x) for x in report.violations]
    recs = {c.address: c for c in HeapWalker(heap).chunks()}
    p = recs[gt.int("p_chunk")]
    assert p.state == FREE and p.bin == "tcache[1]" and p.size == gt.int("p_chunk_size")
    assert heap.tcache_key == gt.int("p_tcache_key")
    assert heap.memory.word(gt.int("p_addr")) == gt.int("p_tcache_next_protected")


def test_uaf_perturb(fixture_core):
    heap, gt = fixture_core("uaf_perturb")
    assert check_heap(heap).ok
    recs = {c.address: c for c in HeapWalker(heap).chunks()}
    victim = recs[gt.int("victim_chunk")]
    assert victim.state == FREE and victim.bin == f"fastbin[{gt.int('fastbin_index')}]"
    spares = [recs[gt.int(f"spare.{i}.addr") - 16] for i in range(gt.int("spare_count"))]
    assert all(c.bin == "tcache[1]" for c in spares)
    assert heap.memory.word(gt.int("victim_addr")) == gt.int("victim_fd_protected")


@pytest.mark.parametrize("name", ["threads", "glibc/threads-sid"])
def test_threads(fixture_core, name):
    heap, gt = fixture_core(name)
    assert len(heap.arenas) == gt.int("expected_arenas")
    assert len(heap.tcaches) == gt.int("nthreads")
    report = check_heap(heap)
    assert report.ok, [str(x) for x in report.violations]
    recs = {c.address: c for c in HeapWalker(heap).chunks()}
    summary = HeapWalker(heap).summary()
    arena_by_addr = {a.arena: a for a in summary.arenas}
    for who in ["main"] + [f"thread.{i}" for i in range(gt.int("nworkers"))]:
        n = 0
        while gt.get(f"{who}.obj.{n}.addr"):
            c = recs[gt.int(f"{who}.obj.{n}.addr") - 16]
            want = IN_USE if gt[f"{who}.obj.{n}.state"] == "live" else FREE
            assert c.state == want and c.size == gt.int(f"{who}.obj.{n}.chunk_size"), (who, n)
            if who != "main":
                assert c.arena == gt.int(f"{who}.arena")
            n += 1
        if who != "main":
            arena = arena_by_addr[gt.int(f"{who}.arena")]
            assert arena.states[FREE][0] == gt.int(f"{who}.freed_count")
            assert arena.states[IN_USE][0] == gt.int(f"{who}.live_count") + 1  # + its tcache struct
            info = heap.arena_at(gt.int(f"{who}.arena"))
            assert info.heap_infos == [gt.int(f"{who}.heap")]


@pytest.mark.parametrize("name", ["pool_overflow", "sensor"])
def test_clean_fixtures(fixture_core, name):
    heap, _gt = fixture_core(name)
    report = check_heap(heap)
    assert report.ok and not report.unparsed
    s = HeapWalker(heap).summary()
    assert s.chunks == report.chunks


# -- benchmark cores ------------------------------------------------------------------------

def _bench_cores():
    out = []
    for d in BENCH_DIRS:
        for core in sorted(glob.glob(os.path.join(d, "core.*"))):
            if core.endswith(".log"):
                continue
            m = re.match(r"core\.(dyn|static)\.(\d+)(\.thread)?$", os.path.basename(core))
            binary = os.path.join(d, f"bigheap-{m.group(1)}") if m else None
            if m and os.path.exists(binary):
                out.append(pytest.param(core, binary, id=f"{os.path.basename(d)}/{os.path.basename(core)}"))
    return out or [pytest.param(None, None, marks=pytest.mark.skip(reason="no bench cores (make-cores.sh)"))]


def _mini_floor(src, heap):
    """The floor walker's count, written independently of gdbext.glibc: main heap from
    align16(mp_.sbrk_base) to top, non-main heaps through heap_info (2.36 x86-64 offsets)."""
    u = struct.Struct("<Q").unpack_from
    rd = lambda a: u(src.read(a, 8), 0)[0]  # noqa: E731
    total = 0
    main = heap.main_arena
    a = main
    while True:
        top = rd(a + 0x60)
        if a == main:
            start = (rd(heap.mp + 0x60) + 15) & ~15
            segs = [(start, top)]
        else:
            segs, h = [], top & ~((64 << 20) - 1)
            while h:
                segs.append((h, rd(h + 16)))
                h = rd(h + 8)
            segs.reverse()
            first = segs[0][0]
            segs = [((a + 0x898 + 15) & ~15 if h == first else h + 0x30, h + size if not h <= top < h + size else top)
                    for h, size in segs]
        for lo, hi in segs:
            buf = src.read(lo, hi - lo)
            off = 0
            while off < hi - lo:
                sz = u(buf, off + 8)[0] & ~7
                if sz < 32:
                    break
                total += 1
                off += sz
        total += 1  # top
        a = rd(a + 0x870)
        if a == main:
            return total


@pytest.mark.parametrize("core, binary", _bench_cores())
def test_bench_core(core, binary):
    src = corefile.CoreFile(core, binary)
    heap = locate_heap(src)
    summary = HeapWalker(heap).summary(verify_bins=True)
    assert not summary.notes
    if heap.mp is not None:
        assert summary.chunks == _mini_floor(src, heap)
    n = int(re.search(r"\.(\d+)", os.path.basename(core)).group(1))
    assert summary.chunks >= n
    report = check_heap(heap)
    assert report.ok and report.violations == [], [str(v) for v in report.violations[:5]]
    assert report.chunks == summary.chunks
    if n <= 10000 and shutil.which("gdb") and os.path.exists(FLOOR):
        out = subprocess.run(["gdb", "-q", "-nx", "-batch", "-x", FLOOR, "-ex", "floor-walk --all-arenas",
                              binary, core], capture_output=True, text=True, timeout=120).stdout
        m = re.search(r"FLOOR_TOTAL chunks=(\d+)", out)
        assert m and int(m.group(1)) == summary.chunks


# -- glibc 2.43 with tunables: large tcache bins on a real core ----------------------------------

class _NoMp:
    """A memory source hiding the ``mp_`` symbol: the tunables must stand in for it."""

    def __init__(self, src):
        self._src = src

    def __getattr__(self, name):
        return getattr(self._src, name)

    def symbol(self, name):
        return None if name == "mp_" else self._src.symbol(name)


def test_large_tcache_bins_and_tunables(fixture_core):
    heap, gt = fixture_core("glibc/tcache_large-sid")
    assert heap.version.version == (2, 43) and heap.version.how == "symbol"
    assert heap.tunables.text == gt["tunables"] and heap.tunables.how == "__environ"
    assert heap.mp_values["tcache_count"] == gt.int("tcache_count")
    report = check_heap(heap)
    assert report.ok and report.violations == [], [str(v) for v in report.violations]
    assert [t.address for t in heap.tcaches] == [gt.int("tcache_perthread_struct") + 16]
    got = {(hex(c.address), c.bin) for c in HeapWalker(heap).chunks(states={FREE})}
    assert got == {tuple(v.split()) for v in gt.all("free")}
    index = report.index
    for i in (1, 64, 66, 69):
        lists = [fl for fl in index.lists if fl.label == f"tcache[{i}]"]
        assert len(lists) == 1 and lists[0].length == gt.int(f"tcache.{i}.count")


def test_tunables_stand_in_for_a_missing_mp(fixture_core, tmp_path):
    _heap, gt = fixture_core("glibc/tcache_large-sid")
    path = tmp_path / "tl.core"
    with lzma.open(os.path.join(CORES, "glibc/tcache_large-sid.core.xz")) as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    with corefile.CoreFile(str(path), os.path.join(CORES, "glibc/tcache_large-sid")) as core:
        heap = locate_heap(_NoMp(core))
        assert heap.mp is None  # the default-value pattern does not match a tuned mp_
        assert heap.tunables.get("glibc.malloc.tcache_count") == 3
        report = check_heap(heap)
        assert report.ok, [str(v) for v in report.violations]
        got = {(hex(c.address), c.bin) for c in HeapWalker(heap).chunks(states={FREE})}
        assert got == {tuple(v.split()) for v in gt.all("free")}
