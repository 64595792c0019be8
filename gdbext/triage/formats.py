# gdbext/triage/formats.py - rendering triage reports: text (the human view),
# markdown (a CI job summary), SARIF 2.1.0 (code-scanning UIs) and JSON.
"""Renderers of a report dict (:data:`~gdbext.triage.report.SCHEMA`) or a
batch dict (:data:`~gdbext.triage.report.BATCH_SCHEMA`).

:func:`render` picks the format; every renderer takes either kind of
document, so ``gdbext triage`` and ``gdbext triage --dir`` share them.
Renderers only read the dict: a report written by gdb, stored by CI and
rendered later gives the same text.

Every string of a report may come from the core, the binary or a file name,
so none is trusted: control characters are escaped in every format
(:func:`~gdbext.textutil.escape_controls`); markdown escapes its special
characters and HTML, and puts code in spans no backtick can close; SARIF
takes a source file as a location only when it is a plain path without
``..`` (no URL, no other scheme), percent-encoded.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, Iterable, List, Optional, Tuple
from urllib.parse import quote

from .. import __version__
from ..textutil import escape_controls, hexdump
from .report import BATCH_SCHEMA

__all__ = ["FORMATS", "render", "render_text", "render_markdown", "render_sarif", "render_json", "SARIF_SCHEMA"]

#: The formats ``--format`` accepts.
FORMATS = ("text", "json", "markdown", "sarif", "html")

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

_RULES = {
    "heap-buffer-overflow": "a write ran past the end of a heap block into its neighbour",
    "use-after-free": "memory was used after it was freed",
    "double-free": "a block was freed twice",
    "invalid-free": "free() of an address that is not a live block",
    "metadata-corruption": "allocator metadata holds values the allocator cannot have written",
    "poison": "a pointer read from freed or uninitialised memory (a fill pattern) was dereferenced",
    "wild-pointer": "a pointer that points nowhere (text, non-canonical) was dereferenced",
    "crash": "the process crashed; no heap finding explains it",
}


def _reports(doc: Dict[str, Any]) -> List[Dict[str, Any]]:
    return list(doc.get("reports") or []) if doc.get("schema") == BATCH_SCHEMA else [doc]


def _basename(path: Optional[str]) -> str:
    return (path or "?").rstrip("/").rsplit("/", 1)[-1]


def _where(fr: Optional[Dict[str, Any]]) -> str:
    if not fr:
        return "?"
    name = fr.get("function") or "??"
    if fr.get("file") and fr.get("line"):
        return f"{name} ({_basename(fr['file'])}:{fr['line']})"
    return name


def _frame_line(i: int, fr: Dict[str, Any]) -> str:
    line = f"#{i:<2} {fr.get('pc') or '?'} in {fr.get('function') or '??'}"
    if fr.get("file"):
        line += f" at {fr['file']}:{fr.get('line') or '?'}"
    elif fr.get("module"):
        line += f" from {fr['module']}"
    return line


def _chunk_text(chunk: Optional[Dict[str, Any]]) -> str:
    if not chunk:
        return "unknown"
    parts = [f"{chunk.get('address')}"]
    if "index" in chunk:
        parts[0] = f"slot {chunk['index']} at {chunk.get('address')}"
    parts.append(f"user {chunk.get('user_address')}")
    parts.append(f"{chunk.get('size')} bytes")
    if chunk.get("requested_size") is not None:
        parts.append(f"requested {chunk['requested_size']}")
    parts.append(str(chunk.get("state")))
    parts.append(str(chunk.get("heap")))
    return ", ".join(parts)


def _site_text(site: Optional[Dict[str, Any]]) -> str:
    if not site:
        return "unknown"
    where = site.get("function") or "??"
    if site.get("file"):
        where += f" at {site['file']}:{site.get('line') or '?'}"
    return f"{where} (pc {site.get('pc')}; {site.get('how')})"


def _dump_lines(dump: Dict[str, Any]) -> List[str]:
    try:
        base = int(dump["address"], 16)
        data = bytes.fromhex(dump.get("bytes") or "")
        marks = [(int(m["start"], 16), int(m["end"], 16), m["label"]) for m in dump.get("marks") or []]
    except (KeyError, TypeError, ValueError):
        return ["<unreadable memory dump in the report>"]
    return hexdump(data, base, marks)


def _finding_lines(f: Dict[str, Any]) -> List[str]:
    kind, message = f.get("kind") or "finding", f.get("message") or ""
    headline = message if message.startswith(kind) else f"{kind} on {f.get('address') or '?'}: {message}"
    out = [f"==> {headline}"]
    if f.get("chunk"):
        out.append(f"    chunk:      {_chunk_text(f['chunk'])}")
    src = f.get("source")
    if src:
        left = (f.get("evidence") or {}).get("direction") == "left"
        out.append(f"    source:     {_chunk_text(src.get('chunk'))}; {src.get('bytes_past_end')} bytes "
                   + ("before its region (an underflow)" if left else "past its requested end"))
        for r in src.get("referenced_by") or []:
            out.append(f"    source referenced by: {r}")
    site = f.get("allocation_site")
    if site:
        short = f"{site.get('function') or '??'}"
        if site.get("file"):
            short += f" ({os.path.basename(site['file'])}:{site.get('line') or '?'})"
        out.append(f"    allocated by {short}: {_site_text(site)}")
        for i, cand in enumerate((site or {}).get("candidates") or [], 1):  # an inferred site's ranking
            out.append(f"      candidate {i}: {_site_text(dict(cand, how=cand.get('why')))}")
    for w in f.get("written_after_free") or []:
        out.append(f"    written after free: +{w.get('offset')} {w.get('size')} bytes ({w.get('field') or '?'})")
    for r in f.get("referenced_by") or []:
        out.append(f"    referenced by: {r}")
    ev = f.get("evidence") or {}
    for note in ev.get("notes") or []:
        out.append(f"    - {note}")
    for dump in ev.get("memory") or []:
        out.extend("      " + line for line in _dump_lines(dump))
    for key, value in ev.items():  # free-form evidence of other finders
        if key not in ("notes", "memory"):
            out.extend(_evidence_lines(key, value))
    return out


def _evidence_lines(key: str, value: Any) -> List[str]:
    """``- key: value``, readable: a list of strings (a hexdump) one per line, a record by its
    description or as ``name value`` pairs, other values as JSON."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [f"    - {key}:"] + [f"      {v}" for v in value]
    if isinstance(value, (str, int, float)) or value is None:
        return [f"    - {key}: {value}"]
    if isinstance(value, dict):
        return [f"    - {key}: {_record_text(value)}"]
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return [f"    - {key}:"] + [f"      {_record_text(v)}" for v in value]
    return [f"    - {key}: {json.dumps(value, sort_keys=True)}"]


def _record_text(record: Dict[str, Any]) -> str:
    """One evidence record in a line: its description (and note), else its scalar fields."""
    if isinstance(record.get("description"), str):
        note = record.get("note")
        return record["description"] + (f" ({note})" if isinstance(note, str) else "")
    parts = []
    for k, v in record.items():
        if isinstance(v, (str, int, float)) and not isinstance(v, bool):
            parts.append(f"{k} {v}")
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            parts.append(f"{k} [" + "; ".join(_record_text(x) for x in v) + "]")
    return ", ".join(parts) if parts else json.dumps(record, sort_keys=True)


def _crash_headline(crash: Dict[str, Any]) -> str:
    parts = [crash.get("signal") or "no signal"]
    if crash.get("fault_address") is not None:
        src = crash.get("fault_address_source")
        parts.append(f"at {crash['fault_address']}" + (" (from the faulting instruction)" if src == "instruction"
                                                        else ""))
    frames = crash.get("frames") or []
    loc = crash.get("location")
    if crash.get("pc"):
        parts.append(f"pc {crash['pc']}")
        if frames and frames[0].get("function") and (not loc or frames[0].get("pc") != loc.get("pc")):
            parts.append(f"in {frames[0]['function']}")
    if loc:
        parts.append(f"in {_where(loc)}" if not frames or frames[0].get("pc") == loc.get("pc")
                     else f"called from {_where(loc)}")
    th = crash.get("thread") or {}
    if th.get("num") is not None:
        parts.append(f"thread {th['num']}" + (f" (LWP {th['tid']})" if th.get("tid") else ""))
    return " ".join(parts)


def _heap_lines(heap: Dict[str, Any]) -> List[str]:
    out = []
    g = heap.get("glibc")
    if g:
        out.append(f"  {g.get('version')}; mmapped chunks: {g['mmapped']['count']} ({g['mmapped']['bytes']} bytes)")
        for a in g.get("arenas") or []:
            out.append(f"  {a['label']}: {a['chunks']} chunks; in use {a['in_use']['count']} "
                       f"({a['in_use']['bytes']} bytes), free {a['free']['count']} ({a['free']['bytes']} bytes), "
                       f"corrupt {a['corrupt']['count']}")
        if g.get("violation_count"):
            out.append(f"  heap checks: {g['violation_count']} violation(s)")
            out.extend(f"    {v['check']} at {v['chunk']} {v['field']}: {v['explanation']}"
                       for v in g.get("violations") or [])
    for p in heap.get("pools") or []:
        if p.get("error"):
            out.append(f"  pool {p['name']}: not walked: {p['error']}")
            continue
        out.append(f"  pool {p['name']} at {p.get('address')}: {p['chunks']} chunks; in use {p['in_use']}, "
                   f"free {p['free']}, corrupt {p['corrupt']}; free list {p['free_list_length']} long")
        out.extend(f"    anomaly: {a}" for a in p.get("anomalies") or [])
    return out or ["  nothing known"]


def _text_report(rep: Dict[str, Any]) -> List[str]:
    crash = rep.get("crash") or {}
    process = rep.get("process") or {}
    subject = rep.get("core") or (f"live process {process.get('pid')}" if process else None)
    out = [f"gdbext triage: {subject} (binary {rep.get('binary')}, build-id {rep.get('build_id')})"]
    out.append(f"crash: {_crash_headline(crash)}")
    if crash.get("abort_message"):
        out.append(f'abort message: "{crash["abort_message"]}"')
    if crash.get("instruction"):
        out.append(f"instruction: {crash['instruction']}")
    out.extend(f"note: {n}" for n in crash.get("notes") or [])
    out.append(f"signature: {crash.get('signature')}")
    findings = rep.get("findings") or []
    out.append(f"findings: {len(findings)}")
    for f in findings:
        out.extend(_finding_lines(f))
    out.append("backtrace:")
    out.extend("  " + _frame_line(i, fr) for i, fr in enumerate(crash.get("frames") or []))
    out.append("heap:")
    out.extend(_heap_lines(rep.get("heap") or {}))
    out.extend(f"error: {e}" for e in rep.get("errors") or [])
    out.extend(f"skipped: {s}" for s in rep.get("skipped") or [])
    return out


def _groups_lines(doc: Dict[str, Any]) -> List[str]:
    out = [f"{len(doc.get('reports') or [])} core(s) analysed, {len(doc.get('failures') or [])} not; "
           f"{len(doc.get('groups') or [])} signature(s):"]
    for g in doc.get("groups") or []:
        out.append(f"  {g['count']:>4}  {g['signature']}")
        out.extend(f"        {_basename(c)}" for c in g.get("cores") or [])
    for fail in doc.get("failures") or []:
        out.append(f"  not analysed: {fail['core']}: {fail['reason']}")
    for skip in doc.get("skipped") or []:
        out.append(f"  skipped: {skip['path']}: {skip['reason']}")
    return out


def render_text(doc: Dict[str, Any]) -> str:
    """The human view: crash, findings with their evidence and hexdumps, backtrace, heap."""
    lines: List[str] = []
    for i, rep in enumerate(_reports(doc)):
        if i:
            lines.append("")
        lines.extend(_text_report(rep))
    if doc.get("schema") == BATCH_SCHEMA:
        if lines:
            lines.append("")
        lines.extend(_groups_lines(doc))
    return "\n".join(escape_controls(line) for line in lines) + "\n"


# -- markdown ------------------------------------------------------------------------


#: What is markup inside a line of GitHub markdown: emphasis, links, code, HTML and entities, tables, math,
#: strikethrough, and the starts of autolinks (``http:``, ``a@b``, ``www.``); a backslash makes each literal.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>&!|~$:@#]|(?<=[wW]{3})\.)")
_BACKTICKS = re.compile(r"`+")


def _inline(text: Any) -> str:
    """Text for one markdown line (or table cell): every markdown and HTML special character escaped."""
    return _MD_SPECIAL.sub(r"\\\1", escape_controls(str(text)))


def _md(text: Any) -> str:
    """Text for a markdown table cell."""
    return _inline(text)


def _code(text: Any, cell: bool = False) -> str:
    """``text`` as a code span: fenced by more backticks than it holds, so nothing in it can close the span
    (inside a span markdown and HTML are inert); ``cell``: in a table row, where ``|`` needs a backslash."""
    body = escape_controls(str(text))
    if cell:
        body = body.replace("|", "\\|")
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(body)), default=0) + 1)
    if body.startswith(("`", " ")) or body.endswith(("`", " ")):
        body = f" {body} "
    return fence + body + fence


def _fenced(lines: List[str], indent: str = "") -> List[str]:
    """A fenced code block of ``lines`` whose fence is longer than any backtick run inside."""
    body = [escape_controls(line) for line in lines]
    longest = max((len(run) for line in body for run in _BACKTICKS.findall(line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [indent + fence] + [indent + line for line in body] + [indent + fence]


def _markdown_report(rep: Dict[str, Any]) -> List[str]:
    crash = rep.get("crash") or {}
    findings = rep.get("findings") or []
    out = [f"### {_code(_basename(rep.get('core')))}: {_inline(crash.get('signal') or 'no signal')}, "
           f"{len(findings)} finding{'s' if len(findings) != 1 else ''}", ""]
    out.append(f"**Signature:** {_code(crash.get('signature'))}")
    out.append("")
    out.append("| | |")
    out.append("|---|---|")
    out.append(f"| crash | {_md(_crash_headline(crash))} |")
    if crash.get("abort_message"):
        out.append(f"| abort message | {_code(crash['abort_message'], cell=True)} |")
    out.append(f"| binary | {_code(rep.get('binary'), cell=True)} (build-id {_code(rep.get('build_id'), cell=True)}) |")
    out.append("")
    for i, f in enumerate(findings, 1):
        out.append(f"{i}. **{_inline(f.get('kind'))}**: {_inline(f.get('message'))}")
        if f.get("allocation_site"):
            out.append(f"   - allocated: {_inline(_site_text(f['allocation_site']))}")
        owners = (f.get("source") or {}).get("referenced_by") or []
        if owners:
            out.append(f"   - source referenced by: {', '.join(_inline(r) for r in owners)}")
        details = _finding_lines(f)[1:]
        out += ["", "   <details><summary>evidence</summary>", ""]
        out += _fenced(details, "   ")
        out += ["   </details>", ""]
    out += ["<details><summary>backtrace</summary>", ""]
    out += _fenced([_frame_line(i, fr) for i, fr in enumerate(crash.get("frames") or [])])
    out += ["</details>", ""]
    problems = list(rep.get("errors") or [])
    if problems:
        out.append("Errors: " + "; ".join(_inline(p) for p in problems))
        out.append("")
    return out


def render_markdown(doc: Dict[str, Any]) -> str:
    """A CI job summary: a signature table for a batch, then one section per core."""
    out: List[str] = ["## gdbext triage", ""]
    if doc.get("schema") == BATCH_SCHEMA:
        out += ["| count | signature | cores |", "|---:|---|---|"]
        for g in doc.get("groups") or []:
            cores = ", ".join(_code(_basename(c), cell=True) for c in g.get("cores") or [])
            out.append(f"| {_inline(g['count'])} | {_code(g['signature'], cell=True)} | {cores} |")
        out.append("")
        for fail in doc.get("failures") or []:
            out.append(f"- not analysed: {_code(_basename(fail['core']))}: {_inline(fail['reason'])}")
        if doc.get("failures"):
            out.append("")
        for skip in doc.get("skipped") or []:
            out.append(f"- skipped: {_code(_basename(skip['path']))}: {_inline(skip['reason'])}")
        if doc.get("skipped"):
            out.append("")
    for rep in _reports(doc):
        out.extend(_markdown_report(rep))
    return "\n".join(out) + "\n"


# -- SARIF --------------------------------------------------------------------------


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _source_uri(path: str) -> Optional[Tuple[str, Optional[str]]]:
    """``(uri, uriBaseId)`` of a source path from the debug info, or None when it is no plain local path.

    A URL or any other scheme (``https:``, ``data:``, a drive letter) and a
    path with a ``..`` component are refused: a code-scanning UI would link
    or open them.  The rest is percent-encoded; an absolute path is a
    ``file://`` URI, a relative one is relative to ``%SRCROOT%``.
    """
    if _SCHEME.match(path) or ".." in path.split("/"):
        return None
    plain = re.sub("/+", "/", path)
    encoded = quote(plain, safe="/")
    if plain.startswith("/"):
        return "file://" + encoded, None
    return encoded, "%SRCROOT%"


def _physical(path: Optional[str], line: Optional[int]) -> Optional[Dict[str, Any]]:
    if not path or not line:
        return None
    uri = _source_uri(str(path))
    if uri is None:
        return None
    loc: Dict[str, Any] = {"artifactLocation": {"uri": uri[0]}, "region": {"startLine": int(line)}}
    if uri[1] is not None:
        loc["artifactLocation"]["uriBaseId"] = uri[1]
    return loc


def _escape_strings(node: Any) -> Any:
    """``node`` with :func:`escape_controls` applied to every string in it."""
    if isinstance(node, str):
        return escape_controls(node)
    if isinstance(node, dict):
        return {key: _escape_strings(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_escape_strings(item) for item in node]
    return node


def _location(phys: Dict[str, Any], text: str, ident: Optional[int] = None) -> Dict[str, Any]:
    loc: Dict[str, Any] = {"physicalLocation": phys, "message": {"text": text}}
    if ident is not None:
        loc["id"] = ident
    return loc


def _sarif_results(rep: Dict[str, Any]) -> Iterable[Dict[str, Any]]:
    crash = rep.get("crash") or {}
    related: List[Dict[str, Any]] = []
    crash_loc = crash.get("location")
    crash_phys = _physical(crash_loc.get("file"), crash_loc.get("line")) if crash_loc else None
    for fr in crash.get("frames") or []:
        phys = _physical(fr.get("file"), fr.get("line"))
        if phys is not None:
            related.append(_location(phys, f"frame: {fr.get('function')}", len(related)))
    findings = rep.get("findings") or []
    items = findings or [{"kind": "crash", "message": f"{_crash_headline(crash)}", "allocation_site": None}]
    for f in items:
        site = f.get("allocation_site") or {}
        site_phys = _physical(site.get("file"), site.get("line"))
        own = [dict(loc) for loc in related]
        primary = None
        if site_phys is not None:
            probably = "probably " if site.get("how") == "inferred" else ""
            tag = " (inferred)" if probably else ""
            primary = _location(site_phys, f"{probably}allocated by {site.get('function')}{tag}")
            if crash_phys is not None:
                own.insert(0, _location(crash_phys, f"crash: {crash.get('signal')} in {_where(crash_loc)}"))
        elif crash_phys is not None:
            primary = _location(crash_phys, f"crash: {crash.get('signal')} in {_where(crash_loc)}")
        for i, loc in enumerate(own):
            loc["id"] = i
        result: Dict[str, Any] = {
            "ruleId": f["kind"],
            "level": "error" if f["kind"] != "crash" else "warning",
            "message": {"text": f.get("message") or f["kind"]},
            "locations": [primary] if primary is not None else [],
            "relatedLocations": own,
            "partialFingerprints": {"crashSignature/v1": crash.get("signature") or ""},
            "properties": {"core": rep.get("core"), "binary": rep.get("binary"), "build_id": rep.get("build_id"),
                           "signature": crash.get("signature"), "address": f.get("address"),
                           "source_referenced_by": list((f.get("source") or {}).get("referenced_by") or [])},
        }
        yield result


def render_sarif(doc: Dict[str, Any]) -> str:
    """SARIF 2.1.0: one run, one result per finding (or per crash without findings).

    A result's location is the allocation site when known, else the crash
    location; ``relatedLocations`` hold the crash location and every frame
    with a source line.
    """
    reps = _reports(doc)
    results = [_escape_strings(r) for rep in reps for r in _sarif_results(rep)]
    used = sorted({r["ruleId"] for r in results})
    rules = [{"id": k, "name": "".join(w.capitalize() for w in k.split("-")),
              "shortDescription": {"text": _RULES.get(k, k)}} for k in used]
    sarif = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "gdbext", "version": __version__, "rules": rules}},
            "results": results,
        }],
    }  # fmt: skip
    for r in results:
        r["ruleIndex"] = used.index(r["ruleId"])
    return json.dumps(sarif, indent=2) + "\n"


def render_json(doc: Dict[str, Any]) -> str:
    """The document itself, indented."""
    return json.dumps(doc, indent=2) + "\n"


def _render_html(doc: Dict[str, Any]) -> str:
    from .html import render_html  # the page and its SVG heap maps: only when asked

    return render_html(doc)


def render(doc: Dict[str, Any], fmt: str) -> str:
    """``doc`` in ``fmt`` (one of :data:`FORMATS`)."""
    renderers = {"text": render_text, "json": render_json, "markdown": render_markdown, "sarif": render_sarif}
    renderers["html"] = _render_html
    renderer = renderers.get(fmt)
    if renderer is None:
        raise ValueError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    return renderer(doc)
