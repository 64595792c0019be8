"""heapwalk as a user sees it: real gdb on real cores of glibc 2.31, 2.36 and 2.41, live processes,
dynamic binaries with and without libc debug info, and corrupted heaps; facts from the programs."""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import CORES, SRC, Truth, binary, core, gdb_run, needs_gcc, needs_gdb
from gdbext.gdbrun import find_gdb, run_gdb

pytestmark = needs_gdb

RELEASES = ["bullseye", "bookworm", "trixie", "sid"]


def heapmix(release):
    name = f"glibc/heapmix-{release}"
    return name, Truth(name)


def json_out(text):
    """The first JSON document in gdb's output."""
    start = text.index("{")
    return json.JSONDecoder().raw_decode(text[start:])[0]


def arena_by_address(summary, address):
    return next(a for a in summary["arenas"] if a["arena"] == address)


def check_counts(summary, t, prefix, arena):
    a = arena_by_address(summary, arena)
    assert a["chunks"] == int(t[f"{prefix}.chunks_total"])
    assert a["states"]["in-use"]["count"] == int(t[f"{prefix}.chunks_inuse"])
    assert a["states"]["free"]["count"] == int(t[f"{prefix}.chunks_free"])
    assert a["states"]["top"]["count"] == 1
    assert a["free"]["tcache"]["count"] == int(t[f"{prefix}.tcache_total"])
    assert a["free"]["fastbin"]["count"] == int(t.get(f"{prefix}.fastbin_total", "0"))
    bins = sum(int(t.get(f"{prefix}.{k}", "0")) for k in ("unsorted.count", "small_total", "large_total"))
    assert a["free"]["bins"]["count"] == bins


@pytest.mark.parametrize("release", RELEASES)
def test_summary_matches_the_program_on_each_glibc(release):
    name, t = heapmix(release)
    out = gdb_run(name, ["heapwalk --summary --json", "heapwalk --summary"]).stdout
    summary = json_out(out)
    assert summary["schema"] == "gdbext.heapwalk/1"
    main, thread = int(t["main.arena"], 16), int(t["thread.arena"], 16)
    check_counts(summary, t, "main", main)
    check_counts(summary, t, "thread", thread)
    assert [m["address"] for m in summary["mmapped"]] == [t["mmapped.chunk"]]
    # chunks: every arena's chunks, each top included (mmapped chunks are listed apart)
    assert summary["chunks"] == int(t["main.chunks_total"]) + int(t["thread.chunks_total"])
    assert f"main_arena: 1 segment(s), {t['main.chunks_total']} chunks" in out


@pytest.mark.parametrize("release", RELEASES)
def test_every_free_chunk_in_its_bin(release):
    name, t = heapmix(release)
    out = gdb_run(name, ["heapwalk --state free --json"]).stdout
    rows = json_out(out)["chunks"]
    got = {(r["address"], r["bin"].split("@")[0]) for r in rows}
    want = {tuple(v.split()) for v in t.all("free")}
    assert got == want
    assert all(r["state"] == "free" for r in rows)


@pytest.mark.parametrize("release", RELEASES)
def test_a_clean_heap_checks_clean(release):
    name, _ = heapmix(release)
    out = gdb_run(name, ["heapwalk --check"]).stdout
    assert "heapwalk --check: 0 violations" in out, out


def test_filters():
    name, t = heapmix("bookworm")
    main = t["main.arena"]
    out = gdb_run(name, [
        "heapwalk --arena main --state tcache --json",
        "echo ==\\n", "heapwalk --min-size 0x500 --max-size 0x520 --json",
        "echo ==\\n", f"heapwalk --range {t['main.heap_start']} {t['main.top']} --limit 5",
        "echo ==\\n", "heapwalk --state top --json",
    ]).stdout
    tcache, sized, ranged, top = out.split("==\n")
    rows = json_out(tcache)["chunks"]
    assert len(rows) == int(t["main.tcache_total"]) and all(r["bin"].startswith("tcache[") for r in rows)
    assert all(r["heap"] == "main_arena" for r in rows)
    sizes = {r["size"] for r in json_out(sized)["chunks"]}
    assert sizes and sizes <= set(range(0x500, 0x521)) and {0x500, 0x520} <= sizes
    lines = [line for line in ranged.splitlines() if line.startswith("0x")]
    assert len(lines) == 5 and lines[0].startswith(t["main.heap_start"])
    tops = {r["address"] for r in json_out(top)["chunks"]}
    assert tops == {t["main.top"], t["thread.top"]}
    assert main  # --arena main named the main arena


def test_threads_fixture_counts():
    t = Truth("threads")
    out = gdb_run("threads", ["heapwalk --summary --json"]).stdout
    summary = json_out(out)
    assert len(summary["arenas"]) == int(t["expected_arenas"])
    for i in range(int(t["nworkers"])):
        arena = arena_by_address(summary, int(t[f"thread.{i}.arena"], 16))
        live, freed = int(t[f"thread.{i}.live_count"]), int(t[f"thread.{i}.freed_count"])
        # each worker arena: its objects, its tcache_perthread_struct, its top
        assert arena["states"]["in-use"]["count"] == live + 1
        assert arena["states"]["free"]["count"] == freed
        assert arena["states"]["top"]["count"] == 1


def test_overflow_is_reported_with_the_glibc_message_and_the_walk_resynchronises():
    t = Truth("heap_overflow")
    out = gdb_run("heap_overflow", ["heapwalk --check", "heapwalk --json"]).stdout
    check, listing = out.split("heapwalk --check:")
    assert f'chunk {t["a_chunk"]}' in check and f'[glibc: "{t["abort_message"]}"]' in check
    victim = t["b_chunk"]
    raw = int(t["b_size_field_after"], 16).to_bytes(8, "little")
    assert f"chunk {victim} size @{int(victim, 16) + 8:#x} bytes {raw.hex()} ({t['b_size_field_after_text']!r})" \
        in check, check
    assert f"could not parse {victim}.." in check
    rows = json_out(listing.split("\n", 1)[1])["chunks"]
    marked = [r for r in rows if r["address"] == victim]
    assert marked and {r["state"] for r in marked} & {"corrupt", "unparsed"}
    # the walk went on after the damage: the guard chunk and top are still listed
    assert any(r["address"] == t["guard_chunk"] for r in rows)
    assert any(r["state"] == "top" for r in rows)


@pytest.mark.parametrize("name", ["tcache_uaf", "binary_overflow"])
def test_other_corruptions_name_the_abort(name):
    t = Truth(name)
    out = gdb_run(name, ["heapwalk --check --json"]).stdout
    violations = json_out(out)["violations"]
    assert any(v.get("abort") == t["abort_message"] for v in violations), violations


@pytest.mark.parametrize("args, message", [
    ("--state bogus", "unknown state bogus"),
    ("--arena 0x1234", "0x1234 is not an arena"),
    ("--summary --check", "choose one of --summary and --check"),
    ("--limit", "expected one argument"),
    ("--pool nosuch", "no pool named 'nosuch'"),
])
def test_bad_arguments_are_one_line_errors(args, message):
    res = gdb_run("heap_overflow", [f"heapwalk {args}"])
    errors = [line for line in res.stderr.splitlines() if line.startswith("heapwalk")]
    assert len(errors) == 1 and message in errors[0], res.stderr


def test_without_a_process_or_core():
    res = gdb_run("heap_overflow", ["heapwalk --summary"], with_core=False)
    assert "heapwalk: no process or core file" in res.stderr


def test_pool_in_heapwalk():
    from conftest import spec
    t = Truth("pool_overflow")
    out = gdb_run("pool_overflow", ["heapwalk --pools-only --pool g_pool --summary --json",
                                    "heapwalk --pools-only --pool g_pool --check"],
                  specs=[spec("pool_overflow")]).stdout
    pool = json_out(out)["pools"][0]
    assert pool["name"] == "g_pool" and pool["chunks"] == int(t["nslots"])
    assert f"guard bytes 0..7 of slot {t['overflow_source_slot']} overwritten" in out


@needs_gcc
def test_live_process(tmp_path):
    """The same counts on the running program, stopped at its abort, as in its core."""
    t = Truth("glibc/heapmix-bookworm")
    exe = tmp_path / "heapmix"
    shutil.copy(os.path.join(CORES, "glibc", "heapmix-bookworm"), exe)
    res = run_gdb(str(exe), None, commands=["run", "heapwalk --summary --json"], timeout=120)
    summary = json_out(res.stdout[res.stdout.index('{"schema"'):])
    main = next(a for a in summary["arenas"] if a["label"] == "main_arena")
    assert main["states"]["free"]["count"] == int(t["main.chunks_free"])
    assert main["free"]["tcache"]["count"] == int(t["main.tcache_total"])


@needs_gcc
@pytest.mark.parametrize("debug_info", [True, False], ids=["libc-debug-info", "no-libc-debug-info"])
def test_dynamic_binary(tmp_path, debug_info):
    """A dynamically linked build: its GT lines come from the run itself (the program checks its own model)."""
    exe = tmp_path / "heapmix-dyn"
    subprocess.run(["gcc", "-g", "-O0", "-pthread", "-o", str(exe), os.path.join(SRC, "heapmix.c")], check=True)
    core_path = tmp_path / "heapmix-dyn.core"
    run = subprocess.run([find_gdb(), "-nx", "-batch", "-ex", "set startup-with-shell off", "-ex", "run",
                          "-ex", f"generate-core-file {core_path}", str(exe)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    if not core_path.exists() or "GT chunks" not in run.stdout and "GT main.chunks_total" not in run.stdout:
        pytest.skip(f"dynamic heapmix did not run to its abort here: {run.stdout[-300:]}")
    truth = dict(line.split(" ", 2)[1:3] for line in run.stdout.splitlines() if line.startswith("GT ")
                 and len(line.split(" ", 2)) == 3)
    setup = [] if debug_info else ["set debug-file-directory /nonexistent"]
    res = run_gdb(None, None, commands=setup + [f"file {exe}", f"core-file {core_path}",
                                                 "heapwalk --summary --json"], timeout=120)
    summary = json_out(res.stdout[res.stdout.index('{"schema"'):])
    main = next(a for a in summary["arenas"] if a["label"] == "main_arena")
    assert main["chunks"] == int(truth["main.chunks_total"])
    assert main["free"]["tcache"]["count"] == int(truth["main.tcache_total"])
    assert main["states"]["free"]["count"] == int(truth["main.chunks_free"])
