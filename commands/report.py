# commands/report.py - ``gdbext report``: gather the crash through gdb (signal,
# fault address, crashing thread, backtrace, glibc abort message, pool walks),
# hand it to gdbext.analysis.analyze and write the triage report.
"""``gdbext report [--json FILE] [--pools FILE]``: the triage report of the loaded core or process."""
from __future__ import annotations

import json
from typing import List

import gdb  # type: ignore[import-not-found]

from gdbext.errors import GdbextError
from ._base import ArgumentParser, GdbextCommand
from ._pools import load_validated

__all__ = ["ReportCommand"]


class ReportCommand(GdbextCommand):
    """Write the triage report: crash, backtrace, heap summary, findings and crash signature.

Usage: gdbext report [--json FILE] [--pools FILE]...
Without --json the human report is printed.  --pools loads a spec file first
(repeatable); every declared pool is walked.  The JSON schema
("gdbext.triage/1") is documented in docs/triage.md; `gdbext triage' on the
command line runs this command in batch over core files."""

    command_name = "gdbext report"
    command_class = gdb.COMMAND_STATUS

    def run(self, argv: List[str], from_tty: bool) -> None:
        parser = ArgumentParser(prog="gdbext report", add_help=False)
        parser.add_argument("--json", metavar="FILE")
        parser.add_argument("--pools", action="append", default=[], metavar="FILE")
        args = parser.parse_args(argv)
        for path in args.pools:
            _, problems = load_validated(path)  # a wrong spec would only give false findings
            if problems:
                raise GdbextError(f"{path}: " + "; ".join(problems))
        from ._report import build_report, render_text  # heavy: only when a report is asked for

        report = build_report()
        if args.json:
            try:
                with open(args.json, "w", encoding="utf-8") as fh:
                    json.dump(report, fh, indent=2)
                    fh.write("\n")
            except OSError as err:
                raise GdbextError(f"cannot write {args.json}: {err.strerror}") from None
            print(f"gdbext: report written to {args.json}")
        else:
            gdb.write(render_text(report))
