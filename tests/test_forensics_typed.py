# tests/test_forensics_typed.py - a binary overflow that only the buffer's DWARF
# type explains (issue 17, case 1): the bytes past a glibc chunk's end read as
# further elements of the type the referrer gives it, field by field.
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import CORES, ROOT, Truth, needs_gdb

from gdbext.forensics.continuity import typed_run
from gdbext.gdbrun import has_traceback


def _elements(n: int) -> bytes:
    return b"".join((1 + i).to_bytes(4, "little") + (0x8001).to_bytes(2, "little") + (3).to_bytes(2, "little")
                    + (25 * (1 + i)).to_bytes(4, "little") + (1000 + i).to_bytes(4, "little") for i in range(n))


LAYOUT = [(0, 4), (4, 2), (6, 2), (8, 4), (12, 4)]


def test_typed_run_crosses_a_boundary_inside_an_element():
    data = _elements(7) + b"\0" * 16
    run = typed_run(data, 0x1000, 0x1000 + 72, 0x1000, 16, LAYOUT)
    assert run is not None and run.end == 0x1000 + 7 * 16 and run.boundary == 0x1000 + 72
    kinds = {f.offset: (f.kind, f.step if f.kind == "counter" else f.value) for f in run.fields}
    assert kinds == {0: ("counter", 1), 4: ("const", 0x8001), 6: ("const", 3), 8: ("counter", 25), 12: ("counter", 1)}


def test_typed_run_stops_where_the_progression_breaks():
    data = bytearray(_elements(7))
    data[5 * 16 + 8:5 * 16 + 12] = (999).to_bytes(4, "little")  # element 5's value breaks the step
    run = typed_run(bytes(data), 0x1000, 0x1000 + 72, 0x1000, 16, LAYOUT)
    assert run is not None and run.end == 0x1000 + 5 * 16
    assert typed_run(_elements(4) + bytes(48), 0x1000, 0x1000 + 72, 0x1000, 16, LAYOUT) is None


@needs_gdb
@pytest.mark.parametrize("name", ["typed_overflow", "typed_overflow-dyn", "glibc/typed_overflow-bullseye",
                                  "glibc/typed_overflow-trixie"])
def test_triage_reads_the_overflow_as_elements_of_the_type(name):
    t = Truth(name)
    proc = subprocess.run([sys.executable, "-m", "gdbext", "triage", "--format", "json",
                           os.path.join(CORES, name), os.path.join(CORES, name + ".core.xz")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert not has_traceback(proc.stdout + proc.stderr) and proc.returncode == 1, proc.stdout + proc.stderr
    (f,) = json.loads(proc.stdout)["findings"]
    assert f["kind"] == "heap-buffer-overflow"
    assert int(f["source"]["chunk"]["address"], 16) == t.int("samples_chunk")
    assert int(f["chunk"]["address"], 16) == t.int("meta_chunk")
    assert f["source"]["bytes_past_end"] == t.int("overflow_past_usable")
    assert t["samples_owner"] in f["source"]["referenced_by"]
    cont = f["evidence"]["continuity"]
    assert cont["kind"] == "binary" and cont["element_size"] == t.int("element_size")
    assert int(cont["end"], 16) == t.int("overflow_end_addr")
    assert int(cont["start"], 16) == t.int("samples_addr")
    named = {e["field"]: e for e in cont["element_fields"]}
    assert named["id"]["kind"] == "counter" and named["id"]["step"] == 1
    damaged = f["evidence"]["damaged"][0]
    assert damaged["field"] == "size" and int(damaged["value"], 16) == t.int("meta_size_field_after")
