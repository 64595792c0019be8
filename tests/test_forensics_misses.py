# tests/test_forensics_misses.py - corruptions glibc does not abort on (issue 17,
# case 5): a fastbin cycle (free(a), free(b), free(a)) is a double-free of a,
# and a size enlarged over an in-use neighbour is found from the neighbour's
# intact header inside it.  The heap_misses program states both; static and
# dynamic builds.
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import CORES, ROOT, Truth, needs_gdb

from gdbext.gdbrun import has_traceback

pytestmark = needs_gdb


@pytest.mark.parametrize("build", ["", "-dyn"])
def test_cycle_is_a_double_free_and_the_enlarged_size_an_overlap(build):
    name = "heap_misses" + build
    t = Truth(name)
    proc = subprocess.run([sys.executable, "-m", "gdbext", "triage", "--format", "json",
                           os.path.join(CORES, name), os.path.join(CORES, name + ".core.xz")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert not has_traceback(proc.stdout + proc.stderr) and proc.returncode == 1, proc.stdout + proc.stderr
    found = json.loads(proc.stdout)["findings"]
    assert sorted(f["kind"] for f in found) == ["double-free", "metadata-corruption"]
    (df,) = [f for f in found if f["kind"] == "double-free"]
    assert int(df["chunk"]["address"], 16) == t.int("double_free_chunk")
    assert int(df["evidence"]["cycle"]["decodes_to"], 16) == t.int("x_chunk")
    (ov,) = [f for f in found if f["kind"] == "metadata-corruption"]
    assert int(ov["chunk"]["address"], 16) == t.int("p_chunk")
    (d,) = ov["evidence"]["damaged"]
    assert int(d["value"], 16) == t.int("p_size_after") and int(d["size_before"], 16) == t.int("p_size_before")
    assert [int(c["address"], 16) for c in ov["evidence"]["covered"]] == [t.int("q_chunk")]


@pytest.mark.parametrize("build", ["", "-dyn"])
def test_underflow_is_reported_to_the_left_of_the_region(build):
    name = "underflow" + build
    t = Truth(name)
    proc = subprocess.run([sys.executable, "-m", "gdbext", "triage", "--format", "json",
                           os.path.join(CORES, name), os.path.join(CORES, name + ".core.xz")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert not has_traceback(proc.stdout + proc.stderr) and proc.returncode == 1, proc.stdout + proc.stderr
    (f,) = json.loads(proc.stdout)["findings"]
    assert f["kind"] == "heap-buffer-overflow" and f["evidence"]["direction"] == f["source"]["direction"] == "left"
    assert int(f["chunk"]["address"], 16) == int(f["source"]["chunk"]["address"], 16) == t.int("window_chunk")
    assert f["source"]["bytes_past_end"] == t.int("bytes_before")
    assert int(f["address"], 16) == t.int("underflow_start")
    assert f"{t.int('bytes_before')} bytes written to the left of the {t.int('usable_size')}-byte region" in f["message"]
    assert t["window_owner"] in f["source"]["referenced_by"]
    assert int(f["evidence"]["damaged"][0]["value"], 16) == t.int("size_field_after")
    assert f["evidence"]["crash"]["message"] == t["abort_message"]
