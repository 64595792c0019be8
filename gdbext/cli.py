"""The ``gdbext`` command line (also ``python -m gdbext``).

Exit codes: 0 success (no findings), 1 findings, 2 could not run or analyse
(also for bad arguments and for bugs of ours), 128 + N when stopped by signal
N (130 SIGINT, 143 SIGTERM, 129 SIGHUP).  Errors are one line on stderr,
control characters escaped; a traceback only with ``--debug``.  A signal
kills the running gdb processes (their whole process groups), removes the
temporary files and writes no report.
"""
from __future__ import annotations

import argparse
import io
import math
import os
import signal
import sys
import tempfile
import threading
import traceback
from typing import TYPE_CHECKING, Any, Dict, List, NoReturn, Optional

from . import __version__
from .decompress import DEFAULT_MAX_CORE_SIZE, parse_size
from .errors import GdbextError
from .gdbrun import DEFAULT_MEMORY_MIB, cancel_all, has_traceback, run_gdb
from .textutil import escape_controls

if TYPE_CHECKING:
    from .triage.runner import TriageResult

__all__ = ["main", "build_parser", "MAX_TIMEOUT"]

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2

#: The longest ``--timeout`` accepted, in seconds (one day).
MAX_TIMEOUT = 86400.0

#: The signals that stop the CLI cleanly (what a terminal and CI runners send on cancel).
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Stopped(BaseException):
    """Raised in the main thread by the handler of a stop signal; a BaseException so no error boundary
    of a single core catches it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_stop_signal(signum: int, _frame: Any) -> NoReturn:
    for sig in _STOP_SIGNALS:  # a second signal must not cut the clean-up short
        signal.signal(sig, signal.SIG_IGN)
    cancel_all()
    raise _Stopped(signum)


def _say(text: str) -> None:
    """One line on stderr, prefixed ``gdbext:``, with every control character escaped."""
    print("gdbext: " + escape_controls(text), file=sys.stderr)


class _OneLineParser(argparse.ArgumentParser):
    """argparse, with a usage error as one ``gdbext:`` line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        print(escape_controls(f"{self.prog}: {message} (see --help)"), file=sys.stderr)
        sys.exit(EXIT_ERROR)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and {MAX_TIMEOUT:.0f} seconds")
    return value


def _count(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{text} is less than {least}")
    return value


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _write_atomically(path: str, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``: a reader sees
    the old file or the new one, never a part."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o777
    except OSError:
        mode = 0o644
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path)[:64] + ".", suffix=".tmp", dir=folder)
    except OSError as err:
        raise GdbextError(f"cannot write {path}: {err.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as err:
        os.unlink(tmp)
        raise GdbextError(f"cannot write {path}: {err.strerror}") from None
    except BaseException:
        os.unlink(tmp)
        raise


def _escape_lines(text: str) -> str:
    """``text`` line by line with :func:`escape_controls`: its ``\\n`` stay, no other control does (not even
    the other line breaks ``str.splitlines`` knows)."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return "".join(escape_controls(line) + "\n" for line in lines)


def _cmd_gdb(args: argparse.Namespace) -> int:
    """Run gdb in batch with gdbext loaded on BINARY [CORE], then the -ex commands."""
    result = run_gdb(args.binary, args.core, commands=args.ex, spec_files=args.specs, timeout=args.timeout,
                     auto_load=args.auto_load)
    sys.stdout.write(_escape_lines(result.stdout))
    sys.stderr.write(_escape_lines(result.stderr))
    if has_traceback(result.output):
        return EXIT_ERROR
    return EXIT_OK if result.returncode == 0 else EXIT_ERROR


def _cmd_info(args: argparse.Namespace) -> int:
    """Summarise a core without gdb: threads, signal, mappings, build-ids."""
    from .coreinfo import print_core_info

    text = io.StringIO()
    print_core_info(args.core, args.binary, text)  # file names and paths in it come from the core
    sys.stdout.write(_escape_lines(text.getvalue()))
    return EXIT_OK


def _cmd_scaffold(args: argparse.Namespace) -> int:
    """Write a starter printer module for struct types, read from BINARY's DWARF by gdb in batch."""
    from .scaffold import scaffold_binary

    if not args.type and not args.pool:
        raise GdbextError("give --type TYPE or --pool VAR")
    text = scaffold_binary(args.binary, args.type, timeout=args.timeout, pool=args.pool)
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    if os.path.exists(args.output) and not args.force:
        raise GdbextError(f"{args.output} exists; add --force to overwrite it")
    with open(args.output, "w", encoding="utf-8") as fh:
        fh.write(text)
    _say(f"wrote {args.output}")
    return EXIT_OK


def _say_incomplete(result: "TriageResult") -> None:
    """One stderr line when a report without findings cannot be called clean (exit 2, not 0)."""
    if result.report is not None and result.incomplete and not result.report.get("findings"):
        _say(f"{result.core}: not analysed in full: {result.incomplete[0]}")


def _cmd_triage(args: argparse.Namespace) -> int:
    """Triage BINARY CORE, or every core of --dir: report, findings, crash signature."""
    from .triage.formats import render
    from .triage.pairing import scan_directory
    from .triage.runner import batch_document, batch_exit_code, triage_core, triage_scan

    budget: Dict[str, Any] = {"pools": args.pools, "timeout": args.timeout, "memory_mib": args.max_memory}
    if args.fail_on == "new" and args.db is None:  # before minutes of gdb, not after
        raise GdbextError("--fail-on new needs --db (a crash database to compare with)")
    if args.dir is not None:
        if args.binary or args.core:
            raise GdbextError("give BINARY CORE or --dir DIR, not both")
        workers = args.jobs
        if workers > _cpus() and not args.force_jobs:
            workers = _cpus()
            _say(f"--jobs {args.jobs} is more than the {workers} CPUs: using {workers} (--force-jobs to insist)")
        scan = scan_directory(args.dir, follow_symlinks=args.follow_symlinks)
        results = triage_scan(scan, workers=workers, skip_ok=args.skip_ok, max_core_size=args.max_core_size,
                              **budget)
        for res in results:
            if res.error is not None:
                _say(res.error)
            _say_incomplete(res)
        doc, code = batch_document(results, scan.skipped), batch_exit_code(results)
    else:
        if not (args.binary and args.core):
            raise GdbextError("give BINARY CORE (or --dir DIR)")
        result = triage_core(args.core, args.binary, max_core_size=args.max_core_size, **budget)
        if result.report is None:
            raise GdbextError(result.error or "triage failed")
        doc, code = result.report, result.exit_code
        _say_incomplete(result)
    if args.db is not None or args.fail_on is not None:
        from .triage.history.policy import apply_history

        reports = doc["reports"] if args.dir is not None else [doc]
        code = apply_history(args.db, args.fail_on, reports, code, sys.stderr)
    text = render(doc, args.format)
    if args.output is None:
        sys.stdout.write(text)
    else:
        _write_atomically(args.output, text)
    return code


def _cmd_setup_gdb(args: argparse.Namespace) -> int:
    """Write (or with --remove delete) the gdbinit lines that make gdb load gdbext from this environment."""
    from .setup_gdb import install, remove

    if args.remove:
        result = remove(args.gdbinit)
    else:
        result = install(args.gdbinit, gdb=args.gdb, check=not args.no_check)
    print(result.message)
    return EXIT_OK


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _cmd_check_spec(args: argparse.Namespace) -> int:
    """Check a pool spec file against BINARY (and CORE) with gdb: exit 0 clean, 1 inconsistencies, 2 spec errors."""
    import re

    from .gdbrun import quote_arg

    paths = [os.path.abspath(p) for p in (args.spec, args.binary, args.core) if p is not None]
    for path in paths:
        if not os.path.isfile(path):
            raise GdbextError(f"{path}: no such file")
    spec, binary, core = paths[0], paths[1], paths[2] if len(paths) > 2 else None
    result = run_gdb(binary, core, commands=["gdbext check-spec " + quote_arg(spec)], timeout=args.timeout)
    if has_traceback(result.output):
        raise GdbextError("gdb reported a Python traceback while checking the spec")
    lines = result.stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(("pool ", "note: no process"))), len(lines))
    sys.stdout.write("".join(line + "\n" for line in lines[start:]))
    for line in result.stderr.splitlines():
        if line.startswith("gdbext "):
            print(line, file=sys.stderr)
    m = re.search(r"^check-spec: \d+ pool\(s\), (\d+) spec error\(s\), (\d+) warning\(s\), (\d+) inconsistenc",
                  result.stdout, re.M)
    if m is None:
        return EXIT_ERROR
    errors, warnings, inconsistencies = (int(g) for g in m.groups())
    if errors:
        return EXIT_ERROR
    return EXIT_FINDINGS if warnings or inconsistencies else EXIT_OK


def _cmd_crashes(args: argparse.Namespace) -> int:
    """List the crash database's buckets (``crashes``), or show one (``crashes show SIGNATURE``)."""
    from .triage.history.policy import default_db
    from .triage.history.views import crashes_command

    sys.stdout.write(crashes_command(args.db or default_db(), args.action, args.signature, args.since, args.format))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="gdbext", description="GDB pretty-printers and heap forensics for C/C++ crashes and core dumps.")
    parser.add_argument("--version", action="version", version=f"gdbext {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("gdb", help="run gdb in batch on a binary and core with gdbext loaded")
    p.add_argument("binary")
    p.add_argument("core", nargs="?", help="core file (may be compressed: xz, zstd, lz4, gzip)")
    p.add_argument("-ex", action="append", default=[], metavar="CMD", help="gdb command to run (repeatable)")
    p.add_argument("--specs", action="append", default=[], metavar="FILE", help="spec file to load (repeatable)")
    p.add_argument("--timeout", type=_seconds, default=120.0)
    p.add_argument("--auto-load", action="store_true",
                   help="let gdb auto-load scripts beside BINARY (off: the files may come from anyone)")
    p.set_defaults(func=_cmd_gdb)

    p = sub.add_parser("info", help="summarise a core file without gdb")
    p.add_argument("core")
    p.add_argument("--binary", help="the program the core belongs to")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("scaffold", help="write a starter printer module for struct types from a binary's DWARF")
    p.add_argument("binary")
    p.add_argument("--type", action="append", default=[], metavar="TYPE",
                   help="'struct NAME', 'union NAME' or a typedef (repeatable)")
    p.add_argument("--pool", metavar="VAR", help="propose a pool spec for this variable")
    p.add_argument("--output", "-o", metavar="FILE", help="write the module here (default: stdout)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --output file")
    p.add_argument("--timeout", type=_seconds, default=120.0)
    p.set_defaults(func=_cmd_scaffold)

    p = sub.add_parser("triage", help="analyse core dumps in batch: crash, findings, crash signature",
                       description="Exit codes: 0 no findings, 1 findings, 2 could not analyse (see docs/triage.md).")
    p.add_argument("binary", nargs="?", help="the program (with CORE)")
    p.add_argument("core", nargs="?", help="its core file (may be compressed: xz, zstd, lz4, gzip)")
    p.add_argument("--dir", metavar="DIR", help="triage every core in DIR, each paired with its binary")
    p.add_argument("--pools", action="append", default=[], metavar="FILE", help="pool spec file (repeatable)")
    p.add_argument("--format", choices=("text", "json", "markdown", "sarif", "html"), default="text")
    p.add_argument("--jobs", "-j", type=lambda t: _count(t, 1), default=1, metavar="N",
                   help="cores analysed in parallel (at most the CPU count unless --force-jobs)")
    p.add_argument("--force-jobs", action="store_true", help="run --jobs N even above the CPU count")
    p.add_argument("--output", "-o", metavar="FILE", help="write the report here, atomically (default: stdout)")
    p.add_argument("--timeout", type=_seconds, default=120.0,
                   help=f"seconds per core, the checks before gdb and gdb together (at most {MAX_TIMEOUT:.0f})")
    p.add_argument("--max-memory", type=lambda t: _count(t, 0), default=DEFAULT_MEMORY_MIB, metavar="MIB",
                   help=f"address space of each gdb, in MiB, and of the checks before it on top of the core"
                        f" (default {DEFAULT_MEMORY_MIB}; 0: no limit for gdb)")
    p.add_argument("--max-core-size", type=_size, default=DEFAULT_MAX_CORE_SIZE, metavar="SIZE",
                   help="cap on a decompressed core, e.g. 32G (default 16G)")
    p.add_argument("--skip-ok", action="store_true",
                   help="with --dir: a core that has to be skipped (FIFO, link out of DIR...) does not make exit 2")
    p.add_argument("--follow-symlinks", action="store_true",
                   help="with --dir: follow symbolic links that lead out of DIR")
    p.add_argument("--db", metavar="DB", help="record every core in this crash database (SQLite file or "
                   "postgresql:// URL)")
    p.add_argument("--fail-on", choices=("new", "any", "none"), help="exit 1 on a signature new to --db, on any "
                   "crash, or never (default: on findings)")
    p.set_defaults(func=_cmd_triage)

    p = sub.add_parser("check-spec", help="check a pool spec file against a binary (and core) with gdb",
                       description="Exit codes: 0 clean, 1 inconsistencies in memory, 2 spec errors or could not run.")
    p.add_argument("spec", help="the spec file (Python declaring pools)")
    p.add_argument("binary")
    p.add_argument("core", nargs="?", help="core file (may be .xz-compressed)")
    p.add_argument("--timeout", type=float, default=120.0)
    p.set_defaults(func=_cmd_check_spec)

    p = sub.add_parser("crashes", help="list the crash database's signatures, or show one",
                       description="gdbext crashes [--since 7d]  |  gdbext crashes show SIGNATURE")
    p.add_argument("action", nargs="?", choices=("list", "show"), default="list")
    p.add_argument("signature", nargs="?", help="with show: a signature, a unique start of one, or its id")
    p.add_argument("--db", metavar="DB", help="SQLite file or postgresql:// URL (default: $GDBEXT_DB, else "
                   "gdbext-crashes.db)")
    p.add_argument("--since", metavar="WHEN", help="only signatures seen since: 7d, 12h, 30m, 2w or an ISO date")
    p.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    p.set_defaults(func=_cmd_crashes)

    p = sub.add_parser("setup-gdb", help="make gdb load gdbext from this Python environment (writes your gdbinit)",
                       description="Adds two lines to the gdbinit gdb reads (~/.config/gdb/gdbinit or ~/.gdbinit) "
                                   "after checking that gdb's own Python can import gdbext from this environment. "
                                   "Running it again changes nothing; --remove deletes the lines.")
    p.add_argument("--remove", action="store_true", help="delete the lines setup-gdb wrote")
    p.add_argument("--gdbinit", metavar="FILE", help="the gdbinit to edit (default: the one gdb reads)")
    p.add_argument("--gdb", metavar="PATH", help="the gdb to check with (default: gdb on PATH)")
    p.add_argument("--no-check", action="store_true", help="write the lines without asking gdb first")
    p.set_defaults(func=_cmd_setup_gdb)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    in_main = threading.current_thread() is threading.main_thread()  # only it may set signal handlers
    previous = {sig: signal.signal(sig, _on_stop_signal) for sig in _STOP_SIGNALS} if in_main else {}
    try:
        return int(args.func(args))
    except GdbextError as err:
        _say(str(err))
        return EXIT_ERROR
    except _Stopped as stop:
        _say(f"stopped by {signal.Signals(stop.signum).name}: gdb killed, temporary files removed, "
             "no report written")
        return 128 + stop.signum
    except KeyboardInterrupt:
        _say("interrupted")
        return 128 + signal.SIGINT
    except BrokenPipeError:
        return EXIT_ERROR
    except Exception as err:  # the CLI's error boundary: a bug of ours is exit 2 in one line, not exit 1
        if args.debug:
            traceback.print_exc()
        _say(f"internal error ({type(err).__name__}): {err} (--debug shows the traceback)")
        return EXIT_ERROR
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
