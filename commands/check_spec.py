"""``gdbext check-spec [FILE...]``: what each pool spec finds in this program, and every mistake in it."""
from __future__ import annotations

from typing import List

import gdb  # type: ignore[import-not-found]

from gdbext.errors import GdbextError
from gdbext.gdbmem import GdbInferiorSource
from gdbext.pools import FixedSlots, Tree, Validation
from gdbext.specs import REGISTRY, load_file

from ._base import GdbextCommand
from ._pools import has_target, validate_spec

__all__ = ["CheckSpecCommand", "summary_line"]


class CheckSpecCommand(GdbextCommand):
    """Check pool specs against the program's debug info and memory: pools, slots, free list, mistakes.

Usage: gdbext check-spec [FILE...]
Loads each FILE (without refusing its pools) and checks the pools it declares;
without FILE, every declared pool.  For each pool: its shape, the slots in use
and free, the free list's length, then one line per spec error (the spec field
and what is wrong), per warning (what corruption could also explain) and per
inconsistency found in memory.  The last line counts them; with spec errors
the command fails.  Memory is read only with a process or core."""

    command_name = "gdbext check-spec"

    def run(self, argv: List[str], from_tty: bool) -> None:
        names: List[str] = []
        for path in argv:
            before = dict(REGISTRY.pools)
            load_file(path)
            names += [n for n, s in REGISTRY.pools.items() if before.get(n) is not s and n not in names]
        if not argv:
            names = sorted(REGISTRY.pools)
        if not names:
            raise GdbextError("no pool declared (give a spec file)")
        mem = GdbInferiorSource(require_target=False) if has_target() else None
        if mem is None:
            gdb.write("note: no process or core: the spec is checked against the debug info only\n")
        errors = warnings = inconsistencies = 0
        for name in names:
            result = validate_spec(REGISTRY.pool(name), mem)
            for line in pool_lines(result):
                gdb.write(line + "\n")
            errors += len(result.errors)
            warnings += len(result.warnings)
            inconsistencies += len(result.report.anomalies) if result.report is not None else 0
        gdb.write(summary_line(len(names), errors, warnings, inconsistencies) + "\n")
        if errors:
            raise GdbextError(f"{errors} spec error(s)")


def summary_line(pools: int, errors: int, warnings: int, inconsistencies: int) -> str:
    """The last line, which ``gdbext check-spec`` on the command line reads for its exit code."""
    return (f"check-spec: {pools} pool(s), {errors} spec error(s), {warnings} warning(s), "
            f"{inconsistencies} inconsistenc{'y' if inconsistencies == 1 else 'ies'}")


def pool_lines(result: Validation) -> List[str]:
    spec, pool, report = result.spec, result.pool, result.report
    out = []
    if pool is not None:
        geo = spec.geometry
        if isinstance(geo, FixedSlots):
            shape = f"{pool.count} slots x {pool.slot_size} B at {pool.first:#x}"
        elif isinstance(geo, Tree):
            shape = f"tree from {pool.first:#x}"
        else:
            shape = f"chunks in [{pool.first:#x}, {pool.end:#x})"
        out.append(f"pool {spec.name}: {shape}; header {pool.header.name} ({pool.header.size} B at "
                   f"+{spec.header_offset}), payload at +{pool.payload_offset}")
    else:
        out.append(f"pool {spec.name}: not resolved")
    if report is not None:
        line = (f"  {len(report.chunks)} chunks: {report.in_use} in use, {report.free} free, "
                f"{report.corrupt} corrupt")
        if spec.free_list is not None:
            line += f"; free list {len(report.free_list)} node(s) from {pool.free_head:#x}"  # type: ignore[union-attr]
        if report.stopped:
            line += f"; walk stopped: {report.stopped}"
        out.append(line)
    out += [f"  spec error: {p.field}: {p.message}" for p in result.errors]
    out += [f"  warning: {p.field}: {p.message} (or corruption)" for p in result.warnings]
    if report is not None:
        out += [f"  inconsistency: {a.text()}" for a in report.anomalies]
    return out
