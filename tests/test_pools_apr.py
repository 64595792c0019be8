"""APR pools (Debian's libapr1, linked into fixtures/src/apr_overflow.c) through the shipped specs/apr.py.

APR allocations carry no header: the pool's chunks are its memory nodes.  Every expected value comes
from the fixture's GT lines (fixtures/cores/apr_overflow.truth).
"""
import json
import os
import subprocess
import sys

from conftest import ROOT, Truth, binary, core, gdb_run, needs_gdb

pytestmark = needs_gdb

SPEC = os.path.join(ROOT, "specs", "apr.py")


def test_nodes_match_the_programs_truth():
    t = Truth("apr_overflow")
    assert t["adjacent"] == "1"  # the story needs the second node mapped right below the first
    hdr = t.int("memnode_size")
    out = gdb_run("apr_overflow", ["heapwalk --pool apr --json", "print g_pool"], specs=[SPEC]).stdout
    doc = out[out.index('{"schema"'):out.index("]}") + 2]
    chunks = json.loads(doc.replace("\n,", ",").replace("[\n", "[").replace("\n]", "]"))["chunks"]
    second, first = t.int("node.second"), t.int("node.first")
    assert [int(c["address"], 16) for c in chunks] == [second, first]  # in address order
    assert [c["size"] for c in chunks] == [t.int("node.second.endp") - second, t.int("node.first.endp") - first]
    assert [c["requested"] for c in chunks] == [t.int("node.second.first_avail") - second - hdr,
                                               t.int("node.first.first_avail") - first - hdr]
    assert [c["state"] for c in chunks] == ["in-use", "corrupt"]  # the first node's header holds text now
    printed = out[out.index("$1 = "):].split("\n", 1)[0]
    assert printed.startswith(f"$1 = pool apr: 2 chunks in [{t['node.second']}, {t['node.first.endp']}), "
                              f"1 in use, 0 free, 1 corrupt")
    assert f"bad-node at {t['node.first']}: node 1 at {t['node.first']}: next 0x" in printed


def test_triage_names_the_node_that_ran_over_and_the_damaged_one():
    t = Truth("apr_overflow")
    res = subprocess.run([sys.executable, "-m", "gdbext", "triage", binary("apr_overflow"), core("apr_overflow"),
                          "--pools", SPEC, "--format", "json"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stderr
    findings = json.loads(res.stdout)["findings"]
    over = next(f for f in findings if f["kind"] == "heap-buffer-overflow")
    assert int(over["source"]["chunk"]["address"], 16) == t.int("overflow_source_node")
    assert int(over["chunk"]["address"], 16) == t.int("overflow_victim_node")
    assert over["source"]["bytes_past_end"] == t.int("overflow_bytes")
    assert over["chunk"]["heap"] == "pool:apr" and "into apr slot 1 (next)" in over["message"]
