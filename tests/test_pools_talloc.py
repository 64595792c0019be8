"""talloc (Debian's libtalloc, linked into fixtures/src/talloc_overflow.c) through the shipped specs/talloc.py.

Every expected address, size, state and line comes from the fixture's own GT lines
(fixtures/cores/talloc_overflow.truth), never from gdbext's earlier output.
"""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, Truth, binary, core, gdb_run, needs_gdb

pytestmark = needs_gdb

SPEC = os.path.join(ROOT, "specs", "talloc.py")
SRC = "fixtures/src/talloc_overflow.c"


@pytest.fixture(scope="module")
def truth():
    return Truth("talloc_overflow")


def _json_docs(text):
    docs, dec, i = [], json.JSONDecoder(), 0
    while True:
        i = text.find('{"schema"', i)
        if i < 0:
            return docs
        doc, end = dec.raw_decode(text[i:].replace("\n,", ",").replace("[\n", "[").replace("\n]", "]"))
        docs.append(doc)
        i += 1


def test_pool_records_match_the_programs_truth(truth):
    n = truth.int("records")
    out = gdb_run("talloc_overflow", ["heapwalk --pool records --json", "print g_pool", "heapwalk --check"],
                  specs=[SPEC]).stdout
    listing = _json_docs(out)[0]["chunks"]
    assert [int(c["address"], 16) for c in listing] == [truth.int(f"record.{i}.chunk") for i in range(n)]
    assert [int(c["user_address"], 16) for c in listing] == [truth.int(f"record.{i}.addr") for i in range(n)]
    assert [c["requested"] for c in listing] == [truth.int(f"record.{i}.size") for i in range(n)]
    freed, victim = truth.int("freed_record"), truth.int("overflow_victim")
    assert [c["state"] for c in listing] == [
        "free" if i == freed else "corrupt" if i == victim else "in-use" for i in range(n)]
    # talloc's own record of the allocation site (talloc_size names the chunk file:line), and of the free
    assert [c["label"] for c in listing] == [
        f"{SRC}:{truth['free_line']}" if i == freed else f"{SRC}:{truth[f'record.{i}.alloc_line']}"
        for i in range(n)]
    # the printer: summary, the anomaly, one line per record
    printed = out[out.index("$1 = "):].split("\n", 1)[0]
    assert printed.startswith(f"$1 = pool records: {n} chunks in [{truth['pool']}, ")
    assert f"{n - 2} in use, 1 free, 1 corrupt, 1 anomaly" in printed
    assert (f"[{truth['overflow_source']}] = in-use {truth['overflow_source_addr']} req 40/48 "
            f"\"{SRC}:{truth['record.3.alloc_line']}\"") in printed
    victim_flags = truth["victim_flags_after"]
    assert f"[pool records] bad-magic at {truth['overflow_victim_chunk']}: flags = {victim_flags} " in out


def test_tree_walk_from_the_root(truth):
    out = gdb_run("talloc_overflow", ["heapwalk --pool talloc --json"], specs=[SPEC]).stdout
    chunks = _json_docs(out)[0]["chunks"]
    by_addr = {int(c["address"], 16): c for c in chunks}
    root_chunk = truth.int("root") - truth.int("hdr_size")
    assert by_addr[root_chunk]["label"].startswith("talloc_new: " + SRC)
    assert truth.int("pool_chunk") in by_addr  # the pool is the root's child
    # the newest record is the pool's first child; the corrupt victim's links are not followed
    victim = truth.int("overflow_victim_chunk")
    assert by_addr[victim]["state"] == "corrupt"
    assert truth.int("record.5.chunk") in by_addr and truth.int("record.3.chunk") not in by_addr


def test_triage_names_source_and_damaged_record(truth):
    res = subprocess.run([sys.executable, "-m", "gdbext", "triage", binary("talloc_overflow"),
                          core("talloc_overflow"), "--pools", SPEC, "--format", "json"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stderr
    first = json.loads(res.stdout)["findings"][0]
    assert first["kind"] == "heap-buffer-overflow"
    assert int(first["source"]["chunk"]["address"], 16) == truth.int("record.3.chunk")
    assert int(first["source"]["chunk"]["user_address"], 16) == truth.int("overflow_source_addr")
    assert int(first["chunk"]["address"], 16) == truth.int("overflow_victim_chunk")
    assert first["source"]["bytes_past_end"] == truth.int("overflow_len") - truth.int("record.3.size")
    assert first["chunk"]["heap"] == "pool:records"
