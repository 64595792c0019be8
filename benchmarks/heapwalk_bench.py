#!/usr/bin/env python3
"""Time ``heapwalk --summary`` and ``heapwalk --check`` on a 1,000,000-chunk core, next to the floor.

The yardstick is the shared reference heap (``bigheap.c``: mixed sizes, every
third chunk freed, so tcache, fast, unsorted, small and large bins are all
populated) and its minimal bulk-read walk (``floor_walk.py``), both in the
shared bench folder.  The core is built once with its ``make-cores.sh`` into
a cache folder (about 280 MB: never in the repository).  Every run is a whole
``gdb -batch`` process, gdb start included; peak RSS is the process's own
(``wait4``).  Prints one line per run and a table of medians and ratios.

Usage: benchmarks/heapwalk_bench.py [--bench-dir DIR] [--cache DIR] [--chunks N] [--link dyn|static]
                                    [--repeat K]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from gdbext.gdbrun import bootstrap_command, find_gdb  # noqa: E402


def run(argv: List[str]) -> Tuple[float, int, str]:
    """Wall seconds, peak RSS in bytes, and stdout of one process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"benchmark: {' '.join(argv[:3])}... failed:\n{out[-2000:]}")
    return wall, usage.ru_maxrss * 1024, out


def ensure_core(bench: str, cache: str, chunks: int, link: str) -> Tuple[str, str]:
    binary = os.path.join(cache, f"bigheap-{link}")
    core = os.path.join(cache, f"core.{link}.{chunks}")
    if not (os.path.exists(binary) and os.path.exists(core)):
        print(f"building the {chunks}-chunk core in {cache} (a minute or two)...", flush=True)
        env = dict(os.environ, SIZES=str(chunks), LINKS=link, THREAD_LINKS="")
        subprocess.run(["bash", os.path.join(bench, "make-cores.sh"), cache], env=env, check=True)
    return binary, core


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench-dir", default=os.path.join(os.path.dirname(ROOT), "shared", "bench"))
    ap.add_argument("--cache", default=os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                                                    "gdbext-bench"))
    ap.add_argument("--chunks", type=int, default=1_000_000)
    ap.add_argument("--link", choices=["dyn", "static"], default="dyn")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    floor_script = os.path.join(args.bench_dir, "floor_walk.py")
    if not os.path.exists(floor_script):
        raise SystemExit(f"benchmark: {floor_script} not found (pass --bench-dir)")
    binary, core = ensure_core(args.bench_dir, args.cache, args.chunks, args.link)
    gdb = [find_gdb(), "-nx", "-batch"]
    runs = {
        "floor": gdb + ["-x", floor_script, "-ex", "floor-walk", binary, core],
        "heapwalk --summary": gdb + ["-ex", bootstrap_command(), "-ex", "heapwalk --summary --json", binary, core],
        "heapwalk --check": gdb + ["-ex", bootstrap_command(), "-ex", "heapwalk --check", binary, core],
    }
    results: Dict[str, List[Tuple[float, int]]] = {name: [] for name in runs}
    chunks = {}
    heap_bytes = 0
    for i in range(args.repeat):
        for name, argv in runs.items():
            wall, rss, out = run(argv)
            results[name].append((wall, rss))
            if name == "floor":
                chunks[name] = int(re.search(r"FLOOR_TOTAL chunks=(\d+)", out).group(1))  # type: ignore[union-attr]
            elif name == "heapwalk --summary":
                doc = json.loads(out[out.index('{"schema"'):].splitlines()[0])
                chunks[name] = doc["chunks"]
                heap_bytes = doc["bytes"]
            else:
                m = re.search(r"heapwalk --check: (\d+) violation", out)
                chunks[name] = chunks.get("heapwalk --summary", 0)
                if m is None or m.group(1) != "0":
                    raise SystemExit(f"benchmark: --check found violations on a clean heap:\n{out[-2000:]}")
            print(f"run {i + 1} {name:<20} {wall:6.2f} s  peak RSS {rss / 2**20:7.1f} MB", flush=True)
    if chunks["floor"] != chunks["heapwalk --summary"]:
        raise SystemExit(f"benchmark: chunk counts differ: floor {chunks['floor']}, "
                         f"heapwalk {chunks['heapwalk --summary']}")
    floor_wall = statistics.median(w for w, _ in results["floor"])
    print(f"\n{args.link} binary, {chunks['floor']} chunks, heap {heap_bytes / 2**20:.1f} MB, "
          f"median of {args.repeat} (whole gdb -batch process)")
    print(f"{'run':<20} {'wall s':>7} {'x floor':>8} {'chunks/s':>11} {'peak RSS MB':>12} {'RSS/heap':>9}")
    for name, rows in results.items():
        wall = statistics.median(w for w, _ in rows)
        rss = max(r for _, r in rows)
        print(f"{name:<20} {wall:7.2f} {wall / floor_wall:8.2f} {chunks['floor'] / wall:11,.0f} "
              f"{rss / 2**20:12.1f} {rss / heap_bytes:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
