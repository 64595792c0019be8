#!/usr/bin/env python3
"""Triage a core of a program with hundreds of threads: wall time, peak RSS, and what was found.

Builds fixtures/src/real_mmap.c, starts it with NTHREADS threads of STACK_KB
stacks and NCHUNKS mmapped chunks, writes a core (in a temporary folder:
the core is about NTHREADS * STACK_KB big, never in the repository), then
runs ``gdbext triage`` on it (gdb start included) and prints its exit code,
wall time, the peak RSS of the largest process (``wait4`` of the CLI, whose
gdb child dominates), and the mmapped chunks and findings the report holds
next to the program's own count.

Usage: benchmarks/manythreads_bench.py [--threads 560] [--stack-kb 1024] [--chunks 22]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)

from realheap import Target  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=560)
    ap.add_argument("--stack-kb", type=int, default=1024)
    ap.add_argument("--chunks", type=int, default=22)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gdbext-manythreads-") as tmp:
        exe = os.path.join(tmp, "real_mmap")
        subprocess.run(["gcc", "-g", "-O0", "-pthread", "-o", exe, os.path.join(ROOT, "fixtures", "src", "real_mmap.c")],
                       check=True)
        target = Target([exe, str(args.chunks), str(args.threads), str(args.stack_kb)], tmp, "manythreads")
        core = os.path.join(tmp, "manythreads.core")
        try:
            target.gcore(core)
        finally:
            target.stop()
        gdbext = os.path.join(ROOT, ".venv", "bin", "gdbext")
        t0 = time.perf_counter()
        proc = subprocess.Popen([gdbext, "triage", exe, core, "--format", "json"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        out = proc.stdout.read() if proc.stdout else ""
        err = proc.stderr.read() if proc.stderr else ""
        _, status, usage = os.wait4(proc.pid, 0)  # the CLI's rusage covers its gdb child (maxrss: the largest)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        peak = usage.ru_maxrss * 1024
        report = json.loads(out) if out.strip().startswith("{") else {}
        glibc = report.get("heap", {}).get("glibc", {})
        print(f"threads {args.threads} x {args.stack_kb} KiB stacks, core {os.path.getsize(core) / 1e9:.2f} GB: "
              f"triage exit {proc.returncode}, {wall:.1f} s, peak RSS {peak / 1e6:.0f} MB, "
              f"mmapped chunks {glibc.get('mmapped', {}).get('count')} (program: {target.truth.get('mmapped')}), "
              f"findings {len(report.get('findings', []))}, notes {glibc.get('notes')}")
        if err.strip():
            print(err.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
