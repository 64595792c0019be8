# gdbext/forensics/provenance.py - value provenance: where the bytes of a bad
# value (a free-list head or link, a chunk field) came from, when the place
# they were first written has been rewritten since.
"""Value provenance.

A bad value the analysis meets -- a pool free-list head outside the pool, a
glibc bin link that does not decode -- may have been *moved* since it was
written: the allocator popped the damaged chunk and copied its link into the
head, then rewrote the chunk's header.  The bytes are still the overflow's,
only stored elsewhere.  :func:`pool_link_origin` (pools) and
:func:`glibc_head_origin` (tcache and fastbin heads) put them back where they
came from:

* the candidate is an in-use slot (it was popped: its link is what the head
  holds now) whose previous slot's contents run on, unbroken, to the very end
  of that slot (:func:`~gdbext.forensics.continuity.find_run`: text without a
  terminator, a binary structure, a fill);
* placed at the candidate's link field, the value's bytes must continue that
  run (:func:`continuation`): more text (up to and including its NUL), the
  next elements of the learnt binary structure, or the same fill byte.

What is recorded and what is inferred: the value and the source's run are
read from the core; the value's former address (the popped slot's link
field) is inferred from the allocator's order (a pop copies the head's link
into the head) and the continuity.  The end of the overflow is exact when
the value holds the string's NUL; otherwise it is a lower bound.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..glibc import Violation
from ..pools import PoolReport
from ..textutil import is_printable_byte
from .chunks import ChunkIndex
from .context import ForensicContext
from .continuity import Run, element_matches, find_run
from .model import ChunkView

__all__ = ["Origin", "continuation", "pool_link_origin", "glibc_head_origin", "glibc_moved_links", "BIN_HEAD"]

#: Bytes read before a slot's end when looking for the start of its run.
_HEAD = 4 << 10


@dataclass(frozen=True)
class Origin:
    """Where a moved bad value came from.

    :ivar source: the chunk whose contents ran over.
    :ivar victim: the chunk whose field held the value (handed out again since).
    :ivar run: the source's run, up to where later writes cut it.
    :ivar field_address: the field the value was loaded from.
    :ivar field_size: its size.
    :ivar field: its name.
    :ivar end: the end of the overflow (exclusive).
    :ivar exact: True when the value holds the run's own end (a string's NUL).
    :ivar note: how the value was traced, one sentence.
    :ivar mangled: the value is a safe-linked link revealed by malloc (the field held it protected).
    """

    source: ChunkView
    victim: ChunkView
    run: Run
    field_address: int
    field_size: int
    field: str
    end: int
    exact: bool
    note: str
    mangled: bool = False


def continuation(run: Run, address: int, raw: bytes) -> Optional[Tuple[int, bool]]:
    """(end, exact) when ``raw``, stored at ``address``, continues ``run``; else None.

    * text: printable bytes, then optionally the NUL (exact end: just past it);
    * binary: whole elements keeping the run's structure at their index;
    * fill: the run's byte throughout.
    """
    if not raw or address < run.end:
        return None
    if run.kind == "text":
        k = 0
        while k < len(raw) and is_printable_byte(raw[k]):
            k += 1
        if k == 0 or (k < len(raw) and raw[k] != 0):
            return None
        if k < len(raw):
            return address + k + 1, True
        return address + k, False
    if run.kind == "fill":
        return (address + len(raw), False) if all(b == run.data[0] for b in raw) else None
    if run.kind == "binary" and run.element_size:
        size = run.element_size
        if (address - run.start) % size or len(raw) % size:
            return None
        first = (address - run.start) // size
        for k in range(0, len(raw), size):
            if not element_matches(raw[k:k + size], run.fields, first + k // size):
                return None
        return address + len(raw), False
    return None


def _run_reaching(index: ChunkIndex, prev: ChunkView, victim: int, until: int) -> Optional[Run]:
    """The run in ``prev`` crossing its region's end that reaches ``victim`` and stops before ``until``.

    A text run must not be terminated there: its NUL would end the string before the moved bytes.
    """
    boundary = prev.region_end
    lo = max(prev.user_address, boundary - _HEAD)
    data = index.read(lo, max(until - lo, 0))
    run = find_run(data, lo, boundary)
    if run is None or run.start < prev.user_address or not victim <= run.end <= until \
            or (run.kind == "text" and run.nul_terminated):
        return None
    return run


def _origin(index: ChunkIndex, victim: ChunkView, faddr: int, raw: bytes, field: str,
            note: str) -> Optional[Origin]:
    """The origin when the chunk before ``victim`` ran over and ``raw`` at ``faddr`` continues its run."""
    prev, _nxt = index.neighbours(victim)
    if prev is None:
        return None
    run = _run_reaching(index, prev, victim.address, faddr)
    if run is None:
        return None
    got = continuation(run, faddr, raw)
    if got is None:
        return None
    end, exact = got
    note = f"{note}, and that value placed there continues the {run.kind} that runs unbroken from {prev.label} " \
           f"into {victim.label}"
    return Origin(prev, victim, run, faddr, len(raw), field, end, exact, note)


def pool_link_origin(ctx: ForensicContext, index: ChunkIndex, report: PoolReport, value: int,
                     held_in: str) -> Optional[Origin]:
    """The slot whose free-list link ``value`` was, and the slot whose contents wrote it.

    :param value: the bad link (as held now).
    :param held_in: where it is held now (for the note).
    """
    pool = report.pool
    spec = pool.spec
    if spec.free_list is None:
        return None
    lf = pool.header.fields[spec.free_list.link]
    raw = value.to_bytes(lf.size, ctx.order)
    found: List[Origin] = []
    for c in report.chunks:
        if c.state != "in-use":
            continue
        victim = index.pool_view(report, c)
        faddr = c.address + spec.header_offset + lf.offset
        link = spec.free_list.link
        got = _origin(index, victim, faddr, raw, link,
                      f"{held_in} holds {value:#x}; {victim.label} is in use again (popped: the allocator copied its "
                      f"{link} into the head, then rewrote its header), so the value was its {link} at {faddr:#x}")
        if got is not None:
            found.append(got)
    return found[0] if len(found) == 1 else None


def glibc_head_origin(ctx: ForensicContext, index: ChunkIndex, head: int, bin_label: str, chunk_size: int,
                      candidates: Sequence[ChunkView]) -> Optional[Origin]:
    """The chunk a garbage tcache/fastbin head was revealed from, when no free chunk holds the link any more.

    malloc took the chunk at the head and made its link the new head
    (``REVEAL_PTR`` since 2.32); the chunk is in use again and its new owner
    overwrote the link.  For each candidate (an in-use chunk of the bin's
    size, or a chunk whose size field is itself damaged), the link is
    re-protected with the candidate's link address and must continue the run
    of the chunk before it.

    :param head: the bin head's value.
    :param candidates: chunks that may have been popped from the bin.
    """
    heap = ctx.heap
    if heap is None or head == 0:
        return None
    ps = ctx.pointer_size
    mask = (1 << (8 * ps)) - 1
    found: List[Origin] = []
    for victim in candidates:
        if victim.state not in ("in-use", "corrupt") or (victim.state == "in-use" and victim.size != chunk_size):
            continue
        faddr = victim.address + 2 * ps
        # the layout's way first; the other when the release is only inferred (the run decides, not a guess)
        for mangled in (heap.layout.safe_linking, not heap.layout.safe_linking):
            stored = (head ^ (faddr >> 12)) & mask if mangled else head
            how = "after undoing safe-linking for that address" if mangled else "as stored: no safe-linking"
            got = _origin(index, victim, faddr, stored.to_bytes(ps, ctx.order),
                          "next" if bin_label.startswith("tcache") else "fd",
                          f"{bin_label} head {head:#x} is what malloc made of the link of the chunk it handed out "
                          f"last; {victim.label} is in use again and its link at {faddr:#x} would have held "
                          f"{stored:#x} ({how})")
            if got is not None:
                found.append(dataclasses.replace(got, mangled=mangled))
                break
    return found[0] if len(found) == 1 else None


#: A bin head field as the heap checks name it: tcache ``entries[i]``, ``fastbinsY[i]``.
BIN_HEAD = re.compile(r"^(entries|fastbinsY)\[(\d+)\]$")


def glibc_moved_links(ctx: ForensicContext, index: ChunkIndex,
                      damaged: Iterable[int]) -> Dict[int, Tuple[Origin, Violation]]:
    """Garbage bin heads traced to the chunk they were revealed from, by victim chunk address.

    Only heads no free chunk's link still reveals to (those are
    use-after-free writes into a chunk still in its bin, see
    :mod:`~gdbext.forensics.links`).

    :param damaged: chunks whose header the checks found damaged (popped chunks may be among them).
    """
    from .links import revealing_chunks  # local: links imports the uaf helpers this module must not need

    out: Dict[int, Tuple[Origin, Violation]] = {}
    heap = ctx.heap
    if ctx.check is None or heap is None:
        return out
    lay = heap.layout
    ps = ctx.pointer_size
    views: Optional[List[ChunkView]] = None
    for v in ctx.check.violations:
        m = BIN_HEAD.match(v.field or "")
        if m is None or v.severity != "error" or len(v.raw) != ps:
            continue
        head = int.from_bytes(v.raw, ctx.order)
        # without safe-linking the head's own word holds the same value: it reveals nothing
        if any(c + 2 * ps != v.field_address for c in revealing_chunks(ctx, head, 2 * ps)):
            continue
        if m.group(1) == "entries":
            csize, label = lay.tidx2csize(int(m.group(2))), f"tcache[{m.group(2)}]"
        else:
            csize, label = lay.fastbin_size(int(m.group(2))), f"fastbin[{m.group(2)}]"
        if views is None:
            views = [c for c in (index.glibc_chunk(a) for a in damaged) if c is not None]
            for seg in heap.segments:
                views += [c for c in index.glibc_views(seg.start, seg.end) if c.state == "in-use"]
        origin = glibc_head_origin(ctx, index, head, label, csize, views)
        if origin is not None and origin.victim.address not in out:
            out[origin.victim.address] = (origin, v)
    return out
