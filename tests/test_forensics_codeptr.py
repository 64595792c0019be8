# tests/test_forensics_codeptr.py - crashes through a bad code pointer (issue 17,
# case 3): an indirect call through a function pointer read from a freed
# object (the perturb fill), and a ret to a smashed return address.  The
# fault address is the branch target, traced to where it was read from;
# static and dynamic builds, checked against the programs' own truth.
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Dict

import pytest
from conftest import CORES, ROOT, Truth, gdb_run, needs_gdb

from gdbext.gdbrun import has_traceback

pytestmark = needs_gdb

BUILDS = ["", "-dyn"]


def triage(name: str) -> Dict:
    proc = subprocess.run([sys.executable, "-m", "gdbext", "triage", "--format", "json",
                           os.path.join(CORES, name), os.path.join(CORES, name + ".core.xz")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert not has_traceback(proc.stdout + proc.stderr), proc.stdout + proc.stderr
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", ["code_ptr", "code_ptr-dyn", "glibc/code_ptr-bullseye", "glibc/code_ptr-trixie"])
def test_call_through_a_freed_function_pointer(name):
    t = Truth(name)
    rep = triage(name)
    crash = rep["crash"]
    assert int(crash["fault_address"], 16) == t.int("fault_target")  # the target, not the pushed slot
    (f,) = rep["findings"]
    assert f["kind"] == "use-after-free"
    assert int(f["chunk"]["address"], 16) == t.int("victim_chunk") and f["chunk"]["state"] == "free"
    read = f["evidence"]["read"]
    assert read["field"] == t["field"] and read["size"] == t.int("field_size")
    assert int(read["address"], 16) == t.int("victim_addr") + t.int("field_offset")
    assert int(f["address"], 16) == t.int("victim_addr") + t.int("field_offset")
    assert "perturb" in f["evidence"]["fault"] and "code pointer" in f["evidence"]["fault"]
    assert t["victim_owner"] in f["referenced_by"]


@pytest.mark.parametrize("build", BUILDS)
def test_ret_to_a_smashed_return_address(build):
    t = Truth("ret_smash" + build)
    rep = triage("ret_smash" + build)
    assert int(rep["crash"]["fault_address"], 16) == t.int("ret_value")
    (f,) = rep["findings"]
    assert f["kind"] == "wild-pointer" and int(f["address"], 16) == t.int("ret_value")
    ev = f["evidence"]
    assert ev["looks_like"] == f'text "{t["ret_text"]}"'
    assert int(ev["loaded_from"].split(" at ")[1].split()[0], 16) == t.int("ret_slot")
    run = ev["overrun"]
    assert int(run["start"], 16) == t.int("buffer_addr") and int(run["end"], 16) == t.int("overflow_end_addr")
    assert run["nul_terminated"] is True


def test_heapexplain_names_the_field_the_code_pointer_came_from():
    t = Truth("code_ptr")
    out = gdb_run("code_ptr", ["heapexplain --json"]).stdout
    doc = json.JSONDecoder().raw_decode(out[out.index("{"):])[0]
    (f,) = doc["findings"]
    assert f["kind"] == "use-after-free" and int(f["chunk"]["address"], 16) == t.int("victim_chunk")
    assert f["evidence"]["read"]["field"] == t["field"]
    assert int(f["address"], 16) == t.int("victim_addr") + t.int("field_offset")
