# gdbext/forensics/underflow.py - writes before a buffer's region: its own
# contents continued backwards over its chunk header (a negative index).
"""Heap-buffer underflow.

A cursor that starts before its buffer writes over the buffer's own chunk
header.  When no neighbour's contents run into the damaged header, the
buffer's own elements are tried backwards
(:func:`~gdbext.forensics.continuity.leftward_run`): the structure learnt
from its first elements holds for the damaged bytes before the region.
Reported in ASan's words, ``N bytes to the left of the M-byte region``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional

from .chunks import ChunkIndex
from .context import ForensicContext
from .continuity import leftward_run
from .evidence import NO_RECORD, dump
from .model import Finding

if TYPE_CHECKING:  # the overflow module calls this one
    from .overflow import Damage

__all__ = ["underflow_finding"]

#: Bytes of the region its structure is learnt from, at most.
_RIGHT = 4 << 10


def _bytes(n: int) -> str:
    return f"{n} byte" if n == 1 else f"{n} bytes"


#: Bytes before a region searched for an underflow's first element.
_LEFT = 256


def underflow_finding(ctx: ForensicContext, index: ChunkIndex, dmg: "Damage") -> Optional[Finding]:
    """The victim's own contents, continued backwards over its damaged header: a write before its region.

    ASan's "N bytes to the left of the M-byte region": the elements of the
    buffer's data keep one structure, and the damaged header bytes just
    before the region are earlier elements of it.
    """
    victim = dmg.victim
    start = victim.user_address
    if not dmg.spans or dmg.first >= start:
        return None
    lo = max(start - _LEFT, victim.address - _LEFT)
    data = index.read(lo, start + min(victim.usable, _RIGHT) - lo)
    run = leftward_run(data, lo, start)
    if run is None or run.start > dmg.first:
        return None
    before = start - run.start
    # a header the walk could not take spans to the next one; the region runs to that one's prev_size
    size = max(victim.usable, victim.end + ctx.pointer_size - start) if victim.state == "corrupt" else victim.usable
    names = ", ".join(dmg.names()) or "header"
    message = (f"{_bytes(before)} written to the left of the {size}-byte region [{start:#x}, {start + size:#x}) "
               f"of {victim.label} (usable; glibc records no requested size), over its own chunk header ({names})")
    continuity = run.evidence()
    continuity["note"] = (f"the buffer's own elements continue backwards from {start:#x} to {run.start:#x}: a "
                          "cursor or index that started before the buffer")
    evidence: Dict[str, object] = {
        "direction": "left",
        "damaged": dmg.fields,
        "continuity": continuity,
        "region": (f"usable size {size} (malloc_usable_size): glibc records no requested size"
                   if not victim.is_pool else f"the {victim.heap[5:]} slot's region"),
        "bytes_past_end_is_lower_bound": False,
    }
    if dmg.aborts:
        evidence["glibc_aborts"] = list(dict.fromkeys(dmg.aborts))
    if not victim.is_pool:
        evidence["allocation_record"] = NO_RECORD
    evidence["hexdump"] = dump(index, run.start - 16, start + 32,
                               [(run.start, start, f"{_bytes(before)} before the region")]
                               + [(a, a + s, f"{victim.label} {n}") for a, s, n in dmg.spans])
    return Finding("heap-buffer-overflow", run.start, victim, message, source=victim, bytes_past_end=before,
                   direction="left", evidence=evidence, keys=list(dmg.keys))
