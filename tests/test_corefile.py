# tests/test_corefile.py - gdbext.corefile against real cores made by gdb's generate-core-file.
#
# A session fixture compiles a small C program (static, -g -O0; plus a PIE
# variant), runs it under gdb until it crashes on a write to 0x1234, and
# dumps the core.  The program prints the addresses of its buffers and
# globals; the tests read them back through CoreFile, check symbols, threads,
# notes and build-ids, compare bytes with what gdb itself shows, and break
# copies of the core (truncated, undumped segments, renamed files) to check
# the error paths.  Skipped when gcc or gdb is missing.
from __future__ import annotations

import functools
import os
import re
import shutil
import struct
import subprocess
import time
from dataclasses import dataclass
from typing import Dict, List, Tuple

import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import given, settings
from hypothesis import strategies as st

from gdbext.corefile import MAX_READ, X86_64_REGISTERS, CoreFile
from gdbext.elfsyms import ElfSymbols
from gdbext.errors import CoreFileError, MemoryReadError, GdbextError

SOURCE = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

long g_value = 0x1122334455667788L;
static int s_counter = 42;
char g_name[16] = "gdbext-core";
static volatile int g_ready;

static void *worker(void *arg) {
    (void)arg;
    g_ready = 1;
    for (;;)
        pause();
    return NULL;
}

__attribute__((noinline)) void crash_here(volatile int *p) {
    *p = 7; /* CRASH-LINE */
}

int main(void) {
    pthread_t t;
    unsigned char *a = malloc(64);
    unsigned char *b = malloc(1000);
    unsigned char *c = malloc(200000);
    for (int i = 0; i < 64; i++)
        a[i] = (unsigned char)(0xA0 + i);
    for (int i = 0; i < 1000; i++)
        b[i] = (unsigned char)(i * 7);
    memset(c, 0x5A, 200000);
    s_counter += 1;
    pthread_create(&t, NULL, worker, NULL);
    while (!g_ready)
        usleep(1000);
    printf("ADDR a=%p b=%p c=%p g_value=%p s_counter=%p g_name=%p crash_here=%p\n",
           (void *)a, (void *)b, (void *)c, (void *)&g_value, (void *)&s_counter,
           (void *)g_name, (void *)crash_here);
    fflush(stdout);
    crash_here((volatile int *)0x1234);
    return 0;
}
"""

CRASH_LINE = next(i for i, line in enumerate(SOURCE.splitlines(), 1) if "CRASH-LINE" in line)
A_BYTES = bytes((0xA0 + i) & 0xFF for i in range(64))
B_BYTES = bytes((i * 7) & 0xFF for i in range(1000))


@dataclass
class Dumped:
    """One compiled program and the core gdb dumped of it."""

    binary: str
    core: str
    addrs: Dict[str, int]


def _dump(binary: str, core: str) -> Dict[str, int]:
    proc = subprocess.run(
        [
            "gdb", "-nx", "-batch",
            "-ex", "set pagination off",
            "-ex", "set startup-with-shell off",
            "-ex", "run",
            "-ex", f"generate-core-file {core}",
            "--args", binary,
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("ADDR ")), None)
    if line is None or not os.path.isfile(core):
        pytest.fail(f"gdb did not dump a core:\n{proc.stdout}\n{proc.stderr}")
    return {k: int(v, 16) for k, v in re.findall(r"(\w+)=(0x[0-9a-f]+)", line)}


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Dumped]:
    if shutil.which("gcc") is None or shutil.which("gdb") is None:
        pytest.skip("gcc and gdb are needed to make a core")
    work = tmp_path_factory.mktemp("corefile")
    src = work / "prog.c"
    src.write_text(SOURCE)
    out: Dict[str, Dumped] = {}
    for kind, flags in (("static", ["-static"]), ("pie", ["-pie", "-fPIE"])):
        binary = str(work / f"prog-{kind}")
        subprocess.run(["gcc", "-g", "-O0", "-pthread", *flags, "-o", binary, str(src)], check=True, cwd=work)
        core = str(work / f"core.{kind}")
        out[kind] = Dumped(os.path.realpath(binary), core, _dump(binary, core))
    return out


@pytest.fixture(scope="session")
def static(built: Dict[str, Dumped]) -> Dumped:
    return built["static"]


@pytest.fixture()
def core(static: Dumped):
    with CoreFile(static.core) as c:
        yield c


@pytest.fixture(scope="session")
def shared_core(static: Dumped):
    """One open core for the property tests (hypothesis reruns a test body, not its fixtures)."""
    with CoreFile(static.core) as c:
        yield c


@functools.lru_cache(maxsize=None)
def _phdrs_cached(path: str) -> Tuple[dict, ...]:
    with open(path, "rb") as f:
        return tuple(dict(seg.header) for seg in ELFFile(f).iter_segments())


def _phdrs(path: str) -> List[dict]:
    return list(_phdrs_cached(path))


def _patched_copy(src: str, dst: str, edit) -> str:
    data = bytearray(open(src, "rb").read())
    edit(data)
    with open(dst, "wb") as f:
        f.write(data)
    return dst


def _set_filesz(data: bytearray, vaddr: int, filesz: int) -> None:
    """Set p_filesz of the PT_LOAD starting at ``vaddr`` in an ELF64 little-endian core."""
    phoff = struct.unpack_from("<Q", data, 32)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    for k in range(phnum):
        at = phoff + k * phentsize
        ptype, _flags, _off, pvaddr = struct.unpack_from("<IIQQ", data, at)
        if ptype == 1 and pvaddr == vaddr:
            struct.pack_into("<Q", data, at + 32, filesz)
            return
    raise AssertionError(f"no PT_LOAD at {vaddr:#x}")


def _gdb_bytes(binary: str, core: str, addrs: List[int]) -> Dict[int, bytes]:
    """What gdb's ``x/16xb`` shows at each address, through gdb itself."""
    cmds: List[str] = []
    for a in addrs:
        cmds += ["-ex", f"echo @@{a:#x}\\n", "-ex", f"x/16xb {a:#x}"]
    proc = subprocess.run(
        ["gdb", "-nx", "-batch", "-ex", "set pagination off", *cmds, binary, core],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    out: Dict[int, bytes] = {}
    current = None
    for line in proc.stdout.splitlines():
        if line.startswith("@@"):
            current = int(line[2:], 16)
            out[current] = b""
        elif current is not None and re.match(r"^0x[0-9a-f]+( <[^>]*>)?:", line):
            values = re.findall(r"\t0x([0-9a-f]{2})", line)
            out[current] += bytes(int(v, 16) for v in values)
    return out


# -- opening and errors ----------------------------------------------------
def test_header_facts(core: CoreFile) -> None:
    assert core.pointer_size == 8
    assert core.byteorder == "little"
    assert core.problems == []


def test_missing_file(tmp_path) -> None:
    with pytest.raises(CoreFileError, match="no such file"):
        CoreFile(str(tmp_path / "nope"))


def test_empty_file(tmp_path) -> None:
    p = tmp_path / "empty"
    p.write_bytes(b"")
    with pytest.raises(CoreFileError, match="empty"):
        CoreFile(str(p))


def test_random_bytes(tmp_path) -> None:
    p = tmp_path / "random"
    p.write_bytes(os.urandom(4096).replace(b"\x7fELF", b"xELF"))
    with pytest.raises(CoreFileError, match="not an ELF"):
        CoreFile(str(p))


def test_executable_is_not_a_core(static: Dumped) -> None:
    with pytest.raises(CoreFileError, match="not a core file .*ET_EXEC"):
        CoreFile(static.binary)


@pytest.mark.parametrize("keep", [20, 40, 100])
def test_truncated_headers(static: Dumped, tmp_path, keep: int) -> None:
    p = tmp_path / "cut"
    p.write_bytes(open(static.core, "rb").read(keep))
    with pytest.raises(CoreFileError, match="truncated"):
        CoreFile(str(p))


def test_missing_executable_argument(static: Dumped, tmp_path) -> None:
    with pytest.raises(CoreFileError, match="no such executable"):
        CoreFile(static.core, executable=str(tmp_path / "nope"))


def test_errors_are_gdbext_errors() -> None:
    assert issubclass(CoreFileError, GdbextError) and issubclass(MemoryReadError, GdbextError)


# -- regions and reads -------------------------------------------------------
def test_regions_sorted_and_disjoint(core: CoreFile) -> None:
    regions = core.regions()
    assert regions
    for r1, r2 in zip(regions, regions[1:]):
        assert r1.end <= r2.start
    for r in regions:
        assert re.fullmatch(r"[r-][w-][x-]", r.perms)


def test_regions_include_heap_and_data(core: CoreFile, static: Dumped) -> None:
    heap = core.region_of(static.addrs["a"])
    assert heap is not None and heap.perms.startswith("rw") and heap.path == ""
    assert core.region_of(static.addrs["b"]) == heap
    big = core.region_of(static.addrs["c"])  # 200000 bytes: an mmap chunk of its own
    assert big is not None and big.perms.startswith("rw") and big != heap
    data = core.region_of(static.addrs["g_value"])
    assert data is not None and data.perms == "rw-" and data.path == static.binary
    text = core.region_of(static.addrs["crash_here"])
    assert text is not None and text.perms == "r-x" and text.path == static.binary
    # The file offset is that of the mapping: the code lies at the same
    # offset in the binary as in memory.
    with open(static.binary, "rb") as f:
        f.seek(text.offset + static.addrs["crash_here"] - text.start)
        assert f.read(16) == core.read(static.addrs["crash_here"], 16)


def test_read_known_contents(core: CoreFile, static: Dumped) -> None:
    a, b, c = static.addrs["a"], static.addrs["b"], static.addrs["c"]
    assert core.read(a, 64) == A_BYTES
    assert core.read(b, 1000) == B_BYTES
    assert core.read(c, 200000) == b"\x5a" * 200000
    assert core.read_uint(static.addrs["g_value"], 8) == 0x1122334455667788
    assert core.read_uint(static.addrs["s_counter"], 4) == 43
    assert core.read_cstring(static.addrs["g_name"]) == b"gdbext-core"
    # Chunk headers: malloc(64) is a 0x50 chunk, in use, previous in use.
    assert core.read_pointer(a - 8) & ~0x7 == 0x50


def test_read_across_adjacent_segments(core: CoreFile) -> None:
    regions = core.regions()
    pairs = [
        (r1, r2) for r1, r2 in zip(regions, regions[1:]) if r1.end == r2.start and core.in_core(r1.end - 8, 16)
    ]
    assert pairs, "gdb dumps adjacent mappings as separate segments"
    r1, r2 = pairs[0]
    assert core.read(r1.end - 8, 16) == core.read(r1.end - 8, 8) + core.read(r2.start, 8)


@pytest.mark.parametrize("kind", ["static", "pie"])
def test_read_every_region_edge(built: Dict[str, Dumped], kind: str) -> None:
    """First and last bytes of every region, and across every pair of adjacent regions."""
    with CoreFile(built[kind].core) as c:
        regions = c.regions()
        for r in regions:
            head = c.read(r.start, 16)
            assert c.read(r.end - 16, 16)
            assert c.read(r.start, 0) == b""
            if r.size >= 32:
                assert c.read(r.start, 32)[:16] == head
        for r1, r2 in zip(regions, regions[1:]):
            if r1.end == r2.start:
                assert c.read(r1.end - 8, 16) == c.read(r1.end - 8, 8) + c.read(r2.start, 8)
            else:
                with pytest.raises(MemoryReadError, match="unmapped at"):
                    c.read(r1.end - 8, 16)
                with pytest.raises(MemoryReadError, match="unmapped"):
                    c.read(r1.end, 0)


def test_read_unmapped(core: CoreFile) -> None:
    for addr in (0, 0x1234, 0x10000):
        with pytest.raises(MemoryReadError, match="unmapped"):
            core.read(addr, 4)
        assert not core.is_readable(addr)
    last = core.regions()[-1]
    with pytest.raises(MemoryReadError):
        core.read(last.end - 4, 8)  # runs off the end of the address space map


def test_read_bad_sizes(core: CoreFile, static: Dumped) -> None:
    a = static.addrs["a"]
    assert core.read(a, 0) == b""
    for size in (-1, -(1 << 40), MAX_READ + 1, 1 << 62):
        with pytest.raises(MemoryReadError, match="invalid size"):
            core.read(a, size)
    with pytest.raises(MemoryReadError):
        core.read(-16, 8)
    with pytest.raises(MemoryReadError):
        core.read((1 << 64) - 4, 8)


@settings(max_examples=300, deadline=None)
@given(address=st.integers(min_value=-(1 << 65), max_value=1 << 65), size=st.integers(-(1 << 40), 1 << 40))
def test_read_fuzz_never_misbehaves(shared_core: CoreFile, address: int, size: int) -> None:
    try:
        data = shared_core.read(address, size)
    except MemoryReadError:
        return
    assert len(data) == size


@settings(max_examples=300, deadline=None)
@given(pick=st.integers(0, 10**9), delta=st.integers(-64, 64), size=st.integers(0, 256))
def test_read_near_region_edges(shared_core: CoreFile, pick: int, delta: int, size: int) -> None:
    """Around region boundaries a read returns exactly ``size`` bytes or raises MemoryReadError."""
    regions = shared_core.regions()
    r = regions[pick % len(regions)]
    for address in (r.start + delta, r.end + delta):
        try:
            data = shared_core.read(address, size)
        except MemoryReadError:
            continue
        assert len(data) == size


@settings(max_examples=200, deadline=None)
@given(pick=st.integers(0, 10**9), off=st.integers(0, 1 << 20), size=st.integers(0, 4096))
def test_read_matches_segment_bytes(static: Dumped, shared_core: CoreFile, pick: int, off: int, size: int) -> None:
    """Every read inside a dumped segment equals the bytes at the segment's file offset."""
    loads = [p for p in _phdrs(static.core) if p["p_type"] == "PT_LOAD" and p["p_filesz"] == p["p_memsz"] > 0]
    seg = loads[pick % len(loads)]
    off %= seg["p_memsz"]
    size = min(size, seg["p_memsz"] - off)
    with open(static.core, "rb") as f:
        f.seek(seg["p_offset"] + off)
        assert shared_core.read(seg["p_vaddr"] + off, size) == f.read(size)


def test_bytes_agree_with_gdb(core: CoreFile, static: Dumped) -> None:
    thread = core.threads()[0]
    gap = next(r for r in core.regions() if not core.in_core(r.start))  # read from the binary by both
    addrs = [
        static.addrs["a"], static.addrs["b"] + 100, static.addrs["c"] + 5000,
        static.addrs["g_value"], static.addrs["g_name"], static.addrs["crash_here"],
        thread.registers["rsp"], gap.start + 0x40,
    ]  # fmt: skip
    shown = _gdb_bytes(static.binary, static.core, addrs)
    for addr in addrs:
        assert shown.get(addr) == core.read(addr, 16), f"at {addr:#x}"


def test_many_small_reads_are_fast(core: CoreFile, static: Dumped) -> None:
    a = static.addrs["a"]
    t0 = time.perf_counter()
    for k in range(50000):
        core.read(a + (k % 56), 8)
    assert time.perf_counter() - t0 < 2.0


# -- symbols -----------------------------------------------------------------
def test_symbols(core: CoreFile, static: Dumped) -> None:
    assert core.symbol("g_value") == static.addrs["g_value"]
    assert core.symbol("s_counter") == static.addrs["s_counter"]  # a local symbol
    assert core.symbol("crash_here") == static.addrs["crash_here"]
    assert core.symbol("no_such_symbol_anywhere") is None
    arena = core.symbol("main_arena")  # local in a static glibc
    assert arena is not None and core.symbolize(arena + 8) == ("main_arena", 8)
    assert core.symbol("mp_") is not None


def test_symbolize(core: CoreFile, static: Dumped) -> None:
    assert core.symbolize(static.addrs["crash_here"] + 3) == ("crash_here", 3)
    assert core.symbolize(static.addrs["g_value"] + 4) == ("g_value", 4)
    assert core.symbolize(static.addrs["a"]) is None  # the heap is not a file mapping
    assert core.line_for(static.addrs["crash_here"] + 4) is not None


# -- notes -------------------------------------------------------------------
def test_threads(core: CoreFile, static: Dumped) -> None:
    threads = core.threads()
    assert len(threads) == 2  # main and the worker
    crashed = threads[0]
    assert crashed.signal == 11
    assert list(crashed.registers) == list(X86_64_REGISTERS)
    assert core.symbolize(crashed.pc)[0] == "crash_here"  # type: ignore[index]
    assert core.line_for(crashed.pc) == ("prog.c", CRASH_LINE)
    assert crashed.registers["rdi"] == 0x1234  # the argument, still in rdi at -O0
    assert core.region_of(crashed.sp) is not None
    assert crashed.registers["fs_base"] != 0
    assert threads[1].tid != crashed.tid
    assert crashed.siginfo == core.siginfo()
    # gdb writes pr_cursig 11 for every thread and one NT_SIGINFO per thread:
    # the worker's says SIGSTOP, the signal gdb stopped it with.
    if threads[1].siginfo is not None:
        assert threads[1].siginfo.signo != 11


def test_siginfo(core: CoreFile) -> None:
    info = core.siginfo()
    assert info is not None
    assert (info.signo, info.code, info.addr) == (11, 1, 0x1234)  # SIGSEGV, SEGV_MAPERR


def test_auxv_and_executable(core: CoreFile, static: Dumped) -> None:
    aux = core.auxv()
    syms = ElfSymbols(static.binary)
    assert aux["AT_ENTRY"] == syms.entry
    assert aux["AT_PAGESZ"] == 4096
    assert core.read_cstring(aux["AT_EXECFN"]).endswith(b"prog-static")
    assert core.executable_path() == static.binary
    maps = core.file_mappings()
    assert any(m.path == static.binary and m.file_offset == 0 for m in maps)
    for m in maps:
        assert m.start < m.end and m.file_offset % 4096 == 0


def test_build_ids(core: CoreFile, static: Dumped) -> None:
    out = subprocess.run(["readelf", "-n", static.binary], capture_output=True, text=True).stdout
    expected = re.search(r"Build ID: ([0-9a-f]+)", out).group(1)  # type: ignore[union-attr]
    assert core.executable_build_id() == expected
    assert core.build_ids() == {static.binary: expected}


# -- damaged and moved cores ---------------------------------------------------
def test_truncated_core(static: Dumped, tmp_path) -> None:
    size = os.path.getsize(static.core)
    cut = size // 2
    p = tmp_path / "core.half"
    p.write_bytes(open(static.core, "rb").read(cut))
    loads = [h for h in _phdrs(static.core) if h["p_type"] == "PT_LOAD" and h["p_filesz"]]
    before = [h for h in loads if h["p_offset"] + h["p_filesz"] <= cut]
    after = [h for h in loads if h["p_offset"] >= cut]
    across = [h for h in loads if h["p_offset"] < cut < h["p_offset"] + h["p_filesz"]]
    assert before and after
    with CoreFile(str(p)) as c, CoreFile(static.core) as whole:
        assert any("truncated" in msg for msg in c.problems)
        for h in before:
            assert c.read(h["p_vaddr"], 64) == whole.read(h["p_vaddr"], 64)
        for h in after:
            with pytest.raises(MemoryReadError, match="truncated"):
                c.read(h["p_vaddr"], 8)
        for h in across:
            inside = h["p_vaddr"] + (cut - h["p_offset"]) - 8
            assert c.read(inside, 8) == whole.read(inside, 8)
            with pytest.raises(MemoryReadError, match="truncated"):
                c.read(inside, 16)
        notes = next(h for h in _phdrs(static.core) if h["p_type"] == "PT_NOTE")
        if notes["p_offset"] >= cut:  # gdb writes the notes last
            assert c.threads() == [] and c.siginfo() is None and c.file_mappings() == []
            assert any("notes" in msg for msg in c.problems)


def test_undumped_segments(core: CoreFile, static: Dumped, tmp_path) -> None:
    text = core.region_of(static.addrs["crash_here"])
    heap = core.region_of(static.addrs["a"])
    assert text is not None and heap is not None

    def edit(data: bytearray) -> None:
        _set_filesz(data, text.start, 0)
        _set_filesz(data, heap.start, 0)

    p = _patched_copy(static.core, str(tmp_path / "core.undumped"), edit)
    with CoreFile(p) as c:
        # File-backed: read from the binary, equal to what the core held.
        assert not c.in_core(static.addrs["crash_here"])
        assert c.read(static.addrs["crash_here"], 64) == core.read(static.addrs["crash_here"], 64)
        assert c.region_of(static.addrs["crash_here"]) == text
        # Anonymous: nowhere to read it from.
        with pytest.raises(MemoryReadError, match="not dumped in the core"):
            c.read(static.addrs["a"], 8)


def _rename_in_notes(src: str, dst: str, old: str, new: str) -> str:
    note = next(h for h in _phdrs(src) if h["p_type"] == "PT_NOTE")
    lo, hi = note["p_offset"], note["p_offset"] + note["p_filesz"]

    def edit(data: bytearray) -> None:
        data[lo:hi] = data[lo:hi].replace(old.encode(), new.encode())

    return _patched_copy(src, dst, edit)


def test_moved_executable(core: CoreFile, static: Dumped, tmp_path) -> None:
    gone = static.binary[:-1] + "X"  # same length, does not exist
    p = _rename_in_notes(static.core, str(tmp_path / "core.moved"), static.binary, gone)
    gap = next(r for r in core.regions() if not core.in_core(r.start) and r.path)
    with CoreFile(p) as c:
        assert c.executable_path() == gone
        assert c.symbol("g_value") is None
        with pytest.raises(MemoryReadError, match="not dumped"):
            c.read(gap.start, 16)
        assert c.executable_build_id() == core.executable_build_id()  # from the core's memory
    elsewhere = tmp_path / "bin"
    elsewhere.mkdir()
    shutil.copy(static.binary, elsewhere / os.path.basename(gone))
    with CoreFile(p, search_paths=[str(elsewhere)]) as c:
        assert c.symbol("g_value") == static.addrs["g_value"]
        assert c.read(gap.start, 16) == core.read(gap.start, 16)
    with CoreFile(p, executable=static.binary) as c:
        assert c.symbol("g_value") == static.addrs["g_value"]
        assert c.read(gap.start, 16) == core.read(gap.start, 16)


def test_mismatched_files(core: CoreFile, static: Dumped, built: Dict[str, Dumped], tmp_path) -> None:
    other = built["pie"].binary
    gone = static.binary[:-1] + "X"
    p = _rename_in_notes(static.core, str(tmp_path / "core.moved"), static.binary, gone)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    shutil.copy(other, wrong / os.path.basename(gone))
    with CoreFile(p, search_paths=[str(wrong)]) as c:  # same name, other build-id: not used
        assert c.symbol("g_value") is None
        assert any("does not match" in msg and "not used" in msg for msg in c.problems)
    with CoreFile(static.core, executable=other) as c:  # given explicitly: used, with a warning
        assert c.executable_symbols() is not None
        assert any("does not match" in msg and "used anyway" in msg for msg in c.problems)


def test_read_buffer(static: Dumped) -> None:
    c = CoreFile(static.core)
    heap = c.region_of(static.addrs["a"])
    assert heap is not None
    view = c.read_buffer(heap.start, heap.size)
    assert isinstance(view, memoryview) and len(view) == heap.size
    assert view.tobytes() == c.read(heap.start, heap.size)
    off = static.addrs["a"] - heap.start
    assert bytes(view[off : off + 64]) == A_BYTES
    gap = next(r for r in c.regions() if not c.in_core(r.start))
    assert c.read_buffer(gap.start, 16) == c.read(gap.start, 16)  # from disk: a copy
    with pytest.raises(MemoryReadError):
        c.read_buffer(0, 8)
    with pytest.raises(MemoryReadError, match="invalid size"):
        c.read_buffer(heap.start, -1)
    c.close()
    assert bytes(view[off : off + 64]) == A_BYTES  # views outlive close()
    view.release()


def test_close(static: Dumped) -> None:
    c = CoreFile(static.core)
    a = static.addrs["a"]
    assert c.read(a, 4)
    c.close()
    with pytest.raises(MemoryReadError, match="closed"):
        c.read(a, 4)
    c.close()  # twice is fine


# -- a PIE: load bias, libraries read from disk ---------------------------------
def test_pie_core(built: Dict[str, Dumped]) -> None:
    pie = built["pie"]
    with CoreFile(pie.core) as c:
        assert c.problems == []
        assert c.executable_path() == pie.binary
        assert c.symbol("g_value") == pie.addrs["g_value"]
        assert c.symbol("s_counter") == pie.addrs["s_counter"]
        assert c.symbolize(pie.addrs["crash_here"] + 2) == ("crash_here", 2)
        assert c.read(pie.addrs["a"], 64) == A_BYTES
        crashed = c.threads()[0]
        assert c.line_for(crashed.pc) == ("prog.c", CRASH_LINE)
        assert c.siginfo().addr == 0x1234  # type: ignore[union-attr]
        # gdb leaves unmodified library text out of the core: it is read from
        # the library on disk, and agrees with gdb (which does the same).
        gaps = [r for r in c.regions() if not c.in_core(r.start) and "x" in r.perms]
        assert gaps
        malloc = c.symbol("malloc")
        assert malloc is not None
        probe = [gaps[0].start + 0x100]
        if c.region_of(malloc) is not None and not c.in_core(malloc):
            probe.append(malloc)
        shown = _gdb_bytes(pie.binary, pie.core, probe)
        for addr in probe:
            assert shown[addr] == c.read(addr, 16)
        ids = c.build_ids()
        assert len(ids) >= 3 and all(re.fullmatch(r"[0-9a-f]{40}", v) for v in ids.values())
        libc = next(p for p in ids if "libc.so" in p)
        debug = ElfSymbols(libc).debug_file
        if debug is not None:  # libc6-dbg installed: main_arena is in libc
            arena = c.symbol("main_arena")
            assert arena is not None and c.region_of(arena).path == libc  # type: ignore[union-attr]


@settings(max_examples=int(os.environ.get("GDBEXT_FUZZ_EXAMPLES", "30")), deadline=None)
@given(
    edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=8),
    where=st.booleans(),
)
def test_damaged_headers_and_notes(static: Dumped, tmp_path_factory, edits, where: bool) -> None:
    """Random bytes written over the ELF/program headers or the notes: CoreFileError or a usable core."""
    data = bytearray(open(static.core, "rb").read())
    note = next(h for h in _phdrs(static.core) if h["p_type"] == "PT_NOTE")
    lo, span = (0, 64 + 56 * 16) if where else (note["p_offset"], note["p_filesz"])
    for pos, value in edits:
        data[lo + pos % span] = value
    p = tmp_path_factory.getbasetemp() / "damaged.core"  # one file, rewritten per example
    p.write_bytes(data)
    try:
        c = CoreFile(str(p))
    except CoreFileError:
        return
    with c:
        for r in c.regions()[:4]:
            c.is_readable(r.start, 16)  # True or False, never an exception
        c.threads(), c.siginfo(), c.auxv(), c.file_mappings(), c.executable_path()
        c.build_ids(), c.symbol("g_value"), c.symbolize(static.addrs["crash_here"])
