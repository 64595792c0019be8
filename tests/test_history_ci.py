"""docs/ci.md's CI job, run: docs/examples/ci/gdbext-ci.sh on a program that really crashes (kernel core
dumps, the machine's core_pattern), three CI runs keeping one crash history, and the YAML jobs parsed."""
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, needs_gcc, needs_gdb
from history_support import clean_env, gdbext

SCRIPT = os.path.join(ROOT, "docs", "examples", "ci", "gdbext-ci.sh")
CRASHY = os.path.join(ROOT, "docs", "examples", "ci", "crashy.c")
DOC = os.path.join(ROOT, "docs", "ci.md")


def _core_pattern():
    with open("/proc/sys/kernel/core_pattern", encoding="ascii") as fh:
        return fh.read().strip()


def _ci_run(work, env, *cmd):
    """One CI job: the tests (with cores enabled), then the triage; returns triage's exit code and stderr."""
    subprocess.run([SCRIPT, "run", *cmd], cwd=work, env=env, capture_output=True, timeout=60)
    proc = subprocess.run([SCRIPT, "triage", "./crashy"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


@needs_gdb
@needs_gcc
def test_three_ci_runs_keep_one_history(tmp_path):
    pattern = _core_pattern()
    if pattern.startswith("|") or "/" in pattern:
        pytest.skip(f"the kernel's core_pattern {pattern!r} sends cores elsewhere; the test does not change "
                    "system settings (docs/ci.md: the job sets the pattern)")
    work = tmp_path / "job"
    work.mkdir()
    subprocess.run(["gcc", "-g", "-O0", "-o", "crashy", CRASHY], cwd=work, check=True)
    env = clean_env(GITHUB_ACTIONS="true", GITHUB_SHA="1111111", GITHUB_REF_NAME="main",
                    GITHUB_SERVER_URL="https://github.com", GITHUB_REPOSITORY="o/r", GITHUB_RUN_ID="1",
                    GDBEXT=os.path.join(os.path.dirname(sys.executable), "gdbext"))
    # run 1: a new SIGSEGV fails the job
    code, out = _ci_run(work, env, "./crashy", "null")
    assert code == 1, out
    assert "gdbext: new crash: crashy: SIGSEGV | parse_config | main" in out
    sarif = json.loads((work / "gdbext-out" / "gdbext.sarif").read_text())
    assert sarif["version"] == "2.1.0"
    [result] = sarif["runs"][0]["results"]
    assert result["partialFingerprints"]["crashSignature/v1"] == "crashy: SIGSEGV | parse_config | main"
    assert "crashy: SIGSEGV | parse_config | main" in (work / "gdbext-out" / "gdbext.html").read_text()
    assert "crashy: SIGSEGV" in (work / "gdbext-out" / "gdbext.md").read_text()
    assert not list(work.glob("core*")) or all(p.is_dir() for p in work.glob("core*"))  # the cores were moved
    # run 2 (next commit): the same crash is known, the job passes
    env.update(GITHUB_SHA="2222222", GITHUB_RUN_ID="2", GDBEXT_PAGES="no")
    code, out = _ci_run(work, env, "./crashy", "null")
    assert code == 0 and "known crash (2 times since" in out, out
    # run 3: a new crash fails it again; a run without a crash passes
    env.update(GITHUB_SHA="3333333", GITHUB_RUN_ID="3")
    code, out = _ci_run(work, env, "./crashy", "abort")
    assert code == 1 and "gdbext: new crash: crashy: SIGABRT | check_limits | main" in out, out
    code, out = _ci_run(work, env, "./crashy", "fine")
    assert code == 0 and "no core dumps" in out
    code, out, _ = gdbext("crashes", "--db", str(work / ".gdbext" / "crashes.db"), "--format", "json")
    buckets = {b["signature"]: b for b in json.loads(out)["buckets"]}
    assert {s: (b["count"], b["status"]) for s, b in buckets.items()} == {
        "crashy: SIGSEGV | parse_config | main": (2, "known"), "crashy: SIGABRT | check_limits | main": (1, "new")}
    latest = buckets["crashy: SIGSEGV | parse_config | main"]["latest"]["ci"]
    assert latest == {"provider": "github-actions", "commit": "2222222", "branch": "main", "job": None,
                      "url": "https://github.com/o/r/actions/runs/2"}


def test_the_documented_jobs_parse_and_call_what_exists():
    with open(DOC, encoding="utf-8") as fh:
        doc = fh.read()
    jobs = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", doc, re.S)]
    assert len(jobs) == 2
    github, gitlab = jobs
    steps = github["jobs"]["test"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    uses = [s.get("uses", "").split("@")[0] for s in steps]
    assert ["actions/cache/restore", "actions/cache/save", "github/codeql-action/upload-sarif"] == [
        u for u in uses if u.startswith(("actions/cache", "github/codeql"))]
    sarif_step = next(s for s in steps if s.get("uses", "").startswith("github/codeql-action/upload-sarif"))
    assert sarif_step["with"]["sarif_file"] == "gdbext-out/gdbext.sarif"
    assert "kernel.core_pattern" in runs
    script_lines = runs + "\n" + "\n".join(gitlab["test"]["script"])
    for path in set(re.findall(r"(docs/examples/ci/[\w.-]+)", script_lines)):
        assert os.access(os.path.join(ROOT, path), os.X_OK), path
    assert "gdbext-ci.sh run" in script_lines and "gdbext-ci.sh triage" in script_lines
    assert gitlab["test"]["cache"]["paths"] == [".gdbext/"]
