# gdbext/forensics/uaf.py - writes after free seen in freed memory: glibc's
# perturb fill broken in fastbin/bin chunks, a pool's free-slot fill broken,
# free-list links and tcache keys overwritten; the modified byte ranges.
"""Use-after-free: what a freed chunk shows about writes after its free.

* glibc with a perturb byte (``MALLOC_PERTURB_``/``mallopt(M_PERTURB)``):
  ``free()`` fills the user data of chunks that go to a fastbin or a bin with
  the byte (not the tcache's) over ``size - 2 * SIZE_SZ`` bytes, then writes
  the links (fastbin: ``fd``; bins: ``fd``, ``bk``; large: also the
  ``*_nextsize`` pair).  Every other byte that differs is a write after free.
  The last ``SIZE_SZ`` usable bytes (the next chunk's ``prev_size``) are not
  filled: their value may predate the free, so they are never listed as
  written after free (the evidence shows them, ``unfilled_tail``).
* a pool spec's ``fill.free``: a free slot's payload must hold the byte.
* free-list links and tcache keys (:mod:`~gdbext.forensics.links`).

Ranges are ``{offset, size, field}`` relative to the user address; the
field comes from the ``field_at`` callback (a typed referrer), else from the
chunk header layout.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from ..glibc.freelists import FASTBIN, LARGE, TCACHE
from .chunks import ChunkIndex
from .context import ForensicContext
from .evidence import NO_RECORD, dump, size_class
from .model import ChunkView, Finding, Written
from .sites import alloc_site

__all__ = ["modified_ranges", "glibc_fill_span", "unfilled_tail", "uaf_finding", "find_fill_breaks",
           "name_ranges", "field_extent", "tail_note", "ranges_text", "MODIFIED"]


def modified_ranges(data: bytes, fill: int, word: int, skip: Sequence[Tuple[int, int]] = ()) -> List[Tuple[int, int]]:
    """``(offset, size)`` of the bytes of ``data`` that are not ``fill``.

    Runs in the same ``word``-aligned word are merged (a value that happens to
    hold the fill byte stays one range); ``skip`` ranges are ignored.
    """
    bad = [i for i, b in enumerate(data) if b != fill and not any(s <= i < e for s, e in skip)]
    out: List[Tuple[int, int]] = []
    for i in bad:
        if out:
            start, size = out[-1]
            end = start + size
            if i == end or (i // word == (end - 1) // word):
                out[-1] = (start, i + 1 - start)
                continue
        out.append((i, 1))
    return out


#: Bytes a field's extent is probed over, at most.
_MAX_FIELD = 64


def field_extent(ctx: ForensicContext, chunk: ChunkView, offset: int) -> Optional[Tuple[str, int, int]]:
    """(name, offset, size) of the program's field holding user byte ``offset``, from the typed referrer.

    ``field_at`` names a byte inside a scalar ``name+k``; the field starts
    ``k`` bytes earlier and runs while the following bytes are ``name+1``,
    ``name+2``...
    """
    name = ctx.field_name(chunk.address, offset)
    if not name:
        return None
    base, plus, k = name.rpartition("+") if "+" in name else (name, "", "")
    if plus and not k.isdigit():
        base, plus, k = name, "", ""
    start = offset - int(k) if plus else offset
    if start < 0:
        return None
    size = 1
    while start + size < chunk.usable and size < _MAX_FIELD \
            and ctx.field_name(chunk.address, start + size) == f"{base}+{size}":
        size += 1
    return base, start, size


def name_ranges(ctx: ForensicContext, index: ChunkIndex, chunk: ChunkView,
                ranges: Sequence[Tuple[int, int]], certain: bool = True) -> List[Written]:
    """:class:`Written` entries named by the program's field (typed referrer, with the field's whole
    extent), else by the header layout; a range over several fields is split at their boundaries."""
    out: List[Written] = []
    for off, size in ranges:
        end = off + size
        first = True
        while off < end:
            ext = field_extent(ctx, chunk, off)
            if ext is None:
                if not first:  # the type names nothing here: the bytes stay with the field before them
                    w = out[-1]
                    out[-1] = Written(w.offset, end - w.offset, w.field, certain, w.field_offset, w.field_size)
                    break
                name = ctx.field_name(chunk.address, off) or index.field_name(chunk, chunk.user_address + off)
                out.append(Written(off, end - off, name, certain))
                break
            first = False
            name, fstart, fsize = ext
            stop = min(end, fstart + fsize)
            out.append(Written(off, stop - off, name, certain, fstart, fsize))
            off = stop
    return out


def glibc_fill_span(ctx: ForensicContext, chunk: ChunkView, kind: str) -> Optional[Tuple[int, int]]:
    """User-offset range ``[lo, hi)`` that free_perturb filled and the links left alone."""
    if ctx.heap is None or kind == TCACHE:
        return None
    ps = ctx.pointer_size
    lay = ctx.heap.layout
    hi = chunk.size - 2 * ps  # free_perturb (chunk2mem (p), size - CHUNK_HDR_SZ)
    if kind == FASTBIN:
        lo = ps  # fd only
    elif chunk.size >= lay.min_large_size:
        lo = 4 * ps  # fd, bk, fd_nextsize, bk_nextsize (NULLed or linked)
    else:
        lo = 2 * ps
    return (lo, hi) if hi > lo else None


def unfilled_tail(ctx: ForensicContext, index: ChunkIndex, chunk: ChunkView) -> Optional[Written]:
    """The last usable word of a fastbin chunk (the next chunk's prev_size) when it is not the fill.

    free() does not fill it; its value is the program's last write there,
    before or after the free: an uncertain range.
    """
    if ctx.perturb_byte is None or not chunk.bin or not chunk.bin.startswith("fastbin"):
        return None
    ps = ctx.pointer_size
    off = chunk.size - 2 * ps
    raw = index.read(chunk.user_address + off, ps)
    if len(raw) != ps or all(b == ctx.perturb_byte for b in raw):
        return None
    got = name_ranges(ctx, index, chunk, [(off, ps)], certain=False)
    return got[0]


def tail_note(index: ChunkIndex, chunk: ChunkView, tail: Written) -> Dict[str, object]:
    """Evidence for the unfilled last word: what it holds, and why it is not counted as written after free."""
    return {"offset": tail.offset, "size": tail.size, "field": tail.field,
            "bytes": index.read(chunk.user_address + tail.offset, tail.size).hex(),
            "note": "free() does not fill the last word of a fastbin chunk (it is the next chunk's prev_size): its "
                    "value is the program's last write there, before or after the free, so it is not listed as "
                    "written after free"}


def _stale_headers(ctx: ForensicContext, data: bytes, lo: int, chunk: ChunkView) -> List[Tuple[int, int]]:
    """Ranges (user offsets) holding the header and links of chunks merged into this free chunk."""
    if ctx.heap is None:
        return []
    ps = ctx.pointer_size
    lay = ctx.heap.layout
    order = ctx.order
    out = []
    step = lay.malloc_alignment
    start = lo + (-(lo + 2 * ps) % step)
    for off in range(start, len(data) - 2 * ps + 1, step):
        size_word = int.from_bytes(data[off + ps:off + 2 * ps], order)
        size = size_word & ~7
        if size_word & 2 or size < lay.minsize or size % step or size > chunk.size:
            continue
        if all(b == ctx.perturb_byte for b in data[off:off + 2 * ps]):
            continue
        out.append((off, off + 4 * ps if size < lay.min_large_size else off + 6 * ps))
    return out


#: What precedes the ranges in a use-after-free headline.
MODIFIED = "; modified since the free: "


def ranges_text(written: Sequence[Written]) -> str:
    """``2 bytes at offset 4 (epoch), ...`` for a headline."""
    return ", ".join(f"{w.size} bytes at offset {w.offset}" + (f" ({w.field})" if w.field else "")
                     + ("" if w.certain else " (uncertain: not filled by free())") for w in written)


def uaf_finding(ctx: ForensicContext, index: ChunkIndex, chunk: ChunkView, written: List[Written],
                evidence: Dict[str, object], keys: List[Tuple[str, Optional[int]]],
                address: Optional[int] = None, access: str = "WRITE", reused: bool = False) -> Finding:
    """A use-after-free finding on ``chunk`` with its ranges, headline and hexdump.

    :param reused: the chunk was freed and has been handed out again since.
    """
    certain = [w for w in written if w.certain] or written
    if address is None:
        address = chunk.user_address + certain[0].offset if certain else chunk.user_address
    rel = address - chunk.user_address
    state = "freed, then handed out again by malloc (now in use)" if reused else \
        f"freed ({chunk.bin or chunk.state})"
    ranges = ranges_text(written)
    message = (f"{access} after free at {address:#x}, {rel} bytes inside of the {chunk.usable}-byte region "
               f"[{chunk.user_address:#x}, {chunk.user_address + chunk.usable:#x}) of {chunk.label}, {state}")
    if ranges:
        message += f"{MODIFIED}{ranges}"
    ev = dict(evidence)
    ev.setdefault("chunk_state", chunk.state_text)
    sc = size_class(ctx, chunk)
    if sc:
        ev["size_class"] = sc
    site = None
    if chunk.is_pool and chunk.alloc_sites:
        site = alloc_site(ctx, chunk.alloc_sites[0], f"{chunk.label} header alloc_site (its last owner)")
    elif not chunk.is_pool:
        ev["allocation_record"] = NO_RECORD
    marks = [(chunk.user_address + w.offset, chunk.user_address + w.offset + w.size,
              "written after free" if w.certain else "not filled by free()") for w in written]
    if address is not None and not any(s <= address < e for s, e, _l in marks):
        marks.append((address, address + 1, f"{access.lower()} after free"))
    lo = min([chunk.address] + [s for s, _e, _l in marks])
    hi = max([min(chunk.end, chunk.user_address + 128)] + [e for _s, e, _l in marks])
    ev["hexdump"] = dump(index, lo, hi, marks)
    return Finding("use-after-free", address, chunk, message, allocation_site=site, evidence=ev,
                   written_after_free=list(written), keys=list(keys))


def _glibc_free_chunks(ctx: ForensicContext, index: ChunkIndex) -> List[Tuple[ChunkView, str]]:
    """(view, list kind) of every glibc chunk in a fastbin or a regular bin."""
    if ctx.heap is None or ctx.check is None:
        return []
    fi = ctx.check.index
    mem = ctx.heap.memory
    ps = ctx.pointer_size
    out = []
    for addr, lid in fi.owner.items():
        fl = fi.lists[lid]
        if fl.kind == TCACHE:
            continue
        word = mem.word(addr + ps)
        if word is None:
            continue
        size = word & ~7
        arena = ctx.heap.arena_at(fl.arena) if fl.arena is not None else None
        view = ChunkView(addr, addr + 2 * ps, size, max(size - ps, 0), "free",
                         arena.label if arena is not None else "main_arena", bin=fl.label)
        out.append((view, fl.kind))
    return out


def find_fill_breaks(ctx: ForensicContext, index: Optional[ChunkIndex] = None) -> List[Finding]:
    """Use-after-free findings where a free fill (glibc perturb, pool ``fill.free``) is broken."""
    index = index or ctx.index()
    out: List[Finding] = []
    ps = ctx.pointer_size
    if ctx.perturb_byte is not None:
        for chunk, kind in sorted(_glibc_free_chunks(ctx, index), key=lambda t: t[0].address):
            span = glibc_fill_span(ctx, chunk, kind)
            if span is None or kind == LARGE and chunk.size > (1 << 20):
                continue
            lo, hi = span
            data = index.read(chunk.user_address + lo, hi - lo)
            if len(data) != hi - lo or all(b == ctx.perturb_byte for b in data):
                continue
            skip = [(s - lo, e - lo) for s, e in _stale_headers(ctx, index.read(chunk.user_address, hi), lo, chunk)]
            ranges = [(lo + o, n) for o, n in modified_ranges(data, ctx.perturb_byte, ps, skip)]
            if not ranges:
                continue
            written = name_ranges(ctx, index, chunk, ranges)
            evidence: Dict[str, object] = {
                "fill": (f"glibc perturb byte {ctx.perturb_byte:#04x}: free() filled user bytes {lo}..{hi} of this "
                         f"{kind} chunk (links excepted); the ranges listed differ from it"),
                "modified_bytes": [{"offset": o, "bytes": index.read(chunk.user_address + o, n).hex()}
                                   for o, n in ranges],
            }
            tail = unfilled_tail(ctx, index, chunk)
            if tail is not None:
                evidence["unfilled_tail"] = tail_note(index, chunk, tail)
            out.append(uaf_finding(ctx, index, chunk, written, evidence, [("uaf.perturb", chunk.address)]))
    for report, chunk in index.pool_views():
        fill = report.pool.spec.fill
        if fill is None or fill.free is None or chunk.state != "free" or chunk.usable <= 0:
            continue
        data = index.read(chunk.user_address, chunk.usable)
        if len(data) != chunk.usable or all(b == fill.free for b in data):
            continue
        ranges = modified_ranges(data, fill.free, ps)
        evidence = {
            "fill": f"pool {report.pool.spec.name}: a free slot's payload holds {fill.free:#04x} (spec fill.free)",
            "modified_bytes": [{"offset": o, "bytes": data[o:o + n].hex()} for o, n in ranges],
        }
        out.append(uaf_finding(ctx, index, chunk, name_ranges(ctx, index, chunk, ranges), evidence,
                               [("pool.fill", chunk.address)]))
    return out
