# gdbext/forensics/__init__.py - heap forensics over a forensic context: every
# finding (overflows with their source, writes after free, double and invalid
# frees, bad pointers), ordered with the one that explains the crash first.
"""Heap forensics, GDB-free.

Typical use::

    ctx = context_from_core(core, pools=[walk_pool(core, pool)])   # or commands.heapexplain.gdb_context()
    for finding in find_all(ctx):
        print(finding.headline)
        json.dumps(finding.to_dict())

Modules: :mod:`.model` (Finding, ChunkView), :mod:`.context`
(ForensicContext), :mod:`.corectx` (a context from a core file),
:mod:`.chunks` (address -> chunk), :mod:`.continuity` (runs across a
buffer's end), :mod:`.overflow`, :mod:`.uaf`, :mod:`.links`, :mod:`.frees`,
:mod:`.faults`, :mod:`.explain` (the abort end to end), :mod:`.scan`
(``poisonscan``), :mod:`.address` (``heapexplain``), :mod:`.render` (text).
"""
from __future__ import annotations

import os

from typing import Dict, List, Optional

from .context import ForensicContext
from .explain import explain_crash, leftover_findings
from .faults import find_fault_findings
from .inferred import infer_site
from .frees import find_free_errors
from .links import find_link_writes
from .model import KINDS, AllocSite, ChunkView, Finding, Written
from .overflow import find_overflows
from .uaf import find_fill_breaks

__all__ = [
    "find_all",
    "explain_crash",
    "ForensicContext",
    "Finding",
    "ChunkView",
    "AllocSite",
    "Written",
    "KINDS",
]

_ORDER = {k: i for i, k in enumerate(KINDS)}


def _merge_by_chunk(found: List[Finding]) -> List[Finding]:
    """One use-after-free finding per chunk: later ones add their ranges and evidence to the first."""
    out: List[Finding] = []
    by_chunk: Dict[int, Finding] = {}
    for f in found:
        key = f.chunk.address if f.chunk is not None and f.kind == "use-after-free" else None
        if key is None or key not in by_chunk:
            if key is not None:
                by_chunk[key] = f
            out.append(f)
            continue
        first = by_chunk[key]
        known = {(w.offset, w.size) for w in first.written_after_free}
        first.written_after_free.extend(w for w in f.written_after_free if (w.offset, w.size) not in known)
        for k, v in f.evidence.items():
            first.evidence.setdefault(k, v)
        first.keys.extend(f.keys)
        first.explains_crash = first.explains_crash or f.explains_crash
    return out


def _inferred_site(ctx: ForensicContext, f: Finding) -> Optional[AllocSite]:
    """The inferred site of the block the headline's "allocated by" names: the
    overflowing source for an overflow, else the damaged chunk (glibc only)."""
    chunk = f.source if f.kind == "heap-buffer-overflow" and f.source is not None else f.chunk
    if chunk is None or chunk.is_pool or chunk.state in ("top", "corrupt") and chunk is not f.source:
        return None
    refs = f.referenced_by if chunk is f.chunk else ctx.referrers(chunk.address)
    return infer_site(ctx, chunk, refs)


def find_all(ctx: ForensicContext) -> List[Finding]:
    """Every finding of the context, the one that explains the crash first.

    Detectors, in order: overflow attribution for every damaged header and
    pool guard; writes after free (broken fills, links, keys, bin heads);
    the double or invalid free the abort message calls for; the fault's bad
    pointer; then whatever heap violation or pool anomaly none of them
    accounted for.  ``referenced_by`` is filled from ``ctx.references``.
    A clean heap gives no finding.

    :param ctx: the forensic context.
    """
    index = ctx.index()
    findings: List[Finding] = []
    findings += find_overflows(ctx, index)
    findings += _merge_by_chunk(find_link_writes(ctx, index) + find_fill_breaks(ctx, index))
    findings += find_free_errors(ctx, index, findings)
    findings += find_fault_findings(ctx, index, findings)
    findings += leftover_findings(ctx, index, findings)
    explain_crash(ctx, findings)
    for f in findings:
        if f.chunk is not None:
            f.referenced_by = ctx.referrers(f.chunk.address)
        if f.allocation_site is None:
            f.allocation_site = _inferred_site(ctx, f)
        site = f.allocation_site
        if site is not None and site.function and " allocated by " not in f.message:
            where = f" ({os.path.basename(site.file)}:{site.line})" if site.file else ""
            probably = "probably " if site.inferred else ""
            tag = " (inferred)" if site.inferred else ""
            f.message = f"{f.message}; {probably}allocated by {site.function}{where}{tag}"  # ASan's "allocated by"
    findings.sort(key=lambda f: (not f.explains_crash, _ORDER.get(f.kind, 99),
                                 f.address if f.address is not None else 0))
    return findings
