"""`gdbext scaffold` for packed words (from -g3 macro families) and pools (--pool VAR); real gdb and binaries.

Oracles: the values the sensor program decodes with its own macros (its GT lines), and the pool
fixture's GT lines; the scaffolds are loaded and used, not compared with earlier output.
"""
import os
import re
import subprocess
import sys

from conftest import ROOT, SRC, Truth, binary, core, gdb_run, needs_gcc, needs_gdb
from gdbext.gdbrun import find_gdb

pytestmark = needs_gdb


@needs_gcc
def test_packed_word_fields_from_macro_families(tmp_path):
    exe = tmp_path / "sensor3"
    subprocess.run(["gcc", "-g3", "-O0", "-o", str(exe), os.path.join(SRC, "sensor.c")], check=True)
    module = tmp_path / "word.py"
    run = subprocess.run([find_gdb(), "-nx", "-batch", "-ex", "set startup-with-shell off", "-ex", "run",
                          "-ex", "python import sys; sys.path.insert(0, %r)" % ROOT,
                          "-x", os.path.join(ROOT, "gdbinit.example"),
                          "-ex", f"gdbext scaffold sensor_word_t -o {module}", "-ex", f"gdbext load {module}",
                          "-ex", "print g_word", str(exe)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    truth = dict(line.split(" ", 2)[1:3] for line in run.stdout.splitlines() if line.startswith("GT ")
                 and len(line.split(" ", 2)) == 3)
    printed = next(line for line in run.stdout.splitlines() if line.startswith("$1 = "))
    got = dict(re.findall(r"(\w+) = (\w+)", printed))
    assert int(got["temp"]) == int(truth["g_word.temp"]) & 0xFFF  # unsigned until someone says signed=True
    for key in ("unit", "channel", "humidity", "seq"):
        assert int(got[key], 0) == int(truth[f"g_word.{key}"], 0), (key, printed)
    assert got["valid"] == ("true" if truth["g_word.valid"] == "1" else "false")
    text = module.read_text()
    assert "SW_TEMP_SHIFT / SW_TEMP_MASK" in text and 'typedef="sensor_word_t"' in text


def test_packed_word_without_macro_information():
    out = gdb_run("sensor", ["gdbext scaffold sensor_word_t"], with_core=False).stdout
    assert "no macro information (build with -g3" in out and 'Field("value", 0, 64)' in out


def test_pool_scaffold_proposes_a_spec_that_checks_clean(tmp_path):
    t = Truth("pool_overflow")
    module = tmp_path / "pool.py"
    gdb_run("pool_overflow", [f"gdbext scaffold --pool g_pool -o {module}"], with_core=False)
    text = module.read_text()
    assert 'header="struct slot_hdr"' in text and f"payload_offset={t['slot_hdr_size']}," in text
    assert f"payload_size={t['slot_payload']}," in text
    assert 'free_list=FreeList(head="g_pool.free_head", link="next_free")' in text
    assert 'count="g_pool.nslots"' in text and 'in_use=Magic("magic", used=0x0, free=0x0)' in text
    # a person fills the TODO from the allocator's code (here: the fixture's truth); then it checks clean
    module.write_text(text.replace("used=0x0, free=0x0", f"used={t['magic_used']}, free={t['magic_free']}"))
    res = subprocess.run([sys.executable, "-m", "gdbext", "check-spec", str(module),
                          binary("pool_overflow"), core("pool_overflow")], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr  # the core's own corruption, no spec error
    assert res.stdout.splitlines()[0].startswith(f"pool g_pool: {t['nslots']} slots x {t['slot_size']} B")
    assert ", 0 spec error(s)," in res.stdout
