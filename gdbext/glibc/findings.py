# gdbext/glibc/findings.py - the Violation record every glibc check, walker and
# locator step reports, and the de-duplicating collector.
"""Violation records of the glibc heap model.

A :class:`Violation` names the broken invariant (a stable ``check`` id), the
glibc abort message the same corruption would trigger (when one exists), the
chunk and field involved, the raw bytes of that field and a one-line
explanation.  :class:`Findings` collects them, each once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

__all__ = ["Violation", "Findings", "printable_text"]

_PRINTABLE = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}


def printable_text(raw: bytes, threshold: float = 0.75) -> Optional[str]:
    """``raw`` as text when at least ``threshold`` of its bytes (NULs aside) are printable.

    Non-printable bytes are shown as ``\\xNN``; None when the bytes are binary.
    """
    body = raw.rstrip(b"\0")
    if len(body) < 2:
        return None
    printable = sum(1 for b in body if b in _PRINTABLE)
    if printable < threshold * len(body):
        return None
    return "".join(chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}" for b in raw)


@dataclass(frozen=True)
class Violation:
    """One broken heap invariant.

    :ivar check: stable id, e.g. ``"chunk.size.alignment"``.
    :ivar abort: the glibc abort message this corresponds to, or None.
    :ivar chunk: address of the chunk (or list node, arena) concerned.
    :ivar field: name of the offending field (``"size"``, ``"fd"``, ``"counts[3]"``).
    :ivar field_address: where that field lives in the target.
    :ivar raw: the field's bytes as found.
    :ivar explanation: one line for a human.
    :ivar arena: the arena the chunk belongs to, when known.
    :ivar severity: ``"error"`` (glibc would abort or misbehave) or ``"warning"``
        (suspicious, not fatal by itself).
    """

    check: str
    abort: Optional[str]
    chunk: Optional[int]
    field: str
    field_address: Optional[int]
    raw: bytes
    explanation: str
    arena: Optional[int] = None
    severity: str = "error"

    @property
    def raw_hex(self) -> str:
        return self.raw.hex()

    @property
    def raw_text(self) -> Optional[str]:
        """The raw bytes as text when they are mostly printable (overflow payloads)."""
        return printable_text(self.raw)

    @property
    def key(self) -> Tuple[str, Optional[int], str]:
        return (self.check, self.chunk, self.field)

    def to_dict(self) -> Dict[str, object]:
        """A JSON-ready dict."""
        return {
            "check": self.check,
            "abort": self.abort,
            "chunk": self.chunk,
            "field": self.field,
            "field_address": self.field_address,
            "raw_hex": self.raw_hex,
            "raw_text": self.raw_text,
            "explanation": self.explanation,
            "arena": self.arena,
            "severity": self.severity,
        }

    def __str__(self) -> str:
        where = f"{self.chunk:#x}" if self.chunk is not None else "-"
        text = self.raw_text
        raw = f" raw={self.raw_hex}" if self.raw else ""
        if text is not None:
            raw += f" ({text!r})"
        abort = f' [glibc: "{self.abort}"]' if self.abort else ""
        return f"{self.check} at {where} {self.field}:{raw} {self.explanation}{abort}"


class Findings:
    """An ordered collection of violations with duplicates dropped."""

    def __init__(self) -> None:
        self._items: List[Violation] = []
        self._keys: Dict[Tuple[str, Optional[int], str], int] = {}

    def add(self, violation: Violation) -> bool:
        """Add ``violation`` unless the same (check, chunk, field) is already there."""
        if violation.key in self._keys:
            return False
        self._keys[violation.key] = len(self._items)
        self._items.append(violation)
        return True

    def extend(self, violations: Iterable[Violation]) -> None:
        for v in violations:
            self.add(v)

    def __iter__(self) -> Iterator[Violation]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def checks(self) -> List[str]:
        """The check ids present, in order of first appearance."""
        seen: Dict[str, None] = {}
        for v in self._items:
            seen.setdefault(v.check, None)
        return list(seen)
