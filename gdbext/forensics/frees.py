# gdbext/forensics/frees.py - double and invalid frees from glibc's abort
# message and the heap: the chunk free() was given (a candidate pointer that
# the abort's check condemns), with the evidence the check looked at.
"""Double free and invalid free.

glibc prints no address, so the chunk is found from the candidate pointers
(the crashing thread's registers, frame arguments and stack, in that order)
and the heap: for ``free(): double free detected in tcache 2`` the chunk is
in a tcache bin and its ``key`` is ``tcache_key``; for ``double free or
corruption (fasttop)`` it heads its fastbin; for ``(!prev)`` it is in a
regular bin; for ``(top)`` it is the top chunk.  When no candidate
qualifies but exactly one chunk does, that one is named (and the evidence
says how it was chosen).  ``free(): invalid pointer`` and its kin become an
``invalid-free`` of the candidate that is not the start of a chunk's user
data, unless an overflow finding already explains the chunk's header.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from ..aborts import AbortInfo, explain_abort
from ..glibc.layouts import PREV_INUSE
from .chunks import ChunkIndex
from .context import ForensicContext
from .evidence import NO_RECORD, dump, location
from .model import ChunkView, Finding

__all__ = ["find_free_errors", "abort_info", "candidate_chunks", "DOUBLE_FREE", "INVALID_FREE"]

#: glibc messages that mean "this chunk is already free".
DOUBLE_FREE = {
    "free(): double free detected in tcache 2": "tcache",
    "double free or corruption (fasttop)": "fasttop",
    "double free or corruption (!prev)": "!prev",
    "double free or corruption (top)": "top",
}
#: glibc messages that mean "free() was given something malloc never returned".
INVALID_FREE = frozenset({
    "free(): invalid pointer", "munmap_chunk(): invalid pointer", "free(): invalid size",
    "realloc(): invalid pointer", "mremap_chunk(): invalid pointer",
})


def abort_info(ctx: ForensicContext) -> Optional[AbortInfo]:
    """The explanation of the context's abort message, if it is glibc's."""
    return explain_abort(ctx.abort_message) if ctx.abort_message else None


def candidate_chunks(ctx: ForensicContext, index: ChunkIndex) -> List[tuple]:
    """(pointer, chunk view, exact) for candidates that fall in a chunk; ``exact`` when at its user address or start."""
    out = []
    seen = set()
    for p in ctx.candidate_pointers:
        if p in seen:
            continue
        seen.add(p)
        view = index.find(p)
        if view is None:
            continue
        out.append((p, view, p in (view.user_address, view.address)))
    return out


def _qualifies(ctx: ForensicContext, index: ChunkIndex, view: ChunkView, how: str) -> Optional[str]:
    """Why the abort's check condemns ``view`` as already free, or None."""
    heap = ctx.heap
    if heap is None or view.is_pool:
        return None
    ps = ctx.pointer_size
    if how == "tcache":
        if view.state != "free" or not view.bin or not view.bin.startswith("tcache"):
            return None
        key = int.from_bytes(index.read(view.user_address + ps, ps), ctx.order)
        expect = heap.tcache_key
        if heap.layout.random_tcache_key and expect is not None and key != expect:
            return None
        return (f"it is in {view.bin} and its key word is {key:#x}, the tcache key ({heap.tcache_key_how}): "
                "free() found it already in the bin")
    if how == "fasttop":
        if not view.bin or not view.bin.startswith("fastbin"):
            return None
        heads = {a.fastbins[i] for a in heap.arenas for i in range(len(a.fastbins))}
        if view.address not in heads:
            return None
        return f"it heads {view.bin}: it was the last chunk freed into that fastbin"
    if how == "!prev":
        _prev, nxt = index.neighbours(view)
        if view.state != "free" or not view.bin or nxt is None:
            return None
        word = index.read(nxt.address + ps, ps)
        if int.from_bytes(word, ctx.order) & PREV_INUSE:
            return None
        return f"it is free in {view.bin or 'a bin'} and the next chunk's PREV_INUSE bit is clear"
    if how == "top":
        if view.state != "top":
            return None
        return "it is the top chunk: the block was merged into top when it was first freed"
    return None


def _double_free(ctx: ForensicContext, index: ChunkIndex, info: AbortInfo, how: str,
                 findings: Sequence[Finding]) -> Optional[Finding]:
    chosen = None
    why = None
    pointer = None
    for p, view, exact in candidate_chunks(ctx, index):
        if not exact:
            continue
        reason = _qualifies(ctx, index, view, how)
        if reason is not None:
            chosen, why, pointer = view, reason, p
            break
    how_found = "a pointer from the crashing thread's registers, frames or stack points at it"
    if chosen is None and ctx.check is not None and how in ("tcache", "fasttop"):
        kind = "tcache" if how == "tcache" else "fastbin"
        pool = [a for a, lid in ctx.check.index.owner.items() if ctx.check.index.lists[lid].kind == kind]
        qual = []
        for a in pool:
            view = index.glibc_chunk(a)
            if view is not None and _qualifies(ctx, index, view, how):
                qual.append(view)
        if len(qual) == 1:
            chosen = qual[0]
            why = _qualifies(ctx, index, chosen, how)
            how_found = f"no candidate pointer named it, but it is the only chunk in any {kind} bin that qualifies"
    for f in findings:
        involved = {c.address for c in (f.chunk, f.source) if c is not None}
        if chosen is not None and chosen.address in involved and f.kind in ("heap-buffer-overflow",
                                                                            "metadata-corruption"):
            return None  # the header damage explains the abort
    ev: Dict[str, object] = {"glibc_abort": info.message}
    if chosen is None and any(f.kind in ("heap-buffer-overflow", "metadata-corruption") for f in findings) \
            and set(info.alternatives) & {"heap-buffer-overflow", "metadata-corruption"}:
        return None  # no chunk is free twice, but a damaged header explains the same abort
    if chosen is None:
        ev["candidates"] = "no chunk that the check condemns is named by the crashing thread's pointers"
        ev["allocation_record"] = NO_RECORD
        return Finding("double-free", None, None, f"free() of a chunk that is already free ({info.message}); "
                       "the chunk could not be identified", evidence=ev)
    ev["why"] = why
    ev["found"] = how_found
    if pointer is not None:
        ev["freed_pointer"] = f"{pointer:#x}"
    ev["allocation_record"] = NO_RECORD
    ev["hexdump"] = dump(index, chosen.address, min(chosen.end, chosen.user_address + 64),
                         [(chosen.address, chosen.user_address, "header"),
                          (chosen.user_address, chosen.user_address + 2 * ctx.pointer_size, "links/key")])
    msg = (f"attempting double-free on {chosen.user_address:#x}: {chosen.label} ({chosen.size:#x} bytes) is "
           f"already {chosen.state_text}")
    return Finding("double-free", chosen.user_address, chosen, msg, evidence=ev,
                   keys=[("abort", chosen.address)], explains_crash=True)


def _invalid_free(ctx: ForensicContext, index: ChunkIndex, info: AbortInfo,
                  findings: Sequence[Finding]) -> Optional[Finding]:
    damaged = {f.chunk.address for f in findings if f.chunk is not None}
    for p, view, exact in candidate_chunks(ctx, index):
        if view.address in damaged:
            return None  # an overflow/corruption finding on that chunk explains the abort
    ev: Dict[str, object] = {"glibc_abort": info.message, "check": f"{info.function}: {info.invariant}",
                             "usual_cause": info.usual_cause}
    for p, view, exact in candidate_chunks(ctx, index):
        if exact or view.state in ("top",):
            continue
        ev["freed_pointer"] = f"{p:#x} (a candidate from the crashing thread that is not a chunk's user address)"
        return Finding("invalid-free", p, view,
                       f"attempting free on address which was not malloc()-ed: {location(p, view, index)}",
                       evidence=ev, keys=[("abort", view.address)], explains_crash=True)
    ev["candidates"] = "no candidate pointer of the crashing thread could be identified as the freed one"
    return Finding("invalid-free", None, None, f"free() was given a pointer malloc did not return ({info.message})",
                   evidence=ev)


def find_free_errors(ctx: ForensicContext, index: ChunkIndex, findings: Sequence[Finding]) -> List[Finding]:
    """The double-free or invalid-free finding the abort message calls for, if any."""
    info = abort_info(ctx)
    if info is None:
        return []
    how = DOUBLE_FREE.get(info.message)
    if how is not None:
        got = _double_free(ctx, index, info, how, findings)
        return [got] if got is not None else []
    if info.message in INVALID_FREE:
        got = _invalid_free(ctx, index, info, findings)
        return [got] if got is not None else []
    return []
