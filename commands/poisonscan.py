"""``poisonscan``: runs of fill and poison patterns mapped to their chunks, plus writes after free and bad words."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, List, Tuple, Union

import gdb  # type: ignore[import-not-found]

from gdbext.errors import GdbextError, SpecError
from gdbext.gdbmem import GdbInferiorSource
from gdbext.poison import (ALLOCATORS, STATIC_PRESETS, Pattern, Preset, glibc_perturb_preset, parse_user_pattern,
                           pool_preset, preset_by_name, presets_for)

from ._base import ArgumentParser, GdbextCommand, parse_address
from ._complete import Completion, pool_names
from ._output import write

if TYPE_CHECKING:  # the forensics are heavy: imported when the command runs
    from gdbext.forensics.context import ForensicContext

__all__ = ["PoisonscanCommand"]


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="poisonscan", add_help=False)
    p.add_argument("patterns", nargs="*")
    p.add_argument("--preset", action="append", default=[])
    p.add_argument("--region", default="heap")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--json", action="store_true")
    return p


def _region(text: str) -> Union[str, Tuple[int, int]]:
    if text in ("heap", "all") or text.startswith("pool:"):
        return text
    lo, sep, hi = text.partition("-")
    if not sep or not lo or not hi:
        raise GdbextError(f"bad region {text!r}: heap, pool:NAME, all or A-B")
    start, end = parse_address(lo), parse_address(hi)
    if end <= start:
        raise GdbextError(f"bad region {text!r}: B must be above A")
    return start, end


def _pool_presets(ctx: ForensicContext) -> List[Preset]:
    out = []
    for report in ctx.pools:
        spec = report.pool.spec
        if spec.fill is not None or spec.guard is not None:
            out.append(pool_preset(spec.fill, spec.guard, name=f"pool:{spec.name}"))
    return out


def _patterns(ctx: ForensicContext, texts: List[str], presets: List[str]) -> List[Union[Pattern, Preset]]:
    order = ctx.mem.byteorder
    out: List[Union[Pattern, Preset]] = [parse_user_pattern(t, ctx.pointer_size, order) for t in texts]
    pools = {p.name: p for p in _pool_presets(ctx)}
    for name in presets:
        if name in pools:
            out.append(pools[name])
        elif name == "pool":
            if not pools:
                raise SpecError("preset pool: no declared pool has fill or guard bytes")
            out.extend(pools.values())
        elif name in ALLOCATORS:  # an allocator's name: every preset scoped to it
            out.extend(presets_for(name, perturb_byte=ctx.perturb_byte, byteorder=order))
        else:
            out.append(preset_by_name(name, perturb_byte=ctx.perturb_byte, byteorder=order))
    if not texts and not presets:
        # glibc's own fill when set, the generic markers, each pool's bytes (mcheck's only on request:
        # its bytes mean nothing without mcheck)
        if ctx.heap is not None and ctx.perturb_byte:
            out.append(glibc_perturb_preset(ctx.perturb_byte))
        out.extend(pools.values())
        out.append(preset_by_name("generic", byteorder=order))
    return out


class PoisonscanCommand(GdbextCommand):
    """Find fill and poison patterns in the heap, a pool or memory, mapped to their chunks and judged by state.

Usage: poisonscan [PATTERN ...] [--preset NAME ...] [--region heap|pool:NAME|all|A-B] [--limit N] [--json]

PATTERN: hex bytes in memory order ("de ad be ef"), one 0x value in the
target's byte order (0xdeadbeef), or a quoted string ('"AAAA"').  Presets:
glibc-perturb (the perturb byte read from the program), glibc-mcheck,
jemalloc-junk, slub-debug, msvc-debug-crt, gperftools-debug, asan,
openbsd-junk, generic, pool (every declared pool's fill and guard bytes),
pool:NAME, or an allocator's name (glibc, jemalloc, slub, msvc, gperftools,
asan, openbsd, any) for all of its presets.  Without patterns or presets: glibc's perturb fill (when the
program set one), each declared pool's bytes and the generic markers.
Each run is listed with its chunk, offset, ASan-style location and a
verdict: expected, slack, stale-in-use (freed fill in an in-use chunk),
fresh-in-free, never-written, crosses-end, outside, found.  Also listed:
bytes written after free (broken fills, links, tcache keys), strings that
run past their chunk, and registers, fault, header and link words that are
text or poison.  --region: heap (default: every arena, mmapped chunks and
pools), pool:NAME, all (every writable mapping) or A-B."""

    command_name = "poisonscan"
    completion = Completion(parser=lambda: _parser(), values={
        "--preset": lambda _t: sorted({"glibc-perturb", "pool", *(p.name for p in STATIC_PRESETS), *ALLOCATORS}
                                      | {f"pool:{n}" for n in pool_names(_t)}),
        "--region": lambda _t: ["heap", "all"] + [f"pool:{n}" for n in pool_names(_t)]})

    def run(self, argv: List[str], from_tty: bool) -> None:
        args = _parser().parse_args(argv)
        region = _region(args.region)
        pools = [region[5:]] if isinstance(region, str) and region.startswith("pool:") else None
        from gdbext.forensics.scan import poisonscan

        from ._forensics import gdb_context

        ctx = gdb_context(GdbInferiorSource(), pools)
        patterns = _patterns(ctx, args.patterns, args.preset)
        kwargs = {"limit": args.limit} if args.limit is not None else {}
        report = poisonscan(ctx.mem, ctx.heap, ctx.pools, patterns, region, context=ctx, **kwargs)
        report.notes.extend(ctx.notes)
        if args.json:
            gdb.write(json.dumps(report.to_dict()) + "\n")
            return
        for line in report.text_lines():
            write(line + "\n")
