"""Tab completion as gdb does it: real gdb in batch, its ``complete`` command (what TAB shows).

Oracles: the options each command's ``help`` Usage line names (written by
hand, not derived from the completer), gdb's own completion of ``print``
for expressions, the spec file's pool names, and the directory listing for
file names.
"""
from __future__ import annotations

import os
import re
from typing import Dict, List

import pytest

from conftest import ROOT, gdb_run, needs_gdb, spec

pytestmark = needs_gdb

COMMANDS = ["heapwalk", "heapexplain", "whopoints", "poisonscan", "gdbext report", "gdbext scaffold"]


def _completions(commands: List[str], specs=()) -> Dict[str, List[str]]:
    """Each ``complete X`` of ``commands`` -> the lines gdb printed for it (markers split the answers)."""
    cmds = []
    for i, c in enumerate(commands):
        cmds += [f"echo @@{i}\\n", f"complete {c}"]
    cmds.append(f"echo @@{len(commands)}\\n")
    out = gdb_run("pool_overflow", cmds, specs=specs, with_core=False).stdout
    answers: Dict[str, List[str]] = {}
    for i, c in enumerate(commands):
        block = out.split(f"@@{i}\n", 1)[1].split(f"@@{i + 1}\n", 1)[0]
        answers[c] = [line for line in block.splitlines() if line]
    return answers


def _usage_options(help_text: str) -> List[str]:
    usage = help_text[help_text.index("Usage:"):].split("\n\n", 1)[0]
    return sorted(set(re.findall(r"--[a-z][a-z-]*", usage)))


def test_options_complete_to_the_usage_line():
    helps = gdb_run("pool_overflow", [f"help {c}" for c in COMMANDS], with_core=False).stdout
    answers = _completions([f"{c} --" for c in COMMANDS])
    for cmd, chunk in zip(COMMANDS, helps.split("Usage: ")[1:]):
        want = _usage_options("Usage: " + chunk)
        got = sorted(line.split()[-1] for line in answers[f"{cmd} --"])
        assert got == want, cmd
        assert all(line.startswith(f"{cmd} --") for line in answers[f"{cmd} --"])


def test_a_prefix_completes_one_option_and_states_complete_after_a_comma():
    answers = _completions(["heapwalk --st", "heapwalk --state fr", "heapwalk --state free,tc", "heapwalk --su"])
    assert answers["heapwalk --st"] == ["heapwalk --state"]
    assert answers["heapwalk --su"] == ["heapwalk --summary"]
    assert answers["heapwalk --state fr"] == ["heapwalk --state free"]
    assert answers["heapwalk --state free,tc"] == ["heapwalk --state free,tcache"]


def test_expressions_complete_like_print():
    exprs = ["g_po", "g_pool.", "g_pool.sl"]
    answers = _completions([f"{c} {e}" for c in ("print", "heapexplain", "whopoints") for e in exprs]
                           + ["heapexplain --json g_po", "heapwalk --range g_po"])
    for e in exprs:
        want = [line[len("print "):] for line in answers[f"print {e}"]]
        assert want, e  # the oracle found something
        for cmd in ("heapexplain", "whopoints"):
            assert [line[len(cmd) + 1:] for line in answers[f"{cmd} {e}"]] == want
    assert [line[len("heapexplain --json "):] for line in answers["heapexplain --json g_po"]] == \
        [line[len("print "):] for line in answers["print g_po"]]
    assert answers["heapwalk --range g_po"] == ["heapwalk --range " + line[len("print "):]
                                                 for line in answers["print g_po"]]


def test_pool_names_are_the_declared_ones():
    with open(spec("pool_overflow"), encoding="utf-8") as fh:
        declared = sorted(set(re.findall(r'name\s*=\s*"([^"]+)"', fh.read())))
    assert declared
    loaded = _completions(["heapwalk --pool ", "whopoints --pool ", "poisonscan --region pool:"],
                          specs=[spec("pool_overflow")])
    assert loaded["heapwalk --pool "] == [f"heapwalk --pool {n}" for n in declared]
    assert loaded["whopoints --pool "] == [f"whopoints --pool {n}" for n in declared]
    assert loaded["poisonscan --region pool:"] == [f"poisonscan --region pool:{n}" for n in declared]
    assert _completions(["heapwalk --pool "])["heapwalk --pool "] == []  # nothing declared, nothing offered


def test_file_names_complete_for_load_and_after_options():
    listing = sorted(n for n in os.listdir(os.path.join(ROOT, "fixtures", "specs")) if not n.startswith("."))
    base = os.path.join(ROOT, "fixtures", "specs") + "/"
    answers = _completions([f"gdbext load {base}", f"gdbext report --pools {base}", f"gdbext load {base} {base}",
                            f"gdbext report --json {ROOT}/fixtures/spe"])
    want = [base + n + ("/" if os.path.isdir(base + n) else "") for n in listing]
    assert answers[f"gdbext load {base}"] == [f"gdbext load {w}" for w in want]
    assert answers[f"gdbext report --pools {base}"] == [f"gdbext report --pools {w}" for w in want]
    assert answers[f"gdbext load {base} {base}"] == [f"gdbext load {base} {w}" for w in want]
    assert answers[f"gdbext report --json {ROOT}/fixtures/spe"] == [f"gdbext report --json {base}"]


@pytest.mark.parametrize("line", ["gdbext lo", "show gdbext sh"])
def test_prefixes_still_complete_their_subcommands(line):
    got = _completions([line])[line]
    assert got == {"gdbext lo": ["gdbext load"], "show gdbext sh": ["show gdbext show-raw"]}[line]
