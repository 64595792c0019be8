"""Text from a core, a binary or a file name cannot forge output (issue #10, item 3).

Hostile strings (ANSI escapes, line breaks, a forged ``gdbext:`` line, markdown and HTML, URLs and ``../`` paths)
are put in every field the renderers print.  The markdown oracle is a CommonMark parser (markdown-it-py, with
GFM tables), not our own renderer: the HTML it makes must hold no element the strings asked for.
"""
import json
import os
import subprocess
import sys
import unicodedata
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt

from conftest import ROOT
from gdbext.textutil import escape_controls
from gdbext.triage.formats import render
from gdbext.triage.report import BATCH_SCHEMA, SCHEMA

ANSI = "\x1b[2K\x1b[1A\r"
FORGED = "\ngdbext: analysed, clean"
HTML = "`</code><img src=x onerror=alert(1)>"
HEADING = "\n# Injected heading\n```\n<img src=y>"
URL = "https://evil.example/src/app.c"
UP = "../../../etc/passwd"

FUNCTION = "parse" + HTML + HEADING + ANSI
ABORT = "free(): double free detected" + ANSI + FORGED


def _report():
    frame = {"pc": "0x401000", "function": FUNCTION, "file": URL, "line": 7}
    frames = [frame,
              {"pc": "0x401010", "function": "main\u202e" + HTML, "file": UP, "line": 3},
              {"pc": "0x401020", "function": "helper", "file": "/src/../../etc/shadow", "line": 9},
              {"pc": "0x401030", "function": "ok_relative", "file": "src/ok file.c", "line": 4},
              {"pc": "0x401040", "function": "ok_absolute", "file": "/home/dev/src/ok.c", "line": 5},
              {"pc": "0x401050", "function": "win", "file": "C:\\src\\x.c", "line": 6},
              {"pc": "0x401060", "function": "data", "file": "data:text/html,<script>", "line": 6}]
    return {
        "schema": SCHEMA,
        "core": "/crashes/c" + FORGED + ANSI + HTML + ".core",
        "binary": "/crashes/prog" + HEADING,
        "build_id": "ab12" + ANSI,
        "crash": {"signal": "SIGABRT" + HTML, "pc": "0x401000", "abort_message": ABORT, "signature": "sig" + HTML,
                  "location": frame, "frames": frames, "notes": ["note" + FORGED + HEADING],
                  "instruction": "mov" + ANSI, "thread": {"num": 1, "tid": 42}},
        "findings": [{"kind": "double-free", "address": "0x4b0010" + HTML, "message": "double free" + HEADING + ANSI,
                      "allocation_site": {"function": FUNCTION, "file": URL, "line": 2, "pc": "0x1", "how": "x"},
                      "referenced_by": ["g_table[2]" + FORGED],
                      "evidence": {"notes": ["evidence" + HEADING + ANSI], "free_form": "text" + FORGED}}],
        "heap": {},
        "errors": ["error" + FORGED + HTML],
        "skipped": ["skipped" + FORGED],
    }


def _batch():
    rep = _report()
    return {"schema": BATCH_SCHEMA, "tool": {"name": "gdbext", "version": "0"}, "reports": [rep],
            "failures": [{"core": "/crashes/bad" + FORGED + HTML, "binary": None, "reason": "why" + HEADING + ANSI}],
            "groups": [{"signature": "sig" + HTML + HEADING, "count": 1, "cores": [rep["core"]]}]}


def _controls(text):
    return sorted({f"U+{ord(c):04X}" for c in text if c != "\n" and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")})


@pytest.mark.parametrize("doc", [_report(), _batch()], ids=["report", "batch"])
def test_text_has_no_control_character_and_no_forged_line(doc):
    out = render(doc, "text")
    assert _controls(out) == []
    assert not any(line.startswith(("gdbext:", "# Injected", "<img")) for line in out.splitlines()), out


@pytest.mark.parametrize("doc", [_report(), _batch()], ids=["report", "batch"])
def test_markdown_renders_no_element_from_the_strings(doc):
    out = render(doc, "markdown")
    assert _controls(out) == []
    html = MarkdownIt("commonmark").enable("table").render(out)
    assert "<img" not in html and "<h1>" not in html, html
    assert html.count("<h3>") == 1 and html.count("<h2>") == 1, html  # the report's own headings, no more
    # the strings stay readable: the function name is shown, escaped
    assert "onerror=alert(1)" in html


@pytest.mark.parametrize("doc", [_report(), _batch()], ids=["report", "batch"])
def test_sarif_uris_are_local_files_under_the_source_root_and_texts_are_escaped(doc):
    sarif = json.loads(render(doc, "sarif"))
    uris = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "uri":
                    uris.append((value, node.get("uriBaseId")))
                elif key == "text":
                    assert _controls(value) == [], value
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(sarif)
    assert uris, "no location at all"
    for uri, base in uris:
        parts = urlsplit(uri)
        assert parts.scheme in ("", "file") and not parts.netloc and not parts.query and not parts.fragment, uri
        assert ".." not in unquote(parts.path).split("/"), uri
        assert (parts.scheme == "file") == (base is None), (uri, base)
    got = sorted(unquote(urlsplit(u).path) for u, _ in uris)
    assert "/home/dev/src/ok.c" in got and "src/ok file.c" in got, got
    assert not any("evil.example" in u or "passwd" in u or "shadow" in u or "script" in u for u, _ in uris), uris


def test_escape_controls():
    assert escape_controls("a\x1b[2Kb\r\nc\t\x7f\x85\u202e\u2028") == "a\\x1b[2Kb\\x0d\\x0ac\\x09\\x7f\\x85\\u202e\\u2028"
    assert escape_controls("plain text, é ü 漢字") == "plain text, é ü 漢字"


def test_a_file_name_cannot_forge_a_stderr_line(tmp_path):
    name = "missing" + FORGED + ANSI + ".core"
    proc = subprocess.run([sys.executable, "-P", "-m", "gdbext", "triage", str(tmp_path / "prog"), str(tmp_path / name)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1 and _controls(proc.stderr) == [], proc.stderr
