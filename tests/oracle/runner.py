"""Build, run and triage one corpus case; every step bounded in time.

For a case: write its C program, build it three ways (ASan; plain, the bug on;
plain, the bug off: the twin), run the ASan build for the oracle's report, run
each plain build under ``gdb -batch`` to the marker (or the crash) and write
its core, then triage each core with ``gdbext triage --format json``.  The
plain run's ``GT`` lines and the core come from the same process.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from . import asan
from .cases import Case, SizeClass
from .csource import program

GDB = os.environ.get("GDB", "gdb")
CC = os.environ.get("CC", "gcc")
CFLAGS = ["-g", "-O0", "-fno-omit-frame-pointer", "-pthread", "-Wno-unused"]
STEP_TIMEOUT = 60


class StepFailed(Exception):
    """A build or run step of the harness failed (not a finding of gdbext's)."""


@dataclass
class Run:
    """What one build produced: the program's ground truth and gdbext's report."""
    truth: Dict[str, str] = field(default_factory=dict)
    exit_code: Optional[int] = None
    report: Optional[Dict[str, Any]] = None
    stderr: str = ""

    def int(self, key: str) -> Optional[int]:
        value = self.truth.get(key)
        if value is None or value in ("(nil)", ""):
            return None
        return int(value, 0)


@dataclass
class Outcome:
    case: Case
    oracle: Optional[asan.AsanReport]
    bug: Run
    twin: Run
    error: Optional[str] = None


def _run(argv: List[str], *, env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None,
         timeout: float = STEP_TIMEOUT) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, errors="replace", env=env, cwd=cwd,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise StepFailed(f"{os.path.basename(argv[0])} timed out after {timeout:.0f} s") from exc


def roots_dir() -> str:
    """Where fixtures/glibc-versions.sh keeps its Debian roots (one per release)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get("GDBEXT_ROOTS") or os.path.join(cache, "gdbext-roots")


def _build(src: str, out: str, extra: List[str], root: Optional[str] = None) -> None:
    """Compile ``src`` to ``out``; with ``root`` (a Debian root), inside it with its gcc and glibc.

    The source is compiled from its own folder as a relative name, so the
    debug info and ASan's frames carry "cNNNNN.c", not a path of this machine.
    """
    name, binary = os.path.basename(src), os.path.basename(out)
    if root is None:
        r = _run([CC, *CFLAGS, *extra, "-o", binary, name], cwd=os.path.dirname(src))
    else:
        inside = os.path.join(root, "tmp", f"gdbext-oracle-{os.getpid()}-{os.path.basename(os.path.dirname(src))}-{binary}")
        os.makedirs(inside, exist_ok=True)
        try:
            shutil.copy(src, os.path.join(inside, name))
            r = _run(["chroot", root, "/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "LC_ALL=C", "sh", "-c",
                      'cd "$0" && exec gcc "$@"', "/" + os.path.relpath(inside, root),
                      *CFLAGS, *extra, "-o", binary, name])
            if r.returncode == 0:
                shutil.copy(os.path.join(inside, binary), out)
        finally:
            shutil.rmtree(inside, ignore_errors=True)
    if r.returncode != 0:
        raise StepFailed(f"build failed: {r.stderr.strip()[:400]}")


def _truth(stdout: str) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for line in stdout.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] == "GT":
            out[parts[1]] = parts[2]
    return out


def _core(binary: str, core: str) -> Dict[str, str]:
    r = _run([GDB, "-nx", "-batch", "-iex", "set auto-load off", "-ex", "set pagination off",
              "-ex", "set startup-with-shell off", "-ex", "run", "-ex", f"generate-core-file {core}",
              "--args", binary])
    if not os.path.exists(core):
        raise StepFailed(f"no core written: {r.stdout.strip()[-300:]} {r.stderr.strip()[-300:]}")
    return _truth(r.stdout)


POOL_SPEC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "fixtures", "specs", "pool_overflow.py")


def _triage(binary: str, core: str, pools: bool = False) -> Run:
    extra = ["--pools", POOL_SPEC] if pools else []
    r = _run([sys.executable, "-m", "gdbext", "triage", binary, core, "--format", "json", *extra], timeout=120)
    run = Run(exit_code=r.returncode, stderr=r.stderr)
    if r.returncode in (0, 1):
        try:
            run.report = json.loads(r.stdout)
        except ValueError:
            run.stderr += "\n(report is not JSON)"
    return run


def run_case(case: Case, workdir: str, *, keep: bool = False, root: Optional[str] = None) -> Outcome:
    """Build, run and triage ``case`` (and its twin) under ``workdir``.

    :param root: a Debian root whose gcc and glibc build the plain programs
        (static, to run here); the ASan oracle is always built on this machine.
    """
    folder = os.path.join(workdir, case.name)
    os.makedirs(folder, exist_ok=True)
    src = os.path.join(folder, case.name + ".c")
    with open(src, "w", encoding="utf-8") as fh:
        fh.write(program(case))
    link = ["-static"] if case.static or root is not None else []
    bug_bin, twin_bin, asan_bin = (os.path.join(folder, n) for n in ("bug", "twin", "asan"))
    try:
        _build(src, bug_bin, link, root)
        _build(src, twin_bin, link + ["-DBUG=0"], root)
        _build(src, asan_bin, ["-fsanitize=address"])
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:symbolize=1:handle_abort=0")
        oracle = asan.parse(_run([asan_bin], env=env, cwd=folder).stderr)
        runs = []
        for binary in (bug_bin, twin_bin):
            core = binary + ".core"
            truth = _core(binary, core)
            run = _triage(binary, core, pools=case.size_class is SizeClass.POOL)
            run.truth = truth
            runs.append(run)
        return Outcome(case=case, oracle=oracle, bug=runs[0], twin=runs[1])
    except StepFailed as exc:
        return Outcome(case=case, oracle=None, bug=Run(), twin=Run(), error=str(exc))
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
