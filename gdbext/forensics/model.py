# gdbext/forensics/model.py - the records heap forensics produce: the chunk
# view shared by glibc chunks and pool slots, allocation sites, ranges written
# after a free, and the Finding with its JSON form.
"""Data model of the forensic findings.

A :class:`Finding` says what went wrong (``kind``), where (``address``, the
first bad byte), in which chunk (the damaged one), which chunk's data ran
over (``source``, for overflows), where the culprit buffer was allocated
(pools record it; glibc does not), who still points at it (filled by a
callback), an ASan-like headline and the evidence.  :meth:`Finding.to_dict`
gives the JSON documented in ``docs/forensics.md``: addresses are ``"0x..."``
strings, sizes and offsets integers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

__all__ = [
    "KINDS",
    "ChunkView",
    "AllocSite",
    "Written",
    "Finding",
    "hx",
]

#: Every finding kind.
KINDS = (
    "heap-buffer-overflow",
    "use-after-free",
    "double-free",
    "invalid-free",
    "metadata-corruption",
    "poison",
    "wild-pointer",
)


def hx(value: Optional[int]) -> Optional[str]:
    """``"0x..."`` for an address, None for None."""
    return None if value is None else f"{value:#x}"


@dataclass(frozen=True)
class ChunkView:
    """One chunk of a glibc arena or one slot of a declared pool, as forensics sees it.

    :ivar address: the chunk start (its header).
    :ivar user_address: the first byte handed to the program.
    :ivar size: bytes the chunk spans (for a corrupt glibc header: up to the
        next header the walk could parse).
    :ivar usable: bytes usable from ``user_address`` (glibc's
        ``malloc_usable_size``: the chunk size minus one size word, which
        includes the next chunk's ``prev_size``).
    :ivar state: ``in-use``, ``free``, ``top``, ``mmapped`` or ``corrupt``.
    :ivar heap: ``main_arena``, ``arena[1]@0x...``, ``mmapped`` or ``pool:NAME``.
    :ivar requested: the size the program asked for, when recorded (pools).
    :ivar bin: the free list holding a free glibc chunk (``tcache[1]``...).
    :ivar slot: the pool slot index.
    :ivar alloc_sites: return addresses a pool header records.
    """

    address: int
    user_address: int
    size: int
    usable: int
    state: str
    heap: str
    requested: Optional[int] = None
    bin: Optional[str] = None
    slot: Optional[int] = None
    alloc_sites: Tuple[int, ...] = ()

    @property
    def end(self) -> int:
        return self.address + self.size

    @property
    def is_pool(self) -> bool:
        return self.heap.startswith("pool:")

    @property
    def region_size(self) -> int:
        """The size of the program's region: requested when known, else usable."""
        return self.requested if self.requested is not None and self.requested >= 0 else self.usable

    @property
    def region_end(self) -> int:
        return self.user_address + self.region_size

    @property
    def label(self) -> str:
        """``g_pool slot 3`` or ``chunk 0x4b06d0``."""
        if self.is_pool:
            return f"{self.heap[5:]} slot {self.slot}"
        return f"chunk {self.address:#x}"

    @property
    def state_text(self) -> str:
        """``free in tcache[1]``, ``in-use``..."""
        return f"{self.state} in {self.bin}" if self.bin else self.state

    def describe(self) -> str:
        """``chunk 0x4b06d0 (in-use, main_arena, size 0x460)``."""
        req = f", requested {self.requested}" if self.requested is not None else ""
        return f"{self.label} ({self.state_text}, {self.heap}, size {self.size:#x}{req})"

    def region_text(self) -> str:
        """``[0x4aa420, 0x4aa448)``: the program's region."""
        return f"[{self.user_address:#x}, {self.region_end:#x})"

    def to_dict(self) -> Dict[str, Any]:
        return {
            "address": hx(self.address),
            "user_address": hx(self.user_address),
            "size": self.size,
            "requested_size": self.requested,
            "state": self.state,
            "heap": self.heap,
        }


@dataclass(frozen=True)
class AllocSite:
    """Where a buffer was allocated: the call that returned to ``pc``.

    :ivar pc: the recorded return address.
    :ivar how: where the record comes from and how it was symbolized.
    """

    function: Optional[str]
    file: Optional[str]
    line: Optional[int]
    pc: int
    how: str
    #: for an inferred site (``how == "inferred"``): the ranked candidates,
    #: ``{function, file, line, pc, why}``, the first being this site
    candidates: Tuple[Dict[str, Any], ...] = ()

    @property
    def inferred(self) -> bool:
        return self.how == "inferred"

    def text(self) -> str:
        where = f" ({self.file}:{self.line})" if self.file else ""
        if self.inferred:
            return f"{self.function or '??'}{where} [inferred, not recorded: {len(self.candidates)} candidate(s)]"
        return f"{self.function or '??'}{where} [return address {self.pc:#x}]"

    def to_dict(self) -> Dict[str, Any]:
        out = {"function": self.function, "file": self.file, "line": self.line, "pc": hx(self.pc), "how": self.how}
        if self.candidates:
            out["candidates"] = [dict(c) for c in self.candidates]
        return out


@dataclass(frozen=True)
class Written:
    """Bytes of a freed chunk found modified after the free, relative to its user address.

    :ivar certain: False when the bytes lie where the allocator writes no
        fill (their value may also predate the free).
    """

    offset: int
    size: int
    field: Optional[str] = None
    certain: bool = True

    def to_dict(self) -> Dict[str, Any]:
        return {"offset": self.offset, "size": self.size, "field": self.field, "certain": self.certain}


@dataclass
class Finding:
    """One forensic finding.

    :ivar kind: one of :data:`KINDS`.
    :ivar address: the first bad byte (the overflow's first byte past the
        region, the byte read or written after free, the pointer freed twice).
    :ivar chunk: the damaged chunk (the one freed twice, the one whose
        header was overwritten...), None when no chunk holds the address.
    :ivar source: for overflows, the chunk whose data ran over.
    :ivar bytes_past_end: for overflows, bytes written past the source's region.
    :ivar allocation_site: where the culprit buffer was allocated (pools).
    :ivar referenced_by: who points at the chunk (from the references callback).
    :ivar message: the ASan-like headline.
    :ivar evidence: free-form facts, JSON-ready.
    :ivar written_after_free: modified ranges of a freed chunk.
    :ivar explains_crash: this finding explains the abort or the fault.
    :ivar keys: (check or anomaly kind, address) of the heap-model reports
        this finding accounts for (not part of the JSON).
    """

    kind: str
    address: Optional[int]
    chunk: Optional[ChunkView]
    message: str
    source: Optional[ChunkView] = None
    bytes_past_end: Optional[int] = None
    allocation_site: Optional[AllocSite] = None
    referenced_by: List[str] = field(default_factory=list)
    evidence: Dict[str, Any] = field(default_factory=dict)
    written_after_free: List[Written] = field(default_factory=list)
    explains_crash: bool = False
    keys: List[Tuple[str, Optional[int]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown finding kind {self.kind!r}")

    @property
    def headline(self) -> str:
        return f"{self.kind}: {self.message}"

    def touches(self, address: int) -> bool:
        """True when ``address`` lies in the damaged or the source chunk, or is the finding's address."""
        if address == self.address:
            return True
        for c in (self.chunk, self.source):
            if c is not None and c.address <= address < c.end:
                return True
        return False

    def to_dict(self) -> Dict[str, Any]:
        """The documented JSON form (``docs/forensics.md``)."""
        source = None
        if self.source is not None:
            source = {"chunk": self.source.to_dict(), "bytes_past_end": self.bytes_past_end}
        return {
            "kind": self.kind,
            "address": hx(self.address),
            "chunk": self.chunk.to_dict() if self.chunk is not None else None,
            "source": source,
            "allocation_site": self.allocation_site.to_dict() if self.allocation_site is not None else None,
            "referenced_by": list(self.referenced_by),
            "message": self.message,
            "evidence": dict(self.evidence),
            "written_after_free": [w.to_dict() for w in self.written_after_free],
        }
