# gdbext/triage/html.py - `gdbext triage --format html`: one self-contained page (inline CSS and
# SVG, no script, no external resource) per core or per --dir batch.
"""The HTML report.

A page holds, per core: the crash (signal, fault, location, abort message,
signature), each finding with its chunk, source, allocation site and
evidence, an SVG heap map of the damage (:mod:`.heapmap`) beside the
annotated hexdump, then the backtrace and the heap summary.  A batch page
opens with the signature groups and the cores that could not be analysed.

Everything that comes from a report -- names, paths, messages, evidence --
is data from a core and is escaped with :func:`html.escape`; the page's
Content-Security-Policy forbids scripts and every external load.
"""
from __future__ import annotations

import html
import json
from typing import Any, Dict, List

from ..textutil import hexdump
from .heapmap import heap_map
from .report import BATCH_SCHEMA

__all__ = ["render_html"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#111;background:#fff;max-width:1600px}
h1{font-size:1.5em}h2{font-size:1.25em;border-bottom:2px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
h3{font-size:1.05em;margin:.2em 0}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;
vertical-align:top}th{background:#f2f2f2}
code,pre{font-family:ui-monospace,monospace;font-size:12.5px}pre{background:#f7f7f7;padding:.5em;overflow-x:auto;
margin:.3em 0}
.finding{border:1px solid #d99;border-left:6px solid #c33;padding:.6em 1em;margin:1em 0;background:#fffafa}
.signature{font-weight:bold;font-family:ui-monospace,monospace}
.damage{display:flex;flex-wrap:wrap;gap:1.2em;align-items:flex-start}
.hexdump .mark{background:#ffe4b3;display:block}
svg text.label{font:bold 12px sans-serif}svg text.small{font:11px sans-serif}
.evidence dt{font-weight:bold;margin-top:.3em}.evidence dd{margin-left:1.2em}
.muted{color:#666}
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
#: The most frames and findings shown per core.
MAX_FRAMES, MAX_FINDINGS = 64, 50


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _dict(value: Any) -> Dict[str, Any]:
    """``value`` when it is a dict, else an empty one (a report is data: any key may hold anything)."""
    return value if isinstance(value, dict) else {}


def _basename(path: Any) -> str:
    return str(path or "?").rstrip("/").rsplit("/", 1)[-1]


def _rows(pairs: List[tuple]) -> str:
    return "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in pairs if v) + "</table>"


def _chunk(chunk: Any) -> str:
    if not isinstance(chunk, dict):
        return ""
    name = f"slot {chunk['index']} at " if "index" in chunk else ""
    req = f", requested {chunk['requested_size']}" if chunk.get("requested_size") is not None else ""
    return _e(f"{name}{chunk.get('address')} (user {chunk.get('user_address')}), {chunk.get('size')} bytes{req}, "
              f"{chunk.get('state')}, {chunk.get('heap')}")


def _site(site: Any) -> str:
    if not isinstance(site, dict):
        return ""
    where = str(site.get("function") or "??")
    if site.get("file"):
        where += f" at {site['file']}:{site.get('line') or '?'}"
    return f"<code>{_e(where)}</code> <span class=muted>(pc {_e(site.get('pc'))}; {_e(site.get('how'))})</span>"


def _hexdump_lines(evidence: Dict[str, Any]) -> List[str]:
    lines = evidence.get("hexdump")
    if isinstance(lines, list) and all(isinstance(x, str) for x in lines):
        return list(lines)
    out: List[str] = []
    for dump in evidence.get("memory") or []:
        try:
            base = int(dump["address"], 16)
            data = bytes.fromhex(dump.get("bytes") or "")
            marks = [(int(m["start"], 16), int(m["end"], 16), str(m["label"])) for m in dump.get("marks") or []]
        except (KeyError, TypeError, ValueError, AttributeError):
            out.append("<unreadable memory dump in the report>")
            continue
        out += hexdump(data[:4096], base, marks)
    return out


def _hexdump_html(lines: List[str]) -> str:
    if not lines:
        return ""
    body = "".join(f'<span class="mark">{_e(ln)}</span>' if ln.startswith("=>") else _e(ln) + "\n" for ln in lines)
    return f'<pre class="hexdump">{body}</pre>'


def _evidence_value(value: Any) -> str:
    if isinstance(value, str):
        return _e(value)
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return "<ul>" + "".join(f"<li>{_e(x)}</li>" for x in value) + "</ul>"
    return f"<pre>{_e(json.dumps(value, indent=1, default=str))}</pre>"


def _finding(i: int, f: Dict[str, Any]) -> str:
    kind, message = f.get("kind") or "finding", f.get("message") or ""
    ev = _dict(f.get("evidence"))
    src = f.get("source") if isinstance(f.get("source"), dict) else None
    pairs = [("chunk", _chunk(f.get("chunk"))),
             ("source", _chunk(src.get("chunk")) + (f"; {_e(src.get('bytes_past_end'))} bytes past its requested end"
                                                    if src else "") if src else ""),
             ("allocated by", _site(f.get("allocation_site"))),
             ("referenced by", "<br>".join(_e(r) for r in f.get("referenced_by") or [])),
             ("written after free", "<br>".join(_e(f"+{w.get('offset')} {w.get('size')} bytes ({w.get('field')})")
                                                for w in f.get("written_after_free") or [] if isinstance(w, dict)))]
    svg = heap_map(f) or ""
    dump = _hexdump_html(_hexdump_lines(ev))
    rest = {k: v for k, v in ev.items() if k not in ("hexdump", "memory")}
    evidence = "".join(f"<dt>{_e(k)}</dt><dd>{_evidence_value(v)}</dd>" for k, v in rest.items())
    return (f'<section class="finding" id="finding-{i}"><h3><span class="kind">{_e(kind)}</span> on '
            f'<code>{_e(f.get("address"))}</code></h3><p class="message">{_e(message)}</p>{_rows(pairs)}'
            f'<div class="damage">{svg}{dump}</div>'
            + (f'<details open><summary>evidence</summary><dl class="evidence">{evidence}</dl></details>'
               if evidence else "") + "</section>")


def _frames(frames: List[Dict[str, Any]]) -> str:
    rows = []
    for i, fr in enumerate(frames[:MAX_FRAMES]):
        where = f"{fr.get('file')}:{fr.get('line') or '?'}" if fr.get("file") else (fr.get("module") or "")
        rows.append(f"<tr><td>#{i}</td><td><code>{_e(fr.get('pc'))}</code></td><td><code>"
                    f"{_e(fr.get('function') or '??')}</code></td><td>{_e(where)}</td></tr>")
    return "<table class=frames><tr><th>#</th><th>pc</th><th>function</th><th>where</th></tr>" + "".join(rows) + \
        "</table>"


def _heap(heap: Any) -> str:
    if not isinstance(heap, dict):
        return ""
    parts = []
    glibc = heap.get("glibc")
    if isinstance(glibc, dict):
        for a in glibc.get("arenas") or []:
            if isinstance(a, dict):
                parts.append(f"<li>{_e(a.get('label') or a.get('arena'))}: {_e(json.dumps(a.get('chunks')))} chunks, "
                             f"in use {_e(json.dumps(a.get('in_use')))}, free {_e(json.dumps(a.get('free')))}, "
                             f"corrupt {_e(json.dumps(a.get('corrupt')))}</li>")
    for p in heap.get("pools") or []:
        if isinstance(p, dict):
            parts.append(f"<li>pool {_e(p.get('name'))} at {_e(p.get('address'))}: "
                         f"{_e(p.get('error') or json.dumps({k: p.get(k) for k in ('chunks', 'in_use', 'free')}))}"
                         "</li>")
    return "<ul>" + "".join(parts) + "</ul>" if parts else ""


def _report(rep: Dict[str, Any], n: int) -> str:
    crash = _dict(rep.get("crash"))
    findings = [f for f in (rep.get("findings") or []) if isinstance(f, dict)][:MAX_FINDINGS]
    loc = crash.get("location") if isinstance(crash.get("location"), dict) else None
    where = ""
    if loc:
        where = f"{loc.get('function') or '??'}" + (f" ({_basename(loc.get('file'))}:{loc.get('line')})"
                                                    if loc.get("file") else "")
    fault = crash.get("fault_address")
    pairs = [("signal", _e(f"{crash.get('signal') or 'none'}" + (f" ({crash.get('si_code_name')})"
                                                                   if crash.get("si_code_name") else ""))),
             ("fault address", _e(fault) + (f" <span class=muted>({_e(crash.get('fault_address_source'))})</span>"
                                            if fault else "")),
             ("where", f"<code>{_e(where)}</code>" if where else ""),
             ("instruction", f"<code>{_e(crash.get('instruction'))}</code>" if crash.get("instruction") else ""),
             ("abort message", f"<code>{_e(crash.get('abort_message'))}</code>" if crash.get("abort_message") else ""),
             ("signature", f'<span class="signature">{_e(crash.get("signature"))}</span>'),
             ("binary", f"<code>{_e(rep.get('binary'))}</code> build-id <code>{_e(rep.get('build_id'))}</code>"),
             ("core", f"<code>{_e(rep.get('core'))}</code>")]
    body = [f'<section class="report" id="core-{n}"><h2>{_e(_basename(rep.get("core")))}: '
            f'{_e(crash.get("signal") or "no signal")}, {len(findings)} finding{"s" if len(findings) != 1 else ""}'
            f"</h2>", _rows(pairs)]
    body += [_finding(i, f) for i, f in enumerate(findings, 1)]
    frames = [fr for fr in crash.get("frames") or [] if isinstance(fr, dict)]
    body.append(f"<details><summary>backtrace ({len(frames)} frames)</summary>{_frames(frames)}</details>")
    heap = _heap(rep.get("heap"))
    if heap:
        body.append(f"<h3>heap</h3>{heap}")
    problems = [str(p) for p in rep.get("errors") or []]
    if problems:
        body.append("<h3>errors</h3><ul>" + "".join(f"<li>{_e(p)}</li>" for p in problems) + "</ul>")
    body.append("</section>")
    return "".join(body)


def _batch_head(doc: Dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{_e(g.get('count'))}</td><td class=signature>{_e(g.get('signature'))}</td><td>"
                   + ", ".join(f"<code>{_e(_basename(c))}</code>" for c in g.get("cores") or []) + "</td></tr>"
                   for g in doc.get("groups") or [] if isinstance(g, dict))
    out = f"<h2>signatures</h2><table class=groups><tr><th>count</th><th>signature</th><th>cores</th></tr>{rows}</table>"
    fails = [f for f in doc.get("failures") or [] if isinstance(f, dict)]
    if fails:
        out += "<h2>not analysed</h2><ul>" + "".join(f"<li><code>{_e(_basename(f.get('core')))}</code>: "
                                                       f"{_e(f.get('reason'))}</li>" for f in fails) + "</ul>"
    return out


def render_html(doc: Dict[str, Any]) -> str:
    """One self-contained HTML page for a report or a batch document."""
    batch = doc.get("schema") == BATCH_SCHEMA
    reports: List[Dict[str, Any]] = [r for r in (doc.get("reports") or []) if isinstance(r, dict)] if batch else [doc]
    title = (f"gdbext triage: {len(reports)} core(s)" if batch
             else f"gdbext triage: {_basename(doc.get('core'))}")
    tool = _dict(doc.get("tool"))
    head = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>")
    body = [f"<h1>{_e(title)}</h1><p class=muted>gdbext {_e(tool.get('version'))}</p>"]
    if batch:
        body.append(_batch_head(doc))
    body += [_report(r, n) for n, r in enumerate(reports, 1)]
    return head + "".join(body) + "</body></html>\n"


