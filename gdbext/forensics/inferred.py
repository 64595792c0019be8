"""Inferred allocation sites for glibc chunks, ranked, and always marked inferred.

glibc keeps no allocation record, so the site of a glibc chunk is a guess
from evidence: :func:`gdbext.allocscan.scan_program` lists the program's
allocating calls; this module keeps those whose constant size falls in the
chunk's size class (calls whose size is not a constant stay, ranked lower),
and ranks them by the referrers' evidence:

1. the call's result is stored, right after the call, into the variable,
   global or struct member a referrer names (``frame 2 in scenario: buf``,
   ``g_table[3]``, ``s->greeting``);
2. the call is in a function a referrer's frame names;
3. the size is a constant of the chunk's class.

The top candidate becomes ``allocation_site`` with ``how: "inferred"`` and the
ranked list goes in ``candidates``; a recorded site (a pool header's) is never
replaced.
"""
from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from ..allocscan import AllocCall, ProgramScan, scan_program
from .context import ForensicContext
from .model import AllocSite, ChunkView

__all__ = ["infer_site", "request_range", "INFERRED", "MAX_CANDIDATES"]

INFERRED = "inferred"
MAX_CANDIDATES = 5
_FRAME_REF = re.compile(r"frame \d+ in ([^:\s]+): ([A-Za-z_]\w*)")
_LEADING = re.compile(r"([A-Za-z_]\w*)")
_MEMBER = re.compile(r"(?:->|\.)([A-Za-z_]\w*)")


def request_range(chunk: ChunkView, pointer_size: int = 8) -> Tuple[int, int]:
    """The requests glibc serves with this chunk: ``(lowest, highest)`` inclusive."""
    if chunk.state == "mmapped":
        return max(0, chunk.size - 2 * pointer_size - 4095), chunk.size - 2 * pointer_size
    high = chunk.size - pointer_size
    low = 0 if chunk.size <= 4 * pointer_size else high - 2 * pointer_size + 1
    return low, high


def _evidence(referrers: Sequence[str]) -> Tuple[Set[Tuple[str, str]], Set[str], Set[str], Set[str]]:
    """(frame-local (function, variable) pairs, globals, members, functions) the referrers name."""
    locals_: Set[Tuple[str, str]] = set()
    globals_: Set[str] = set()
    members: Set[str] = set()
    functions: Set[str] = set()
    for ref in referrers:
        m = _FRAME_REF.match(ref)
        if m:
            functions.add(m.group(1))
            locals_.add((m.group(1), m.group(2)))
            rest = ref[m.end():]
        elif ref.startswith(("register", "frame", "<")):
            continue
        else:
            lead = _LEADING.match(ref)
            if lead:
                globals_.add(lead.group(1))
            rest = ref
        found = _MEMBER.findall(rest)
        if found:
            members.add(found[-1])
    return locals_, globals_, members, functions


def _program_scan(ctx: ForensicContext) -> Optional[ProgramScan]:
    if "program_scan" not in ctx._cache:
        path = ctx.program
        ctx._cache["program_scan"] = scan_program(path) if path and os.path.isfile(path) else None
    return ctx._cache["program_scan"]  # type: ignore[no-any-return]


def _bias(ctx: ForensicContext, scan: ProgramScan) -> int:
    if scan.link_main is None:
        return 0
    try:
        runtime = ctx.mem.symbol("main")
    except Exception:  # noqa: BLE001  (a memory source's lookup error means "unknown")
        runtime = None
    return runtime - scan.link_main if runtime is not None else 0


def _rank(call: AllocCall, evidence: Tuple[Set[Tuple[str, str]], Set[str], Set[str], Set[str]],
          sizes: Tuple[int, int]) -> Optional[Tuple[int, List[str]]]:
    locals_, globals_, members, functions = evidence
    why: List[str] = []
    score = 0
    if call.size is not None:
        if not sizes[0] <= call.size <= sizes[1]:
            return None
        score += 10
        why.append(f"{call.allocator}({call.size}) fits the chunk's size class")
    else:
        why.append(f"{call.allocator} with a size that is not a constant")
    store = call.stored_to
    if store is not None:
        kind, *names = store
        hit = ((kind == "local" and (names[0], names[1]) in locals_)
               or (kind == "global" and names[0] in globals_)
               or (kind == "member" and any(n in members for n in names)))
        where = f"{names[1]} in {names[0]}" if kind == "local" else " / ".join(names)
        if hit:
            score += 100
            why.append(f"its result is stored in {where}, which still points at the chunk")
        else:
            why.append(f"its result is stored in {where}")
    outer = call.caller or call.function
    if outer in functions:
        score += 20
        why.append(f"{outer} has a frame that points at the chunk")
    if call.caller:
        why.append(f"through the wrapper {call.function}, called from {call.caller}")
    return score, why


def infer_site(ctx: ForensicContext, chunk: ChunkView, referrers: Sequence[str]) -> Optional[AllocSite]:
    """The inferred allocation site of a glibc chunk, or None when nothing can be inferred.

    :param ctx: the context (its ``program`` is scanned once and cached).
    :param chunk: the glibc chunk (its size gives the requests it serves).
    :param referrers: who points at it (``ctx.referrers``).
    """
    if chunk.is_pool:
        return None
    scan = _program_scan(ctx)
    if scan is None or not scan.calls:
        return None
    sizes = request_range(chunk, ctx.pointer_size)
    evidence = _evidence(referrers)
    ranked: List[Tuple[int, int, AllocCall, List[str]]] = []
    for call in scan.calls:
        r = _rank(call, evidence, sizes)
        if r is not None:
            ranked.append((-r[0], call.caller_pc or call.pc, call, r[1]))
    if not ranked:
        return None
    ranked.sort(key=lambda t: (t[0], t[1]))
    bias = _bias(ctx, scan)
    candidates: List[Dict[str, Any]] = []
    for _, _, call, why in ranked[:MAX_CANDIDATES]:
        loc = ctx.site(call.pc + bias) or {}
        line = loc.get("line")
        candidates.append({"function": loc.get("function") or call.function, "file": loc.get("file"),
                           "line": int(line) if line else None, "pc": f"{call.pc + bias:#x}",
                           "why": "; ".join(why)})
    top = candidates[0]
    return AllocSite(function=top["function"], file=top["file"], line=top["line"], pc=int(top["pc"], 16),
                     how=INFERRED, candidates=tuple(candidates))
