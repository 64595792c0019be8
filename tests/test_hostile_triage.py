"""`gdbext triage` on hostile input, end to end with real gdb: one line and exit 2 within the budget, or an
honest report (what was skipped or could not be verified is in it, and exit 0 is not claimed).

Each CLI run gets an address-space limit (so a regression cannot take the
machine's memory) and a wall-clock limit (so a regression that blocks fails
instead of hanging the suite).
"""
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import time

import lz4.frame
import pytest
import zstandard

import hostile
from conftest import CORES, ROOT, needs_gdb
from gdbext.gdbrun import has_traceback

pytestmark = needs_gdb

DF = os.path.join(CORES, "double_free")
DF_CORE = os.path.join(CORES, "double_free.core.xz")


def _limit():
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))


def triage(*args, wall=120):
    """``gdbext triage ARGS`` under 8 GiB of address space: (exit code, stdout, stderr, seconds)."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "gdbext", "triage", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=wall, preexec_fn=_limit)
    assert not has_traceback(proc.stdout + proc.stderr), proc.stderr
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start


def refused(args, phrase, wall=60):
    code, out, err, seconds = triage(*args, wall=wall)
    assert code == 2 and out == "", (code, err)
    assert len(err.splitlines()) == 1 and err.startswith("gdbext: ") and phrase in err, err
    return seconds


def test_a_decompression_bomb_is_capped_by_max_core_size(tmp_path):
    comp = lzma_compressor()
    path = tmp_path / "bomb.core.xz"
    with open(path, "wb") as fh:
        fh.write(comp.compress(hostile.fixture_core()))
        for block in hostile.zero_stream(48 * hostile.MiB):
            fh.write(comp.compress(block))
        fh.write(comp.flush())
    refused([DF, str(path), "--max-core-size", "8M"], "decompresses to more than 8 MiB (the --max-core-size cap)")


def lzma_compressor():
    import lzma

    return lzma.LZMACompressor(preset=0)


@pytest.mark.parametrize("suffix, compress", [
    ("zst", lambda d: zstandard.ZstdCompressor(level=1).compress(d)),
    ("lz4", lz4.frame.compress),
    ("gz", lambda d: gzip.compress(d, 1)),
])
def test_zstd_lz4_and_gzip_cores_are_analysed(tmp_path, suffix, compress):
    path = tmp_path / f"double_free.core.{suffix}"
    path.write_bytes(compress(hostile.fixture_core()))
    code, out, err, _ = triage(DF, str(path), "--format", "json")
    assert code == 1, err
    assert [f["kind"] for f in json.loads(out)["findings"]] == ["double-free"]


@pytest.mark.parametrize("which", ["core", "binary"])
def test_a_fifo_as_core_or_binary_is_refused_at_once(tmp_path, which):
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    args = [DF, fifo] if which == "core" else [fifo, DF_CORE]
    assert refused(args, "not a regular file (FIFO)", wall=30) < 20


def test_a_64_x_64_MiB_note_bomb_ends_within_the_budget(tmp_path):
    path = hostile.note_bomb(str(tmp_path / "bomb.core"), count=64, size=64 * hostile.MiB, distinct=True)
    assert refused([DF, path, "--timeout", "30"], "notes capped") < 35


def test_20000_threads_end_within_the_budget(tmp_path):
    path = hostile.many_threads(str(tmp_path / "threads.core"), 20_000)
    budget = 6
    seconds = refused([DF, path, "--timeout", str(budget)], "within", wall=60)
    assert seconds < budget + 6, seconds


def test_a_damaged_heap_segment_is_in_the_report_and_exit_0_is_not_claimed(tmp_path):
    path = hostile.damaged_memsz(str(tmp_path / "memsz.core"))
    code, out, err, _ = triage(DF, path, "--format", "json")
    report = json.loads(out)
    assert any("PT_LOAD at 0x4ae000" in e and "p_memsz 0xffffffffffffffff" in e for e in report["errors"])
    assert code == 1 and [f["kind"] for f in report["findings"]] == ["double-free"], err


def test_without_findings_a_damaged_segment_makes_exit_2_not_0(tmp_path):
    path = hostile.damaged_memsz(str(tmp_path / "sensor.core"), name="sensor")
    code, out, err, _ = triage(os.path.join(CORES, "sensor"), path, "--format", "json")
    report = json.loads(out)
    assert report["findings"] == [] and code == 2, err
    assert any("PT_LOAD at 0x4ae000" in e for e in report["errors"])
    assert err.startswith("gdbext: ") and "not analysed in full: core: PT_LOAD at 0x4ae000" in err
    assert len(err.splitlines()) == 1


def test_cores_of_other_architectures_are_refused(tmp_path):
    for bits, order, machine, name in [(32, "little", 3, "i386"), (64, "big", 22, "s390")]:
        path = hostile.foreign_core(str(tmp_path / f"{name}.core"), bits, order, machine)
        refused([DF, path], f"a core of {name} ({bits}-bit, {order}-endian); gdbext models x86-64")


def test_a_binary_without_build_id_is_not_paired_with_another_programs_core(tmp_path):
    data = bytearray(open(os.path.join(CORES, "heap_overflow"), "rb").read())
    at = bytes(data).find(b"\x04\x00\x00\x00\x14\x00\x00\x00\x03\x00\x00\x00GNU\x00")
    data[at + 8] = 0x7F  # the build-id note is no longer one
    binary = tmp_path / "heap_overflow"
    binary.write_bytes(bytes(data))
    binary.chmod(0o755)
    refused([str(binary), DF_CORE], "is not a core of")


@pytest.fixture
def odd_folder(tmp_path):
    """double_free's binary and core under an odd name, zstd, lz4; a link leading out; a FIFO named as a core."""
    data = hostile.fixture_core()
    shutil.copy(DF, tmp_path / "double_free")
    (tmp_path / "two\nlines.core").write_bytes(data)
    (tmp_path / "core.double_free.1000.zst").write_bytes(zstandard.ZstdCompressor(level=1).compress(data))
    os.symlink(os.path.join(CORES, "sensor.core.xz"), tmp_path / "sensor.core.xz")
    os.symlink(os.path.join(CORES, "sensor"), tmp_path / "sensor")
    os.mkfifo(tmp_path / "pipe.core")
    (tmp_path / "notes.txt").write_text("hello")
    return tmp_path


def test_a_folder_lists_every_skipped_file_and_a_skipped_core_means_exit_2(odd_folder):
    out_file = odd_folder / "batch.json"
    code, _, err, _ = triage("--dir", str(odd_folder), "--format", "json", "--output", str(out_file), "--jobs", "2")
    doc = json.loads(out_file.read_text())
    analysed = sorted(os.path.basename(r["core"]) for r in doc["reports"])
    assert analysed == ["core.double_free.1000.zst", "two\nlines.core"]
    skipped = {os.path.basename(s["path"]): s["reason"] for s in doc["skipped"]}
    assert set(skipped) == {"sensor.core.xz", "sensor", "pipe.core", "notes.txt"}
    assert "outside the folder" in skipped["sensor.core.xz"] and "FIFO" in skipped["pipe.core"]
    failures = sorted(os.path.basename(f["core"]) for f in doc["failures"])
    assert failures == ["pipe.core", "sensor.core.xz"] and code == 2
    assert len([ln for ln in err.splitlines() if "skipped" in ln]) == 2

    code, _, err, _ = triage("--dir", str(odd_folder), "--skip-ok", "--format", "json", "--output", str(out_file))
    assert code == 1 and json.loads(out_file.read_text())["failures"] == [], err

    os.unlink(odd_folder / "pipe.core")
    code, _, err, _ = triage("--dir", str(odd_folder), "--follow-symlinks", "--format", "json", "--output",
                             str(out_file))
    doc = json.loads(out_file.read_text())
    assert "sensor.core.xz" in [os.path.basename(r["core"]) for r in doc["reports"]] and code == 1, err
