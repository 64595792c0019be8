"""``heapexplain``: everything about one heap address, or every heap finding; and the gdb forensic context."""
from __future__ import annotations

import json
from typing import List

import gdb  # type: ignore[import-not-found]

from ._base import ArgumentParser, GdbextCommand, parse_address
from ._complete import Complete, Completion
from ._output import write

__all__ = ["HeapexplainCommand"]

#: Registers read from each frame for candidate pointers (arguments first, then callee-saved).
def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="heapexplain", add_help=False)
    p.add_argument("address", nargs="?")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-hexdump", action="store_true")
    return p


class HeapexplainCommand(GdbextCommand):
    """Explain one heap address (its chunk or pool slot, damage, findings), or list every heap finding.

Usage: heapexplain [ADDR] [--json] [--no-hexdump]

With ADDR (a number or an expression): the glibc chunk, mmapped chunk or
pool slot holding it, its state (and bin), where the address lies in ASan's
words ("N bytes inside of / after the M-byte region [a, b)"), the previous
and next chunks, the heap-check violations and pool anomalies touching it,
the findings involving it, the allocation site (pools record it; glibc does
not), who points at it, and a hexdump around it with marks.

Without ADDR: every finding of the heap forensics -- heap-buffer-overflow
(with the chunk whose data ran over and how far), use-after-free (the bytes
written after the free), double-free, invalid-free, metadata-corruption,
poison and wild-pointer -- the one that explains the crash first.
--json gives the documented JSON (docs/forensics.md)."""

    command_name = "heapexplain"
    completion = Completion(parser=lambda: _parser(), positional=Complete.EXPRESSION)

    def run(self, argv: List[str], from_tty: bool) -> None:
        args = _parser().parse_args(argv)
        # the forensics are heavy: loaded when the command runs, not with every gdb session
        from gdbext.forensics import find_all
        from gdbext.forensics.address import explain_address
        from gdbext.forensics.render import findings_lines

        from ._forensics import gdb_context

        ctx = gdb_context()
        findings = find_all(ctx)
        if args.address is None:
            if args.json:
                gdb.write(json.dumps({"schema": "gdbext.findings/1", "findings": [f.to_dict() for f in findings],
                                      "notes": ctx.notes}) + "\n")
                return
            for line in findings_lines(findings, hexdump=not args.no_hexdump):
                write(line + "\n")
            for note in ctx.notes:
                write(f"note: {note}\n")
            return
        address = parse_address(args.address)
        report = explain_address(ctx, address, findings)
        if args.no_hexdump:
            report.hexdump = []
        if args.json:
            gdb.write(json.dumps(report.to_dict()) + "\n")
            return
        for line in report.text_lines():
            write(line + "\n")
