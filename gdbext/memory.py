"""The memory-source protocol every GDB-free walker reads through.

A source answers: bytes at an address, the mapped regions (with permissions
and backing file), pointer size and byte order, and symbols where it knows
them.  Two implementations exist: the GDB inferior (``gdbext.gdbmem``) and a
core file read directly (``gdbext.corefile``).  Walkers take any object with
this shape, the way drgn's helpers take a ``Program``.
"""
from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from .errors import MemoryReadError

__all__ = [
    "Region",
    "MemorySource",
    "BufferSource",
    "RegionIndex",
    "MAX_CSTRING",
]

#: The longest C string ``read_cstring`` will look at; a garbage pointer must
#: never make us read megabytes.
MAX_CSTRING = 4096


@dataclass(frozen=True)
class Region:
    """One mapping of the target's address space, ``[start, end)``."""

    start: int
    end: int
    perms: str = "r--"  #: "rwx" with "-" for a missing permission
    path: str = ""  #: backing file, "" for anonymous memory
    offset: int = 0  #: offset of ``start`` in the backing file

    @property
    def size(self) -> int:
        return self.end - self.start

    def __contains__(self, address: object) -> bool:
        return isinstance(address, int) and self.start <= address < self.end


class RegionIndex:
    """Sorted, non-overlapping regions with O(log n) lookup by address."""

    def __init__(self, regions: Iterable[Region]) -> None:
        self.regions: List[Region] = sorted(regions, key=lambda r: r.start)
        self._starts = [r.start for r in self.regions]

    def find(self, address: int) -> Optional[Region]:
        """The region holding ``address``, or None."""
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0 and address < self.regions[i].end:
            return self.regions[i]
        return None

    def __iter__(self):
        return iter(self.regions)

    def __len__(self) -> int:
        return len(self.regions)


class MemorySource:
    """Base class of memory sources.

    Subclasses implement :meth:`read` and :meth:`regions`, and may override
    :meth:`symbol` and :meth:`symbolize`.  Everything else is derived here so
    both sources decode integers the same way.
    """

    pointer_size: int = 8
    byteorder: str = "little"  #: "little" or "big"

    # -- to implement -----------------------------------------------------
    def read(self, address: int, size: int) -> bytes:
        """Exactly ``size`` bytes at ``address``, or raise :class:`MemoryReadError`."""
        raise NotImplementedError

    def regions(self) -> Sequence[Region]:
        """The mapped regions, sorted by start address."""
        raise NotImplementedError

    def read_buffer(self, address: int, size: int):
        """Like :meth:`read` but may return a zero-copy buffer (``memoryview``).

        Walkers use it for bulk reads (a whole heap segment) and parse with
        ``struct.unpack_from``; sources that can avoid a copy override it.
        """
        return self.read(address, size)

    def symbol(self, name: str) -> Optional[int]:
        """Address of the symbol ``name``, or None when this source does not know it."""
        return None

    def symbolize(self, address: int) -> Optional[Tuple[str, int]]:
        """``(symbol name, offset)`` for the symbol covering ``address``, or None."""
        return None

    # -- derived ----------------------------------------------------------
    @property
    def _endian(self) -> str:
        return "<" if self.byteorder == "little" else ">"

    def pointer_format(self) -> struct.Struct:
        """A ``struct.Struct`` decoding one pointer of this target."""
        return struct.Struct(self._endian + ("Q" if self.pointer_size == 8 else "I"))

    def read_uint(self, address: int, size: int) -> int:
        """An unsigned integer of ``size`` bytes in the target's byte order."""
        return int.from_bytes(self.read(address, size), self.byteorder)

    def read_pointer(self, address: int) -> int:
        """One pointer-sized unsigned value."""
        return self.read_uint(address, self.pointer_size)

    def is_readable(self, address: int, size: int = 1) -> bool:
        """True when ``[address, address + size)`` can be read."""
        try:
            self.read(address, size)
        except MemoryReadError:
            return False
        return True

    def region_of(self, address: int) -> Optional[Region]:
        """The region holding ``address``, or None."""
        for region in self.regions():
            if address in region:
                return region
        return None

    def read_cstring(self, address: int, limit: int = MAX_CSTRING) -> bytes:
        """The NUL-terminated string at ``address`` (without the NUL), at most ``limit`` bytes.

        Reads in small steps so a string near the end of a mapping is still found.
        """
        out = bytearray()
        step = 64
        while len(out) < limit:
            want = min(step, limit - len(out))
            try:
                chunk = self.read(address + len(out), want)
            except MemoryReadError:
                if want == 1:
                    break
                step = 1
                continue
            nul = chunk.find(b"\0")
            if nul >= 0:
                out += chunk[:nul]
                return bytes(out)
            out += chunk
        return bytes(out)


class BufferSource(MemorySource):
    """Memory made of byte buffers at given addresses: for tests and synthetic heaps."""

    def __init__(
        self,
        segments: Dict[int, bytes],
        pointer_size: int = 8,
        byteorder: str = "little",
        symbols: Optional[Dict[str, int]] = None,
        perms: str = "rw-",
    ) -> None:
        self.pointer_size = pointer_size
        self.byteorder = byteorder
        self._segments = {start: bytes(data) for start, data in segments.items()}
        self._index = RegionIndex(
            Region(start, start + len(data), perms) for start, data in self._segments.items()
        )
        self._symbols = dict(symbols or {})
        self.reads = 0  #: how many reads were made: fuzz tests bound it

    def read(self, address: int, size: int) -> bytes:
        self.reads += 1
        if size < 0:
            raise MemoryReadError(address, size, "negative size")
        region = self._index.find(address)
        if region is None or address + size > region.end:
            raise MemoryReadError(address, size, "unmapped")
        data = self._segments[region.start]
        off = address - region.start
        return data[off : off + size]

    def regions(self) -> Sequence[Region]:
        return self._index.regions

    def region_of(self, address: int) -> Optional[Region]:
        return self._index.find(address)

    def symbol(self, name: str) -> Optional[int]:
        return self._symbols.get(name)

    def symbolize(self, address: int) -> Optional[Tuple[str, int]]:
        best: Optional[Tuple[str, int]] = None
        for name, addr in self._symbols.items():
            if addr <= address and (best is None or address - addr < best[1]):
                best = (name, address - addr)
        return best
