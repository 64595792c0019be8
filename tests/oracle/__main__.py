"""``python -m tests.oracle [--seeds A:B] [--jobs N] [--json FILE] [--static|--dynamic]``:
run a corpus and print the agreement table (``make accuracy``)."""
from __future__ import annotations

import argparse
import json
import pickle
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from .cases import POOL_SEED_BASE, make_case, make_pool_case
from .runner import roots_dir, run_case
from .score import render, score, table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.oracle")
    ap.add_argument("--seeds", default="0:200", help="A:B, the half-open seed range (default 0:200)")
    ap.add_argument("--pool-seeds", default="", help="A:B, pool cases too (the fixture's fixed-slot pool)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", help="write the table and every case's score here")
    ap.add_argument("--root", help="build the plain programs (static) in this Debian release's root "
                    "(bullseye, trixie, sid: made by fixtures/glibc-versions.sh)")
    ap.add_argument("--save", help="pickle the raw outcomes here (to rescore without rerunning)")
    ap.add_argument("--keep", help="keep every case's folder under this directory")
    args = ap.parse_args(argv)
    lo, hi = (int(x) for x in args.seeds.split(":"))
    cases = [make_case(s) for s in range(lo, hi)]
    if args.pool_seeds:
        plo, phi = (int(x) for x in args.pool_seeds.split(":"))
        cases += [make_pool_case(POOL_SEED_BASE + s) for s in range(plo, phi)]
    work = args.keep or tempfile.mkdtemp(prefix="gdbext-oracle.")
    root = None
    if args.root:
        root = os.path.join(roots_dir(), args.root)
        if not os.path.isfile(os.path.join(root, "usr", "bin", "gcc")):
            print(f"no {args.root} root with gcc at {root}: make it with fixtures/glibc-versions.sh {args.root}",
                  file=sys.stderr)
            return 2
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        outcomes = list(pool.map(lambda c: run_case(c, work, keep=bool(args.keep), root=root), cases))
    if args.save:
        with open(args.save, "wb") as fh:
            pickle.dump(outcomes, fh)
    scores = [score(o) for o in outcomes]
    tab = table(scores)
    print(render(tab))
    errors = [s for s in scores if s.error]
    for s in errors[:10]:
        print(f"case {s.seed}: {s.error}", file=sys.stderr)
    print(f"{len(cases)} programs in {time.monotonic() - started:.0f} s", file=sys.stderr)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"seeds": [lo, hi], "table": tab, "cases": [s.to_dict() for s in scores],
                       "case_params": [c.to_dict() for c in cases]}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
