# tests/test_refs_gdb.py - whopoints and the roots API in the real gdb, on the
# fixture cores; every fact checked comes from the fixture's truth file.
"""who points here, as a user and the forensics report see it: one gdb run per fixture."""
from __future__ import annotations

import json

import pytest

from conftest import Truth, gdb_run, needs_gcc, needs_gdb, spec
from gdbext.gdbrun import has_traceback, run_gdb

pytestmark = needs_gdb

SEP = "=====\n"


def split(out: str):
    return out.split(SEP)


def first_json(text: str):
    start = text.index('{\n "schema"')
    return json.JSONDecoder().raw_decode(text[start:])[0]


def by_path(report):
    return {r["path"]: r for r in report["references"]}


API_PROBE = r"""
import json, gdb
from commands._roots import collect_roots
from commands._heap import locate
from gdbext.gdbmem import GdbInferiorSource
from gdbext.refs import references_for, ReferenceFinder, ChunkIndex
mem = GdbInferiorSource()
before = (gdb.selected_thread().num, gdb.selected_frame().level())
roots = collect_roots()
after = (gdb.selected_thread().num, gdb.selected_frame().level())
heap = locate(mem)
addrs = [int(a, 16) for a in ADDRS]
found = references_for(mem, heap, [], roots, addrs)
finder = ReferenceFinder(mem, roots, ChunkIndex.from_heap(heap, [], mem.pointer_size))
fields = [finder.field_at(int(a, 16), off) for a, off in FIELDS]
print("PROBE " + json.dumps({"before": before, "after": after,
    "roots": [[r.kind, r.context, r.path, r.thread, r.frame] for r in roots],
    "refs": {f"{a:#x}": v for a, v in found.items()}, "fields": fields}))
"""


def probe(tmp_path, addrs, fields):
    path = tmp_path / "probe.py"
    path.write_text(API_PROBE.replace("ADDRS", repr(addrs)).replace("FIELDS", repr(fields)))
    return path


def probe_result(text):
    return json.loads(text.split("PROBE ", 1)[1].splitlines()[0])


@pytest.fixture(scope="module")
def uaf(tmp_path_factory):
    t = Truth("uaf_perturb")
    victim, chunk = t["victim_addr"], t["victim_chunk"]
    rec2 = t["record.2.addr"]
    p = probe(tmp_path_factory.mktemp("uaf"), [chunk, victim, rec2], [(chunk, 24), (victim, 4), (chunk, 33)])
    out = gdb_run("uaf_perturb", [
        f"whopoints {victim} --json", f"echo {SEP}",
        f"whopoints {chunk}", f"echo {SEP}",
        f"whopoints {int(victim, 16) + 24:#x} --depth 0 --no-heap-scan --json", f"echo {SEP}",
        "frame 1", f"source {p}",
    ]).stdout
    return t, split(out)


def test_uaf_dangling_pointers_to_the_freed_record(uaf):
    t, parts = uaf
    report = first_json(parts[0])
    assert report["schema"] == "gdbext.whopoints/1"
    assert report["chunk"]["address"] == t["victim_chunk"] and report["chunk"]["user_address"] == t["victim_addr"]
    assert report["chunk"]["state"] == "free" and report["chunk"]["bin"] == f"fastbin[{t['fastbin_index']}]"
    assert report["dangling"] is True
    assert report["inferred_type"] == "struct record"
    assert report["size_class"] == t.int("record_chunk_size") and report["allocation_record"] is None
    refs = by_path(report)
    slot = t.int("g_table_addr") + 8 * t.int("victim_index")
    table = refs[f"g_table[{t['victim_index']}]"]
    assert (table["kind"], table["address_of_pointer"], table["pointer_value"], table["offset"]) == (
        "global", f"{slot:#x}", t["victim_addr"], 0)
    assert table["inferred_type"] == "struct record" and table["typed"]
    prev = refs[f"g_table[{t.int('victim_index') - 1}]->next"]
    prev_rec = t.int(f"record.{t.int('victim_index') - 1}.addr")
    assert prev["kind"] == "heap" and prev["root_kind"] == "global"
    assert prev["address_of_pointer"] == f"{prev_rec + t.int('uaf_read_offset'):#x}"
    assert (prev["holder"], prev["holder_offset"], prev["holder_field"]) == (
        f"{prev_rec - 16:#x}", t.int("uaf_read_offset"), t["uaf_read_field"])
    # main keeps the victim in a local; the crashing frame's only variable is an int
    local = refs["frame 1 in main: victim"]
    assert (local["kind"], local["frame"], local["function"]) == ("stack", 1, "main")
    assert not any(r["function"] == t["crash_function"] and r["typed"] for r in report["references"])
    # no record's next is followed into a longer path to the same slot: each pointer once
    slots = [r["address_of_pointer"] for r in report["references"] if r["address_of_pointer"]]
    assert len(slots) == len(set(slots))


def test_uaf_text_report_and_header_address(uaf):
    t, parts = uaf
    text = parts[1]
    assert f"is in chunk {t['victim_chunk']}" in text
    assert "FREE: every pointer below is dangling" in text
    assert "inferred type: struct record" in text and f"size class {t['record_chunk_size']}" in text
    assert "glibc keeps no allocation record" in text
    assert f"  g_table[{t['victim_index']}]\n" in text


def test_uaf_interior_address_depth_zero(uaf):
    t, parts = uaf
    report = first_json(parts[2])
    assert report["chunk"]["user_address"] == t["victim_addr"]
    paths = set(by_path(report))
    assert f"g_table[{t['victim_index']}]" in paths
    assert not any("->" in p for p in paths)  # depth 0: no heap object is read
    assert report["stats"]["objects"] == 0


def test_uaf_api_for_the_forensics_report(uaf):
    t, parts = uaf
    res = probe_result(parts[3])
    assert res["before"] == res["after"] == [1, 1]  # the user's thread and frame are restored
    kinds = {r[0] for r in res["roots"]}
    assert kinds == {"register", "stack", "global"}
    assert ["global", None, "g_table", None, None] in res["roots"]
    assert any(r[:3] == ["stack", "frame 1 in main", "victim"] for r in res["roots"])
    assert any(r[0] == "register" and r[2] == "rax (thread 1)" for r in res["roots"])
    refs = res["refs"]
    vi = t.int("victim_index")
    want = {f"g_table[{vi}]", f"g_table[{vi - 1}]->next", "frame 1 in main: victim"}
    assert want <= set(refs[t["victim_chunk"]]) and refs[t["victim_chunk"]] == refs[t["victim_addr"]]
    assert {"g_table[2]", "g_table[1]->next"} <= set(refs[t["record.2.addr"]])
    # field names by the inferred type (struct record), offsets from the user data
    assert res["fields"] == ["next", "name", "value+1"]


def test_double_free_pointer_in_the_freeing_frame():
    t = Truth("double_free")
    out = gdb_run("double_free", [f"whopoints {t['p_addr']} --json"]).stdout
    report = first_json(out)
    assert report["chunk"]["address"] == t["p_chunk"] and report["chunk"]["state"] == "free"
    assert report["chunk"]["bin"].startswith(t["freed_into"]) and report["dangling"]
    assert report["size_class"] == t.int("p_chunk_size")
    second = [r for r in report["references"] if r["function"] == t["second_free_function"]]
    assert [r["path"].split(": ", 1)[1] for r in second] == ["c->rxbuf"], report["references"]
    rx = second[0]
    conn = t.int("conn_addr")
    assert rx["kind"] == "heap" and rx["root_kind"] == "stack" and rx["address_of_pointer"] == f"{conn + 8:#x}"
    assert (rx["holder"], rx["holder_offset"], rx["holder_field"]) == (f"{conn - 16:#x}", 8, "rxbuf")
    assert rx["pointer_value"] == t["p_addr"] and rx["inferred_type"] == "char"
    refs = by_path(report)
    main_p = [r for p, r in refs.items() if p.endswith("in main: p")]
    assert main_p and main_p[0]["offset"] == 0
    # the tcache entry is the allocator's own pointer, named as such
    assert any(r["kind"] == "allocator" and r["path"].startswith("<tcache_perthread_struct ")
               for r in report["references"])


def test_pool_slot_referenced_from_the_frames():
    t = Truth("pool_overflow")
    req = t["buf.request.addr"]
    out = gdb_run("pool_overflow", [f"whopoints {req} --json", f"echo {SEP}", "whopoints 0x10"],
                  specs=[spec("pool_overflow")])
    report = first_json(out.stdout)
    assert report["chunk"]["allocator"] == "pool g_pool" and report["chunk"]["user_address"] == req
    assert report["chunk"]["state"] == "in-use" and not report["dangling"]
    assert report["size_class"] == t.int("slot_size")
    chain = t["crash_chain"].split(",")
    stack = {r["function"]: r for r in report["references"] if r["kind"] == "stack" and r["typed"]}
    assert {"dispatch", "handle", "main"} <= set(stack) and {"dispatch", "handle"} <= set(chain)
    assert stack["dispatch"]["path"].endswith("in dispatch: req")
    assert stack["handle"]["path"].endswith("in handle: req")
    assert stack["main"]["path"].endswith("in main: request")
    assert all(r["pointer_value"] == req and r["offset"] == 0 for r in stack.values())
    assert report["inferred_type"] == "char"
    errors = [line for line in out.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert errors == ["whopoints: 0x10 is in no heap chunk or declared pool slot"], out.stderr


def test_threads_paths_through_globals_and_thread_contexts(tmp_path):
    t = Truth("threads")
    live = t["thread.1.obj.0.addr"]
    freed = t["main.obj.1.addr"]
    p = probe(tmp_path, [live, freed], [])
    out = gdb_run("threads", [f"whopoints {freed}", f"echo {SEP}", "thread 2", f"source {p}"]).stdout
    text, api = split(out)
    assert "FREE: every pointer below is dangling" in text and "  g_main.objs[1].addr\n" in text
    res = probe_result(api)
    assert res["before"] == res["after"] and res["before"][0] == 2
    assert res["refs"][live] == ["g_workers[1].objs[0].addr"]
    assert "g_main.objs[1].addr" in res["refs"][freed]
    nthreads = t.int("nthreads")
    threads = {r[3] for r in res["roots"] if r[0] == "register"}
    assert len(threads) == nthreads
    contexts = [r[1] for r in res["roots"] if r[0] == "stack"]
    assert all(c.startswith("thread ") for c in contexts)


TWO_FILES = {
    "a.c": r"""
#include <stdlib.h>
struct item { int k; struct item *next; };
static struct item *s_cache;          /* b.c has a static of the same name */
struct item *g_list;
void fill_b(void);
void gdbext_marker(void) {}
static void work(struct item *it) { struct item **pp = &it->next; (void)pp; gdbext_marker(); }
int main(void) {
    s_cache = malloc(sizeof *s_cache);
    g_list = malloc(sizeof *g_list);
    g_list->next = s_cache;
    fill_b();
    work(g_list);
    return 0;
}
""",
    "b.c": r"""
#include <stdlib.h>
struct item { int k; struct item *next; };
static struct item *s_cache;
struct holder { char tag[4]; struct item *items[3]; } g_holder;
static void (*handlers[2])(int);
void fill_b(void) { s_cache = malloc(sizeof *s_cache); g_holder.items[2] = s_cache; (void)handlers; }
""",
}


@needs_gcc
def test_a_live_program_of_two_files(tmp_path):
    import subprocess

    for name, text in TWO_FILES.items():
        (tmp_path / name).write_text(text)
    subprocess.run(["gcc", "-g", "-O0", "-o", "two", "a.c", "b.c"], cwd=tmp_path, check=True)
    res = run_gdb(str(tmp_path / "two"), None, commands=[
        "set debuginfod enabled off", "break gdbext_marker", "run",
        "whopoints s_cache --json", f"echo {SEP}", "whopoints g_holder.items[2] --json"])
    assert not has_traceback(res.output), res.output
    first, second = split(res.stdout)
    a = first_json(first)
    paths = [r["path"] for r in a["references"]]
    assert paths[:2] == ["'a.c'::s_cache", "frame 1 in work: it->next"], paths
    assert a["references"][1]["aliases"] == ["frame 1 in work: *pp"]
    assert a["inferred_type"] == "struct item" and a["chunk"]["state"] == "in-use" and not a["dangling"]
    b = first_json(second)
    typed = [r["path"] for r in b["references"] if r["typed"]]
    assert typed[:2] == ["g_holder.items[2]", "'b.c'::s_cache"], typed
