# gdbext/forensics/continuity.py - evidence that one buffer's contents run on
# past its end: a printable text run, a binary run with a regular element
# structure (a counter in each element), or a one-byte fill, crossing a boundary.
"""Continuity of contents across a buffer's end.

An overflow leaves the written data running on, unbroken, from inside the
buffer into what follows it.  :func:`find_run` looks for such a run that
starts before ``boundary`` (the end of the buffer's region) and crosses it:

* **text**: printable bytes (its terminating NUL included: ``strcpy``
  writes it too);
* **binary**: elements of 2, 4 or 8 bytes with a structure learnt from the
  elements just before the boundary (a field that counts with a constant
  step, fields that stay constant) and that the elements after the boundary
  keep (``(seq << 16) | adc`` samples past a 40-byte buffer);
* **fill**: one non-zero byte repeated (``memset``).

The :class:`Run` says where the run starts and ends; its end gives the
bytes written past the boundary.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..textutil import c_escape, is_printable_byte

__all__ = ["Run", "find_run", "typed_run", "leftward_run", "element_matches", "text_run", "binary_run", "fill_run", "MIN_TEXT", "MIN_ELEMENTS"]

#: Printable bytes a text run needs before the boundary.
MIN_TEXT = 4
#: Elements a binary structure is learnt from (before the boundary).
MIN_ELEMENTS = 4
#: Elements before the boundary the structure is learnt from, at most.
_TRAIN = 16
#: Bytes of text shown on each side of the boundary.
_SHOW = 48
#: Bytes a fill run needs before the boundary.
MIN_FILL = 8


@dataclass(frozen=True)
class Field:
    """One sub-field of an element: constant, or a counter with a step."""

    offset: int
    width: int  #: bytes
    kind: str  #: "const" or "counter"
    value: int  #: the constant, or the counter's first value in the run
    step: int = 0

    def describe(self, element: int) -> str:
        bits = f"bits {8 * self.offset}..{8 * (self.offset + self.width) - 1}"
        if self.width == element:
            bits = "the whole element"
        if self.kind == "const":
            return f"{bits} stay {self.value:#x}"
        return f"{bits} count by {self.step:#x}"


@dataclass
class Run:
    """A run of continuous contents crossing ``boundary``: ``[start, end)``.

    :ivar kind: ``text``, ``binary`` or ``fill``.
    :ivar data: the run's bytes.
    """

    kind: str
    start: int
    end: int
    boundary: int
    data: bytes
    element_size: Optional[int] = None
    fields: List[Field] = field(default_factory=list)
    nul_terminated: bool = False
    #: the element type's field names by offset (a typed run)
    field_names: Dict[int, str] = field(default_factory=dict)

    @property
    def past(self) -> int:
        """Bytes of the run past the boundary."""
        return max(self.end - self.boundary, 0)

    def before(self) -> bytes:
        return self.data[: self.boundary - self.start]

    def after(self) -> bytes:
        return self.data[self.boundary - self.start :]

    def describe(self) -> str:
        """One line: what runs from where to where."""
        if self.kind == "text":
            nul = " and its NUL" if self.nul_terminated else ""
            return (f"text runs from {self.start:#x} across {self.boundary:#x} to {self.end:#x}{nul}: "
                    f"\"{_clip(self.before(), True)}\" | \"{_clip(self.after(), False)}\"")
        if self.kind == "guard":
            return (f"only the guard bytes {self.start:#x}..{self.end:#x} show the overflow: no text, fill or "
                    "regular binary data runs into them from the region")
        if self.kind == "fill":
            return (f"byte {self.data[0]:#04x} repeated from {self.start:#x} across {self.boundary:#x} "
                    f"to {self.end:#x}")
        names = {2: "uint16", 4: "uint32", 8: "uint64"}
        parts = "; ".join((f"{self.field_names[f.offset]} ({f.describe(self.element_size or 0)})"
                           if self.field_names.get(f.offset) else f.describe(self.element_size or 0))
                          for f in self.fields)
        if self.field_names:
            return (f"{(self.end - self.start) // (self.element_size or 1)} {self.element_size}-byte elements of "
                    f"the buffer's type from {self.start:#x} across {self.boundary:#x} to {self.end:#x} continue "
                    f"field by field: {parts}")
        count = (self.end - self.start) // (self.element_size or 1)
        return (f"{count} {names.get(self.element_size or 0, 'elements')} elements from {self.start:#x} "
                f"across {self.boundary:#x} to {self.end:#x} share one structure ({parts})")

    def evidence(self) -> Dict[str, Any]:
        """JSON-ready facts about the run."""
        out: Dict[str, Any] = {
            "kind": self.kind,
            "start": f"{self.start:#x}",
            "boundary": f"{self.boundary:#x}",
            "end": f"{self.end:#x}",
            "bytes_past_boundary": self.past,
            "description": self.describe(),
        }
        if self.kind == "text":
            out["text_before_boundary"] = _clip(self.before(), True)
            out["text_after_boundary"] = _clip(self.after(), False)
            out["nul_terminated"] = self.nul_terminated
        elif self.kind == "binary":
            out["element_size"] = self.element_size
            if self.field_names:
                out["element_fields"] = [
                    {"field": self.field_names.get(f.offset) or None, "offset": f.offset, "size": f.width,
                     "kind": f.kind, ("value" if f.kind == "const" else "step"): f.value if f.kind == "const"
                     else f.step} for f in self.fields]
            out["bytes_past_boundary_hex"] = self.after().hex()
            out["elements_past_boundary"] = [
                f"{int.from_bytes(self.after()[i:i + (self.element_size or 1)], 'little'):#x}"
                for i in range(0, len(self.after()), self.element_size or 1)][:32]
        elif self.kind == "fill":
            out["byte"] = f"{self.data[0]:#04x}"
        else:
            out["bytes"] = self.data.hex()
        return out


def _clip(data: bytes, tail: bool) -> str:
    """At most :data:`_SHOW` bytes as C text, from the end (``tail``) or the start."""
    raw = data.rstrip(b"\0") if not tail else data
    if len(raw) > _SHOW:
        raw = raw[-_SHOW:] if tail else raw[:_SHOW]
        return ("..." if tail else "") + c_escape(raw) + ("" if tail else "...")
    return c_escape(raw)


def text_run(data: bytes, base: int, boundary: int) -> Optional[Run]:
    """The printable run that crosses ``boundary`` (or ends with its NUL exactly there).

    :param data: bytes read from ``base``.
    :param base: address of ``data[0]``.
    :param boundary: the buffer's end.
    """
    i = boundary - base
    if i < MIN_TEXT or i > len(data) or not is_printable_byte(data[i - 1]):
        return None
    s = i - 1
    while s > 0 and is_printable_byte(data[s - 1]):
        s -= 1
    if i - s < MIN_TEXT:
        return None
    e = i
    while e < len(data) and is_printable_byte(data[e]):
        e += 1
    nul = e < len(data) and data[e] == 0
    if nul:
        e += 1
    if e <= i:
        return None
    return Run("text", base + s, base + e, boundary, bytes(data[s:e]), nul_terminated=nul)


def fill_run(data: bytes, base: int, boundary: int) -> Optional[Run]:
    """One non-zero byte repeated across ``boundary`` (at least :data:`MIN_FILL` bytes before it)."""
    i = boundary - base
    if i < MIN_FILL or i >= len(data):
        return None
    b = data[i - 1]
    if b == 0 or data[i] != b:
        return None
    s = i - 1
    while s > 0 and data[s - 1] == b:
        s -= 1
    if i - s < MIN_FILL:
        return None
    e = i
    while e < len(data) and data[e] == b:
        e += 1
    return Run("fill", base + s, base + e, boundary, bytes(data[s:e]))


def _subfields(element: int) -> List[Tuple[int, int]]:
    out = []
    for width in (8, 4, 2, 1):
        if width > element:
            continue
        for off in range(0, element, width):
            out.append((off, width))
    return out


def _learn(values: List[int], width: int) -> Optional[Tuple[str, int]]:
    """("const", value) or ("counter", step) for a sequence, else None."""
    mask = (1 << (8 * width)) - 1
    if all(v == values[0] for v in values):
        return "const", values[0]
    step = (values[1] - values[0]) & mask
    if all((values[k + 1] - values[k]) & mask == step for k in range(len(values) - 1)):
        return "counter", step
    return None


def _structure(elements: List[bytes], size: int,
               layout: Optional[Sequence[Tuple[int, int]]] = None) -> Optional[List[Field]]:
    """Fields that every element keeps: at least one counter (constants alone are no evidence).

    :param layout: the element's own fields ``(offset, width)`` (a DWARF type), tried instead of every
        aligned 8-, 4-, 2- and 1-byte slice.
    """
    fields: List[Field] = []
    covered = [False] * size
    for off, width in (layout if layout is not None else _subfields(size)):
        if width not in (1, 2, 4, 8) or off + width > size:
            continue
        if all(covered[off:off + width]):
            continue
        values = [int.from_bytes(e[off:off + width], "little") for e in elements]
        got = _learn(values, width)
        if got is None:
            continue
        kind, v = got
        if kind == "counter":
            fields.append(Field(off, width, "counter", values[0], v))
        else:
            fields.append(Field(off, width, "const", v))
        for k in range(off, off + width):
            covered[k] = True
    if not any(f.kind == "counter" for f in fields):
        return None
    return fields


def element_matches(element: bytes, fields: List[Field], index: int) -> bool:
    """Does element number ``index`` (0 = the first training element) keep the structure?"""
    for f in fields:
        mask = (1 << (8 * f.width)) - 1
        v = int.from_bytes(element[f.offset:f.offset + f.width], "little")
        want = f.value if f.kind == "const" else (f.value + index * f.step) & mask
        if v != want:
            return False
    return True


def binary_run(data: bytes, base: int, boundary: int, sizes: Tuple[int, ...] = (2, 4, 8),
               layout: Optional[Sequence[Tuple[int, int]]] = None) -> Optional[Run]:
    """Elements that keep the structure of the elements before ``boundary`` past it.

    The smallest element size with the longest run past the boundary wins.

    :param layout: the fields of the element type, when a DWARF type gives them (one size then).
    """
    best: Optional[Run] = None
    i = boundary - base
    for size in sizes:
        if i % size or i // size < MIN_ELEMENTS:
            continue
        n_before = i // size
        learnt = None
        for window in (_TRAIN, 8, MIN_ELEMENTS):
            first = max(0, n_before - window)
            fields = _structure([bytes(data[k * size:(k + 1) * size]) for k in range(first, n_before)], size, layout)
            if fields is None:
                continue
            k = n_before
            while (k + 1) * size <= len(data) and element_matches(bytes(data[k * size:(k + 1) * size]), fields, k - first):
                k += 1
            if k > n_before:
                learnt = (first, fields, k)
                break
        if learnt is None:
            continue
        first, fields, k = learnt
        s = first
        while s > 0 and element_matches(bytes(data[(s - 1) * size:s * size]), fields, s - 1 - first):
            s -= 1
        shift = s - first
        fields = [Field(f.offset, f.width, f.kind,
                        f.value if f.kind == "const" else (f.value + shift * f.step) & ((1 << (8 * f.width)) - 1),
                        f.step) for f in fields]
        run = Run("binary", base + s * size, base + k * size, boundary, bytes(data[s * size:k * size]),
                  element_size=size, fields=fields)
        if best is None or run.end > best.end:
            best = run
    return best


def typed_run(data: bytes, base: int, boundary: int, start: int, size: int,
              layout: Optional[Sequence[Tuple[int, int]]] = None) -> Optional[Run]:
    """Elements of a typed array (``size`` bytes each, from ``start``) that continue past ``boundary``.

    The boundary (a glibc usable end) need not fall between elements: the
    structure is learnt from the whole elements before it, and the run is
    the elements past them that keep it, reported against the real boundary.
    """
    if size <= 0 or start < base:
        return None
    aligned = start + (boundary - start) // size * size
    if aligned <= start:
        return None
    got = binary_run(data[start - base:], start, aligned, sizes=(size,), layout=layout)
    if got is None or got.end <= boundary:
        return None
    return Run("binary", got.start, got.end, boundary, got.data, element_size=size, fields=got.fields)


def leftward_run(data: bytes, base: int, start: int, sizes: Tuple[int, ...] = (2, 4, 8)) -> Optional[Run]:
    """Elements before ``start`` (a region's first byte) that continue, backwards, the structure of the
    elements from ``start`` on: a cursor that began before its buffer (an underflow).

    The run's ``boundary`` is ``start``; :attr:`Run.start` is the first byte written before it.
    """
    i = start - base
    best: Optional[Run] = None
    for size in sizes:
        if i % size or (len(data) - i) // size < MIN_ELEMENTS:
            continue
        n_after = min((len(data) - i) // size, _TRAIN)
        fields = _structure([bytes(data[i + k * size:i + (k + 1) * size]) for k in range(n_after)], size)
        if fields is None:
            continue
        s = i
        while s - size >= 0 and element_matches(bytes(data[s - size:s]), fields, (s - size - i) // size):
            s -= size
        if s == i:
            continue
        e = i
        while e + size <= len(data) and element_matches(bytes(data[e:e + size]), fields, (e - i) // size):
            e += size
        run = Run("binary", base + s, base + e, start, bytes(data[s:e]), element_size=size, fields=fields)
        if best is None or run.start < best.start:
            best = run
    return best


def find_run(data: bytes, base: int, boundary: int) -> Optional[Run]:
    """The continuous run crossing ``boundary``: text first, then a binary structure, then a fill."""
    return text_run(data, base, boundary) or binary_run(data, base, boundary) or fill_run(data, base, boundary)
