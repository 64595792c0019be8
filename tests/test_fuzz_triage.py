"""Byte-flip fuzzing of `gdbext triage`: at least 200 mutated fixture cores, each finishing within 10 s
with exit code 0, 1 or 2, one line on stderr when it is 2, and never a traceback."""
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import binary, core, needs_gdb, spec
from corefuzz import mutations
from gdbext.gdbrun import plain_core

pytestmark = needs_gdb

FIXTURES = ["pool_overflow", "heap_overflow", "uaf_perturb", "double_free", "threads", "binary_overflow",
            "tcache_uaf", "sensor", "glibc/heapmix-bullseye", "glibc/heapmix-bookworm", "glibc/heapmix-trixie"]
PER_CORE = 19  # 209 mutated cores
CASE_SECONDS = 10.0


def triage_one(name, path):
    argv = [sys.executable, "-m", "gdbext", "triage", binary(name), path, "--format", "json"]
    if name == "pool_overflow":
        argv += ["--pools", spec("pool_overflow")]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=CASE_SECONDS * 3)
    except subprocess.TimeoutExpired:
        return path, None, "", "timeout", CASE_SECONDS * 3
    return path, proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - t0


@pytest.fixture(scope="module")
def mutated(tmp_path_factory):
    cases = []
    for name in FIXTURES:
        d = tmp_path_factory.mktemp(os.path.basename(name))
        stable = d / (os.path.basename(name) + ".core")
        with plain_core(core(name)) as original:
            shutil.copy(original, stable)
        cases += [(name, m) for m in mutations(str(stable), str(d), PER_CORE, seed=20261126)]
    return cases


def test_triage_survives_mutated_cores(mutated):
    assert len(mutated) >= 200
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda c: (c[1], triage_one(c[0], c[1].path)), mutated))
    problems, codes = [], {0: 0, 1: 0, 2: 0}
    for mut, (_, code, out, err, seconds) in results:
        if code not in codes:
            problems.append(f"{mut!r}: exit {code} ({err.strip()[-200:]})")
            continue
        codes[code] += 1
        # each case alone gets 10 s; two run side by side on this 2-core machine, so allow for that
        if seconds > CASE_SECONDS:
            problems.append(f"{mut!r}: {seconds:.1f} s")
        if "Traceback" in out + err or "Python Exception" in out + err or "internal error" in out + err:
            problems.append(f"{mut!r}: traceback or internal error: {(out + err)[-400:]}")
        if code == 2 and len([line for line in err.splitlines() if line.strip()]) != 1:
            problems.append(f"{mut!r}: exit 2 needs one stderr line, got {err!r}")
    assert problems == [], "\n".join(problems)
    assert codes[2] < len(mutated)  # most mutated cores are still analysed, not all refused
