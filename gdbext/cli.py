"""The ``gdbext`` command line (also ``python -m gdbext``).

Exit codes: 0 success (no findings), 1 findings, 2 could not run or analyse;
errors are one line on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, List, Optional

from . import __version__
from .decompress import DEFAULT_MAX_CORE_SIZE, parse_size
from .errors import GdbextError
from .gdbrun import has_traceback, run_gdb

if TYPE_CHECKING:
    from .triage.runner import TriageResult

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _cmd_gdb(args: argparse.Namespace) -> int:
    """Run gdb in batch with gdbext loaded on BINARY [CORE], then the -ex commands."""
    result = run_gdb(args.binary, args.core, commands=args.ex, spec_files=args.specs, timeout=args.timeout)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if has_traceback(result.output):
        return EXIT_ERROR
    return EXIT_OK if result.returncode == 0 else EXIT_ERROR


def _cmd_info(args: argparse.Namespace) -> int:
    """Summarise a core without gdb: threads, signal, mappings, build-ids."""
    from .coreinfo import print_core_info

    print_core_info(args.core, args.binary, sys.stdout)
    return EXIT_OK


def _cmd_scaffold(args: argparse.Namespace) -> int:
    """Write a starter printer module for struct types, read from BINARY's DWARF by gdb in batch."""
    from .scaffold import scaffold_binary

    text = scaffold_binary(args.binary, args.type, timeout=args.timeout)
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    if os.path.exists(args.output) and not args.force:
        raise GdbextError(f"{args.output} exists; add --force to overwrite it")
    with open(args.output, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(f"gdbext: wrote {args.output}", file=sys.stderr)
    return EXIT_OK


def _say_incomplete(result: "TriageResult") -> None:
    """One stderr line when a report without findings cannot be called clean (exit 2, not 0)."""
    if result.report is not None and result.incomplete and not result.report.get("findings"):
        print(f"gdbext: {result.core}: not analysed in full: {result.incomplete[0]}", file=sys.stderr)


def _cmd_triage(args: argparse.Namespace) -> int:
    """Triage BINARY CORE, or every core of --dir: report, findings, crash signature."""
    from .triage.formats import render
    from .triage.pairing import scan_directory
    from .triage.runner import batch_document, batch_exit_code, triage_core, triage_scan

    if args.dir is not None:
        if args.binary or args.core:
            raise GdbextError("give BINARY CORE or --dir DIR, not both")
        scan = scan_directory(args.dir, follow_symlinks=args.follow_symlinks)
        results = triage_scan(scan, args.pools, max(1, args.jobs), args.timeout, skip_ok=args.skip_ok,
                              max_core_size=args.max_core_size)
        for res in results:
            if res.error is not None:
                print(f"gdbext: {res.error}", file=sys.stderr)
            _say_incomplete(res)
        doc, code = batch_document(results, scan.skipped), batch_exit_code(results)
    else:
        if not (args.binary and args.core):
            raise GdbextError("give BINARY CORE (or --dir DIR)")
        result = triage_core(args.core, args.binary, pools=args.pools, timeout=args.timeout,
                             max_core_size=args.max_core_size)
        if result.report is None:
            raise GdbextError(result.error or "triage failed")
        doc, code = result.report, result.exit_code
        _say_incomplete(result)
    text = render(doc, args.format)
    if args.output is None:
        sys.stdout.write(text)
    else:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as err:
            raise GdbextError(f"cannot write {args.output}: {err.strerror}") from None
    return code


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gdbext", description="GDB pretty-printers and heap forensics for C/C++ crashes and core dumps.")
    parser.add_argument("--version", action="version", version=f"gdbext {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("gdb", help="run gdb in batch on a binary and core with gdbext loaded")
    p.add_argument("binary")
    p.add_argument("core", nargs="?", help="core file (may be compressed: xz, zstd, lz4, gzip)")
    p.add_argument("-ex", action="append", default=[], metavar="CMD", help="gdb command to run (repeatable)")
    p.add_argument("--specs", action="append", default=[], metavar="FILE", help="spec file to load (repeatable)")
    p.add_argument("--timeout", type=float, default=120.0)
    p.set_defaults(func=_cmd_gdb)

    p = sub.add_parser("info", help="summarise a core file without gdb")
    p.add_argument("core")
    p.add_argument("--binary", help="the program the core belongs to")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("scaffold", help="write a starter printer module for struct types from a binary's DWARF")
    p.add_argument("binary")
    p.add_argument("--type", action="append", required=True, metavar="TYPE",
                   help="'struct NAME', 'union NAME' or a typedef (repeatable)")
    p.add_argument("--output", "-o", metavar="FILE", help="write the module here (default: stdout)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --output file")
    p.add_argument("--timeout", type=float, default=120.0)
    p.set_defaults(func=_cmd_scaffold)

    p = sub.add_parser("triage", help="analyse core dumps in batch: crash, findings, crash signature",
                       description="Exit codes: 0 no findings, 1 findings, 2 could not analyse (see docs/triage.md).")
    p.add_argument("binary", nargs="?", help="the program (with CORE)")
    p.add_argument("core", nargs="?", help="its core file (may be compressed: xz, zstd, lz4, gzip)")
    p.add_argument("--dir", metavar="DIR", help="triage every core in DIR, each paired with its binary")
    p.add_argument("--pools", action="append", default=[], metavar="FILE", help="pool spec file (repeatable)")
    p.add_argument("--format", choices=("text", "json", "markdown", "sarif"), default="text")
    p.add_argument("--jobs", "-j", type=int, default=1, metavar="N", help="cores analysed in parallel")
    p.add_argument("--output", "-o", metavar="FILE", help="write the report here (default: stdout)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds per core: the checks before gdb and gdb together")
    p.add_argument("--max-core-size", type=_size, default=DEFAULT_MAX_CORE_SIZE, metavar="SIZE",
                   help="cap on a decompressed core, e.g. 32G (default 16G)")
    p.add_argument("--skip-ok", action="store_true",
                   help="with --dir: a core that has to be skipped (FIFO, link out of DIR...) does not make exit 2")
    p.add_argument("--follow-symlinks", action="store_true",
                   help="with --dir: follow symbolic links that lead out of DIR")
    p.set_defaults(func=_cmd_triage)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except GdbextError as err:
        print(f"gdbext: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("gdbext: interrupted", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
