"""Renderers (no gdb): text with headline and hexdump, markdown, SARIF 2.1.0, JSON; single and batch."""
import json

import pytest

from gdbext.analysis import analyze
from gdbext.triage.formats import FORMATS, render, render_markdown, render_sarif, render_text
from gdbext.triage.report import BATCH_SCHEMA, validate_batch
from gdbext.triage.runner import TriageResult, batch_document, batch_exit_code

from test_triage_analysis import context, overflow_memory, walked


@pytest.fixture(scope="module")
def report():
    mem = overflow_memory()
    rep = analyze(context(mem, [walked(mem)], signal="SIGSEGV", signo=11, pc=0x401770))
    rep["core"], rep["binary"] = "cores/prog.core.xz", "cores/prog"
    return rep


def test_text_has_headline_evidence_hexdump_backtrace(report):
    text = render_text(report)
    assert "==> heap-buffer-overflow on 0x1007c: 60 bytes after the 20-byte region" in text
    assert "signature: heap-buffer-overflow | pool_alloc | main" in text
    assert "=>0x" in text and "[..] = first byte of a marked range" in text
    assert "#0  0x401770 in pool_alloc at src/prog.c:96" in text
    assert "pool p at 0x10000: 6 chunks" in text


def test_markdown_is_a_job_summary(report):
    md = render_markdown(report)
    assert md.startswith("## gdbext triage")
    assert "**Signature:** `heap-buffer-overflow | pool_alloc | main`" in md
    assert "<details><summary>evidence</summary>" in md
    assert md.count("```") % 2 == 0


def test_sarif_points_at_the_allocation_site_and_the_crash(report):
    sarif = json.loads(render_sarif(report))
    assert sarif["version"] == "2.1.0" and "sarif-2.1.0" in sarif["$schema"]
    run = sarif["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["heap-buffer-overflow"]
    (res,) = run["results"]
    assert res["ruleId"] == "heap-buffer-overflow" and res["ruleIndex"] == 0 and res["level"] == "error"
    loc = res["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"] == {"uri": "src/prog.c", "uriBaseId": "%SRCROOT%"}
    assert loc["region"]["startLine"] == 131  # the allocation site
    related = [(r["physicalLocation"]["region"]["startLine"], r["message"]["text"]) for r in res["relatedLocations"]]
    assert related[0] == (96, "crash: SIGSEGV in pool_alloc (prog.c:96)")
    assert [r["id"] for r in res["relatedLocations"]] == list(range(len(related)))
    assert res["partialFingerprints"]["crashSignature/v1"] == report["crash"]["signature"]


def test_sarif_of_a_crash_without_findings_has_one_crash_result():
    rep = analyze(context(None, signal="SIGSEGV", signo=11))
    res = json.loads(render_sarif(rep))["runs"][0]["results"]
    assert [(r["ruleId"], r["level"]) for r in res] == [("crash", "warning")]
    assert res[0]["locations"][0]["physicalLocation"]["region"]["startLine"] == 96


def test_json_round_trips(report):
    assert json.loads(render(report, "json")) == report


def test_batch_groups_by_signature_in_every_format(report):
    other = analyze(context(None, signal="SIGSEGV", signo=11))
    results = [TriageResult("a.core", "prog", report), TriageResult("b.core", "prog", report),
               TriageResult("c.core", "prog", other), TriageResult("d.core", None, error="d.core: empty file")]
    doc = batch_document(results)
    assert doc["schema"] == BATCH_SCHEMA and validate_batch(doc) == []
    assert [(g["count"], g["signature"]) for g in doc["groups"]] == [
        (2, "heap-buffer-overflow | pool_alloc | main"), (1, "SIGSEGV | pool_alloc | main")]
    assert doc["failures"] == [{"core": "d.core", "binary": None, "reason": "d.core: empty file"}]
    assert batch_exit_code(results) == 2 and batch_exit_code(results[:3]) == 1 and batch_exit_code(results[2:3]) == 0
    text = render(doc, "text")
    assert "3 core(s) analysed, 1 not; 2 signature(s):" in text
    assert "     2  heap-buffer-overflow | pool_alloc | main" in text
    assert "| 2 | `heap-buffer-overflow \\| pool_alloc \\| main` | `a.core`, `b.core` |" in render(doc, "markdown")
    assert len(json.loads(render(doc, "sarif"))["runs"][0]["results"]) == 3
    for fmt in FORMATS:
        assert render(doc, fmt)


def test_unknown_format():
    with pytest.raises(ValueError):
        render({}, "xml")
