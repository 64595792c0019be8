"""Scoring gdbext's triage report against the oracle, and the agreement table.

Per detectable case the fields compared are: the kind (gdbext's first
finding against ASan's headline), the culprit (the chunk ASan's region names,
which the program printed as ``GT buffer``), the bytes past (or before) the
region (from the program's own ``GT written_end``/``written_start`` and
glibc's ``malloc_usable_size``: a core shows damage past the usable size, not
past the request, which glibc does not record), the written-after-free range
(the field the program wrote), and the allocation site (ASan's allocation
frame against gdbext's ``allocation_site`` and its ranked ``candidates``).
Twins (the bug switched off) must give no finding and exit 0.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from .asan import Frame
from .cases import GDBEXT_KIND, ASAN_KIND, BugKind, Method, SizeClass, detectability
from .runner import Outcome

FIGURES = ("kind", "culprit", "bytes", "waf", "site_top1", "site_top3")


def _addr(value: Any) -> Optional[int]:
    if value is None:
        return None
    try:
        return int(value, 16) if isinstance(value, str) else int(value)
    except ValueError:
        return None


def _user(chunk: Optional[Dict[str, Any]]) -> Optional[int]:
    return _addr(chunk.get("user_address")) if chunk else None


@dataclass
class CaseScore:
    """One case's agreement: each figure is True/False, or None when it does not apply."""
    seed: int
    kind: str
    size_class: str
    detectable: bool
    why_undetectable: Optional[str]
    figures: Dict[str, Optional[bool]] = field(default_factory=dict)
    twin_clean: Optional[bool] = None
    gdbext_kind: Optional[str] = None
    error: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


def _site_rank(finding: Dict[str, Any], function: str, line: Optional[int]) -> Optional[int]:
    """1-based rank of ASan's allocation frame among gdbext's sites, or None."""
    site = finding.get("allocation_site") or {}
    ranked: List[Dict[str, Any]] = []
    if site.get("function"):
        ranked.append(site)
    for cand in site.get("candidates") or []:
        if cand not in ranked:
            ranked.append(cand)
    for i, cand in enumerate(ranked, 1):
        if cand.get("function") == function and (line is None or cand.get("line") in (None, line)):
            return i
    return None


def _written_bytes(finding: Dict[str, Any]) -> Set[int]:
    out: Set[int] = set()
    for rng in finding.get("written_after_free") or []:
        off, size = rng.get("offset"), rng.get("size")
        if isinstance(off, int) and isinstance(size, int):
            out.update(range(off, off + size))
    return out


def score(outcome: Outcome) -> CaseScore:
    case = outcome.case
    detectable, why = detectability(case)
    sc = CaseScore(seed=case.seed, kind=case.kind.value, size_class=case.size_class.value,
                   detectable=detectable, why_undetectable=why, error=outcome.error)
    if outcome.error or outcome.oracle is None:
        sc.error = sc.error or "ASan reported nothing"
        return sc
    twin = outcome.twin
    sc.twin_clean = twin.exit_code == 0 and not (twin.report or {}).get("findings")
    report = outcome.bug.report or {}
    findings = report.get("findings") or []
    first = findings[0] if findings else {}
    sc.gdbext_kind = first.get("kind")
    if not detectable:
        return sc
    truth = outcome.bug
    buf = truth.int("buffer")
    asan_kind = outcome.oracle.kind
    if asan_kind == "use-after-poison" and case.size_class is SizeClass.POOL:
        asan_kind = ASAN_KIND[case.kind]   # ASan knows the pool's poison, the case knows which bug it is
    want_kind = GDBEXT_KIND.get(asan_kind)
    f = sc.figures
    f["kind"] = want_kind is not None and sc.gdbext_kind == want_kind
    source = first.get("source") or {}
    if case.kind is BugKind.OVERFLOW:
        f["culprit"] = _user(source.get("chunk")) == buf
        end, usable = truth.int("written_end"), truth.int("usable")
        if end is not None and buf is not None and usable is not None:
            f["bytes"] = source.get("bytes_past_end") == end - (buf + usable)
    elif case.kind is BugKind.UNDERFLOW:
        f["culprit"] = _user(source.get("chunk")) == buf or (
            not source and _user(first.get("chunk")) == buf)
        start = truth.int("written_start")
        before = source.get("bytes_before_start")
        if before is None and source.get("direction") in ("before", "left"):
            before = source.get("bytes_past_end")
        if start is not None and buf is not None:
            f["bytes"] = before == buf - start
    elif case.kind in (BugKind.UAF_WRITE, BugKind.UAF_READ_FNPTR, BugKind.DOUBLE_FREE):
        f["culprit"] = _user(first.get("chunk")) == buf
        if case.kind is BugKind.UAF_WRITE:
            want = set(range(case.field_offset, case.field_offset + case.field_size))
            f["waf"] = _written_bytes(first) == want
    elif case.kind is BugKind.INVALID_FREE:
        freed = truth.int("freed_pointer")
        f["culprit"] = _addr(first.get("address")) == freed or (
            case.method is Method.INTERIOR and _user(first.get("chunk")) == buf)
    frame = outcome.oracle.alloc_frame
    if case.size_class is SizeClass.POOL:
        # the pool records the site: the program's own allocation wrapper (its truth)
        frame = Frame(function="alloc_buffer", file=None, line=None)
        site = first.get("allocation_site") or {}
        f["site_top1"] = site.get("function") == frame.function and site.get("how") != "inferred"
        f["site_top3"] = f["site_top1"]
        return sc
    if frame is not None and not outcome.oracle.on_stack:
        rank = _site_rank(first, frame.function, frame.line) if first else None
        f["site_top1"] = rank == 1
        f["site_top3"] = rank is not None and rank <= 3
    return sc


def _pct(hits: int, total: int) -> Optional[float]:
    return round(100.0 * hits / total, 1) if total else None


def table(scores: Iterable[CaseScore]) -> Dict[str, Any]:
    """Aggregate per (kind, size class) and overall: the figures ``make accuracy`` prints."""
    groups: "OrderedDict[Tuple[str, str], List[CaseScore]]" = OrderedDict()
    everything: List[CaseScore] = []
    for sc in sorted(scores, key=lambda s: (s.kind, s.size_class, s.seed)):
        groups.setdefault((sc.kind, sc.size_class), []).append(sc)
        everything.append(sc)

    def row(items: List[CaseScore]) -> Dict[str, Any]:
        ok = [s for s in items if not s.error]
        det = [s for s in ok if s.detectable]
        out: Dict[str, Any] = {"cases": len(items), "errors": len(items) - len(ok),
                               "detectable": len(det), "undetectable": len(ok) - len(det)}
        for name in FIGURES:
            applied = [s.figures[name] for s in det if s.figures.get(name) is not None]
            out[name] = _pct(sum(1 for v in applied if v), len(applied))
            out[name + "_n"] = len(applied)
        twins = [s for s in ok if s.twin_clean is not None]
        out["twin_false"] = sum(1 for s in twins if not s.twin_clean)
        out["twins"] = len(twins)
        return out

    return {"overall": row(everything),
            "rows": [dict(bug=k, size_class=c, **row(v)) for (k, c), v in groups.items()]}


def render(tab: Dict[str, Any]) -> str:
    head = ("| kind | class | cases | detectable | kind agrees | culprit agrees | bytes exact | "
            "waf exact | site top-1 | site top-3 | twins with findings |")
    lines = [head, "|" + "---|" * 11]

    def cell(row: Dict[str, Any], name: str) -> str:
        v = row.get(name)
        return "-" if v is None else f"{v:.0f}% ({row[name + '_n']})"

    for row in tab["rows"] + [dict(bug="**all**", size_class="", **tab["overall"])]:
        lines.append("| " + " | ".join([row["bug"], row["size_class"], str(row["cases"]),
                                         str(row["detectable"])] + [cell(row, n) for n in FIGURES]
                                        + [f"{row['twin_false']}/{row['twins']}"]) + " |")
    return "\n".join(lines)
