# tests/test_forensics_provenance.py - value provenance (issue 17, case 1): the
# far crash in a pool after the damaged slot was handed out again.  The
# pool_reuse fixture states its own truth; triage JSON and the gdb commands
# (heapexplain, poisonscan) must agree with it.  Plus the continuation rules
# on synthetic runs (no gdb).
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Dict, List

import pytest
from conftest import CORES, ROOT, Truth, gdb_run, needs_gdb, spec

from gdbext.forensics.continuity import Field, Run
from gdbext.forensics.provenance import continuation
from gdbext.gdbrun import has_traceback
from gdbext.triage.formats import render

SEP = "@@@"


# -- continuation rules, no gdb -----------------------------------------------------------
def _text_run() -> Run:
    data = b"/api/v1/calibration?chan"
    return Run("text", 0x1000, 0x1000 + len(data), 0x1010, data)


def test_text_continues_up_to_its_nul_exactly():
    run = _text_run()
    assert continuation(run, 0x1040, b"=json\0\0\0") == (0x1040 + 6, True)
    assert continuation(run, 0x1040, b"ndow=360") == (0x1048, False)  # no NUL: a lower bound


def test_text_continuation_rejects_binary_and_bytes_before_the_run_end():
    run = _text_run()
    assert continuation(run, 0x1040, b"\x10\x20\x4a\0\0\0\0\0") is None
    assert continuation(run, 0x1040, b"ab\x01cdefg") is None
    assert continuation(run, 0x1000, b"=json\0\0\0") is None


def test_binary_continuation_keeps_the_learnt_structure():
    # uint32 elements (seq << 16) | 0x300: element k at run.start + 4k has seq = 1 + k
    fields = [Field(0, 2, "const", 0x300), Field(2, 2, "counter", 1, 1)]
    data = b"".join(((1 + k) << 16 | 0x300).to_bytes(4, "little") for k in range(10))
    run = Run("binary", 0x2000, 0x2028, 0x2028, data, element_size=4, fields=fields)
    nxt = b"".join(((1 + k) << 16 | 0x300).to_bytes(4, "little") for k in (12, 13))
    assert continuation(run, 0x2030, nxt) == (0x2038, False)
    wrong = b"".join(((1 + k) << 16 | 0x300).to_bytes(4, "little") for k in (13, 14))
    assert continuation(run, 0x2030, wrong) is None
    assert continuation(run, 0x2032, nxt) is None  # not on an element boundary


def test_fill_continuation():
    run = Run("fill", 0x3000, 0x3010, 0x3008, b"\x41" * 16)
    assert continuation(run, 0x3018, b"A" * 8) == (0x3020, False)
    assert continuation(run, 0x3018, b"A" * 7 + b"B") is None


# -- the pool_reuse core, static and dynamic -------------------------------------------------
BUILDS = ["", "-dyn"]


def _triage_json(name: str, *args: str) -> Dict:
    proc = subprocess.run([sys.executable, "-m", "gdbext", "triage", *args, "--format", "json",
                           os.path.join(CORES, name), os.path.join(CORES, name + ".core.xz")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert not has_traceback(proc.stdout + proc.stderr), proc.stdout + proc.stderr
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def _check_overflow(f: Dict, t: Truth) -> None:
    slot = t.int("slot_size")
    base = t.int("slots_base")
    assert f["kind"] == "heap-buffer-overflow"
    assert int(f["source"]["chunk"]["address"], 16) == base + t.int("overflow_source_slot") * slot
    assert int(f["source"]["chunk"]["user_address"], 16) == t.int("overflow_source_addr")
    assert f["source"]["chunk"]["requested_size"] == t.int("overflow_source_req_size")
    assert int(f["chunk"]["address"], 16) == t.int("overflow_victim_hdr_addr")
    assert int(f["chunk"]["address"], 16) == base + t.int("overflow_victim_slot") * slot
    assert f["source"]["bytes_past_end"] == t.int("overflow_bytes_past_end")
    assert int(f["address"], 16) == t.int("overflow_source_addr") + t.int("overflow_source_req_size")
    site = f["allocation_site"]
    assert site["function"] == t["buf.request.alloc_function"] and site["line"] == t.int("buf.request.alloc_line")
    assert int(site["pc"], 16) == t.int("buf.request.alloc_site")
    ev = f["evidence"]
    assert ev["bytes_past_end_is_lower_bound"] is False
    text = t["overflow_text_full"]
    cont = ev["continuity"]
    before, after = cont["text_before_boundary"], cont["text_after_boundary"]
    assert text.startswith(before + after) and len(before) == t.int("overflow_source_req_size")
    (island,) = cont["continued_in"]
    assert text.endswith(island["text"]) and island["nul_terminated"] is True
    prov = ev["provenance"]
    assert int(prov["value"], 16) == t.int("free_head_after_response") == t.int("crash_fault_addr_value")
    assert prov["end_exact"] is True and "free_head" in prov["held_in"]
    assert "followed the damaged link" in ev["fault"]


@needs_gdb
@pytest.mark.parametrize("build", BUILDS)
def test_triage_traces_the_moved_link_to_the_overflow(build):
    t = Truth("pool_reuse" + build)
    rep = _triage_json("pool_reuse" + build, "--pools", spec("pool_reuse"))
    kinds = [f["kind"] for f in rep["findings"]]
    assert kinds == ["heap-buffer-overflow"], kinds  # no wild pointer, no "head outside the pool" left over
    _check_overflow(rep["findings"][0], t)
    # the victim slot's header shows nothing any more: the program says so itself
    assert t["victim_next_free_after_reuse"] == "(nil)"


def _run(name: str, commands: List[str]) -> List[str]:
    cmds: List[str] = []
    for c in commands:
        cmds += [c, f"echo {SEP}\\n"]
    out = gdb_run(name, cmds, specs=[spec("pool_reuse")]).stdout
    parts = out.split(SEP + "\n")
    assert len(parts) == len(commands) + 1, out
    return parts[:-1]


def _doc(text: str) -> Dict:
    return json.JSONDecoder().raw_decode(text[text.index("{"):])[0]


@needs_gdb
@pytest.mark.parametrize("build", BUILDS)
def test_heapexplain_and_poisonscan_agree_with_the_program(build):
    t = Truth("pool_reuse" + build)
    explain, scan = _run("pool_reuse" + build, ["heapexplain --json", "poisonscan --json"])
    (f,) = _doc(explain)["findings"]
    _check_overflow(f, t)
    rep = _doc(scan)
    (ov,) = rep["overflows"]
    assert ov["source"]["bytes_past_end"] == t.int("overflow_bytes_past_end")
    (run,) = [o for o in rep["overruns"] if int(o["chunk"]["address"], 16) == int(f["source"]["chunk"]["address"], 16)]
    assert run["bytes_past_end"] == t.int("overflow_bytes_past_end")
    assert int(run["end"], 16) == t.int("overflow_end_addr")
    head, _sep, tail = run["text_after"].partition(" ... ")
    assert t["overflow_text_full"].startswith(run["text_before"] + head)
    assert tail and t["overflow_text_full"].endswith(tail)


# -- the tcache_reuse core: the same story on glibc's tcache, and the culprit's owner ---------
#: static and dynamic on this machine's glibc, static on glibc 2.31 (no safe-linking) and 2.41
TCACHE_REUSE = ["tcache_reuse", "tcache_reuse-dyn", "glibc/tcache_reuse-bullseye", "glibc/tcache_reuse-trixie"]


@needs_gdb
@pytest.mark.parametrize("name", TCACHE_REUSE)
def test_triage_traces_a_garbage_tcache_head_to_the_overflow_and_names_the_owner(name):
    t = Truth(name)
    rep = _triage_json(name)
    assert rep["crash"]["signal"] == t["crash_signal"]
    assert [f["kind"] for f in rep["findings"]] == ["heap-buffer-overflow"]
    (f,) = rep["findings"]
    assert int(f["chunk"]["address"], 16) == t.int("victim_chunk")
    assert int(f["source"]["chunk"]["address"], 16) == t.int("name_chunk")
    assert int(f["address"], 16) == t.int("name_addr") + t.int("usable_size")
    assert f["source"]["bytes_past_end"] == t.int("overflow_past_usable")
    assert t["name_owner"] in f["source"]["referenced_by"]
    ev = f["evidence"]
    assert ev["bytes_past_end_is_lower_bound"] is False
    prov = ev["provenance"]
    assert int(prov["value"], 16) == t.int("head_after_pop")
    if t.get("abort_message"):  # glibc caught the misaligned head
        assert ev["crash"]["message"] == t["abort_message"]
    else:  # the head was aligned by chance: malloc followed it
        assert "followed the damaged link" in ev["fault"] and rep["crash"]["fault_address"] is not None
    assert int.from_bytes(bytes.fromhex(prov["bytes_there_then"]), "little") == t.int("victim_next_after_overflow")
    assert int(prov["loaded_from"].rsplit(" at ", 1)[1], 16) == t.int("victim_addr")
    damaged = {d["field"]: d for d in ev["damaged"]}
    assert int(damaged["size"]["value"], 16) == t.int("victim_size_after_overflow")
    text = t["overflow_text_full"]
    cont = ev["continuity"]
    assert text.startswith(cont["text_before_boundary"] + cont["text_after_boundary"])
    assert text.endswith(cont["continued_in"][0]["text"])
    # every format shows the owner (the CLI's renderers, on the CLI's JSON)
    for fmt in ("text", "markdown", "sarif"):
        assert t["name_owner"] in render(rep, fmt), fmt
