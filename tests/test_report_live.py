"""``gdbext report`` on a live process agrees with the same command on a core of the same state.

Each fixture program runs under gdb to its crash; the report is taken on the
live process, then gdb writes the core right there (``generate-core-file``)
and a second gdb reports on that core.  The two JSON reports must be the
same apart from what names the subject (core path / process id).  The
fault address and crash function are also checked against the ground truth
the program printed in that very run.
"""
from __future__ import annotations

import json
import os

import pytest

from conftest import binary, needs_gcc, needs_gdb, spec
from gdbext.gdbrun import has_traceback, run_gdb

pytestmark = [needs_gdb, needs_gcc]

#: fixture -> (spec file or None, GT key of the fault address or None)
CASES = {
    "uaf_perturb": (None, "uaf_read_pointer"),  # a #GP: si_addr 0, address from the instruction
    "pool_overflow": ("pool_overflow", "crash_fault_addr_value"),
    "heap_overflow": (None, None),  # a glibc abort
}


def _truth(stdout: str):
    return dict(line.split(" ", 2)[1:3] for line in stdout.splitlines()
                if line.startswith("GT ") and len(line.split(" ", 2)) == 3)


@pytest.mark.parametrize("name", sorted(CASES))
def test_live_report_agrees_with_the_core(tmp_path, name):
    spec_name, fault_key = CASES[name]
    specs = [spec(spec_name)] if spec_name else []
    live_json, core_path = tmp_path / "live.json", tmp_path / f"{name}.core"
    live = run_gdb(binary(name), None, spec_files=specs, timeout=120,
                   commands=["run", "gdbext report", f"gdbext report --json {live_json}",
                             f"generate-core-file {core_path}"])
    assert not has_traceback(live.output), live.output
    assert core_path.exists(), live.output
    text = live.stdout[live.stdout.index("gdbext triage:"):]
    assert "None" not in text.splitlines()[0]
    assert f"live process {live.stdout and json.loads(live_json.read_text())['process']['pid']}" in text
    core_json = tmp_path / "core.json"
    res = run_gdb(binary(name), None, spec_files=specs, timeout=120,
                  commands=[f"core-file {core_path}", f"gdbext report --json {core_json}"])
    assert not has_traceback(res.output), res.output
    live_rep, core_rep = json.loads(live_json.read_text()), json.loads(core_json.read_text())
    assert core_rep["core"] == str(core_path) and live_rep["core"] is None
    assert core_rep["crash"]["thread"]["name"] is None  # a core records no thread names; gdb reads a live one's
    assert live_rep["crash"]["thread"]["name"] == name
    for rep in (live_rep, core_rep):
        rep.pop("core"), rep.pop("process", None), rep["crash"]["thread"].pop("name")
    assert live_rep == core_rep

    truth = _truth(live.stdout)
    crash = live_rep["crash"]
    assert crash["signal"] == truth["crash_signal"]
    assert crash["location"]["function"] == truth["crash_function"]
    if fault_key:  # the pointer the faulting instruction went through
        assert int(crash["access"]["base_value"], 16) == int(truth[fault_key], 16)
        assert int(crash["fault_address"], 16) == int(crash["access"]["address"], 16)
        assert crash["fault_address_source"] == "instruction" and crash["instruction"]
        assert any("computed from the faulting instruction" in n for n in crash["notes"])
    assert os.path.getsize(core_path) > 0
