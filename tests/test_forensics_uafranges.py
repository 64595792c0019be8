# tests/test_forensics_uafranges.py - exact use-after-free ranges (issue 17,
# case 2): under safe-linking only the link bytes that changed, never the
# unfilled tail, and every range named by the program's own field with its
# whole extent.  The uaf_ranges program prints which bytes changed; static and
# dynamic builds, through triage JSON and heapexplain.
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Dict, List

import pytest
from conftest import CORES, ROOT, Truth, gdb_run, needs_gdb

from gdbext.gdbrun import has_traceback

pytestmark = needs_gdb


def _expected(t: Truth) -> List[Dict]:
    return [{"offset": t.int(f"written.{i}.offset"), "size": t.int(f"written.{i}.size"),
             "field": t[f"written.{i}.field"], "certain": True,
             "field_offset": t.int(f"written.{i}.field_offset"), "field_size": t.int(f"written.{i}.field_size")}
            for i in range(t.int("written_count"))]


def _check(f: Dict, t: Truth) -> None:
    assert f["kind"] == "use-after-free"
    assert int(f["chunk"]["address"], 16) == t.int("victim_chunk")
    assert f["written_after_free"] == _expected(t)
    assert int(f["address"], 16) == t.int("victim_addr") + t.int("written.0.offset")
    link = f["evidence"]["link"]
    assert int(link["decodes_to"], 16) == t.int("neighbour_chunk")
    assert link["allocator_field"].startswith("fd")  # the allocator's name is evidence, not the range's name
    tail = f["evidence"]["unfilled_tail"]  # shown, not claimed
    assert tail["offset"] == t.int("fill_end_offset") and tail["field"] == "tail"


@pytest.mark.parametrize("name", ["uaf_ranges", "uaf_ranges-dyn", "glibc/uaf_ranges-bullseye",
                                  "glibc/uaf_ranges-trixie"])
def test_triage_gives_the_exact_ranges(name):
    t = Truth(name)
    proc = subprocess.run([sys.executable, "-m", "gdbext", "triage", "--format", "json",
                           os.path.join(CORES, name), os.path.join(CORES, name + ".core.xz")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert not has_traceback(proc.stdout + proc.stderr) and proc.returncode == 1, proc.stdout + proc.stderr
    rep = json.loads(proc.stdout)
    assert [f["kind"] for f in rep["findings"]] == ["use-after-free"]
    _check(rep["findings"][0], t)
    assert t["victim_owner"] in rep["findings"][0]["referenced_by"]


def test_heapexplain_gives_the_exact_ranges():
    t = Truth("uaf_ranges")
    out = gdb_run("uaf_ranges", ["heapexplain --json"]).stdout
    (f,) = json.JSONDecoder().raw_decode(out[out.index("{"):])[0]["findings"]
    _check(f, t)
