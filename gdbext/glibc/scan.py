# gdbext/glibc/scan.py - per-segment scanning primitives shared by the walker
# and the checks: header plausibility, fenceposts, re-synchronisation.
"""Scanning one heap segment's buffer.

A :class:`SegmentScan` holds a segment's word view and constants in word
units, so the tight loops of :mod:`~gdbext.glibc.walk` and
:mod:`~gdbext.glibc.checks` can stay free of attribute lookups.  When a loop
meets a header it cannot take (misaligned or too small size, wrong flag bits,
a chunk running past the segment) it hands the position to :meth:`classify`,
which recognises the fenceposts ending a non-main heap or else
re-synchronises: it scans forward in MALLOC_ALIGNMENT steps (bounded to the
segment and to ``Limits.max_resync_bytes``) for a plausible header confirmed
by a plausible next header (or by landing on top / a fencepost, or by being a
known free-list node).  Sizes read from the target never size a read: every
access stays inside the buffer read once per segment.
"""
from __future__ import annotations

from typing import Any, Container, NamedTuple, Optional, Tuple

from .layouts import NON_MAIN_ARENA, Layout
from .segments import HeapSegment

__all__ = ["SegmentScan", "Anomaly", "END", "CORRUPT", "BREAK"]

END = "end"
CORRUPT = "corrupt"
_PAGE = 4096
#: glibc's two fenceposts inside the main heap: another sbrk() user moved the break, and
#: sysmalloc closed the old stretch (freeing the old top) and went on after the foreign bytes
BREAK = "break"


class Anomaly(NamedTuple):
    """What a bad position turned out to be.

    :ivar kind: :data:`END` (fenceposts or NULL size ending a heap), :data:`BREAK`
        (fenceposts closing a stretch of the main heap; chunks go on at ``resume``)
        or :data:`CORRUPT`.
    :ivar resume: word index where walking continues (``stop`` when the rest is lost).
    :ivar fenceposts: fencepost headers seen (``END`` only).
    :ivar reason: one line.
    :ivar code: what is wrong with the header: ``"minsize"``, ``"alignment"``,
        ``"flags.mmapped"``, ``"flags.arena"``, ``"bounds"``, ``"fencepost"``.
    """

    kind: str
    resume: int
    fenceposts: int
    reason: str
    code: str = ""


class SegmentScan:
    """One segment's buffer, in word units.

    :param layout: the target's layout.
    :param segment: the segment.
    :param entry: ``(base, end, buffer, words)`` from :meth:`HeapMemory.buffer`.
    :param main: the segment belongs to main_arena (NON_MAIN_ARENA must be clear).
    :param anchors: addresses of known free-list nodes (membership test only).
    :param max_resync_bytes: bound of one forward scan.
    """

    def __init__(self, layout: Layout, segment: HeapSegment, entry: Tuple[int, int, Any, Any], main: bool,
                 anchors: Optional[Container[int]] = None, max_resync_bytes: int = 256 << 20) -> None:
        self.layout = layout
        self.segment = segment
        self.base, self.end, self.buf, self.words = entry
        ps = layout.pointer_size
        self.ps = ps
        self.sh = 3 if ps == 8 else 2
        self.nwords = len(self.words)
        self.start = (segment.start - self.base) >> self.sh
        self.top = None if segment.top is None else (segment.top - self.base) >> self.sh
        self.stop = self.top if self.top is not None else (min(segment.end, self.end) - self.base) >> self.sh
        #: flag bits that must match ``expect``: IS_MMAPPED and the size alignment
        #: bits; NON_MAIN_ARENA too in main_arena.  (Non-main arenas set it on
        #: in-use chunks only: bin chunks, top and fenceposts have it clear.)
        self.mask = (layout.align_mask | 7) & ~1 & ~(0 if main else NON_MAIN_ARENA)
        self.expect = 0
        #: NON_MAIN_ARENA as in-use chunks of this arena carry it
        self.abit = 0 if main else NON_MAIN_ARENA
        self.minsize = layout.minsize
        self.step = max(layout.malloc_alignment >> self.sh, 1)
        if self.top is None and self.stop > self.start:
            # walk positions are start + k * step: an end off that grid (a heap_info.size
            # not a multiple of MALLOC_ALIGNMENT) would let one land on the last word
            self.stop -= (self.stop - self.start) % self.step
        self.anchors = anchors if anchors is not None else ()
        self.max_resync_words = max_resync_bytes >> self.sh
        self.main = main

    def addr(self, i: int) -> int:
        return self.base + (i << self.sh)

    def index(self, address: int) -> int:
        return (address - self.base) >> self.sh

    def size_word(self, i: int) -> Optional[int]:
        if 0 <= i and i + 1 < self.nwords:
            value: int = self.words[i + 1]
            return value
        return None

    def next_of(self, i: int) -> int:
        """Word index of the chunk after the plausible chunk at ``i``, or -1."""
        if i < 0 or i + 1 >= self.nwords:
            return -1
        w: int = self.words[i + 1]
        sz = w & ~7
        if w & self.mask != self.expect or sz < self.minsize:
            return -1
        j: int = i + (sz >> self.sh)
        if j > self.stop:
            return -1
        return j

    def fenceposts(self, i: int) -> int:
        """Fencepost headers starting at ``i`` (0 when there are none).

        A non-main heap ends with ``[CHUNK_HDR_SZ | PREV_INUSE][0 | PREV_INUSE]``
        (or one short chunk then the NULL header); a non-contiguous main heap
        with two ``2 * SIZE_SZ | PREV_INUSE`` headers.
        """
        w = self.size_word(i)
        if w is None:
            return 0
        hdr = 2 * self.ps
        sz = w & ~7
        if sz == 0 and w & ~1 == 0:
            return 1
        if sz == hdr and w & 6 == 0:
            w2 = self.size_word(i + (hdr >> self.sh))
            if w2 is not None and (w2 & ~1 == 0 or w2 & ~1 == hdr):
                return 2
        return 0

    def sbrk_fenceposts(self, i: int) -> bool:
        """The two fenceposts sysmalloc writes when the break moved under it (a foreign
        sbrk() user): ``CHUNK_HDR_SZ`` headers (the second with PREV_INUSE; the first
        loses it when the old top before them was freed) ending the stretch at a page
        boundary, where the old break was."""
        hdr = 2 * self.ps
        w1 = self.size_word(i)
        w2 = self.size_word(i + (hdr >> self.sh))
        return (w1 is not None and w2 is not None and w1 & ~1 == hdr and w2 == hdr | 1
                and (self.addr(i) + 2 * hdr) % _PAGE == 0)

    def end_fenceposts(self, i: int) -> int:
        """:meth:`fenceposts` at ``i`` when they can be the ones ending this heap, else 0.

        sysmalloc puts them within ``MINSIZE + MALLOC_ALIGN_MASK`` bytes of the
        heap's end (the old top keeps ``(size - MINSIZE) & ~MALLOC_ALIGN_MASK``);
        a NULL or ``CHUNK_HDR_SZ`` header further from the end is a smashed header.
        """
        if self.top is not None or (self.stop - i) << self.sh > self.layout.minsize + self.layout.align_mask:
            return 0
        return self.fenceposts(i)

    def confirmed(self, i: int) -> bool:
        """A plausible header at ``i`` whose next neighbours are plausible too."""
        if self.addr(i) in self.anchors and self.next_of(i) >= 0:
            return True
        j = self.next_of(i)
        if j < 0:
            return False
        for _depth in range(2):
            if j == self.stop or self.end_fenceposts(j) or self.addr(j) in self.anchors:
                return True
            nxt = self.next_of(j)
            if nxt < 0:
                return False
            j = nxt
        return True

    def resync(self, i: int, inclusive: bool = False) -> int:
        """The first confirmed header after ``i`` (at ``i`` when ``inclusive``), else ``stop``."""
        j = i if inclusive else i + self.step
        # keep chunk alignment relative to the segment start
        j += (self.start - j) % self.step
        limit = min(self.stop, i + self.max_resync_words)
        while j < limit:
            if self.confirmed(j) or self.end_fenceposts(j):
                return j
            j += self.step
        return self.stop

    def classify(self, i: int) -> Anomaly:
        """What the header at ``i`` (where a tight loop stopped) is."""
        fp = self.end_fenceposts(i)
        if fp:
            return Anomaly(END, self.stop, fp, "fencepost", "fencepost")
        w = self.size_word(i)
        if w is None:
            return Anomaly(END, self.stop, 0, "end of buffer", "bounds")
        sz = w & ~7
        if self.top is not None and self.main and self.sbrk_fenceposts(i):
            after = i + 2 * ((2 * self.ps) >> self.sh)
            # the foreign bytes end where the new stretch's first chunk is (or top)
            resume = self.resync(after, inclusive=True)
            return Anomaly(BREAK, resume, 2, "fenceposts: another sbrk() user moved the break", "fencepost")
        if sz < self.minsize:
            reason, code = f"size {sz:#x} below MINSIZE {self.minsize:#x}", "minsize"
        elif sz & self.layout.align_mask:
            reason, code = f"size {sz:#x} is not a multiple of {self.layout.malloc_alignment}", "alignment"
        elif w & 2:
            reason, code = "IS_MMAPPED set on a chunk inside an arena heap", "flags.mmapped"
        elif w & self.mask != self.expect:
            reason, code = "NON_MAIN_ARENA set on a main_arena chunk", "flags.arena"
        else:
            reason, code = f"size {sz:#x} runs past the end of the heap", "bounds"
        return Anomaly(CORRUPT, self.resync(i), 0, reason, code)
