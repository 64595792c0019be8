# tests/test_forensics_gdb.py - heapexplain and poisonscan in the real gdb on the
# fixture cores: the findings (kind, damaged chunk, source chunk, allocation site,
# bytes written after free) against the truth files, with gdb's own frames,
# registers and symbols; clean heaps give nothing; errors are one line.
# One gdb run per core.
from __future__ import annotations

import json
from typing import Dict, List

import pytest
from conftest import Truth, gdb_run, needs_gdb, spec

pytestmark = needs_gdb

SEP = "@@@"


def run(name: str, commands: List[str], specs=()) -> List[str]:
    """Each command's stdout, in one gdb run."""
    cmds = []
    for c in commands:
        cmds += [c, f"echo {SEP}\\n"]
    out = gdb_run(name, cmds, specs=specs).stdout
    parts = out.split(SEP + "\n")
    assert len(parts) == len(commands) + 1, out
    return parts[:-1]


def doc(text: str) -> Dict:
    start = text.index("{")
    return json.JSONDecoder().raw_decode(text[start:])[0]


def findings(text: str) -> List[Dict]:
    d = doc(text)
    assert d["schema"] == "gdbext.findings/1"
    return d["findings"]


def one(text: str, kind: str) -> Dict:
    got = findings(text)
    assert [f["kind"] for f in got] == [kind], [f["message"] for f in got]
    return got[0]


def hexint(value: str) -> int:
    return int(value, 16)


@pytest.fixture(scope="module")
def pool_overflow():
    t = Truth("pool_overflow")
    lo = t.int("slots_base")
    out = run("pool_overflow", [
        "heapexplain --json",
        "heapexplain --no-hexdump",
        f"heapexplain {t['buf.request.addr']} --json",
        f"heapexplain {t.int('overflow_victim_hdr_addr') + 16:#x}",
        "poisonscan --json",
        "poisonscan '\"ndow=360\"' --region pool:g_pool --json",
        f"poisonscan --preset pool --region {lo:#x}-{lo + 3 * t.int('slot_size'):#x} --json",
    ], specs=[spec("pool_overflow")])
    return t, out


def test_pool_overflow_finding(pool_overflow):
    t, out = pool_overflow
    f = one(out[0], "heap-buffer-overflow")
    slot = t.int("slot_size")
    assert hexint(f["chunk"]["address"]) == t.int("overflow_victim_hdr_addr")
    assert hexint(f["chunk"]["address"]) == t.int("slots_base") + slot * t.int("overflow_victim_slot")
    src = f["source"]["chunk"]
    assert hexint(src["user_address"]) == t.int("overflow_source_addr")
    assert src["requested_size"] == t.int("overflow_source_req_size") and src["heap"] == "pool:g_pool"
    start = t.int("overflow_source_addr") + t.int("overflow_source_req_size")
    assert hexint(f["address"]) == start
    assert 24 <= f["source"]["bytes_past_end"] <= t.int("overflow_end_addr") - start
    site = f["allocation_site"]
    assert site["function"] == t["buf.request.alloc_function"] and site["line"] == t.int("buf.request.alloc_line")
    assert hexint(site["pc"]) == t.int("buf.request.alloc_site") and site["file"].endswith("pool_overflow.c")
    ev = f["evidence"]
    assert ev["continuity"]["text_before_boundary"].startswith(t["overflow_text"])
    assert t["overflow_guard_text"] in ev["guard"]
    assert ev["damaged"][0]["looks_like"] == f'text "{t["overflow_victim_next_free_text"]}"'
    assert f["message"].startswith("at least ") and f"{t['overflow_source_req_size']}-byte region" in f["message"]
    text = out[1]
    assert text.splitlines()[0].startswith("#1 heap-buffer-overflow:") and "[explains the crash]" in text
    assert f"allocated at: {t['buf.request.alloc_function']} (fixtures/src/pool_overflow.c:" \
           f"{t['buf.request.alloc_line']})" in text


def test_pool_heapexplain_addresses(pool_overflow):
    t, out = pool_overflow
    rep = doc(out[2])
    assert rep["schema"] == "gdbext.heapexplain/1"
    assert rep["slot"] == t.int("buf.request.slot") and rep["offset"] == 0
    assert rep["allocation_site"]["function"] == t["buf.request.alloc_function"]
    assert rep["neighbours"]["next"]["address"] == t["overflow_victim_hdr_addr"]
    assert [f["kind"] for f in rep["findings"]] == ["heap-buffer-overflow"]
    assert any(d["what"] == "pool.guard-overwritten" for d in rep["damage"])
    text = out[3]
    assert "in its header field next_free" in text and t["overflow_victim_next_free_text"] in text
    assert f"allocated at: {t['buf.response.alloc_function']}" in text


def test_pool_poisonscan(pool_overflow):
    t, out = pool_overflow
    full = doc(out[4])
    assert full["schema"] == "gdbext.poisonscan/1"
    assert [o["chunk"]["address"] for o in full["overruns"]] == [
        f"{t.int('slots_base') + 3 * t.int('slot_size'):#x}"]
    assert [f["kind"] for f in full["overflows"]] == ["heap-buffer-overflow"]
    assert any(s["class"] == "text" and s["text"] == t["overflow_victim_next_free_text"] for s in full["suspects"])
    user = doc(out[5])
    hits = [h for h in user["hits"] if h["preset"] == "user"]
    assert [h["address"] for h in hits] == [f"{t.int('overflow_victim_hdr_addr') + 16:#x}"]
    assert "next_free" in hits[0]["location"]
    ranged = doc(out[6])
    assert ranged["region"].startswith(t["slots_base"])
    slots = {h["chunk"]["address"] for h in ranged["hits"]}
    assert slots <= {f"{t.int('slots_base') + i * t.int('slot_size'):#x}" for i in range(3)}
    free = [h for h in ranged["hits"] if h["fill_state"] == "freed"]
    assert [hexint(h["address"]) for h in free] == [t.int("buf.scratch.addr")] and free[0]["verdict"] == "expected"


def test_heap_overflow_in_gdb():
    t = Truth("heap_overflow")
    out = run("heap_overflow", ["heapexplain --json", f"heapexplain {t.int('b_chunk') + 8:#x} --json",
                                "poisonscan --json"])
    f = one(out[0], "heap-buffer-overflow")
    assert f["chunk"]["address"] == t["b_chunk"] and f["source"]["chunk"]["address"] == t["a_chunk"]
    assert f["source"]["bytes_past_end"] == t.int("overflow_past_usable")
    # inferred (never recorded for glibc): with gdb's referrers (main's local a) the top candidate is the truth
    site = f["allocation_site"]
    assert site["how"] == "inferred" and "no allocation record" in f["evidence"]["allocation_record"]
    assert (site["function"], site["line"]) == (t["a_alloc_function"], t.int("a_alloc_line"))
    assert "probably allocated by alloc_log_buffer" in f["message"]
    assert f["evidence"]["crash"]["message"] == t["abort_message"]
    assert f["evidence"]["continuity"]["text_after_boundary"].startswith(t["b_size_field_after_text"])
    rep = doc(out[1])
    assert rep["field"] == "size" and rep["chunk"]["address"] == t["b_chunk"]
    assert rep["neighbours"]["previous"]["address"] == t["a_chunk"]
    scan = doc(out[2])
    assert [o["chunk"]["address"] for o in scan["overflows"]] == [t["b_chunk"]]


def test_binary_overflow_in_gdb():
    t = Truth("binary_overflow")
    (out,) = run("binary_overflow", ["heapexplain --json"])
    f = one(out, "heap-buffer-overflow")
    assert f["chunk"]["address"] == t["victim_chunk"] and f["source"]["chunk"]["address"] == t["source_chunk"]
    assert f["source"]["bytes_past_end"] == t.int("overflow_past_request")
    cont = f["evidence"]["continuity"]
    assert cont["kind"] == "binary" and cont["bytes_past_boundary_hex"] == t["overflow_past_request_hex"]
    assert f["evidence"]["crash"]["message"] == t["abort_message"]


def test_tcache_uaf_in_gdb():
    t = Truth("tcache_uaf")
    out = run("tcache_uaf", ["heapexplain --json", "poisonscan --json"])
    f = one(out[0], "use-after-free")
    assert f["chunk"]["address"] == t["victim_chunk"] and hexint(f["address"]) == t.int("victim_addr")
    (w,) = f["written_after_free"]
    assert w["offset"] == t.int("uaf_write_offset") and w["size"] <= t.int("uaf_write_size") and w["certain"]
    assert hexint(f["evidence"]["bin_head"]["value"]) == t.int("corrupt_tcache_head")
    assert f["evidence"]["crash"]["message"] == t["abort_message"]
    assert f"g_sessions[{t['victim_index']}]" in f["referenced_by"]
    scan = doc(out[1])
    assert [x["chunk"]["address"] for x in scan["written_after_free"]] == [t["victim_chunk"]]


def test_double_free_in_gdb():
    t = Truth("double_free")
    (out,) = run("double_free", ["heapexplain --json"])
    f = one(out, "double-free")
    assert f["chunk"]["address"] == t["p_chunk"] and f["address"] == t["p_addr"]
    assert f["evidence"]["crash"]["message"] == t["abort_message"]
    assert f["evidence"]["found"].startswith("a pointer from the crashing thread")


def test_uaf_perturb_in_gdb():
    t = Truth("uaf_perturb")
    out = run("uaf_perturb", ["heapexplain --json", "poisonscan --json",
                              f"poisonscan {t['uaf_read_pointer']} --region all --json"])
    f = one(out[0], "use-after-free")
    assert f["chunk"]["address"] == t["victim_chunk"]
    assert [(w["offset"], w["size"]) for w in f["written_after_free"]] == [
        (t.int("uaf_write_offset"), t.int("uaf_write_size"))]
    assert hexint(f["address"]) == t.int("victim_addr") + t.int("uaf_read_offset")
    assert t["uaf_read_pointer"] in f["evidence"]["fault"]
    # gdb's context plugs in the reference finder: the typed referrer names the field written after free
    assert f["written_after_free"][0]["field"] == t["uaf_write_field"]
    assert f"g_table[{t['victim_index']}]" in f["referenced_by"]
    scan = doc(out[1])
    victim = [h for h in scan["hits"] if h["chunk"] and h["chunk"]["address"] == t["victim_chunk"]]
    assert [(h["preset"], h["verdict"], h["offset"]) for h in victim] == [("glibc-perturb", "expected", 8)]
    anywhere = doc(out[2])
    assert anywhere["region"] == "all"
    assert any(h["chunk"] and h["chunk"]["address"] == t["victim_chunk"] for h in anywhere["hits"])


@pytest.mark.parametrize("name", ["sensor", "threads", "glibc/heapmix-bullseye", "glibc/heapmix-bookworm",
                                  "glibc/heapmix-trixie"])
def test_clean_cores_give_no_finding_in_gdb(name):
    out = run(name, ["heapexplain --json", "poisonscan --json", "heapexplain"])
    assert findings(out[0]) == []
    scan = doc(out[1])
    assert scan["written_after_free"] == [] and scan["overflows"] == [] and scan["overruns"] == []
    assert "no heap finding" in out[2]


def test_errors_are_one_line():
    res = gdb_run("pool_overflow", ["poisonscan --region pool:nope", "poisonscan --preset nope",
                                    "heapexplain no_such_symbol", "poisonscan --region 0x20-0x10"],
                  specs=[spec("pool_overflow")])
    errors = [line for line in res.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(errors) == 4, res.stderr
    assert "no pool named 'nope'" in errors[0]
    assert "unknown poison preset 'nope'" in errors[1]
    assert "no_such_symbol" in errors[2]
    assert "B must be above A" in errors[3]
