#!/usr/bin/env python3
"""The full ASan-oracle corpus (2,000 programs by default): the agreement table.

    .venv/bin/python benchmarks/accuracy.py [--seeds 0:2000] [--jobs N] [--json FILE]

Each program holds one injected heap bug; AddressSanitizer on the same source
is the oracle, and ``gdbext triage --format json`` on the plain build's core is
scored field by field (see tests/oracle/score.py).  The CI suite runs the
fixed-seed subset in tests/test_oracle_corpus.py; this is the long run.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.oracle.__main__ import main  # noqa: E402

if __name__ == "__main__":
    args = sys.argv[1:]
    if not any(a.startswith("--seeds") for a in args):
        args = ["--seeds", "0:2000"] + args
    sys.exit(main(args))
