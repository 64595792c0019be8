# gdbext/glibc/segments.py - heap segments and the bulk-read memory every glibc
# walker reads through: one read_buffer per segment, words by index.
"""Heap segments and their bulk-read buffers.

A :class:`HeapSegment` is a contiguous run of chunks: the main arena's sbrk
heap, or one ``heap_info`` heap of a non-main arena.  :class:`HeapMemory` reads
each segment ONCE with ``MemorySource.read_buffer`` and serves pointer-sized
words from those buffers (``words[i]`` on a ``memoryview`` cast when the target
has the host's byte order, ``struct.unpack_from`` otherwise); addresses outside
every segment fall back to small ``source.read`` calls.
"""
from __future__ import annotations

import bisect
import struct
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from typing import Literal

from ..errors import MemoryReadError
from ..memory import MemorySource

__all__ = ["HeapSegment", "HeapMemory", "WordView", "readable_extent", "ByteOrder", "byteorder_of"]

ByteOrder = Literal["little", "big"]


def byteorder_of(source: MemorySource) -> ByteOrder:
    """The source's byte order, typed for ``int.from_bytes``."""
    return "big" if source.byteorder == "big" else "little"


@dataclass(frozen=True)
class HeapSegment:
    """A run of chunks ``[start, end)`` of one arena.

    :ivar start: the first chunk.
    :ivar end: end of the chunk area: ``top + size(top)`` for the segment
        holding top, ``heap_info + heap_info.size`` for older heaps.
    :ivar arena: address of the owning ``malloc_state``.
    :ivar heap_info: the ``heap_info`` header of a non-main heap, else None.
    :ivar top: the top chunk when this segment holds it, else None.
    :ivar read_start: first byte read (``heap_info`` or ``start``).
    :ivar exact_start: False when ``start`` is only the start of the mapping.
    """

    start: int
    end: int
    arena: int
    heap_info: Optional[int] = None
    top: Optional[int] = None
    read_start: Optional[int] = None
    #: False when ``start`` is a guess (mapping start): the walker searches the first chunk
    exact_start: bool = True

    @property
    def base(self) -> int:
        return self.start if self.read_start is None else self.read_start

    def __contains__(self, address: object) -> bool:
        return isinstance(address, int) and self.start <= address < self.end


def readable_extent(source: MemorySource, address: int, limit: int) -> int:
    """End of the mapped run of regions holding ``address``, at most ``address + limit``.

    Adjacent regions (a core splits one mapping into several PT_LOADs) are merged.
    Returns ``address`` when it is unmapped.
    """
    region = source.region_of(address)
    if region is None:
        return address
    end = region.end
    cap = address + limit
    while end < cap:
        nxt = source.region_of(end)
        if nxt is None:
            break
        end = nxt.end
    return min(end, cap)


class WordView:
    """``view[i]``: the i-th pointer-sized word of a buffer, for any byte order."""

    __slots__ = ("_buf", "_unpack", "_size")

    def __init__(self, buf: Any, fmt: struct.Struct) -> None:
        self._buf = buf
        self._unpack = fmt.unpack_from
        self._size = fmt.size

    def __getitem__(self, index: int) -> int:
        value: int = self._unpack(self._buf, index * self._size)[0]
        return value

    def __len__(self) -> int:
        return len(self._buf) // self._size


def word_view(buf: Any, pointer_size: int, byteorder: str) -> Any:
    """A fast indexable word view of ``buf`` (a cast memoryview when possible)."""
    native = byteorder == sys.byteorder
    code = "Q" if pointer_size == 8 else "I"
    if native and struct.calcsize(code) == pointer_size:
        mv = memoryview(buf)
        if mv.format != "B" or mv.ndim != 1:
            mv = mv.cast("B")
        usable = len(mv) - len(mv) % pointer_size
        return mv[:usable].cast("Q" if pointer_size == 8 else "I")
    endian = "<" if byteorder == "little" else ">"
    return WordView(buf, struct.Struct(endian + code))


class HeapMemory:
    """The heap segments' buffers plus the source behind them.

    :param source: where to read.
    :param segments: segments to load (each read once, lazily or by :meth:`load`).
    """

    def __init__(self, source: MemorySource, segments: Sequence[HeapSegment] = ()) -> None:
        self.source = source
        self.psize = source.pointer_size
        self.byteorder = source.byteorder
        self._fmt = source.pointer_format()
        self._segments: List[HeapSegment] = []
        self._starts: List[int] = []
        self._bufs: Dict[int, Tuple[int, int, Any, Any]] = {}  # base -> (base, end, buf, words)
        self._small: Dict[int, Optional[bytes]] = {}
        self.read_errors: List[Tuple[int, int, str]] = []
        for seg in segments:
            self.add(seg)

    # -- segments --------------------------------------------------------------
    def add(self, segment: HeapSegment) -> None:
        i = bisect.bisect_left(self._starts, segment.base)
        self._segments.insert(i, segment)
        self._starts.insert(i, segment.base)

    @property
    def segments(self) -> List[HeapSegment]:
        return list(self._segments)

    def segment_of(self, address: int) -> Optional[HeapSegment]:
        """The segment whose ``[read_start, end)`` holds ``address``."""
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0:
            seg = self._segments[i]
            if address < seg.end:
                return seg
        return None

    def buffer(self, segment: HeapSegment) -> Optional[Tuple[int, int, Any, Any]]:
        """``(base, end, buffer, words)`` of a segment, reading it on first use.

        Returns None (and records the error) when the segment cannot be read.
        """
        got = self._bufs.get(segment.base)
        if got is not None:
            return got
        size = segment.end - segment.base
        try:
            buf = self.source.read_buffer(segment.base, size)
        except MemoryReadError as err:
            self.read_errors.append((segment.base, size, str(err)))
            return None
        entry = (segment.base, segment.end, buf, word_view(buf, self.psize, self.byteorder))
        self._bufs[segment.base] = entry
        return entry

    def load(self) -> None:
        for seg in self._segments:
            self.buffer(seg)

    # -- reads -----------------------------------------------------------------
    def word(self, address: int) -> Optional[int]:
        """The pointer-sized word at ``address``, or None when unreadable."""
        seg = self.segment_of(address)
        if seg is not None and address + self.psize <= seg.end:
            entry = self.buffer(seg)
            if entry is not None:
                off = address - entry[0]
                value: int
                if off % self.psize == 0:
                    value = entry[3][off // self.psize]
                else:
                    value = self._fmt.unpack_from(entry[2], off)[0]
                return value
        data = self.bytes_at(address, self.psize)
        if data is None:
            return None
        unpacked: int = self._fmt.unpack(data)[0]
        return unpacked

    def bytes_at(self, address: int, size: int) -> Optional[bytes]:
        """``size`` bytes at ``address`` (from a buffer when possible), or None."""
        if address < 0 or size < 0:
            return None
        seg = self.segment_of(address)
        if seg is not None and address + size <= seg.end:
            entry = self.buffer(seg)
            if entry is not None:
                off = address - entry[0]
                return bytes(entry[2][off : off + size])
        if size <= 64:
            line = address & ~63
            if address + size <= line + 64:
                block = self._small.get(line, b"")
                if block == b"":
                    try:
                        block = self.source.read(line, 64)
                    except MemoryReadError:
                        block = None
                    self._small[line] = block
                if block is not None:
                    return block[address - line : address - line + size]
        try:
            return bytes(self.source.read(address, size))
        except MemoryReadError:
            return None

    def readable(self, address: int, size: int = 1) -> bool:
        return self.bytes_at(address, size) is not None
