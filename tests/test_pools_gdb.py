"""Declared pools in every heap command by default, specs refused at load, and check-spec; real gdb and core.

Counts and slots come from the fixture program's own GT lines (fixtures/cores/pool_overflow.truth).
"""
import json
import subprocess
import sys

from conftest import Truth, binary, core, gdb_run, needs_gdb, spec

pytestmark = needs_gdb

GOOD = spec("pool_overflow")


def _variant(tmp_path, name, old, new):
    text = open(GOOD).read()
    assert old in text
    path = tmp_path / f"{name}.py"
    path.write_text(text.replace(old, new))
    return str(path)


def test_every_heapwalk_covers_the_pool_once_loaded():
    t = Truth("pool_overflow")
    nslots = int(t["nslots"])
    src = int(t["overflow_source_slot"])
    out = gdb_run("pool_overflow", ["echo =LIST=\\n", "heapwalk", "echo =CHECK=\\n", "heapwalk --check",
                                    "echo =SUMMARY=\\n", "heapwalk --summary --json",
                                    "echo =ONLY=\\n", "heapwalk --pools-only", "echo =ARENA=\\n",
                                    "heapwalk --arena main --limit 3"], specs=[GOOD]).stdout
    parts = dict(p.split("=\n", 1) for p in out.split("\n=")[1:] if "=\n" in p)
    listing = parts["LIST"]
    assert sum(1 for line in listing.splitlines() if "pool:g_pool" in line) == nslots
    assert "main_arena" in listing  # the glibc heap is still there
    assert f"guard bytes 0..7 of slot {src} overwritten" in parts["CHECK"]
    summary = json.loads(parts["SUMMARY"][parts["SUMMARY"].index("{"):].splitlines()[0])
    assert [p["name"] for p in summary["pools"]] == ["g_pool"] and summary["pools"][0]["chunks"] == nslots
    assert summary["arenas"]  # and the arenas
    only = parts["ONLY"].splitlines()
    assert sum(1 for line in only if "pool:g_pool" in line) == nslots and not any("main_arena" in x for x in only)
    assert "pool:g_pool" not in parts["ARENA"]  # --arena narrows to that arena


def test_load_refuses_a_spec_whose_header_holds_the_payload(tmp_path):
    # the header written as the whole slot, payload_offset forgotten: one line naming the field
    whole = _variant(tmp_path, "whole", 'header="struct slot_hdr",\n    payload_size=48,',
                     'header=c.Struct("magic" / c.Int32ul, "req_size" / c.Int32ul, "alloc_site" / c.Int64ul,'
                     ' "next_free" / c.Int64ul, "payload" / c.Bytes(48), "guard" / c.Bytes(8)),')
    text = open(whole).read().replace("from gdbext.specs import pool", "from gdbext.specs import pool\n"
                                      "import construct as c")
    open(whole, "w").write(text)
    small = _variant(tmp_path, "small", 'slot_size="sizeof(struct slot)"', 'slot_size="sizeof(struct slot_hdr) + 48"')
    magic = _variant(tmp_path, "magic", "used=0xA110C8ED, free=0xF4EEF4EE", "used=0xA110C8EE, free=0xF4EEF4EF")
    expr = _variant(tmp_path, "expr", "payload_size=48,", 'payload_size=48, payload_offset="sizeof(struct slot_hdr)",')
    res = gdb_run("pool_overflow", ["heapwalk --pools-only"], specs=[whole, small, magic, expr])
    lines = [line for line in res.stderr.splitlines() if ": pool g_pool: " in line and not line.startswith("warn")]
    assert [line.split(": pool g_pool: ", 1)[1].split(":")[0] for line in lines] == [
        "payload_offset", "geometry.slot_size", "guard", "in_use.used", "payload_offset"], res.stderr
    assert "48-byte array 'payload' at offset 24" in lines[0]
    assert "72 bytes, but geometry.first points to a 80-byte slot type" in lines[1]
    assert "matches no slot of 16" in lines[3]
    assert "is an expression" in lines[4]
    assert "heapwalk: no chunk matches" in res.stdout  # none of them was declared
    # triage with that spec: exit 2 and one line naming the field, not 20 false use-after-free findings
    tri = subprocess.run([sys.executable, "-m", "gdbext", "triage", binary("pool_overflow"), core("pool_overflow"),
                          "--pools", whole], capture_output=True, text=True, timeout=120)
    assert tri.returncode == 2 and tri.stderr.count("\n") == 1 and "pool g_pool: payload_offset: missing" in tri.stderr


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "gdbext", "check-spec", *args], capture_output=True, text=True,
                          timeout=120)


def test_check_spec_on_the_command_line(tmp_path):
    t = Truth("pool_overflow")
    res = _cli(GOOD, binary("pool_overflow"), core("pool_overflow"))
    assert res.returncode == 1, res.stderr  # the core's pool is corrupted: inconsistencies
    lines = res.stdout.splitlines()
    assert lines[0].startswith(f"pool g_pool: {t['nslots']} slots x {t['slot_size']} B at {t['slots_base']}")
    assert f"inconsistency: guard-overwritten at" in res.stdout
    assert lines[-1].startswith("check-spec: 1 pool(s), 0 spec error(s), 1 warning(s), ")
    res = _cli(GOOD, binary("pool_overflow"))
    assert res.returncode == 0 and "checked against the debug info only" in res.stdout, res.stdout + res.stderr
    bad = _variant(tmp_path, "bad", '"struct slot_hdr"', '"struct slot_header"')
    res = _cli(bad, binary("pool_overflow"), core("pool_overflow"))
    assert res.returncode == 2
    assert "  spec error: header: no type 'struct slot_header'" in res.stdout
    res = _cli(str(tmp_path / "missing.py"), binary("pool_overflow"))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "no such file" in res.stderr
