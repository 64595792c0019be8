# gdbext/triage/heapmap.py - the SVG heap map of one finding: the damaged chunk (or pool slot) and
# the chunk that overran it as boxes sized by bytes and coloured by state, the overflow run across
# the boundary, the written-after-free ranges and the first bad address.
"""SVG heap maps for the HTML report.

:func:`heap_map` reads only a finding dict of the ``gdbext.triage/1``
report (``chunk``, ``source``, ``written_after_free``, ``address``), so a
stored report draws the same picture later.  Every number is parsed
defensively: a report is data from a core, and a value that is missing or
not an address leaves that part of the picture out.  Text in the SVG is
escaped by the caller's rule (:func:`html.escape`).
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["STATE_COLOURS", "MapBox", "heap_map", "map_boxes"]

#: Fill colour per chunk state (and the legend's order).
STATE_COLOURS: Dict[str, str] = {
    "in-use": "#7aa6d8",
    "free": "#8fd18f",
    "corrupt": "#e05d5d",
    "unknown": "#c8c8c8",
}
OVERFLOW_COLOUR = "#ff8c00"
WRITTEN_AFTER_FREE_COLOUR = "#9b4dca"
WIDTH, LEFT, RIGHT = 760, 10, 10
#: Bytes of context kept on each side of the damage when a chunk is larger than the picture.
CONTEXT = 96
#: A span wider than this is cut down to the damage and :data:`CONTEXT`.
MAX_SPAN = 640
#: The most written-after-free ranges drawn.
MAX_RANGES = 32


@dataclass(frozen=True)
class MapBox:
    """One chunk of the picture: ``[start, end)`` and how to label it."""

    start: int
    end: int
    user: Optional[int]
    requested_end: Optional[int]
    state: str
    label: str
    role: str  #: "damaged" or "source"


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
    name = f"slot {chunk['index']}" if _int(chunk.get("index")) is not None else f"chunk {start:#x}"
    label = f"{name}: {size} bytes, {state}" + (f" ({chunk['heap']})" if chunk.get("heap") else "")
    return MapBox(start, start + size, user, user + req if user is not None and req is not None else None,
                  state if state in STATE_COLOURS else "unknown", label, role)


def map_boxes(finding: Dict[str, Any]) -> Tuple[List[MapBox], Optional[Tuple[int, int]], List[Tuple[int, int, str]]]:
    """The boxes, the overflow run ``(start, end)`` and the written-after-free ranges of a finding."""
    boxes: List[MapBox] = []
    run: Optional[Tuple[int, int]] = None
    src = finding.get("source") if isinstance(finding.get("source"), dict) else None
    src_box = _box(src.get("chunk"), "source") if src else None
    damaged = _box(finding.get("chunk"), "damaged")
    if src_box is not None:
        boxes.append(src_box)
        past = _int(src.get("bytes_past_end")) if src else None
        begin = src_box.requested_end if src_box.requested_end is not None else _int(finding.get("address"))
        if begin is not None and past:
            run = (begin, begin + min(past, 1 << 20))
    if damaged is not None and (src_box is None or damaged.start != src_box.start):
        boxes.append(damaged)
    boxes.sort(key=lambda b: b.start)
    ranges: List[Tuple[int, int, str]] = []
    if damaged is not None and damaged.user is not None:
        for w in (finding.get("written_after_free") or [])[:MAX_RANGES]:
            off, size = _int(w.get("offset")) if isinstance(w, dict) else None, _int(w.get("size")) if isinstance(
                w, dict) else None
            if off is not None and size:
                ranges.append((damaged.user + off, damaged.user + off + min(size, 1 << 20), str(w.get("field") or "")))
    return boxes, run, ranges


def _window(boxes: List[MapBox], focus: List[int]) -> Tuple[int, int, bool, bool]:
    lo, hi = min(b.start for b in boxes), max(b.end for b in boxes)
    lo = min([lo] + focus)
    hi = max([hi] + focus)
    cut_lo = cut_hi = False
    if hi - lo > MAX_SPAN and focus:
        f_lo, f_hi = min(focus), max(focus)
        new_lo, new_hi = max(lo, (f_lo - CONTEXT) & ~15), min(hi, f_hi + CONTEXT)
        cut_lo, cut_hi = new_lo > lo, new_hi < hi
        lo, hi = new_lo, max(new_hi, new_lo + 16)
    return lo, hi, cut_lo, cut_hi


def heap_map(finding: Dict[str, Any]) -> Optional[str]:
    """An inline ``<svg>`` of the finding's chunks and damage, or None when the finding names no chunk."""
    boxes, run, ranges = map_boxes(finding)
    if not boxes:
        return None
    address = _int(finding.get("address"))
    focus = [p for r in ([run] if run else []) + [(a, b) for a, b, _ in ranges] for p in r]
    if address is not None:
        focus.append(address)
    lo, hi, cut_lo, cut_hi = _window(boxes, focus)
    span = max(hi - lo, 1)

    def x(addr: int) -> float:
        return round(LEFT + (min(max(addr, lo), hi) - lo) * (WIDTH - LEFT - RIGHT) / span, 1)

    esc = html.escape
    out: List[str] = []
    top, height = 34, 64
    for b in boxes:
        x0, x1 = x(b.start), x(b.end)
        if x1 - x0 < 1:
            continue
        out.append(f'<rect class="chunk {esc(b.state)} {b.role}" x="{x0}" y="{top}" width="{x1 - x0}" '
                   f'height="{height}" fill="{STATE_COLOURS[b.state]}" stroke="#333"><title>{esc(b.label)}</title>'
                   f'</rect>')
        if b.user is not None and b.user > b.start:
            out.append(f'<rect class="header" x="{x0}" y="{top}" width="{max(x(b.user) - x0, 1)}" height="{height}" '
                       f'fill="#000" fill-opacity="0.18"><title>header</title></rect>')
        if b.requested_end is not None and b.start < b.requested_end < b.end:
            xr = x(b.requested_end)
            out.append(f'<line class="requested-end" x1="{xr}" y1="{top - 4}" x2="{xr}" y2="{top + height + 4}" '
                       f'stroke="#222" stroke-dasharray="3,2"><title>requested end {b.requested_end:#x}</title>'
                       f'</line>')
        role = "overran" if b.role == "source" else "damaged"
        out.append(f'<text x="{max(x0, LEFT) + 3}" y="{top + 16}" class="label">{esc(role)}</text>')
        out.append(f'<text x="{max(x0, LEFT) + 3}" y="{top + 30}" class="small">{esc(b.label)}</text>')
    for i, b in enumerate(boxes[1:], 1):  # boundaries between adjacent boxes
        if boxes[i - 1].end == b.start and lo < b.start < hi:
            xb = x(b.start)
            out.append(f'<line class="boundary" x1="{xb}" y1="{top - 10}" x2="{xb}" y2="{top + height + 26}" '
                       f'stroke="#000" stroke-width="2.5"><title>boundary {b.start:#x}</title></line>')
    if run is not None:
        x0, x1 = x(run[0]), x(run[1])
        y = top + height + 8
        out.append(f'<rect class="overflow" x="{x0}" y="{y}" width="{max(x1 - x0, 2)}" height="12" '
                   f'fill="{OVERFLOW_COLOUR}"><title>overflow {run[0]:#x}..{run[1]:#x}</title></rect>')
        out.append(f'<polygon class="overflow-arrow" points="{x1},{y - 3} {x1 + 9},{y + 6} {x1},{y + 15}" '
                   f'fill="{OVERFLOW_COLOUR}"/>')
        out.append(f'<text x="{x0}" y="{y + 26}" class="small">overflow: {run[1] - run[0]} bytes from '
                   f'{run[0]:#x} to {run[1]:#x}</text>')
    for start, end, field in ranges:
        x0, x1 = x(start), x(end)
        out.append(f'<rect class="written-after-free" x="{x0}" y="{top + 36}" width="{max(x1 - x0, 2)}" '
                   f'height="{height - 38}" fill="{WRITTEN_AFTER_FREE_COLOUR}" fill-opacity="0.85">'
                   f'<title>written after free: {start:#x}..{end:#x} {esc(field)}</title></rect>')
        out.append(f'<text x="{x0}" y="{top + height + 20}" class="small">written after free: '
                   f'{esc(field) or "?"} (+{end - start})</text>')
    if address is not None and lo <= address <= hi:
        xa = x(address)
        out.append(f'<polygon class="first-bad" points="{xa - 6},{top - 14} {xa + 6},{top - 14} {xa},{top - 4}" '
                   f'fill="#c00"><title>first bad address {address:#x}</title></polygon>')
        out.append(f'<text x="{min(xa + 8, WIDTH - 150)}" y="{top - 6}" class="small">{address:#x}</text>')
    out.append(f'<text x="{LEFT}" y="12" class="small">{"... " if cut_lo else ""}{lo:#x}</text>')
    out.append(f'<text x="{WIDTH - RIGHT}" y="12" class="small" text-anchor="end">{hi:#x}'
               f'{" ..." if cut_hi else ""}</text>')
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
