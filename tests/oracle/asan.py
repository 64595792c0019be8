"""AddressSanitizer's report, parsed: the oracle's side of every comparison.

Only the parts a heap-bug report must agree on are read: the kind, the access
(READ/WRITE and its size), where the bad address lies relative to its region
("N bytes after/to the right of", "before/to the left of", "inside of" the
M-byte region), and the allocation and free frames (the first frame in the
program's own code, not the sanitizer's interceptor).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Optional

_ERROR = re.compile(r"ERROR: AddressSanitizer: ([\w-]+)(?: on (?:address )?(0x[0-9a-f]+))?")
_ACCESS = re.compile(r"^(READ|WRITE) of size (\d+) at (0x[0-9a-f]+)", re.M)
_WHERE = re.compile(r"(0x[0-9a-f]+) is located (\d+) bytes "
                    r"(to the right of|after|to the left of|before|inside of) (\d+)-byte region "
                    r"\[(0x[0-9a-f]+),\s*(0x[0-9a-f]+)\)")
_FRAME = re.compile(r"^\s+#(\d+) 0x[0-9a-f]+ in (\S+)(?: (\S+?):(\d+)(?::\d+)?)?(?:\s|$)", re.M)
_STACK_ADDR = re.compile(r"is located in stack of thread")

_SANITIZER_FUNCS = ("__interceptor_", "__asan_", "__sanitizer", "malloc", "free", "calloc", "realloc",
                    "operator new", "operator delete")


@dataclass
class Frame:
    function: str
    file: Optional[str]
    line: Optional[int]


@dataclass
class AsanReport:
    kind: str
    address: Optional[int] = None
    access: Optional[str] = None
    access_size: Optional[int] = None
    relation: Optional[str] = None          # "after", "before", "inside"
    distance: Optional[int] = None
    region_size: Optional[int] = None
    region_start: Optional[int] = None
    on_stack: bool = False
    error_frames: List[Frame] = field(default_factory=list)
    alloc_frames: List[Frame] = field(default_factory=list)
    free_frames: List[Frame] = field(default_factory=list)

    def first_own(self, frames: List[Frame]) -> Optional[Frame]:
        """The first frame outside the sanitizer's and the allocator's functions."""
        for frame in frames:
            if not frame.function.startswith(_SANITIZER_FUNCS):
                return frame
        return None

    @property
    def alloc_frame(self) -> Optional[Frame]:
        return self.first_own(self.alloc_frames)


def _frames(block: str) -> List[Frame]:
    out = []
    for m in _FRAME.finditer(block):
        out.append(Frame(function=m.group(2), file=m.group(3), line=int(m.group(4)) if m.group(4) else None))
    return out


def _section(text: str, start: str) -> str:
    i = text.find(start)
    if i < 0:
        return ""
    rest = text[i + len(start):]
    end = re.search(r"\n\s*\n", rest)
    return rest[:end.start()] if end else rest


def parse(text: str) -> Optional[AsanReport]:
    """The first ASan error in ``text`` (a program's stderr), or None."""
    m = _ERROR.search(text)
    if not m:
        return None
    kind = m.group(1)
    if kind == "attempting":
        rest = text[m.start():m.start() + 200]
        if "double-free" in rest:
            kind = "double-free"
        elif "not malloc()-ed" in rest:
            kind = "bad-free"
    report = AsanReport(kind=kind, address=int(m.group(2), 16) if m.group(2) else None)
    tail = text[m.start():]
    a = _ACCESS.search(tail)
    if a:
        report.access, report.access_size = a.group(1), int(a.group(2))
    w = _WHERE.search(tail)
    if w:
        rel = w.group(3)
        report.relation = {"to the right of": "after", "to the left of": "before", "inside of": "inside"}.get(rel, rel)
        report.distance, report.region_size = int(w.group(2)), int(w.group(4))
        report.region_start = int(w.group(5), 16)
    report.on_stack = bool(_STACK_ADDR.search(tail))
    first = re.search(r"\n\s*\n", tail)
    report.error_frames = _frames(tail[:first.start()] if first else tail)
    report.alloc_frames = _frames(_section(tail, "allocated by thread"))
    report.free_frames = _frames(_section(tail, "freed by thread"))
    return report
