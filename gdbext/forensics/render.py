# gdbext/forensics/render.py - findings as text for the gdb commands: the
# headline, the chunks involved, the allocation site, then the evidence with
# its hexdump, indented.
"""Text rendering of :class:`~gdbext.forensics.model.Finding` s."""
from __future__ import annotations

from typing import Any, List, Sequence

from .model import Finding

__all__ = ["finding_lines", "findings_lines", "value_lines"]

#: Evidence keys shown first, in this order; the hexdump always comes last.
_FIRST = ("crash", "fault", "damaged", "continuity", "region", "guard", "revealed_from", "key", "read")


def value_lines(key: str, value: Any, indent: str) -> List[str]:
    """``key: value`` lines; dicts and lists are expanded one level deeper."""
    if isinstance(value, dict):
        out = [f"{indent}{key}:"]
        for k, v in value.items():
            out.extend(value_lines(str(k), v, indent + "  "))
        return out
    if isinstance(value, list):
        if not value:
            return []
        if all(not isinstance(v, (dict, list)) for v in value) and sum(len(str(v)) for v in value) < 80:
            return [f"{indent}{key}: {', '.join(str(v) for v in value)}"]
        out = [f"{indent}{key}:"]
        for v in value:
            if isinstance(v, dict):
                items = list(v.items())
                first = True
                for k, vv in items:
                    lines = value_lines(str(k), vv, indent + "    ")
                    if first and lines:
                        lines[0] = indent + "  - " + lines[0].lstrip()
                        first = False
                    out.extend(lines)
            else:
                out.append(f"{indent}  - {v}")
        return out
    if value is None:
        return []
    return [f"{indent}{key}: {value}"]


def finding_lines(f: Finding, number: int = 0, hexdump: bool = True) -> List[str]:
    """The lines of one finding."""
    tag = f"#{number} " if number else ""
    out = [f"{tag}{f.headline}" + ("  [explains the crash]" if f.explains_crash else "")]
    if f.chunk is not None:
        out.append(f"  chunk:   {f.chunk.describe()}")
    if f.source is not None:
        n = f.bytes_past_end
        where = "before" if f.evidence.get("direction") == "left" else "past"
        out.append(f"  source:  {f.source.describe()}, {n} byte{'' if n == 1 else 's'} written {where} its region")
        if f.source_referenced_by:
            out.append(f"  source referenced by: {', '.join(f.source_referenced_by)}")
    if f.allocation_site is not None:
        out.append(f"  allocated at: {f.allocation_site.text()}")
        out.append(f"    ({f.allocation_site.how})")
    if f.referenced_by:
        out.append(f"  referenced by: {', '.join(f.referenced_by)}")
    for w in f.written_after_free:
        name = f" ({w.field})" if w.field else ""
        out.append(f"  written after free: offset {w.offset}, {w.size} bytes{name}"
                   + ("" if w.certain else " -- uncertain: free() leaves these bytes unfilled"))
    keys = [k for k in _FIRST if k in f.evidence] + [k for k in f.evidence if k not in _FIRST and k != "hexdump"]
    for k in keys:
        out.extend(value_lines(k, f.evidence[k], "  "))
    if hexdump and f.evidence.get("hexdump"):
        out.extend("    " + line for line in f.evidence["hexdump"])
    return out


def findings_lines(findings: Sequence[Finding], hexdump: bool = True) -> List[str]:
    """Every finding, numbered, separated by blank lines; one line when there is none."""
    if not findings:
        return ["no heap finding: the heap checks, the pools and the crash show nothing wrong"]
    out: List[str] = []
    for i, f in enumerate(findings, 1):
        if out:
            out.append("")
        out.extend(finding_lines(f, i, hexdump))
    return out
