# gdbext/triage/history/views.py - `gdbext crashes`: the buckets as text, JSON or markdown,
# one bucket with its latest cores and report, and the --since parser.
"""Renderers of the crash history.

Signatures, paths and reports come from cores (hostile) and CI variables:
text output escapes every character that is not printable, markdown
escapes table and code delimiters too.
"""
from __future__ import annotations

import enum
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Sequence

from ..formats import render_markdown, render_text
from .store import Bucket, HistoryError, Occurrence, utcnow

__all__ = ["HistoryFormat", "parse_since", "render_buckets", "render_bucket", "crashes_command"]

_RELATIVE = re.compile(r"^(\d{1,6})\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class HistoryFormat(enum.Enum):
    """``gdbext crashes --format``."""

    TEXT = "text"
    JSON = "json"
    MARKDOWN = "markdown"


def parse_since(text: str, now: Optional[datetime] = None) -> datetime:
    """``7d``, ``12h``, ``30m``, ``2w`` ago, or an ISO date/time (UTC unless it says otherwise)."""
    now = utcnow() if now is None else now
    m = _RELATIVE.match(text.strip())
    if m:
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise HistoryError(f"--since: {text!r} is neither a duration (7d, 12h, 30m, 2w) nor an ISO date") from None
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc).replace(tzinfo=None)
    return when


def _safe(value: Any) -> str:
    """Printable text: control and other unprintable characters as escapes."""
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _md(value: Any) -> str:
    return _safe(value).replace("\\", "\\\\").replace("|", "\\|").replace("`", "'")


def _when(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _occurrence_dict(o: Occurrence) -> Dict[str, Any]:
    out: Dict[str, Any] = {"seen": o.seen.isoformat() + "Z", "core": o.core, "binary": o.binary,
                           "build_id": o.build_id, "signal": o.signal, "finding_kinds": o.finding_kinds, "ci": o.ci}
    if o.report is not None:
        out["report"] = o.report
    return out


def _bucket_dict(b: Bucket) -> Dict[str, Any]:
    out: Dict[str, Any] = {"id": b.id, "signature": b.signature, "program": b.program, "count": b.count,
                           "first_seen": b.first_seen.isoformat() + "Z", "last_seen": b.last_seen.isoformat() + "Z",
                           "status": b.status.value,
                           "latest": _occurrence_dict(b.latest) if b.latest is not None else None}
    if b.occurrences:
        out["occurrences"] = [_occurrence_dict(o) for o in b.occurrences]
    return out


def _ci_text(o: Occurrence) -> str:
    parts = [f"{k} {o.ci[k]}" for k in ("commit", "branch", "url") if o.ci.get(k)]
    return ", ".join(parts)


def render_buckets(buckets: Sequence[Bucket], fmt: HistoryFormat) -> str:
    """The ``gdbext crashes`` list."""
    if fmt is HistoryFormat.JSON:
        return json.dumps({"schema": "gdbext.crashes/1", "buckets": [_bucket_dict(b) for b in buckets]},
                          indent=2) + "\n"
    if fmt is HistoryFormat.MARKDOWN:
        out = ["## gdbext crash history", "", "| status | count | signature | first seen | last seen | latest core |",
               "|---|---:|---|---|---|---|"]
        for b in buckets:
            core = _md(b.latest.core) if b.latest else ""
            link = f" ([job]({_md(b.latest.ci['url'])}))" if b.latest and b.latest.ci.get("url") else ""
            out.append(f"| {'**new**' if b.status.value == 'new' else 'known'} | {b.count} | `{_md(b.signature)}` | "
                       f"{_when(b.first_seen)} | {_when(b.last_seen)} | `{core}`{link} |")
        return "\n".join(out) + "\n"
    lines: List[str] = [f"{len(buckets)} signature(s)"]
    for b in buckets:
        lines.append(f"{b.status.value:<5} {b.count:>5}  {_safe(b.signature)}")
        lines.append(f"            first {_when(b.first_seen)}, last {_when(b.last_seen)} UTC, id {b.id}")
        if b.latest is not None:
            ci = _ci_text(b.latest)
            lines.append(f"            latest: {_safe(b.latest.core)}" + (f" ({_safe(ci)})" if ci else ""))
    return "\n".join(lines) + "\n"


def render_bucket(b: Bucket, fmt: HistoryFormat) -> str:
    """``gdbext crashes show``: the bucket, its latest cores, and the latest report."""
    report = b.latest.report if b.latest is not None else None
    if fmt is HistoryFormat.JSON:
        return json.dumps({"schema": "gdbext.crashes/1", "bucket": _bucket_dict(b)}, indent=2) + "\n"
    if fmt is HistoryFormat.MARKDOWN:
        out = [f"## `{_md(b.signature)}`", "",
               f"{b.status.value}, {b.count} time(s), first seen {_when(b.first_seen)}, last seen "
               f"{_when(b.last_seen)} UTC", "", "| seen | core | commit | branch | job |", "|---|---|---|---|---|"]
        for o in b.occurrences:
            url = f"[job]({_md(o.ci['url'])})" if o.ci.get("url") else ""
            out.append(f"| {_when(o.seen)} | `{_md(o.core)}` | `{_md(o.ci.get('commit') or '')}` | "
                       f"{_md(o.ci.get('branch') or '')} | {url} |")
        out.append("")
        text = "\n".join(out) + "\n"
        return text + ("\n" + render_markdown(report) if report else "")
    lines = [f"signature:  {_safe(b.signature)}", f"status:     {b.status.value}, {b.count} time(s)",
             f"first seen: {_when(b.first_seen)} UTC", f"last seen:  {_when(b.last_seen)} UTC", "",
             f"latest {len(b.occurrences)} core(s):"]
    for o in b.occurrences:
        ci = _ci_text(o)
        lines.append(f"  {_when(o.seen)}  {_safe(o.core)}" + (f"  ({_safe(ci)})" if ci else ""))
    text = "\n".join(lines) + "\n"
    if report:
        text += "\nlatest report:\n" + render_text(report)
    return text


def crashes_command(db_spec: str, action: Optional[str], key: Optional[str], since: Optional[str], fmt: str) -> str:
    """The output of ``gdbext crashes [list|show SIGNATURE]``."""
    from .store import CrashDB

    form = HistoryFormat(fmt)
    with CrashDB(db_spec, create=False) as db:
        if action == "show":
            if not key:
                raise HistoryError("crashes show: give a SIGNATURE (or a unique start of one, or its id)")
            return render_bucket(db.bucket(key), form)
        if key:
            raise HistoryError(f"crashes: unexpected {key!r} (did you mean 'crashes show'?)")
        return render_buckets(db.buckets(parse_since(since) if since else None), form)
