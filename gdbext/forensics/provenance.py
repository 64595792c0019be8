# gdbext/forensics/provenance.py - value provenance: where the bytes of a bad
# value (a free-list head or link, a chunk field) came from, when the place
# they were first written has been rewritten since.
"""Value provenance.

A bad value the analysis meets -- a pool free-list head outside the pool, a
glibc bin link that does not decode -- may have been *moved* since it was
written: the allocator popped the damaged chunk and copied its link into the
head, then rewrote the chunk's header.  The bytes are still the overflow's,
only stored elsewhere.  :func:`pool_link_origin` puts them back where they
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

from dataclasses import dataclass
from typing import List, Optional, Tuple

from ..pools import PoolReport
from ..textutil import is_printable_byte
from .chunks import ChunkIndex
from .context import ForensicContext
from .continuity import Run, element_matches, find_run
from .model import ChunkView

__all__ = ["Origin", "continuation", "pool_link_origin"]

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


def _run_to_end(index: ChunkIndex, prev: ChunkView) -> Optional[Run]:
    """The run in ``prev`` crossing its region's end and reaching the end of the slot, unterminated."""
    boundary = prev.region_end
    lo = max(prev.user_address, boundary - _HEAD)
    data = index.read(lo, max(prev.end - lo, 0))
    run = find_run(data, lo, boundary)
    if run is None or run.start < prev.user_address or run.end != prev.end:
        return None
    return run


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
        prev, _nxt = index.pool_neighbours(victim)
        if prev is None:
            continue
        run = _run_to_end(index, prev)
        if run is None:
            continue
        faddr = c.address + spec.header_offset + lf.offset
        got = continuation(run, faddr, raw)
        if got is None:
            continue
        end, exact = got
        note = (f"{held_in} holds {value:#x}; {victim.label} is in use again (popped: the allocator copied its "
                f"{spec.free_list.link} into the head, then rewrote its header), and that value placed at its "
                f"{spec.free_list.link} ({faddr:#x}) continues the {run.kind} that runs unbroken to the end of "
                f"{prev.label}")
        found.append(Origin(prev, victim, run, faddr, lf.size, spec.free_list.link, end, exact, note))
    return found[0] if len(found) == 1 else None
