# gdbext/triage/report.py - the triage report: its versioned JSON schema, the
# Finding data model the finders produce, and a validator for report dicts.
"""The triage report as data.

A report is a plain JSON-ready dict (documented in ``docs/triage.md``) whose
``"schema"`` is :data:`SCHEMA`; a batch of reports (``gdbext triage --dir``)
is a dict whose ``"schema"`` is :data:`BATCH_SCHEMA`.  Addresses are
``"0x..."`` strings everywhere so that no JSON reader loses the high bits of
a 64-bit value.

Findings are built as :class:`Finding` objects (with :class:`ChunkRef`,
:class:`OverflowSource`, :class:`SourceSite`, :class:`Evidence`) and turned
into dicts with :meth:`Finding.to_dict`; :class:`Findings` keeps them in
order, each once.  :func:`validate_report` checks a dict against the schema
(the CLI checks what gdb wrote; tests check every fixture's report).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Protocol, Sequence, Tuple

from ..forensics.model import KINDS, hx

__all__ = [
    "SCHEMA",
    "BATCH_SCHEMA",
    "FINDING_KINDS",
    "hx",
    "Frame",
    "SourceSite",
    "ChunkRef",
    "OverflowSource",
    "WrittenRange",
    "MemoryDump",
    "Evidence",
    "Finding",
    "FindingLike",
    "finding_key",
    "Findings",
    "validate_report",
    "validate_batch",
]

#: The schema id of one report; bump the number on an incompatible change.
SCHEMA = "gdbext.triage/1"
#: The schema id of a ``--dir`` batch document.
BATCH_SCHEMA = "gdbext.triage-batch/1"

#: Every finding kind a report may hold (the forensics' own list).
FINDING_KINDS: Tuple[str, ...] = KINDS

#: The most bytes one evidence dump may hold.
MAX_DUMP = 1024


@dataclass(frozen=True)
class Frame:
    """One backtrace frame: function, source file and line (when known), pc, and the module."""

    function: Optional[str]
    file: Optional[str] = None
    line: Optional[int] = None
    pc: Optional[int] = None
    module: Optional[str] = None  #: basename of the executable or library holding ``pc``

    def to_dict(self) -> Dict[str, Any]:
        return {"function": self.function, "file": self.file, "line": self.line, "pc": hx(self.pc),
                "module": self.module}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Frame":
        pc = data.get("pc")
        return cls(data.get("function"), data.get("file"), data.get("line"),
                   int(pc, 16) if isinstance(pc, str) else pc, data.get("module"))


@dataclass(frozen=True)
class SourceSite:
    """Where a block was allocated (or freed): a code address and what it symbolizes to.

    :ivar how: the provenance, e.g. ``"pool header field alloc_site (return address, symbolized at pc-1)"``.
    """

    pc: int
    how: str
    function: Optional[str] = None
    file: Optional[str] = None
    line: Optional[int] = None

    def to_dict(self) -> Dict[str, Any]:
        return {"function": self.function, "file": self.file, "line": self.line, "pc": hx(self.pc), "how": self.how}

    def short(self) -> str:
        """``make_buf (prog.c:12)``, ``make_buf``, or ``0x401b36``."""
        name = self.function or f"{self.pc:#x}"
        if self.file and self.line:
            return f"{name} ({self.file.rsplit('/', 1)[-1]}:{self.line})"
        return name


@dataclass(frozen=True)
class ChunkRef:
    """A heap block: chunk (header) address, user address, size, requested size, state and heap.

    :ivar heap: which heap holds it: ``"pool g_pool"``, ``"main_arena"``, ``"mmapped"``...
    :ivar state: ``"in-use"``, ``"free"``, ``"corrupt"``, or an allocator's own word (``"tcache"``).
    """

    address: int
    user_address: int
    size: int
    state: str
    heap: str
    requested_size: Optional[int] = None
    index: Optional[int] = None  #: the slot index in a fixed-slot pool

    @property
    def requested_end(self) -> int:
        """End of the bytes the caller asked for (the usable end when unknown)."""
        return self.user_address + (self.requested_size if self.requested_size is not None else 0)

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "address": hx(self.address), "user_address": hx(self.user_address), "size": self.size,
            "requested_size": self.requested_size, "state": self.state, "heap": self.heap,
        }
        if self.index is not None:
            out["index"] = self.index
        return out


@dataclass(frozen=True)
class OverflowSource:
    """The block an overflow ran out of, and how far past its requested end it wrote."""

    chunk: ChunkRef
    bytes_past_end: int
    #: who points at the block that overran (its owner: the most useful fact for glibc, which records no site)
    referenced_by: Tuple[str, ...] = ()

    def to_dict(self) -> Dict[str, Any]:
        return {"chunk": self.chunk.to_dict(), "bytes_past_end": self.bytes_past_end,
                "referenced_by": list(self.referenced_by)}


@dataclass(frozen=True)
class WrittenRange:
    """Bytes of a freed block that changed after the free (offset from the user address)."""

    offset: int
    size: int
    field: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        return {"offset": self.offset, "size": self.size, "field": self.field}


@dataclass(frozen=True)
class MemoryDump:
    """Raw target bytes for the hexdump of the evidence, with labelled ranges ``[start, end)``."""

    address: int
    data: bytes
    marks: Tuple[Tuple[int, int, str], ...] = ()

    def to_dict(self) -> Dict[str, Any]:
        return {
            "address": hx(self.address),
            "bytes": bytes(self.data[:MAX_DUMP]).hex(),
            "marks": [{"start": hx(s), "end": hx(e), "label": label} for s, e, label in self.marks],
        }


@dataclass
class Evidence:
    """Why a finding is believed: lines of facts and dumps of the damaged memory."""

    notes: List[str] = field(default_factory=list)
    memory: List[MemoryDump] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return {"notes": list(self.notes), "memory": [m.to_dict() for m in self.memory]}


@dataclass
class Finding:
    """One thing wrong with the heap, as the report states it.

    :param kind: one of :data:`FINDING_KINDS`.
    :param message: the headline, ASan-style (``heap-buffer-overflow on 0x...: ...``).
    :param address: the first bad address.
    :param chunk: the damaged block.
    :param source: for overflows, the block that overran.
    :param allocation_site: where the block named in the headline was allocated.
    :param referenced_by: who still points at the block (``"register rdi"``, ``"g_table[3]"``...).
    :param written_after_free: for use-after-free, the ranges changed after the free.
    :param finder: the name of the finder that produced it.
    """

    kind: str
    message: str
    address: Optional[int] = None
    chunk: Optional[ChunkRef] = None
    source: Optional[OverflowSource] = None
    allocation_site: Optional[SourceSite] = None
    referenced_by: List[str] = field(default_factory=list)
    written_after_free: List[WrittenRange] = field(default_factory=list)
    evidence: Evidence = field(default_factory=Evidence)
    finder: str = ""

    def __post_init__(self) -> None:
        if self.kind not in FINDING_KINDS:
            raise ValueError(f"unknown finding kind {self.kind!r}")

    def to_dict(self) -> Dict[str, Any]:
        return {
            "kind": self.kind,
            "address": hx(self.address),
            "chunk": self.chunk.to_dict() if self.chunk else None,
            "source": self.source.to_dict() if self.source else None,
            "allocation_site": self.allocation_site.to_dict() if self.allocation_site else None,
            "referenced_by": list(self.referenced_by),
            "written_after_free": [w.to_dict() for w in self.written_after_free],
            "message": self.message,
            "evidence": self.evidence.to_dict(),
            "finder": self.finder,
        }


class FindingLike(Protocol):
    """What :class:`Findings` and the report need of a finding: :class:`Finding`, or another
    model with the same JSON form (``gdbext.forensics.model.Finding``)."""

    kind: str
    address: Optional[int]

    def to_dict(self) -> Dict[str, Any]: ...


def finding_key(finding: FindingLike) -> Tuple[str, Optional[int], Optional[int]]:
    """``(kind, address, chunk address)``: two findings with the same key are the same finding."""
    chunk = getattr(finding, "chunk", None)
    return (finding.kind, finding.address, getattr(chunk, "address", None))


class Findings:
    """Findings in the order they were found, each once (by :func:`finding_key`)."""

    def __init__(self, items: Iterable[FindingLike] = ()) -> None:
        self._items: List[FindingLike] = []
        self._keys: Dict[Tuple[str, Optional[int], Optional[int]], int] = {}
        for item in items:
            self.add(item)

    def add(self, finding: FindingLike) -> bool:
        """Add ``finding`` unless an equal one is already held; True when added."""
        key = finding_key(finding)
        if key in self._keys:
            return False
        self._keys[key] = len(self._items)
        self._items.append(finding)
        return True

    def extend(self, findings: Iterable[FindingLike]) -> int:
        """Add each of ``findings``; returns how many were new."""
        return sum(1 for f in findings if self.add(f))

    def __iter__(self) -> Iterator[FindingLike]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def to_list(self) -> List[Dict[str, Any]]:
        return [f.to_dict() for f in self._items]


# -- validation ---------------------------------------------------------------------

_ADDR_KEYS_CRASH = ("pc", "fault_address")
_TOP_KEYS = ("schema", "tool", "core", "binary", "build_id", "crash", "heap", "findings", "errors", "skipped")
_CRASH_KEYS = ("signal", "pc", "fault_address", "abort_message", "frames", "signature", "thread", "location")
_FINDING_KEYS = ("kind", "address", "chunk", "source", "allocation_site", "referenced_by", "message",
                 "evidence", "written_after_free")
_CHUNK_KEYS = ("address", "user_address", "size", "requested_size", "state", "heap")


def _is_addr(value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, str) or not value.startswith("0x"):
        return False
    try:
        int(value, 16)
    except ValueError:
        return False
    return True


def _check_keys(obj: Any, keys: Sequence[str], where: str, out: List[str]) -> bool:
    if not isinstance(obj, dict):
        out.append(f"{where}: not an object")
        return False
    for k in keys:
        if k not in obj:
            out.append(f"{where}: missing {k!r}")
    return True


def _check_chunk(chunk: Any, where: str, out: List[str]) -> None:
    if chunk is None:
        return
    if _check_keys(chunk, _CHUNK_KEYS, where, out):
        for k in ("address", "user_address"):
            if not _is_addr(chunk.get(k)):
                out.append(f"{where}.{k}: not a 0x string")


def validate_report(report: Any) -> List[str]:
    """What is wrong with ``report`` as a :data:`SCHEMA` document; ``[]`` when it conforms."""
    out: List[str] = []
    if not _check_keys(report, _TOP_KEYS, "report", out):
        return out
    if report.get("schema") != SCHEMA:
        out.append(f"report.schema is {report.get('schema')!r}, expected {SCHEMA!r}")
    crash = report.get("crash")
    if _check_keys(crash, _CRASH_KEYS, "crash", out):
        for k in _ADDR_KEYS_CRASH:
            if not _is_addr(crash.get(k)):
                out.append(f"crash.{k}: not a 0x string")
        frames = crash.get("frames")
        if not isinstance(frames, list):
            out.append("crash.frames: not a list")
        else:
            for i, fr in enumerate(frames):
                if _check_keys(fr, ("function", "file", "line", "pc"), f"crash.frames[{i}]", out):
                    if not _is_addr(fr.get("pc")):
                        out.append(f"crash.frames[{i}].pc: not a 0x string")
        if not isinstance(crash.get("signature"), str) or not crash.get("signature"):
            out.append("crash.signature: not a non-empty string")
    findings = report.get("findings")
    if not isinstance(findings, list):
        out.append("findings: not a list")
        findings = []
    for i, f in enumerate(findings):
        where = f"findings[{i}]"
        if not _check_keys(f, _FINDING_KEYS, where, out):
            continue
        if f.get("kind") not in FINDING_KINDS:
            out.append(f"{where}.kind: {f.get('kind')!r} is not a known kind")
        if not _is_addr(f.get("address")):
            out.append(f"{where}.address: not a 0x string")
        _check_chunk(f.get("chunk"), f"{where}.chunk", out)
        src = f.get("source")
        if src is not None and _check_keys(src, ("chunk", "bytes_past_end"), f"{where}.source", out):
            _check_chunk(src.get("chunk"), f"{where}.source.chunk", out)
        site = f.get("allocation_site")
        if site is not None and _check_keys(site, ("function", "file", "line", "pc", "how"),
                                            f"{where}.allocation_site", out):
            if not _is_addr(site.get("pc")):
                out.append(f"{where}.allocation_site.pc: not a 0x string")
        if not isinstance(f.get("evidence"), dict):
            out.append(f"{where}.evidence: not an object")
        if not isinstance(f.get("referenced_by"), list):
            out.append(f"{where}.referenced_by: not a list")
    for k in ("errors", "skipped"):
        if not isinstance(report.get(k), list):
            out.append(f"{k}: not a list")
    return out


def validate_batch(batch: Any) -> List[str]:
    """What is wrong with ``batch`` as a :data:`BATCH_SCHEMA` document; ``[]`` when it conforms."""
    out: List[str] = []
    if not _check_keys(batch, ("schema", "tool", "reports", "failures", "groups"), "batch", out):
        return out
    if batch.get("schema") != BATCH_SCHEMA:
        out.append(f"batch.schema is {batch.get('schema')!r}, expected {BATCH_SCHEMA!r}")
    for i, rep in enumerate(batch.get("reports") or []):
        out.extend(f"reports[{i}]: {p}" for p in validate_report(rep))
    for i, fail in enumerate(batch.get("failures") or []):
        _check_keys(fail, ("core", "binary", "reason"), f"failures[{i}]", out)
    for i, grp in enumerate(batch.get("groups") or []):
        _check_keys(grp, ("signature", "count", "cores"), f"groups[{i}]", out)
    return out
