# gdbext/forensics/overlap.py - chunks whose size was enlarged over their
# neighbours: the walk follows the new size and silently skips what it now
# covers, so no header check sees anything wrong.
"""Enlarged sizes: a chunk that covers its in-use neighbours.

A size field overwritten with a larger valid size (``0x31`` -> ``0x61``)
passes every header check: the walk steps over the neighbours the chunk
now covers.  Their headers are still there, inside it: starting at some
offset ``k`` of the chunk (its old size), a chain of valid chunk headers --
the first with PREV_INUSE set, each size aligned and at least MINSIZE, none
mmapped -- ends exactly at the chunk's new end.  That chain is what is
reported: the chunk was ``k`` bytes, its size now claims the chunks after
it, and the next ``free()`` of it hands their memory out again while they
are in use.

Bounded: chunks up to :data:`MAX_CHUNK` bytes, offsets up to that, at most
:data:`MAX_HOPS` inner chunks, :data:`MAX_CHUNKS` chunks examined.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional

from .chunks import ChunkIndex
from .context import ForensicContext
from .evidence import NO_RECORD, dump
from .model import ChunkView, Finding

__all__ = ["find_overlaps", "MAX_CHUNK", "MAX_HOPS", "MAX_CHUNKS"]

#: Largest chunk searched for covered headers (bytes).
MAX_CHUNK = 1024
#: Inner chunks a chain may have.
MAX_HOPS = 8
#: Chunks examined at most (per analysis).
MAX_CHUNKS = 50_000


def find_overlaps(ctx: ForensicContext, index: Optional[ChunkIndex] = None) -> List[Finding]:
    """metadata-corruption findings for in-use chunks whose size covers a chain of intact chunk headers."""
    heap = ctx.heap
    if heap is None:
        return []
    index = index or ctx.index()
    lay = heap.layout
    ps, minsize, align = ctx.pointer_size, lay.minsize, lay.malloc_alignment
    out: List[Finding] = []
    seen = 0
    for seg in heap.segments:
        entry = heap.memory.buffer(seg)
        if entry is None:
            continue
        base, words = entry[0], entry[3]
        nwords = len(words)

        def word(address: int) -> Optional[int]:
            i, rem = divmod(address - base, ps)
            return words[i] if not rem and 0 <= i < nwords else None

        for view in index.glibc_views(seg.start, seg.end):
            if view.state != "in-use" or not 2 * minsize <= view.size <= MAX_CHUNK or view.heap == "mmapped":
                continue
            seen += 1
            if seen > MAX_CHUNKS:
                return out
            first = (view.address + ps - base) // ps
            for k in range(minsize, view.size - minsize + 1, align):
                j = first + k // ps
                if j >= nwords:
                    break
                sw = words[j]  # quick reject: most offsets hold no header with PREV_INUSE and a fitting size
                if not sw & 1 or sw & 2 or not minsize <= (sw & ~7) <= view.size - k:
                    continue
                chain = _chain(word, view.address + k, view.end, ps, minsize, align)
                if chain is not None:
                    out.append(_finding(ctx, index, view, k, chain))
                    break
    return out


def _chain(word: Callable[[int], Optional[int]], start: int, end: int, ps: int, minsize: int,
           align: int) -> Optional[List[int]]:
    """Sizes of the valid headers from ``start`` that end exactly at ``end``, or None."""
    sizes: List[int] = []
    addr = start
    while addr < end and len(sizes) < MAX_HOPS:
        sw = word(addr + ps)
        if sw is None:
            return None
        size = sw & ~7
        if size < minsize or size % align or sw & 2 or addr + size > end or (not sizes and not sw & 1):
            return None
        sizes.append(size)
        addr += size
    return sizes if addr == end else None


def _finding(ctx: ForensicContext, index: ChunkIndex, view: ChunkView, k: int, chain: List[int]) -> Finding:
    ps = ctx.pointer_size
    covered = []
    addr = view.address + k
    for size in chain:
        covered.append({"address": f"{addr:#x}", "size": size})
        addr += size
    first = view.address + k
    raw = index.read(view.address + ps, ps)
    msg = (f"{view.label}'s size {view.size:#x} covers {len(chain)} intact chunk header(s) from {first:#x} "
           f"to its end: its size was enlarged from {k:#x} over its neighbour(s); the next free() of it "
           "hands their memory out again while they are in use")
    ev: Dict[str, object] = {
        "damaged": [{"field": "size", "address": f"{view.address + ps:#x}", "bytes": raw.hex(),
                     "value": f"{int.from_bytes(raw, ctx.order):#x}", "size_before": f"{k | 1:#x}"}],
        "covered": covered,
        "why": ("a chain of valid headers (PREV_INUSE set on the first, aligned sizes) inside the chunk ends "
                "exactly at its end: they are the chunks that followed it before its size grew; the heap walk "
                "follows the new size and skips them"),
        "allocation_record": NO_RECORD,
    }
    ev["hexdump"] = dump(index, view.address, min(view.end, first + 32),
                         [(view.address + ps, view.address + 2 * ps, "size"), (first, first + 2 * ps, "covered header")])
    return Finding("metadata-corruption", view.address + ps, view, msg, evidence=ev,
                   keys=[("chunk.size.overlap", view.address)])
