"""Byte-flip fuzzing: every gdb command on mutated fixture cores ends within 10 s with a result or a
one-line error, never a traceback or an internal error.  At least 200 mutated cores per run."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import CORES, binary, core, needs_gdb, spec
from corefuzz import mutations
from gdbext.gdbrun import bootstrap_command, find_gdb, plain_core

pytestmark = needs_gdb

FIXTURES = ["pool_overflow", "heap_overflow", "uaf_perturb", "double_free", "threads", "binary_overflow",
            "tcache_uaf", "sensor", "glibc/heapmix-bullseye", "glibc/heapmix-bookworm", "glibc/heapmix-trixie"]
PER_CORE = 19  # 11 fixtures x 19 = 209 mutated cores
COMMANDS = ["heapwalk --summary", "heapwalk --check", "heapwalk --limit 40", "heapwalk --json --state free",
            "print g_pool", "poisonscan", "heapexplain $pc", "gdbext report --json /dev/null"]
CASE_SECONDS = 10.0

DRIVER = r'''
import json, sys, time, gdb
cores, commands, out = json.load(open(__file__ + ".json"))
known = []
for c in commands:
    try:
        gdb.execute("help " + c.split()[0], to_string=True)
        known.append(c)
    except gdb.error:
        pass
results = []
for path in cores:
    t0 = time.perf_counter()
    outcome = []
    try:
        gdb.execute("core-file " + path, to_string=True)
    except Exception as e:  # gdb's own loading of a mangled core: not ours to judge (it may not be UTF-8)
        outcome.append(("core-file", "gdb", type(e).__name__))
    for cmd in known:
        try:
            gdb.execute(cmd, to_string=True)
            outcome.append((cmd, "ok", ""))
        except gdb.error as e:
            text = str(e)
            outcome.append((cmd, "error", text))
        except Exception as e:
            outcome.append((cmd, "exception", f"{type(e).__name__}: {e}"))
    results.append({"core": path, "seconds": time.perf_counter() - t0, "outcome": outcome})
json.dump(results, open(out, "w"))
'''


def run_batch(name, paths, tmp_path, tag):
    driver = tmp_path / f"driver-{tag}.py"
    driver.write_text(DRIVER)
    result = tmp_path / f"result-{tag}.json"
    (tmp_path / f"driver-{tag}.py.json").write_text(json.dumps([paths, COMMANDS, str(result)]))
    specs = ["-ex", f"gdbext load {spec('pool_overflow')}"] if name == "pool_overflow" else []
    argv = [find_gdb(), "-nx", "-batch", "-ex", "set pagination off", "-ex", bootstrap_command()] + specs + \
        [binary(name), "-ex", f"source {driver}"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=CASE_SECONDS * len(paths) + 30)
    output = proc.stdout + proc.stderr
    assert result.exists(), f"gdb died on {name} mutations (exit {proc.returncode}):\n{output[-3000:]}"
    return json.loads(result.read_text()), output


@pytest.mark.parametrize("name", FIXTURES)
def test_commands_survive_mutated_cores(name, tmp_path):
    stable = tmp_path / (os.path.basename(name) + ".core")  # seeds depend on the name: keep it stable
    with plain_core(core(name)) as original:
        shutil.copy(original, stable)
    muts = list(mutations(str(stable), str(tmp_path), PER_CORE, seed=20261126))
    by_path = {m.path: m for m in muts}
    results, output = run_batch(name, list(by_path), tmp_path, "all")
    assert len(results) == PER_CORE
    assert "Traceback" not in output and "Python Exception" not in output, output[-3000:]
    problems = []
    for r in results:
        label = repr(by_path[r["core"]])
        if r["seconds"] > CASE_SECONDS:
            problems.append(f"{label}: {r['seconds']:.1f} s")
        for cmd, status, text in r["outcome"]:
            if status == "exception" or "internal error" in text or "Error occurred in Python" in text:
                problems.append(f"{label}: {cmd}: {text}")
            if status == "error" and "\n" in text.strip():
                problems.append(f"{label}: {cmd}: multi-line error: {text!r}")
    assert problems == [], "\n".join(problems)
