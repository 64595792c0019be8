"""`gdbext triage` on inputs it cannot analyse: exit code 2, one line on stderr, no traceback.

The bad inputs are made here, in temporary directories, from the fixtures:
empty files, random bytes, cores truncated at 1%, 50% and 99%, a core of
another fixture binary, a binary that is not ELF, missing files, and no gdb.
"""
import lzma
import os
import random
import shutil
import subprocess
import sys

import pytest

from conftest import CORES, ROOT, needs_gdb
from gdbext.gdbrun import has_traceback

pytestmark = needs_gdb

POOL = os.path.join(CORES, "pool_overflow")
POOL_CORE = os.path.join(CORES, "pool_overflow.core.xz")


def triage(*args, env=None):
    proc = subprocess.run([sys.executable, "-m", "gdbext", "triage", *args], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=120)
    assert not has_traceback(proc.stdout + proc.stderr), proc.stdout + proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


def assert_refused(args, phrase, env=None):
    code, out, err = triage(*args, env=env)
    assert code == 2, (code, out, err)
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gdbext: "), err
    assert phrase in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def raw_core(tmp_path_factory):
    path = tmp_path_factory.mktemp("raw") / "pool_overflow.core"
    with lzma.open(POOL_CORE) as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return path


def test_empty_core(tmp_path):
    core = tmp_path / "empty.core"
    core.write_bytes(b"")
    assert_refused([POOL, str(core)], "empty file")


def test_random_bytes_core(tmp_path):
    core = tmp_path / "noise.core"
    core.write_bytes(random.Random(1).randbytes(65536))
    assert_refused([POOL, str(core)], "not an ELF file")


@pytest.mark.parametrize("fraction", [0.01, 0.5, 0.99])
def test_truncated_core(tmp_path, raw_core, fraction):
    data = raw_core.read_bytes()
    core = tmp_path / "cut.core"
    core.write_bytes(data[: int(len(data) * fraction)])
    line = assert_refused([POOL, str(core)], str(core))
    assert "truncated" in line or "cut off" in line


def test_truncated_compressed_core(tmp_path):
    data = open(POOL_CORE, "rb").read()
    core = tmp_path / "cut.core.xz"
    core.write_bytes(data[: len(data) // 2])
    assert_refused([POOL, str(core)], "cannot decompress")


def test_core_of_another_binary():
    line = assert_refused([POOL, os.path.join(CORES, "sensor.core.xz")], "is a core of another program")
    assert "(sensor)" in line and "build-id" in line


def test_binary_not_elf(tmp_path):
    binary = tmp_path / "prog"
    binary.write_text("#!/bin/sh\necho not a program\n")
    assert_refused([str(binary), POOL_CORE], "not an ELF file")


def test_binary_is_a_core(raw_core):
    assert_refused([str(raw_core), POOL_CORE], "not a program (ELF ET_CORE)")


@pytest.mark.parametrize("which", ["binary", "core"])
def test_missing_files(tmp_path, which):
    missing = str(tmp_path / "nothing")
    args = [missing, POOL_CORE] if which == "binary" else [POOL, missing]
    assert_refused(args, missing)


def test_gdb_not_on_path(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GDB"}
    env["PATH"] = str(tmp_path)
    assert_refused([POOL, POOL_CORE], "gdb not found", env=env)


def test_gdb_env_points_nowhere(tmp_path):
    env = dict(os.environ, GDB=str(tmp_path / "no-gdb"))
    assert_refused([POOL, POOL_CORE], "gdb not found", env=env)


def test_missing_spec_file(tmp_path):
    assert_refused([POOL, POOL_CORE, "--pools", str(tmp_path / "nope.py")], "spec file")


def test_broken_spec_file_is_reported_by_gdb(tmp_path):
    spec = tmp_path / "bad.py"
    spec.write_text("pool(\n")
    assert_refused([POOL, POOL_CORE, "--pools", str(spec)], "syntax error")


def test_bad_arguments():
    assert_refused([POOL], "give BINARY CORE")
    assert_refused([POOL, POOL_CORE, "--dir", CORES], "not both")


def test_dir_problems(tmp_path):
    assert_refused(["--dir", str(tmp_path / "none")], "cannot list")
    assert_refused(["--dir", str(tmp_path)], "no core files")


def test_dir_with_bad_cores_analyses_the_good_ones(tmp_path):
    shutil.copy(os.path.join(CORES, "double_free"), tmp_path / "double_free")
    shutil.copy(os.path.join(CORES, "double_free.core.xz"), tmp_path / "double_free.core.xz")
    (tmp_path / "junk.core").write_bytes(random.Random(2).randbytes(4096))
    shutil.copy(os.path.join(CORES, "sensor.core.xz"), tmp_path / "orphan.core.xz")  # no sensor binary here
    code, out, err = triage("--dir", str(tmp_path), "--jobs", "2")
    assert code == 2
    assert "1 core(s) analysed, 2 not; 1 signature(s):" in out
    assert "double-free | cleanup_connection | main" in out
    lines = sorted(err.splitlines())
    assert len(lines) == 2 and all(line.startswith("gdbext: ") for line in lines)
    assert "junk.core: not an ELF file" in lines[0]
    assert "orphan.core.xz: no program in" in lines[1] and "build-id" in lines[1]
