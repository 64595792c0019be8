# gdbext/triage/heapmap.py - the SVG heap map of one finding: the damaged chunk (or pool slot), the
# chunk that overran it and their neighbours as boxes sized by bytes and coloured by state, the
# overflow run across the boundary, the written-after-free ranges and the first bad address.
"""SVG heap maps for the HTML report.

:func:`heap_map` reads only a finding dict of the ``gdbext.triage/1``
report (``neighbourhood``, ``chunk``, ``source``, ``written_after_free``,
``address``), so a
stored report draws the same picture later.  Every number is parsed
defensively: a report is data from a core, and a value that is missing or
not an address leaves that part of the picture out.  Text in the SVG is
escaped by the caller's rule (:func:`html.escape`).
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["STATE_COLOURS", "OVERFLOW_COLOUR", "WRITTEN_AFTER_FREE_COLOUR", "MapBox", "heap_map", "map_boxes"]

#: Fill colour per chunk state (and the legend's order).
STATE_COLOURS: Dict[str, str] = {
    "in-use": "#7aa6d8",
    "free": "#8fd18f",
    "corrupt": "#e05d5d",
    "top": "#e3ddf0",
    "mmapped": "#f3d98b",
    "unknown": "#c8c8c8",
}
OVERFLOW_COLOUR = "#ff8c00"
WRITTEN_AFTER_FREE_COLOUR = "#9b4dca"
WIDTH, LEFT, RIGHT = 760, 10, 10
#: Narrowest box (pixels): a damaged or source chunk, and any other chunk.
MIN_NAMED, MIN_OTHER = 70, 26
#: Width (pixels) of the break drawn between chunks that are not adjacent.
GAP = 26
#: The most written-after-free ranges and boxes drawn.
MAX_RANGES, MAX_BOXES = 32, 12
#: Pixels of the overflow bar drawn at least on each side of the boundary it crosses.
MIN_SIDE = 8
#: Bytes a chunk's region may reach into the next chunk (glibc's prev_size word, 64-bit).
SLACK = 8
#: Pixels per character of the 11px label font (labels are cut to their box).
CHAR_PX = 6.2


@dataclass(frozen=True)
class MapBox:
    """One chunk of the picture: ``[start, end)`` and how to label it."""

    start: int
    end: int
    user: Optional[int]
    requested_end: Optional[int]
    state: str
    label: str
    role: str  #: "damaged", "source" or "neighbour"


def _int(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str):
        try:
            return int(value, 16) if value.lower().startswith("0x") else int(value)
        except ValueError:
            return None
    return None


def _box(chunk: Any, role: str) -> Optional[MapBox]:
    if not isinstance(chunk, dict):
        return None
    start, size = _int(chunk.get("address")), _int(chunk.get("size"))
    if start is None or not size or size > 1 << 40:
        return None
    user = _int(chunk.get("user_address"))
    req = _int(chunk.get("requested_size"))
    state = str(chunk.get("state") or "unknown")
    slot = _int(chunk.get("index"))
    name = f"slot {slot}" if slot is not None else f"chunk {start:#x}"
    label = f"{name}: {size} bytes, {state}" + (f" ({chunk['heap']})" if chunk.get("heap") else "")
    if chunk.get("bin"):
        label += f" in {chunk['bin']}"
    return MapBox(start, start + size, user, user + req if user is not None and req is not None else None,
                  state if state in STATE_COLOURS else "unknown", label, role)


def map_boxes(finding: Dict[str, Any]) -> Tuple[List[MapBox], Optional[Tuple[int, int]], List[Tuple[int, int, str]]]:
    """The boxes (address order), the overflow run ``(start, end)`` and the written-after-free ranges of a finding.

    The boxes are the finding's ``neighbourhood`` when the report has one, else its chunk and source.
    """
    run: Optional[Tuple[int, int]] = None
    src = finding.get("source") if isinstance(finding.get("source"), dict) else None
    src_box = _box(src.get("chunk"), "source") if src else None
    damaged = _box(finding.get("chunk"), "damaged")
    boxes: List[MapBox] = []
    hood = finding.get("neighbourhood")
    if isinstance(hood, list):
        for entry in hood[:MAX_BOXES]:
            role = str(entry.get("role")) if isinstance(entry, dict) else ""
            box = _box(entry, role if role in ("damaged", "source") else "neighbour")
            if box is not None:
                # the finding's own chunk records carry the requested size the neighbourhood lacks
                named = {"damaged": damaged, "source": src_box}.get(box.role)
                if named is not None and named.start == box.start:
                    box = replace(box, requested_end=named.requested_end)
                boxes.append(box)
    if not boxes:
        boxes = [b for b in (src_box, damaged) if b is not None]
        if src_box is not None and damaged is not None and src_box.start == damaged.start:
            boxes = [damaged]
    boxes = sorted({b.start: b for b in boxes}.values(), key=lambda b: b.start)
    if src_box is not None:
        past = _int(src.get("bytes_past_end")) if src else None
        begin = src_box.requested_end if src_box.requested_end is not None else _int(finding.get("address"))
        if begin is not None and past:
            run = (begin, begin + min(past, 1 << 20))
    ranges: List[Tuple[int, int, str]] = []
    if damaged is not None and damaged.user is not None:
        for w in (finding.get("written_after_free") or [])[:MAX_RANGES]:
            if not isinstance(w, dict):
                continue
            off, size = _int(w.get("offset")), _int(w.get("size"))
            if off is not None and size:
                ranges.append((damaged.user + off, damaged.user + off + min(size, 1 << 20), str(w.get("field") or "")))
    return boxes, run, ranges


class _Layout:
    """Where each box goes: widths grow with the square root of the bytes (a 48-byte chunk stays visible
    beside a 128 KiB top chunk), addresses are linear inside a box, non-adjacent boxes have a break."""

    def __init__(self, boxes: List[MapBox]) -> None:
        self.boxes = boxes
        gaps = sum(1 for a, b in zip(boxes, boxes[1:]) if a.end != b.start)
        avail = WIDTH - LEFT - RIGHT - gaps * GAP
        mins = [MIN_NAMED if b.role != "neighbour" else MIN_OTHER for b in boxes]
        raw = [math.sqrt(b.end - b.start) for b in boxes]
        lo, hi = 0.0, avail / max(min(raw), 1e-9)
        for _ in range(50):  # the scale at which the widths, each at least its minimum, fill the picture
            k = (lo + hi) / 2
            if sum(max(m, r * k) for m, r in zip(mins, raw)) > avail:
                hi = k
            else:
                lo = k
        widths = [max(m, r * lo) for m, r in zip(mins, raw)]
        self.x0: List[float] = []
        x = float(LEFT)
        for i, (b, w) in enumerate(zip(boxes, widths)):
            if i and boxes[i - 1].end != b.start:
                x += GAP
            self.x0.append(x)
            x += w
        self.widths = widths

    def x(self, addr: int) -> float:
        for b, x0, w in zip(self.boxes, self.x0, self.widths):
            if addr < b.start:
                return round(x0 - GAP / 2 if b is not self.boxes[0] else x0, 1)
            if addr <= b.end:
                return round(x0 + (addr - b.start) * w / (b.end - b.start), 1)
        return round(self.x0[-1] + self.widths[-1], 1)


def heap_map(finding: Dict[str, Any]) -> Optional[str]:
    """An inline ``<svg>`` of the finding's chunks and damage, or None when the finding names no chunk."""
    boxes, run, ranges = map_boxes(finding)
    if not boxes:
        return None
    address = _int(finding.get("address"))
    lay = _Layout(boxes)
    x = lay.x
    esc = html.escape
    out: List[str] = []
    top, height = 34, 64
    for i, (b, x0, w) in enumerate(zip(boxes, lay.x0, lay.widths)):
        x0, w = round(x0, 1), round(w, 1)
        stroke = 2 if b.role != "neighbour" else 1
        out.append(f'<rect class="chunk {esc(b.state)} {b.role}" x="{x0}" y="{top}" width="{w}" height="{height}" '
                   f'fill="{STATE_COLOURS[b.state]}" stroke="#333" stroke-width="{stroke}"><title>{esc(b.label)}'
                   f'</title></rect>')
        if b.user is not None and b.start < b.user < b.end:
            out.append(f'<rect class="header" x="{x0}" y="{top}" width="{max(x(b.user) - x0, 1)}" height="{height}" '
                       f'fill="#000" fill-opacity="0.18"><title>header</title></rect>')
        if b.requested_end is not None and b.start < b.requested_end < b.end:
            xr = x(b.requested_end)
            out.append(f'<line class="requested-end" x1="{xr}" y1="{top - 4}" x2="{xr}" y2="{top + height + 4}" '
                       f'stroke="#222" stroke-dasharray="3,2"><title>requested end {b.requested_end:#x}</title>'
                       f'</line>')
        role = {"source": "overran", "damaged": "damaged"}.get(b.role, "")
        size = b.end - b.start
        lines = [role] if role else []
        lines += [f"{b.start:#x}", f"{size} B {b.state}"] if w >= 64 else [f"{size}"] if w >= 22 else []
        for j, text in enumerate(lines):
            room = max(int((w - 4) / CHAR_PX), 0)
            text = text if len(text) <= room else text[:max(room - 1, 0)] + "." if room > 1 else ""
            cls = "label" if j == 0 and role else "small"
            out.append(f'<text x="{x0 + 3}" y="{top + 14 + 13 * j}" class="{cls}">{esc(text)}</text>')
        if i and boxes[i - 1].end != b.start:
            out.append(f'<text x="{x0 - GAP + 5}" y="{top + height / 2 + 4}" class="small">...</text>')
    for i, b in enumerate(boxes[1:], 1):  # boundaries between adjacent boxes
        if boxes[i - 1].end == b.start:
            xb = x(b.start)
            named = b.role != "neighbour" or boxes[i - 1].role != "neighbour"
            out.append(f'<line class="boundary" x1="{xb}" y1="{top - (10 if named else 0)}" x2="{xb}" '
                       f'y2="{top + height + (26 if named else 0)}" stroke="#000" '
                       f'stroke-width="{2.5 if named else 1}"><title>boundary {b.start:#x}</title></line>')
    if run is not None:
        x0, x1 = x(run[0]), x(run[1])
        # a glibc region ends one size word into the next chunk (its prev_size), so an overflow that
        # starts just past a boundary has crossed it too
        crossed = [x(b.start) for b in boxes if run[0] - SLACK <= b.start < run[1] and b is not boxes[0]]
        if crossed:  # keep the bar visibly on both sides of the boundary it crosses
            x0, x1 = min(x0, crossed[0] - MIN_SIDE), max(x1, crossed[-1] + MIN_SIDE)
        y = top + height + 8
        out.append(f'<rect class="overflow" x="{x0}" y="{y}" width="{max(round(x1 - x0, 1), 2)}" height="12" '
                   f'fill="{OVERFLOW_COLOUR}"><title>overflow {run[0]:#x}..{run[1]:#x}</title></rect>')
        out.append(f'<polygon class="overflow-arrow" points="{x1},{y - 3} {x1 + 9},{y + 6} {x1},{y + 15}" '
                   f'fill="{OVERFLOW_COLOUR}"/>')
        out.append(f'<text x="{max(x0 - 40, LEFT)}" y="{y + 26}" class="small">overflow: {run[1] - run[0]} bytes '
                   f'from {run[0]:#x} to {run[1]:#x}</text>')
    for start, end, field in ranges:
        x0, x1 = x(start), x(end)
        out.append(f'<rect class="written-after-free" x="{x0}" y="{top + 40}" width="{max(round(x1 - x0, 1), 3)}" '
                   f'height="{height - 42}" fill="{WRITTEN_AFTER_FREE_COLOUR}" fill-opacity="0.85">'
                   f'<title>written after free: {start:#x}..{end:#x} {esc(field)}</title></rect>')
        out.append(f'<text x="{x0}" y="{top + height + 20}" class="small">written after free: '
                   f'{esc(field) or "?"} (+{end - start})</text>')
    if address is not None and boxes[0].start <= address <= boxes[-1].end:
        xa = x(address)
        out.append(f'<polygon class="first-bad" points="{xa - 6},{top - 14} {xa + 6},{top - 14} {xa},{top - 4}" '
                   f'fill="#c00"><title>first bad address {address:#x}</title></polygon>')
        out.append(f'<text x="{min(xa + 8, WIDTH - 150)}" y="{top - 6}" class="small">{address:#x}</text>')
    out.append(f'<text x="{LEFT}" y="12" class="small">{boxes[0].start:#x}</text>')
    out.append(f'<text x="{WIDTH - RIGHT}" y="12" class="small" text-anchor="end">{boxes[-1].end:#x}</text>')
    legend_y = top + height + 48
    lx = LEFT
    for state, colour in list(STATE_COLOURS.items()) + [("overflow", OVERFLOW_COLOUR),
                                                        ("written after free", WRITTEN_AFTER_FREE_COLOUR)]:
        out.append(f'<rect x="{lx}" y="{legend_y}" width="12" height="12" fill="{colour}" stroke="#333"/>')
        out.append(f'<text x="{lx + 16}" y="{legend_y + 10}" class="small">{esc(state)}</text>')
        lx += 26 + 7 * len(state)
    total = legend_y + 20
    return (f'<svg class="heap-map" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{total}" '
            f'viewBox="0 0 {WIDTH} {total}" role="img" aria-label="heap map">' + "".join(out) + "</svg>")
