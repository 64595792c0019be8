"""Hostile cores, binaries and folders read without gdb: bounded work, every skip said, foreign cores refused.

The inputs are built by tests/hostile.py from the real fixture cores.  Time
bounds are generous (a loaded 2-core machine) but far below what the
unbounded code took: 99 s for 40,000 NT_FILE mappings, minutes for 60,000
note sections, tens of GB for a note bomb.
"""
import gzip
import hashlib
import io
import lzma
import os
import shutil
import struct
import subprocess
import sys
import threading
import time

import lz4.frame
import pytest
import zstandard

import hostile
from conftest import CORES
from gdbext import corefile
from gdbext.corefile import CoreFile
from gdbext.elfsyms import file_build_id, open_file
from gdbext.errors import CoreFileError
from gdbext.gdbrun import plain_core
from gdbext.triage.pairing import CoreFacts, check_binary, check_match, inspect_core, scan_directory

# New modules are imported inside the tests that use them, so that each test
# of this file fails on its own against code without them.

DF_BINARY = os.path.join(CORES, "double_free")
DF_BUILD_ID = "1e2bc321e438b976a83f8365d37d2ea235fcefef"


def timed(fn, *args):
    start = time.monotonic()
    out = fn(*args)
    return out, time.monotonic() - start


# -- notes: each range once, capped (item 5) ---------------------------------------------------------------------
def test_a_note_range_named_by_many_headers_is_read_once(tmp_path):
    base = hostile.fixture_core()
    (note_ph,) = [ph for ph in hostile.phdrs_of(base) if ph[0] == hostile.PT_NOTE]
    path = hostile.write_core(str(tmp_path / "dup.core"), base, extra=lambda at: [note_ph] * 500)
    with CoreFile(path) as core:
        assert len(core.threads()) == 1  # not 501 copies of the one thread
        assert not core.notes_capped


@pytest.mark.parametrize("distinct", [False, True], ids=["one-range", "64-ranges-4GiB"])
def test_a_64_x_64_MiB_note_bomb_is_capped(tmp_path, distinct):
    path = hostile.note_bomb(str(tmp_path / "bomb.core"), count=64, size=64 * hostile.MiB, distinct=distinct)
    core, seconds = timed(CoreFile, path)
    with core:
        assert core.notes_capped and any("notes capped" in p for p in core.problems)
        assert len(core._notes) <= corefile.MAX_NOTES
        assert len(core.threads()) == 1
    assert seconds < 20
    with pytest.raises(CoreFileError, match=r"bomb.core: notes capped"):
        inspect_core(path)


# -- NT_FILE lookups linear (item 6) ------------------------------------------------------------------------------
def test_40000_nt_file_mappings_open_in_linear_time(tmp_path):
    path = hostile.many_mappings(str(tmp_path / "maps.core"), 40_000)

    def work():
        with CoreFile(path) as core:
            return len(core.file_mappings()), core.build_ids(), core.executable_path(), len(core.regions())

    (count, ids, exe, regions), seconds = timed(work)
    assert count >= 40_000 and regions >= 40_000
    assert ids[exe] == DF_BUILD_ID
    assert seconds < 15, f"{seconds:.1f} s"


def test_20000_threads_are_read_quickly(tmp_path):
    path = hostile.many_threads(str(tmp_path / "threads.core"), 20_000)
    core, seconds = timed(CoreFile, path)
    with core:
        threads = core.threads()
    assert len(threads) == 20_001 and threads[0].pc == threads[1].pc and threads[1].tid == 100_000
    assert seconds < 5, f"{seconds:.1f} s"


# -- a damaged PT_LOAD (item 11) ----------------------------------------------------------------------------------
@pytest.mark.parametrize("memsz, what", [((1 << 64) - 1, "cut to its p_filesz"), (0x7FFFF8000000, "overlaps")])
def test_a_damaged_p_memsz_loses_no_following_segment_and_is_reported(tmp_path, memsz, what):
    path = hostile.damaged_memsz(str(tmp_path / "memsz.core"), memsz=memsz)
    with CoreFile(str(path)) as core, plain_core(os.path.join(CORES, "double_free.core.xz")) as good:
        with CoreFile(good) as ref:
            got = [(r.start, r.end) for r in core.regions() if r.start != 0x4AE000]
            assert got == [(r.start, r.end) for r in ref.regions() if r.start != 0x4AE000]
            assert core.read(0x4B0700, 0x40) == ref.read(0x4B0700, 0x40)  # the double-freed chunk
            assert core.read(0x7FFFFFFDE000, 0x21000) == ref.read(0x7FFFFFFDE000, 0x21000)  # the stack
        assert len(core.skipped_segments) == 1 and "0x4ae000" in core.skipped_segments[0]
        assert what in core.skipped_segments[0]
    facts = inspect_core(path)
    assert facts.skipped_segments == tuple(core.skipped_segments)


# -- non-regular files (item 8) -----------------------------------------------------------------------------------
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = str(tmp_path / "x.core")
    os.mkfifo(fifo)
    outcome = []

    def attempt():
        from gdbext.decompress import compression_of

        for fn in (open_file, CoreFile, check_binary, compression_of):
            try:
                fn(fifo)
            except CoreFileError as err:
                outcome.append(str(err))

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # unblock the reader so the test ends, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(5)
    assert len(outcome) == 4 and all("not a regular file (FIFO)" in e for e in outcome), outcome


# -- bounded build-id reads (item 7) ------------------------------------------------------------------------------
def test_60000_note_sections_over_one_range_cost_little(tmp_path):
    path = hostile.many_note_sections(str(tmp_path / "prog"), DF_BINARY, count=60_000, size=4 * hostile.MiB)
    found, seconds = timed(file_build_id, path)
    assert found == DF_BUILD_ID  # from the PT_NOTE segment, after the bounded section scan
    assert seconds < 10, f"{seconds:.1f} s"
    scan, seconds = timed(scan_directory, str(tmp_path))
    assert scan.binaries == {DF_BUILD_ID: path} and seconds < 10


# -- compressed cores (items 4 and 12) ----------------------------------------------------------------------------
def _compressors():
    return {
        "xz": lambda data: lzma.compress(data, preset=0),
        "zst": lambda data: zstandard.ZstdCompressor(level=1).compress(data),
        "lz4": lambda data: lz4.frame.compress(data),
        "gz": lambda data: gzip.compress(data, compresslevel=1),
    }


@pytest.mark.parametrize("suffix", ["xz", "zst", "lz4", "gz"])
def test_every_compression_is_read(tmp_path, suffix):
    from gdbext.decompress import Compression, compression_of

    data = hostile.fixture_core()
    path = tmp_path / f"c.core.{suffix}"
    path.write_bytes(_compressors()[suffix](data))
    assert compression_of(str(path)) is not Compression.NONE
    with plain_core(str(path)) as plain:
        assert hashlib.sha256(open(plain, "rb").read()).digest() == hashlib.sha256(data).digest()
        kept = plain
    assert not os.path.exists(kept)


def test_a_decompression_bomb_stops_at_the_cap(tmp_path):
    from gdbext.decompress import DEFAULT_MAX_CORE_SIZE, decompress_to, parse_size

    comp = lzma.LZMACompressor(preset=0)
    path = tmp_path / "bomb.core.xz"
    with open(path, "wb") as fh:
        fh.write(comp.compress(hostile.fixture_core()[:4096]))
        for block in hostile.zero_stream(64 * hostile.MiB):
            fh.write(comp.compress(block))
        fh.write(comp.flush())
    assert path.stat().st_size < hostile.MiB
    out = io.BytesIO()
    with pytest.raises(CoreFileError, match=r"decompresses to more than 16 MiB \(the --max-core-size cap\)"):
        decompress_to(str(path), out, 16 << 20)
    assert out.tell() <= (16 << 20)
    assert DEFAULT_MAX_CORE_SIZE == 16 << 30 and parse_size("32G") == 32 << 30 and parse_size("1.5M") == 3 << 19


@pytest.mark.parametrize("content, phrase", [(b"#!/bin/sh\n" * 1000, "does not hold an ELF file"),
                                             (None, "holds an ELF file that is not a core")])
def test_the_elf_header_is_checked_before_anything_is_written(tmp_path, content, phrase):
    from gdbext.decompress import decompress_to

    data = content if content is not None else open(DF_BINARY, "rb").read()
    path = tmp_path / "x.core.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(data))
    out = io.BytesIO()
    with pytest.raises(CoreFileError, match=phrase):
        decompress_to(str(path), out)
    assert out.tell() == 0


# -- folders (items 8, 12, 13) ------------------------------------------------------------------------------------
def test_a_folder_scan_keeps_odd_names_and_lists_every_skip(tmp_path):
    data = hostile.fixture_core()
    shutil.copy(DF_BINARY, tmp_path / "double_free")
    (tmp_path / "two\nlines.core").write_bytes(data)
    (tmp_path / "core.double_free.1000.zst").write_bytes(zstandard.ZstdCompressor().compress(data))
    (tmp_path / "x.core.lz4").write_bytes(lz4.frame.compress(data))
    (tmp_path / "y.core.gz").write_bytes(gzip.compress(data, 1))
    os.symlink(os.path.join(CORES, "double_free.core.xz"), tmp_path / "outside.core.xz")
    os.symlink(os.path.join(CORES, "sensor"), tmp_path / "sensor")
    os.symlink("y.core.gz", tmp_path / "inside.core.gz")
    os.mkfifo(tmp_path / "pipe.core")
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "sub").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    scan = scan_directory(str(tmp_path))
    assert sorted(os.path.basename(c) for c in scan.cores) == [
        "core.double_free.1000.zst", "inside.core.gz", "two\nlines.core", "x.core.lz4", "y.core.gz"]
    skipped = {os.path.basename(f.path): (f.reason, f.core) for f in scan.skipped}
    assert skipped == {
        "outside.core.xz": ("symbolic link to a file outside the folder (--follow-symlinks to follow it)", True),
        "sensor": ("symbolic link to a file outside the folder (--follow-symlinks to follow it)", False),
        "pipe.core": ("not a regular file (FIFO)", True),
        "pipe": ("not a regular file (FIFO)", False),
        "sub": ("directory (subfolders are not searched)", False),
        "notes.txt": ("not a core (by name) nor an ELF file", False),
    }
    followed = scan_directory(str(tmp_path), follow_symlinks=True)
    assert "outside.core.xz" in [os.path.basename(c) for c in followed.cores]
    assert "sensor" in [os.path.basename(p) for p in followed.programs]


# -- architecture and pairing checks (item 10) --------------------------------------------------------------------
@pytest.mark.parametrize("bits, order, machine, name", [
    (32, "little", 3, "i386"), (64, "little", 183, "aarch64"), (64, "big", 22, "s390"), (32, "big", 8, "mips")])
def test_a_core_of_an_architecture_gdbext_does_not_model_is_refused(tmp_path, bits, order, machine, name):
    path = hostile.foreign_core(str(tmp_path / "f.core"), bits, order, machine)
    with pytest.raises(CoreFileError, match=rf"f.core: a core of {name} \({bits}-bit, {order}-endian\); gdbext"
                                            r" models x86-64 \(64-bit, little-endian\) only"):
        inspect_core(path)


def _binary_with(tmp_path, name, patch):
    data = bytearray(open(os.path.join(CORES, name), "rb").read())
    patch(data)
    out = tmp_path / name
    out.write_bytes(bytes(data))
    out.chmod(0o755)
    return str(out)


def _no_build_id(data):
    at = bytes(data).find(struct.pack("<III", 4, 20, 3) + b"GNU\0")
    assert at > 0
    struct.pack_into("<I", data, at + 8, 0x7FFF)  # no longer NT_GNU_BUILD_ID


def test_a_binary_of_another_architecture_is_refused(tmp_path):
    binary = _binary_with(tmp_path, "double_free", lambda d: struct.pack_into("<H", d, 18, 183))
    with plain_core(os.path.join(CORES, "double_free.core.xz")) as plain:
        facts = inspect_core(plain)
    with pytest.raises(CoreFileError, match=r"another architecture: x86-64 \(64-bit, little-endian\); .* is"
                                            r" aarch64 \(64-bit, little-endian\)"):
        check_match("df.core", facts, binary, check_binary(binary))


def test_a_binary_without_build_id_is_checked_by_entry_headers_and_first_page(tmp_path):
    from gdbext.triage.verify import verify_binary

    other = _binary_with(tmp_path, "heap_overflow", _no_build_id)
    same = DF_BINARY  # its build-id left out of the comparison below (binary_id None)
    assert check_binary(other) is None
    with plain_core(os.path.join(CORES, "double_free.core.xz")) as plain:
        facts = inspect_core(plain)
    with pytest.raises(CoreFileError, match=r"df.core is not a core of .*heap_overflow \(the core's program is"
                                            r" double_free\): program headers differ .*; first page differs"):
        verify_binary("df.core", facts, other, None)
    ok = verify_binary("df.core", facts, same, None)
    assert ok.verified and ok.agreed == ["entry point", "program headers", "first page", "file name"]
    nothing = verify_binary("df.core", CoreFacts(None, None, 1), same, None)
    assert not nothing.verified
    assert nothing.summary("df.core", "prog").startswith("could not verify that df.core belongs to prog")


def test_gdbext_info_shows_what_was_cut(tmp_path):
    import io as _io

    from gdbext.coreinfo import print_core_info

    out = _io.StringIO()
    print_core_info(hostile.damaged_memsz(str(tmp_path / "memsz.core")), DF_BINARY, out)
    assert "problem: PT_LOAD at 0x4ae000: p_memsz 0xffffffffffffffff runs past the end of the address space; cut" \
        in out.getvalue()


# -- the budget of the checks before gdb --------------------------------------------------------------------------
def test_the_checks_before_gdb_end_with_one_line_when_time_or_memory_runs_out(tmp_path):
    from gdbext.errors import GdbextError
    from gdbext.triage.precheck import checked_inputs

    path = hostile.many_threads(str(tmp_path / "threads.core"), 20_000)
    start = time.monotonic()
    with pytest.raises(GdbextError, match=r"threads.core: the checks before gdb did not finish within 0.05 s"):
        with checked_inputs(path, DF_BINARY, timeout=0.05):
            pass
    assert time.monotonic() - start < 3
    # In a fresh interpreter: a long-lived test process may hold enough freed heap for the checks to fit.
    code = ("import sys\nfrom gdbext.errors import GdbextError\nfrom gdbext.triage.precheck import checked_inputs\n"
            "try:\n    with checked_inputs(sys.argv[1], sys.argv[2], memory=1 << 20):\n        pass\n"
            "except GdbextError as err:\n    print(err)\n")
    proc = subprocess.run([sys.executable, "-c", code, path, DF_BINARY], capture_output=True, text=True, timeout=120)
    assert "threads.core: the checks before gdb ran out of memory (address-space limit" in proc.stdout, proc
    with checked_inputs(path, DF_BINARY) as checked:  # the default budget is enough
        assert checked.binary == DF_BINARY and checked.incomplete == []
        assert "matches" in checked.verification and "entry point" in checked.verification
