# gdbext/triage/runner.py - running the triage: up-front checks, one
# `gdb -batch` per core with `gdbext report --json`, a thread pool over the gdb
# subprocesses, and the batch document grouped by crash signature.
"""Triage of one core or a directory of cores.

:func:`triage_core` checks the inputs without gdb (gdb present, core and
binary readable ELF, same build-id), then runs ``gdbext report --json FILE``
in ``gdb -nx -batch`` through :func:`gdbext.gdbrun.run_gdb` and reads the
report back.  Every problem becomes a :class:`TriageResult` with an
``error`` (one line), never an exception.  :func:`triage_directory` pairs
every core of a directory with its binary (:mod:`.pairing`) and triages
them on ``jobs`` threads, each waiting on its own gdb process;
:func:`batch_document` groups the reports by signature.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from .. import __version__
from ..errors import GdbextError
from ..decompress import DEFAULT_MAX_CORE_SIZE
from ..gdbrun import DEFAULT_MEMORY_MIB, TRACEBACK_MARKERS, cancel_all, find_gdb, has_traceback, quote_arg, run_gdb
from .pairing import DirectoryScan, SkippedFile, scan_directory
from .precheck import PRECHECK_MEMORY, checked_inputs
from .report import BATCH_SCHEMA, validate_report

__all__ = [
    "EXIT_OK",
    "EXIT_FINDINGS",
    "EXIT_ERROR",
    "TriageResult",
    "check_gdb",
    "triage_core",
    "triage_directory",
    "triage_scan",
    "triage_many",
    "batch_document",
    "batch_exit_code",
]

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


@dataclass
class TriageResult:
    """One core's outcome: the report, or why there is none."""

    core: str
    binary: Optional[str]
    report: Optional[Dict[str, Any]] = None
    error: Optional[str] = None
    seconds: float = 0.0
    paired_by: Optional[str] = None  #: "given", "build-id", "name", "recorded name"
    #: Why a report without findings is not a clean bill (segments lost to
    #: damaged headers, an unverified pairing); also in the report's errors.
    incomplete: List[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 no findings, 1 findings, 2 not analysed (or, without findings, not analysed in full)."""
        if self.report is None:
            return EXIT_ERROR
        if self.report.get("findings"):
            return EXIT_FINDINGS
        return EXIT_ERROR if self.incomplete else EXIT_OK


def check_gdb() -> str:
    """The gdb executable to run; GdbextError when ``$GDB`` or PATH name none that exists."""
    gdb = find_gdb()
    path = gdb if os.sep in gdb else shutil.which(gdb)
    if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise GdbextError(f"gdb not found: {gdb!r} is not an executable file (install gdb or set $GDB)")
    return path


def _first_error(text: str) -> str:
    """The line of gdb's output most likely to say what went wrong."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith(("gdbext report:", "Python Exception", "Traceback")) or "Error" in ln:
            return ln
    useful = [ln for ln in lines if not ln.startswith("warning:")]
    return useful[-1] if useful else "no output"


def _run_report(binary: str, core: str, pools: Sequence[str], timeout: float, memory_mib: int) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gdbext-triage-") as tmp:
        out = os.path.join(tmp, "report.json")
        cmd = "gdbext report --json " + quote_arg(out) + "".join(" --pools " + quote_arg(p) for p in pools)
        # the bundle's files are data: gdb loads no script, init file or libthread_db found beside them
        result = run_gdb(binary, core, commands=[cmd], timeout=timeout, auto_load=False, memory_mib=memory_mib)
        if has_traceback(result.output):
            line = next(ln for ln in result.output.splitlines() if any(m in ln for m in TRACEBACK_MARKERS))
            raise GdbextError(f"gdb printed a Python error: {line.strip()}")
        if not os.path.exists(out):
            limit = f" (gdb ran under --max-memory {memory_mib} MiB)" if memory_mib > 0 else ""
            raise GdbextError(f"gdb wrote no report: {_first_error(result.stderr or result.stdout)}{limit}")
        try:
            with open(out, encoding="utf-8") as fh:
                report = json.load(fh)
        except (OSError, ValueError) as err:
            raise GdbextError(f"unreadable report from gdb: {err}") from None
    problems = validate_report(report)
    if problems:
        raise GdbextError(f"report does not follow its schema: {problems[0]}")
    return report


def triage_core(
    core: str,
    binary: Optional[str] = None,
    scan: Optional[DirectoryScan] = None,
    pools: Sequence[str] = (),
    timeout: float = 120.0,
    memory_mib: int = DEFAULT_MEMORY_MIB,
    max_core_size: int = DEFAULT_MAX_CORE_SIZE,
) -> TriageResult:
    """Triage one core.

    :param core: the core file (xz, zstd, lz4 or gzip compressed accepted).
    :param binary: its program; None to find it in ``scan``.
    :param scan: the directory the core was found in (for pairing).
    :param pools: pool spec files.
    :param timeout: seconds the whole triage of the core may take: the checks
        before gdb (:mod:`.precheck`, in a child process) and gdb after them.
    :param memory_mib: address-space budget in MiB of gdb, and of the checks
        before it on top of the mapped core (0: none for gdb, the checks keep
        their default).
    :param max_core_size: cap on the decompressed core, in bytes.
    """
    start = time.monotonic()
    res = TriageResult(core, binary, paired_by="given" if binary else None)
    try:
        check_gdb()
        for spec in pools:
            if not os.path.isfile(spec):
                raise GdbextError(f"spec file {spec} not found")
        memory = (memory_mib << 20) if memory_mib > 0 else PRECHECK_MEMORY
        with checked_inputs(core, binary, scan, timeout=timeout, max_core_size=max_core_size,
                            memory=memory) as checked:
            res.binary, res.paired_by = checked.binary, checked.paired_by or res.paired_by
            res.incomplete = checked.incomplete
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                raise GdbextError(f"{core}: no time left for gdb within {timeout:g} s (--timeout)")
            report = _run_report(res.binary, checked.plain, pools, left, memory_mib)
    except GdbextError as err:
        res.error = str(err)
    except Exception as err:  # this core's error boundary: a bug on one core must not lose the others
        res.error = f"internal error ({type(err).__name__}): {err}"
    else:
        report["core"] = core
        report["binary"] = res.binary
        report["errors"] = list(report.get("errors") or []) + res.incomplete
        res.report = report
    res.seconds = time.monotonic() - start
    return res


def triage_many(jobs: Sequence[Dict[str, Any]], workers: int = 1) -> List[TriageResult]:
    """:func:`triage_core` for each keyword dict of ``jobs``, ``workers`` at a time, in input order.

    When the caller is interrupted (a signal handler raising), the jobs not yet started are dropped and
    the running gdb processes are killed before the exception goes on, so every worker's temporary
    files are removed by the time this returns.
    """
    if workers <= 1 or len(jobs) <= 1:
        return [triage_core(**job) for job in jobs]
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = [pool.submit(triage_core, **job) for job in jobs]
        return [f.result() for f in futures]
    except BaseException:
        cancel_all()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def triage_directory(
    directory: str,
    pools: Sequence[str] = (),
    workers: int = 1,
    timeout: float = 120.0,
    memory_mib: int = DEFAULT_MEMORY_MIB,
) -> List[TriageResult]:
    """Triage every core of ``directory`` with the binary it pairs with.

    :raises CoreFileError: the directory cannot be listed.
    :raises GdbextError: it holds no core.
    """
    return triage_scan(scan_directory(directory), pools, workers, timeout, memory_mib=memory_mib)


def triage_scan(
    scan: DirectoryScan,
    pools: Sequence[str] = (),
    workers: int = 1,
    timeout: float = 120.0,
    *,
    skip_ok: bool = False,
    max_core_size: int = DEFAULT_MAX_CORE_SIZE,
    memory_mib: int = DEFAULT_MEMORY_MIB,
) -> List[TriageResult]:
    """Triage every core of a scanned directory; each core the scan skipped is a failure unless ``skip_ok``.

    :raises GdbextError: the directory holds no core.
    """
    lost = [f for f in scan.skipped if f.core]
    if not scan.cores and not lost:
        raise GdbextError(
            f"{scan.directory}: no core files (NAME.core, core.NAME, maybe .xz/.zst/.lz4/.gz, or ELF cores)"
        )
    jobs = [{"core": c, "scan": scan, "pools": list(pools), "timeout": timeout, "max_core_size": max_core_size,
             "memory_mib": memory_mib} for c in scan.cores]
    results = triage_many(jobs, workers)
    if not skip_ok:
        results += [TriageResult(f.path, None, error=f"{f.path}: skipped: {f.reason}") for f in lost]
    return results


def batch_document(results: Sequence[TriageResult], skipped: Sequence[SkippedFile] = ()) -> Dict[str, Any]:
    """The ``gdbext.triage-batch/1`` document: reports, failures, groups by signature (largest first),
    and the files of the folder that were skipped, with the reason.
    """
    groups: Dict[str, List[str]] = {}
    for r in results:
        if r.report is not None:
            groups.setdefault(r.report["crash"]["signature"], []).append(r.core)
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return {
        "schema": BATCH_SCHEMA,
        "tool": {"name": "gdbext", "version": __version__},
        "reports": [r.report for r in results if r.report is not None],
        "failures": [{"core": r.core, "binary": r.binary, "reason": r.error} for r in results if r.report is None],
        "groups": [{"signature": sig, "count": len(cores), "cores": cores} for sig, cores in ordered],
        "skipped": [{"path": f.path, "reason": f.reason, "core": f.core} for f in skipped],
    }


def batch_exit_code(results: Sequence[TriageResult]) -> int:
    """2 if any core could not be analysed, else 1 if any has findings, else 0."""
    return max((r.exit_code for r in results), default=EXIT_ERROR)
