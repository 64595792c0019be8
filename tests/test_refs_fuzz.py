# tests/test_refs_fuzz.py - whopoints on byte-flipped fixture cores: a result or
# a one-line error within a few seconds, never a traceback or an internal error.
"""whopoints survives corrupt cores: heap words, program headers and notes flipped at random."""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import Truth, binary, core, needs_gdb, spec
from corefuzz import mutations
from gdbext.gdbrun import bootstrap_command, find_gdb, plain_core

pytestmark = needs_gdb

PER_CORE = 8
CASE_SECONDS = 30.0  #: a hang or a runaway walk, not a benchmark: the machine may be busy
CASES = {  # fixture -> the address asked about (from its truth file)
    "uaf_perturb": "victim_addr",
    "double_free": "p_addr",
    "pool_overflow": "buf.request.addr",
    "threads": "main.obj.1.addr",
}

DRIVER = r'''
import json, time, gdb
cores, commands, out = json.load(open(__file__ + ".json"))
results = []
for path in cores:
    t0 = time.perf_counter()
    outcome = []
    try:
        gdb.execute("core-file " + path, to_string=True)
    except gdb.error as e:
        outcome.append(("core-file", "error", str(e).splitlines()[0] if str(e) else ""))
    except UnicodeDecodeError as e:  # gdb's own messages about a mangled core
        outcome.append(("core-file", "error", str(e)))
    for cmd in commands:
        try:
            gdb.execute(cmd, to_string=True)
            outcome.append((cmd, "ok", ""))
        except gdb.error as e:
            outcome.append((cmd, "error", str(e)))
        except Exception as e:
            outcome.append((cmd, "exception", f"{type(e).__name__}: {e}"))
    results.append({"core": path, "seconds": time.perf_counter() - t0, "outcome": outcome})
json.dump(results, open(out, "w"))
'''


@pytest.mark.parametrize("name", sorted(CASES))
def test_whopoints_survives_mutated_cores(name, tmp_path):
    address = Truth(name)[CASES[name]]
    commands = [f"whopoints {address}", f"whopoints {address} --json --depth 5"]
    with plain_core(core(name)) as original:
        muts = list(mutations(original, str(tmp_path), PER_CORE, seed=20261127))
    labels = {m.path: repr(m) for m in muts}
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    result = tmp_path / "result.json"
    (tmp_path / "driver.py.json").write_text(json.dumps([list(labels), commands, str(result)]))
    specs = ["-ex", f"gdbext load {spec('pool_overflow')}"] if name == "pool_overflow" else []
    argv = [find_gdb(), "-nx", "-batch", "-ex", "set pagination off", "-ex", bootstrap_command()] + specs + \
        [binary(name), "-ex", f"source {driver}"]
    proc = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                          timeout=CASE_SECONDS * len(labels) + 30)
    output = proc.stdout + proc.stderr
    assert result.exists(), f"gdb died on {name} mutations:\n{output[-3000:]}"
    assert "Traceback" not in output and "Python Exception" not in output, output[-3000:]
    problems = []
    for r in json.loads(result.read_text()):
        label = labels[r["core"]]
        if r["seconds"] > CASE_SECONDS:
            problems.append(f"{label}: {r['seconds']:.1f} s")
        for cmd, status, text in r["outcome"]:
            if status == "exception" or "internal error" in text:
                problems.append(f"{label}: {cmd}: {text}")
            if status == "error" and "\n" in text.strip():
                problems.append(f"{label}: {cmd}: multi-line error: {text!r}")
    assert problems == [], "\n".join(problems)
