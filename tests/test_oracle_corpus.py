"""ASan as the oracle: the fixed-seed corpus subset, scored and held to a ratchet.

The corpus (``tests/oracle``) writes one C program per seed with one injected
heap bug, builds it with AddressSanitizer (the oracle) and plain (the core),
and scores ``gdbext triage --format json`` field by field against ASan's
report and the program's own ground truth.  ``tests/oracle/ratchet.json``
holds the figures this subset reached; a figure that falls below its recorded
value fails the suite (raise the recorded figures as they improve, never lower
them to pass).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import needs_gcc, needs_gdb
from tests.oracle import asan
from tests.oracle.cases import (POOL_KINDS, POOL_SEED_BASE, BugKind, Crash, Neighbour, SizeClass, detectability,
                                make_case, make_pool_case, usable_size)
from tests.oracle.runner import run_case
from tests.oracle.score import FIGURES, render, score, table

HERE = os.path.dirname(os.path.abspath(__file__))
RATCHET = os.path.join(HERE, "oracle", "ratchet.json")

ASAN_OVERFLOW = """=================================================================
==1==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x604000000038 at pc 0x7f bp 0x7f sp 0x7f
WRITE of size 44 at 0x604000000038 thread T0
    #0 0x7ff3d0048060 in __interceptor_memcpy ../src/libsanitizer/sanitizer_common_interceptors.inc:827
    #1 0x5587b63e21e3 in main c00002.c:5

0x604000000038 is located 0 bytes to the right of 40-byte region [0x604000000010,0x604000000038)
allocated by thread T0 here:
    #0 0x7ff3d00b89cf in __interceptor_malloc ../src/libsanitizer/asan/asan_malloc_linux.cpp:69
    #1 0x5587b63e21b0 in alloc_buffer c00002.c:4
    #2 0x5587b63e21c4 in main c00002.c:5

SUMMARY: AddressSanitizer: heap-buffer-overflow
"""

ASAN_DOUBLE_FREE = """==7==ERROR: AddressSanitizer: attempting double-free on 0x606000000020 in thread T0:
    #0 0x7f in __interceptor_free ../asan_malloc_linux.cpp:52
    #1 0x55 in release c00005.c:32

0x606000000020 is located 0 bytes inside of 64-byte region [0x606000000020,0x606000000060)
freed by thread T0 here:
    #0 0x7f in __interceptor_free ../asan_malloc_linux.cpp:52
    #1 0x55 in release c00005.c:32

previously allocated by thread T0 here:
    #0 0x7f in __interceptor_malloc ../asan_malloc_linux.cpp:69
    #1 0x55 in alloc_buffer c00005.c:30
"""


def test_asan_parser_reads_kind_region_and_frames():
    r = asan.parse(ASAN_OVERFLOW)
    assert (r.kind, r.access, r.access_size) == ("heap-buffer-overflow", "WRITE", 44)
    assert (r.relation, r.distance, r.region_size, r.region_start) == ("after", 0, 40, 0x604000000010)
    assert (r.alloc_frame.function, r.alloc_frame.line) == ("alloc_buffer", 4)
    d = asan.parse(ASAN_DOUBLE_FREE)
    assert (d.kind, d.relation, d.region_size) == ("double-free", "inside", 64)
    assert d.alloc_frame.function == "alloc_buffer"
    assert d.first_own(d.free_frames).function == "release"
    assert asan.parse("no sanitizer here") is None


def test_detectability_is_decided_by_rule():
    # an overflow inside the slack of a 40-byte request (usable 40: none) vs 41 (usable 56)
    assert usable_size(40) == 40 and usable_size(41) == 56
    slack = [make_case(s) for s in range(400)]
    over = [c for c in slack if c.kind is BugKind.OVERFLOW]
    assert any(not detectability(c)[0] for c in over) and any(detectability(c)[0] for c in over)
    for c in over:
        assert detectability(c)[0] == (c.request + c.extent > usable_size(c.request))
    uaf = [c for c in slack if c.kind is BugKind.UAF_WRITE and c.neighbour is Neighbour.TOP
           and c.size_class in (SizeClass.SMALL, SizeClass.LARGE)]
    assert all(not detectability(c)[0] for c in uaf)


def test_cases_cover_every_axis():
    cases = [make_case(s) for s in range(200)]
    assert {c.kind for c in cases} == set(BugKind)
    assert {c.size_class for c in cases} == set(SizeClass) - {SizeClass.POOL}
    pools = [make_pool_case(POOL_SEED_BASE + s) for s in range(40)]
    assert {c.kind for c in pools} == set(POOL_KINDS) and {c.size_class for c in pools} == {SizeClass.POOL}
    assert {c.neighbour for c in cases} == set(Neighbour)
    assert {c.crash for c in cases} == set(Crash)
    assert {c.perturb for c in cases} == {True, False}
    assert {c.static for c in cases} == {True, False}
    assert {c.threads for c in cases} == {1, 2}


def _asan_works() -> bool:
    if shutil.which("gcc") is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "a.c")
        with open(src, "w") as fh:
            fh.write("int main(void){return 0;}\n")
        r = subprocess.run(["gcc", "-fsanitize=address", "-o", os.path.join(tmp, "a"), src],
                           capture_output=True)
        return r.returncode == 0


@needs_gdb
@needs_gcc
@pytest.mark.skipif(not _asan_works(), reason="gcc cannot build with -fsanitize=address (libasan missing)")
def test_corpus_subset_holds_the_ratchet(tmp_path):
    with open(RATCHET, encoding="utf-8") as fh:
        ratchet = json.load(fh)
    lo, hi = ratchet["seeds"]
    plo, phi = ratchet["pool_seeds"]
    assert hi - lo >= 200
    cases = [make_case(s) for s in range(lo, hi)] + [make_pool_case(POOL_SEED_BASE + s) for s in range(plo, phi)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        outcomes = list(pool.map(lambda c: run_case(c, str(tmp_path)), cases))
    scores = [score(o) for o in outcomes]
    tab = table(scores)
    print(render(tab))
    out = os.environ.get("GDBEXT_ORACLE_JSON")  # to raise the ratchet from a CI run's figures
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            json.dump({"table": tab, "cases": [s.to_dict() for s in scores]}, fh, indent=1)
    overall = tab["overall"]
    errors = [f"{s.seed}: {s.error}" for s in scores if s.error]
    assert overall["errors"] <= ratchet["max_errors"], errors[:5]
    assert overall["detectable"] >= ratchet["min_detectable"]
    def floor(name: str) -> float:
        # one case's worth of slack per figure (thread scheduling may move a two-thread case)
        n = overall[name + "_n"] or 1
        return ratchet["figures"][name] - 100.0 * ratchet["tolerance_cases"] / n - 0.05

    fell = {name: (overall[name], ratchet["figures"][name]) for name in FIGURES
            if ratchet["figures"].get(name) is not None
            and (overall[name] is None or overall[name] < floor(name))}
    assert not fell, f"agreement fell below the ratchet (now, recorded): {fell}"
    assert overall["twin_false"] <= ratchet["max_twin_false"], [
        s.seed for s in scores if s.twin_clean is False]
