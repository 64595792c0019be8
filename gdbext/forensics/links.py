# gdbext/forensics/links.py - writes after free seen in free-list metadata:
# tcache keys that are not tcache_key, safe-linked next/fd links that do not
# decode, and a bin head that malloc revealed from a chunk it handed out since.
"""Use-after-free from free-list links and tcache keys.

The tcache is not filled on free; what marks a write into a tcache chunk is
its two words: ``next`` (safe-linked since 2.32: stored as
``(&next >> 12) ^ ptr``, so the last node holds exactly ``&next >> 12``)
and ``key`` (``tcache_key`` since 2.34, the tcache's address before).  A
key that is not the key, or a link that decodes to a misaligned or foreign
pointer, was written after the free.

When malloc has already handed the chunk out again (``tcache_get``: the bin
head becomes ``REVEAL_PTR(e->next)`` and ``e->key = 0``), the garbage is in
the bin head; the chunk it came from is found by searching the heap for the
stored link that reveals to that head.  The same holds for fastbin ``fd``.
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

from ..glibc import Violation
from .chunks import ChunkIndex
from .context import ForensicContext
from .evidence import field_bytes
from .model import ChunkView, Finding, Written
from .uaf import name_ranges, uaf_finding

__all__ = ["find_link_writes", "revealing_chunks", "exact_link_write", "LINK_CHECKS"]

#: checks whose violation names a link (or key) written after free.
LINK_CHECKS = frozenset({"tcache.key", "tcache.unaligned", "fastbin.unaligned", "list.outside_heap",
                         "list.fd_bk", "bin.unaligned", "list.nextsize"})

_HEAD = re.compile(r"^(entries|fastbinsY)\[(\d+)\]$")
_PAGE = 4096


def _differing(a: bytes, b: bytes) -> Optional[Tuple[int, int]]:
    """(first, size) of the span of differing bytes, or None when equal."""
    diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    if not diff:
        return None
    return diff[0], diff[-1] + 1 - diff[0]


def revealing_chunks(ctx: ForensicContext, head: int, link_offset: int) -> List[int]:
    """Chunk addresses whose link at ``chunk + link_offset`` reveals to ``head`` (PROTECT_PTR undone).

    Searched in the heap segment buffers one page at a time (the mangling
    depends on the page of the link), so a garbage bin head can be traced to
    the chunk malloc took it from.
    """
    if ctx.heap is None or head == 0:
        return []
    lay = ctx.heap.layout
    ps = lay.pointer_size
    order = ctx.order
    mask = (1 << (8 * ps)) - 1
    out = []
    for seg in ctx.heap.segments:
        entry = ctx.heap.memory.buffer(seg)
        if entry is None:
            continue
        base, end, buf = entry[0], entry[1], entry[2]
        raw = bytes(buf)
        pages = range(base - base % _PAGE, end, _PAGE) if lay.safe_linking else [None]
        for page in pages:
            if page is None:
                lo, hi, stored = 0, len(raw), head
            else:
                lo, hi = max(page - base, 0), min(page + _PAGE - base, len(raw))
                stored = (head ^ (page >> 12)) & mask
            needle = stored.to_bytes(ps, order)
            pos = raw.find(needle, lo, hi)
            while pos >= 0:
                link = base + pos
                chunk = link - link_offset
                if link % ps == 0 and lay.aligned_ok(chunk) and chunk >= seg.start:
                    out.append(chunk)
                pos = raw.find(needle, pos + 1, hi)
    return sorted(set(out))


def _decode(ctx: ForensicContext, link_addr: int, raw: int) -> int:
    if ctx.heap is not None and ctx.heap.layout.safe_linking:
        return raw ^ (link_addr >> 12)
    return raw


def exact_link_write(ctx: ForensicContext, index: ChunkIndex, chunk: ChunkView,
                     tcache: bool) -> Optional[Tuple[int, int, Dict[str, object]]]:
    """(offset, size, evidence) of the bytes of a safe-linked link written after the free, when provable.

    Decode, don't guess: the link glibc stored is ``(&link >> 12) ^ next``
    (``next`` itself before 2.32),
    ``next`` a chunk of the same size (the node that followed in the list,
    now lost from it) or NULL.  When exactly one such value agrees with the
    stored link in its low half, the program wrote only the bytes that
    differ from it (a 4-byte field over the high half of the link).
    """
    heap = ctx.heap
    if heap is None:
        return None
    mangle = heap.layout.safe_linking  # before 2.32 the link is stored as it is
    ps, order = ctx.pointer_size, ctx.order
    faddr = chunk.user_address
    raw = index.read(faddr, ps)
    if len(raw) != ps:
        return None
    half = ps // 2
    low = slice(0, half) if order == "little" else slice(half, ps)
    targets = [0]
    for seg in heap.segments:
        targets += [(v.user_address if tcache else v.address) for v in index.glibc_views(seg.start, seg.end)
                    if v.size == chunk.size and v.address != chunk.address]
    found = []
    for t in targets:
        want = (((faddr >> 12) ^ t) if mangle else t).to_bytes(ps, order)
        if want != raw and want[low] == raw[low]:
            found.append((t, want))
    if len(found) != 1:
        return None
    target, want = found[0]
    diff = [i for i in range(ps) if raw[i] != want[i]]
    ev: Dict[str, object] = {
        "stored": raw.hex(), "expected": want.hex(),
        "decodes_to": f"{target:#x}",
        "why": (f"glibc stored {'(&link >> 12) ^ ' if mangle else ''}{target:#x} = {int.from_bytes(want, order):#x} "
                f"(the link to "
                f"{'the end of the list' if target == 0 else f'the chunk at {target:#x}'}); bytes "
                f"{diff[0]}..{diff[-1] + 1} of the link differ from it and the rest still match, so only those "
                "bytes were written"),
        "allocator_field": f"{'next (tcache link)' if tcache else 'fd (fastbin link)'}"
                           f"{', safe-linked' if mangle else ''}, bytes 0..{ps}",
    }
    return diff[0], diff[-1] + 1 - diff[0], ev


def _key_written(ctx: ForensicContext, index: ChunkIndex, chunk: ChunkView) -> Optional[Tuple[int, int, str]]:
    """(offset, size, note) of key bytes that differ from the expected key, for a chunk still in a tcache."""
    heap = ctx.heap
    if heap is None or not heap.layout.has_tcache_key:
        return None
    ps = ctx.pointer_size
    raw = index.read(chunk.user_address + ps, ps)
    expect: Optional[int] = heap.tcache_key
    if not heap.layout.random_tcache_key:
        tc = [t.address for t in heap.tcaches]
        got = int.from_bytes(raw, ctx.order)
        expect = got if got in tc else (tc[0] if len(tc) == 1 else None)
    if expect is None:
        return None
    want = expect.to_bytes(ps, ctx.order)
    span = _differing(raw, want)
    if span is None:
        return None
    return ps + span[0], span[1], f"key {raw[::-1].hex() if ctx.order == 'little' else raw.hex()} " \
                                  f"is not {expect:#x} ({heap.tcache_key_how})"


def _link_ok(ctx: ForensicContext, index: ChunkIndex, chunk: ChunkView) -> Tuple[bool, str]:
    """Does the first user word of a free tcache/fastbin chunk decode to a plausible link?"""
    ps = ctx.pointer_size
    link_addr = chunk.user_address
    raw_b = index.read(link_addr, ps)
    if len(raw_b) != ps:
        return True, ""
    raw = int.from_bytes(raw_b, ctx.order)
    ptr = _decode(ctx, link_addr, raw)
    if ptr == 0:
        return True, "the link ends the list"
    lay = ctx.heap.layout if ctx.heap is not None else None
    if lay is not None and ptr & lay.align_mask:
        return False, f"the link decodes to {ptr:#x}, which is not {lay.malloc_alignment}-byte aligned"
    if ctx.heap is not None and ctx.heap.memory.segment_of(ptr) is None:
        return False, f"the link decodes to {ptr:#x}, outside every heap"
    return True, f"the link decodes to {ptr:#x}"


def _head_victim(ctx: ForensicContext, index: ChunkIndex, v: Violation, finds: Dict[int, Finding]) -> bool:
    """A bin head (``entries[i]``/``fastbinsY[i]``) holding garbage: trace it to the chunk it was revealed from."""
    m = _HEAD.match(v.field)
    if m is None or ctx.heap is None or not v.raw:
        return False
    head = int.from_bytes(v.raw, ctx.order)
    ps = ctx.pointer_size
    lay = ctx.heap.layout
    if m.group(1) == "entries":  # tcache: entries[] hold user pointers; next is at the user address
        csize = lay.tidx2csize(int(m.group(2)))
        bin_label = f"tcache[{m.group(2)}]"
    else:  # fastbinsY[] hold chunk pointers; fd at chunk + 2 * SIZE_SZ
        csize = lay.fastbin_size(int(m.group(2)))
        bin_label = f"fastbin[{m.group(2)}]"
    found = []
    for c in revealing_chunks(ctx, head, 2 * ps):
        view = index.glibc_chunk(c)
        if view is not None and view.size == csize:
            found.append(view)
    if len(found) != 1:
        return False
    chunk = found[0]
    raw = index.read(chunk.user_address, 2 * ps)
    key_now = int.from_bytes(raw[ps:], ctx.order)
    name = ctx.field_name(chunk.address, 0) or (
        "next (tcache link)" if m.group(1) == "entries" else "fd (fastbin link)")
    written = [Written(0, ps, name)]
    evidence: Dict[str, object] = {
        "bin_head": field_bytes(ctx, v.field, v.field_address, v.raw, check=v.check, glibc_abort=v.abort,
                                explanation=v.explanation),
        "revealed_from": (f"{bin_label} head {head:#x} is the next link stored in {chunk.label} "
                          f"({int.from_bytes(raw[:ps], ctx.order):#x} at {chunk.user_address:#x}) after "
                          "safe-linking decode: malloc took that chunk from the bin and made its link the new head, "
                          "so the link had been overwritten while the chunk was free"),
    }
    if m.group(1) == "entries" and lay.has_tcache_key:
        evidence["key"] = (f"the key word now holds {key_now:#x}: tcache_get cleared it (e->key = 0) when it "
                           "handed the chunk out, so whether bytes "
                           f"{ps}..{2 * ps} were also written after the free cannot be told")
    f = uaf_finding(ctx, index, chunk, written, evidence, [(v.check, v.chunk)], reused=chunk.state != "free")
    finds[chunk.address] = f
    return True


def _node_victim(ctx: ForensicContext, index: ChunkIndex, v: Violation, finds: Dict[int, Finding]) -> bool:
    """A free chunk whose own link or key is wrong."""
    ps = ctx.pointer_size
    if v.chunk is None:
        return False
    chunk = index.glibc_chunk(v.chunk)
    if chunk is None or chunk.state != "free":
        return False
    ranges: List[Tuple[int, int]] = []
    notes: Dict[str, object] = {}
    is_tcache = bool(chunk.bin and chunk.bin.startswith("tcache"))
    if v.check == "tcache.key" or is_tcache:
        ok, why = _link_ok(ctx, index, chunk)
        notes["next"] = why
        if not ok:
            exact = exact_link_write(ctx, index, chunk, tcache=True)
            ranges.append((exact[0], exact[1]) if exact is not None else (0, ps))
            if exact is not None:
                notes["link"] = exact[2]
        key = _key_written(ctx, index, chunk)
        if key is not None:
            ranges.append((key[0], key[1]))
            notes["key"] = key[2]
        elif ctx.heap is not None and ctx.heap.layout.has_tcache_key:
            notes["key"] = "the key is intact"
    else:
        offsets = {"fd": 0, "bk": ps, "fd_nextsize": 2 * ps, "bk_nextsize": 3 * ps}
        off = offsets.get(v.field)
        if off is None:
            return False
        exact = exact_link_write(ctx, index, chunk, tcache=False) if off == 0 and chunk.bin and \
            chunk.bin.startswith("fastbin") else None
        ranges.append((exact[0], exact[1]) if exact is not None else (off, ps))
        notes["link"] = dict(exact[2], check=v.explanation) if exact is not None else v.explanation
    if not ranges:
        return False
    prev = finds.get(chunk.address)
    written = name_ranges(ctx, index, chunk, sorted(set(ranges)))
    evidence: Dict[str, object] = {"check": {"check": v.check, "glibc_abort": v.abort, "explanation": v.explanation}}
    evidence.update(notes)
    if prev is not None:
        known = {(w.offset, w.size) for w in prev.written_after_free}
        prev.written_after_free.extend(w for w in written if (w.offset, w.size) not in known)
        prev.keys.append((v.check, v.chunk))
        return True
    finds[chunk.address] = uaf_finding(ctx, index, chunk, written, evidence, [(v.check, v.chunk)])
    return True


def find_link_writes(ctx: ForensicContext, index: Optional[ChunkIndex] = None) -> List[Finding]:
    """Use-after-free findings from free-list links, bin heads and tcache keys."""
    index = index or ctx.index()
    if ctx.check is None:
        return []
    finds: Dict[int, Finding] = {}
    for v in ctx.check.violations:
        if v.check not in LINK_CHECKS or v.severity != "error":
            continue
        if _HEAD.match(v.field or ""):
            _head_victim(ctx, index, v, finds)
        elif v.field in ("next", "fd") and v.chunk is not None and v.check != "list.fd_bk":
            # the link of v.chunk (the node before the bad one) is bad
            _node_victim(ctx, index, Violation(v.check, v.abort, v.chunk, "fd" if v.field == "fd" else "next",
                                               v.field_address, v.raw, v.explanation, v.arena), finds)
        else:
            _node_victim(ctx, index, v, finds)
    orphans = [v for v in ctx.check.violations if v.check == "tcache.stale_key"]
    if orphans:
        for f in finds.values():
            if f.chunk is not None and "revealed_from" in f.evidence:
                f.evidence["orphaned"] = [
                    f"{v.chunk:#x} still carries the tcache key but is in no bin: it followed the overwritten link "
                    "in the list and was lost when the head was corrupted" for v in orphans if v.chunk is not None]
                f.keys.extend((v.check, v.chunk) for v in orphans)
    return list(finds.values())
