# gdbext/forensics/explain.py - the end-to-end explanation of a glibc abort
# (message -> check -> chunk and broken field -> the neighbour that ran over)
# and the metadata-corruption findings for what no detector accounted for.
"""Explaining the crash, and the leftovers.

:func:`explain_crash` maps glibc's abort message to the check that fired
(:func:`gdbext.aborts.explain_abort`), finds the violation of the heap
checks that corresponds to it (same message) and the finding that
accounts for that violation, and adds to it what the check looked at, the
invariant, the broken field, and the candidate pointer that names the
chunk.  Without a matching violation, the chunk a candidate pointer names
is described as the check would see it.

:func:`leftover_findings` turns every error-severity violation and pool
anomaly that no detector accounted for into a ``metadata-corruption``
finding (a chunk in two free lists is a ``double-free``), so nothing the
heap checks saw is dropped.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Set, Tuple

from ..aborts import AbortInfo
from ..glibc import Violation
from .chunks import ChunkIndex
from .context import ForensicContext
from .evidence import NO_RECORD, dump, field_bytes
from .frees import abort_info, candidate_chunks
from .model import Finding

__all__ = ["explain_crash", "leftover_findings", "crash_evidence"]


def crash_evidence(info: AbortInfo) -> Dict[str, object]:
    """What the abort message means, JSON-ready."""
    return {
        "message": info.message,
        "function": info.function,
        "checked": info.chunk,
        "invariant": info.invariant,
        "usual_cause": info.usual_cause,
        "kind": info.kind,
        "alternatives": list(info.alternatives),
        "glibc_versions": info.versions,
    }


def _named_by_candidates(ctx: ForensicContext, index: ChunkIndex, f: Finding, checked: Optional[int]) -> List[str]:
    """Candidate pointers naming the chunk the check looked at (else the finding's chunks)."""
    out = []
    chunks = {checked} if checked is not None and index.glibc_chunk(checked) is not None else \
        {c.address for c in (f.chunk, f.source) if c is not None}
    for p, view, exact in candidate_chunks(ctx, index):
        if view.address in chunks:
            out.append(f"{p:#x} -> {view.label}" + ("" if exact else " (interior)"))
    return out[:4]


def explain_crash(ctx: ForensicContext, findings: Optional[Sequence[Finding]] = None) -> Optional[Finding]:
    """The finding that explains the abort (or the fault), annotated; None when none does.

    :param ctx: the context (abort message, candidates, check report).
    :param findings: the findings made so far (annotated in place); None runs
        :func:`~gdbext.forensics.find_all`, which calls this function itself.
    """
    if findings is None:
        from . import find_all  # local: the package imports this module

        return next((f for f in find_all(ctx) if f.explains_crash), None)
    index = ctx.index()
    info = abort_info(ctx)
    if info is None:
        return next((f for f in findings if f.explains_crash), None)
    matched: List[Tuple[Finding, Optional[Violation]]] = []
    if ctx.check is not None:
        for v in ctx.check.violations:
            if v.abort != info.message:
                continue
            matched.extend((f, v) for f in findings if (v.check, v.chunk) in f.keys)
    matched.extend((f, None) for f in findings if any(k[0] == "abort" for k in f.keys))
    if not matched:
        return next((f for f in findings if f.explains_crash), None)
    f, hit = matched[0]
    f.explains_crash = True
    crash = crash_evidence(info)
    if hit is not None:
        crash["violation"] = field_bytes(ctx, hit.field, hit.field_address, hit.raw, check=hit.check,
                                         chunk=f"{hit.chunk:#x}" if hit.chunk is not None else None,
                                         explanation=hit.explanation)
    named = _named_by_candidates(ctx, index, f, hit.chunk if hit is not None else None)
    if named:
        crash["candidate_pointers"] = named
    f.evidence["crash"] = crash
    return f


def _freed_twice(ctx: ForensicContext, index: ChunkIndex, v: Violation) -> Optional[Finding]:
    """The double-free a free-list cycle records: the node the list loops back to was freed twice.

    The looping link is decoded (safe-linking undone; a tcache link points
    at user data) to the chunk it returns to; that chunk must be a chunk the
    walk knows.  glibc's own checks let this pass: a fastbin free compares
    only with the bin's top (free(a), free(b), free(a)); a tcache free
    compares the key, which a write after free can change.
    """
    if ctx.heap is None or v.field_address is None or len(v.raw) != ctx.pointer_size:
        return None
    ps = ctx.pointer_size
    ptr = int.from_bytes(v.raw, ctx.order)
    if ctx.heap.layout.safe_linking:
        ptr ^= v.field_address >> 12
    tcache = v.field == "next"
    chunk = index.glibc_chunk(ptr - 2 * ps if tcache else ptr)
    if chunk is None:
        return None
    via = index.glibc_at(v.chunk) if v.chunk is not None else None
    lst = v.explanation.split(" loops back", 1)[0]
    how = ("glibc's key check lets a chunk through once its tcache key was overwritten" if tcache else
           "a fastbin free compares the chunk only with the bin's top, so free(a), free(b), free(a) passes")
    msg = (f"{chunk.label} was freed twice: {lst} loops back to it"
           + (f" through the link of {via.label}" if via is not None and via.address != chunk.address else "")
           + f" ({how}); the next two mallocs of its size both return it")
    ev: Dict[str, object] = {
        "why": "a free list that loops back to a chunk holds that chunk twice: it was freed twice",
        "cycle": field_bytes(ctx, v.field, v.field_address, v.raw, check=v.check, explanation=v.explanation,
                             decodes_to=f"{ptr:#x}"),
        "allocation_record": NO_RECORD,
    }
    ev["hexdump"] = dump(index, chunk.address, min(chunk.end, chunk.address + 64),
                         [(chunk.user_address, chunk.user_address + ps, "link")])
    return Finding("double-free", chunk.user_address, chunk, msg, evidence=ev, keys=[(v.check, v.chunk)])


def leftover_findings(ctx: ForensicContext, index: ChunkIndex, findings: Sequence[Finding]) -> List[Finding]:
    """metadata-corruption (or double-free) findings for violations and anomalies nobody accounted for."""
    taken: Set[Tuple[str, Optional[int]]] = set()
    for f in findings:
        taken.update(f.keys)
    out: List[Finding] = []
    grouped: Dict[Optional[int], List[Violation]] = {}
    if ctx.check is not None:
        for v in ctx.check.violations:
            if v.severity != "error" or (v.check, v.chunk) in taken:
                continue
            grouped.setdefault(v.chunk, []).append(v)
    for chunk_addr, vs in grouped.items():
        cycle = next((x for x in vs if x.check == "list.cycle"), None)
        twice = _freed_twice(ctx, index, cycle) if cycle is not None else None
        if twice is not None:
            out.append(twice)
            vs = [x for x in vs if x is not cycle]
            if not vs:
                continue
        view = index.glibc_at(chunk_addr) if chunk_addr is not None else None
        v = vs[0]
        kind = "double-free" if any(x.check == "list.duplicate" for x in vs) else "metadata-corruption"
        what = f"{view.label}" if view is not None and view.address == chunk_addr else \
            (f"{chunk_addr:#x}" if chunk_addr is not None else "the heap")
        msg = f"{what}: {v.explanation}"
        ev: Dict[str, object] = {
            "violations": [field_bytes(ctx, x.field, x.field_address, x.raw, check=x.check, glibc_abort=x.abort,
                                       explanation=x.explanation) for x in vs],
        }
        if kind == "double-free":
            ev["why"] = "the chunk is linked into two free lists: it was freed twice"
        elif any(x.check == "list.cycle" for x in vs):
            ev["note"] = "a free list that loops back is the classic trace of a chunk freed twice (a -> b -> a)"
        if view is not None:
            ev["allocation_record"] = NO_RECORD
            lo = min([view.address] + [x.field_address for x in vs if x.field_address is not None])
            ev["hexdump"] = dump(index, lo, min(view.end, lo + 64),
                                 [(x.field_address, x.field_address + (len(x.raw) or ctx.pointer_size), x.field)
                                  for x in vs if x.field_address is not None])
        addr = next((x.field_address for x in vs if x.field_address is not None), chunk_addr)
        out.append(Finding(kind, addr, view if view is not None and chunk_addr is not None and
                           view.address == chunk_addr else None, msg, evidence=ev,
                           keys=[(x.check, x.chunk) for x in vs]))
    for report in index.pools:
        for a in report.anomalies:
            if (f"pool.{a.kind}", a.address) in taken:
                continue
            view = None
            if a.chunk is not None:
                c = next((c for c in report.chunks if c.index == a.chunk), None)
                view = index.pool_view(report, c) if c is not None else None
            ev = {"anomaly": field_bytes(ctx, a.kind, a.address, a.data, explanation=a.message)}
            out.append(Finding("metadata-corruption", a.address, view, f"pool {report.pool.spec.name}: {a.text()}",
                               evidence=ev, keys=[(f"pool.{a.kind}", a.address)]))
    return out
