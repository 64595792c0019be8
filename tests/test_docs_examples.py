"""docs/printer-kit.md, executed: its code is docs/examples/, and its gdb sessions replay against real gdb.

The how-to marks its blocks with HTML comments (invisible on GitHub):

* ``<!-- example: FILE -->``: the next code block is a verbatim part of FILE;
* ``<!-- session[: addresses=any, cwd=tmp, autoload=objfile|section] -->``:
  the next block is a gdb session on docs/examples/conn.c stopped in
  ``poll_events``; each ``(gdb) COMMAND`` must print exactly the lines under it;
* ``<!-- scaffold -->``: ``$ gdbext scaffold ...`` and what it writes;
* ``<!-- autoload-declined -->``: gdb's message when the safe-path refuses a script.

A line ``...`` in an expected output stands for any lines.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
from typing import Dict, List, NamedTuple

import pytest

from gdbext.gdbrun import run_gdb
from gdbext.scaffold import scaffold_binary
from gdbext.testing import Program, compile_c

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "printer-kit.md")
EXAMPLES = os.path.join(ROOT, "docs", "examples")

pytestmark = [
    pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed"),
    pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed"),
]


class Block(NamedTuple):
    kind: str
    options: Dict[str, str]
    text: str
    line: int


def _blocks() -> List[Block]:
    """Every marked code block of the how-to."""
    with open(DOC, encoding="utf-8") as fh:
        doc = fh.read()
    out = []
    for m in re.finditer(r"<!-- ([\w-]+)(?::\s*(.*?))? -->\n```[\w]*\n(.*?)```", doc, re.S):
        kind, args, text = m.group(1), m.group(2) or "", m.group(3)
        options = dict(a.split("=", 1) if "=" in a else ("file", a) for a in args.replace(",", " ").split())
        out.append(Block(kind, options, text, doc.count("\n", 0, m.start()) + 2))
    return out


BLOCKS = _blocks()


def _of(kind: str) -> List[Block]:
    return [b for b in BLOCKS if b.kind == kind]


def _ids(blocks: List[Block]) -> List[str]:
    return [f"line{b.line}" for b in blocks]


def _lines(text: str) -> List[str]:
    return [line.rstrip() for line in text.rstrip().split("\n")] if text.strip() else []


def _matches(expected: str, got: str) -> bool:
    """``got`` is ``expected``, where a ``...`` line stands for any lines (trailing blanks ignored)."""
    want, have = _lines(expected), _lines(got)

    def match(i: int, j: int) -> bool:
        if i == len(want):
            return j == len(have)
        if want[i] == "...":
            return any(match(i + 1, k) for k in range(j, len(have) + 1))
        return j < len(have) and want[i] == have[j] and match(i + 1, j + 1)

    return match(0, 0)


_ADDRESS = re.compile(r"0x[0-9a-f]{6,}")


@pytest.fixture(scope="module")
def conn(tmp_path_factory) -> str:
    """docs/examples/conn.c, built as the how-to builds it."""
    with open(os.path.join(EXAMPLES, "conn.c"), encoding="utf-8") as fh:
        return compile_c(fh.read(), tmp_path_factory.mktemp("conn"), name="conn")


def test_the_how_to_marks_its_blocks():
    kinds = {b.kind for b in BLOCKS}
    assert {"example", "session", "scaffold", "autoload-declined"} <= kinds, kinds
    assert len(_of("session")) >= 6


@pytest.mark.parametrize("block", _of("example"), ids=_ids(_of("example")))
def test_example_block_is_the_file(block):
    path = os.path.join(ROOT, block.options["file"])
    with open(path, encoding="utf-8") as fh:
        assert block.text in fh.read(), f"{DOC}:{block.line}: this block is not part of {path}"


def _session(block: Block):
    commands, expected = [], []
    for line in block.text.rstrip("\n").split("\n"):
        if line.startswith("(gdb) "):
            commands.append(line[len("(gdb) "):])
            expected.append([])
        else:
            expected[-1].append(line)
    return commands, ["\n".join(lines) for lines in expected]


@pytest.mark.parametrize("block", _of("session"), ids=_ids(_of("session")))
def test_session_output_is_real(block, conn, tmp_path, monkeypatch):
    binary, init = conn, []
    autoload = block.options.get("autoload")
    if autoload == "objfile":  # PROGRAM-gdb.py next to the program, its directory in the safe-path
        binary = str(tmp_path / "conn")
        shutil.copy(conn, binary)
        shutil.copy(os.path.join(EXAMPLES, "conn_printers.py"), str(tmp_path / "conn-gdb.py"))
    elif autoload == "section":  # the script inside the binary
        with open(os.path.join(EXAMPLES, "conn.c"), encoding="utf-8") as fh:
            binary = compile_c(fh.read(), tmp_path, name="conn",
                               cflags=["-include", os.path.join(EXAMPLES, "conn_gdb_scripts.h")])
    if autoload:
        init = [f"add-auto-load-safe-path {tmp_path}"]
    monkeypatch.chdir(tmp_path if block.options.get("cwd") == "tmp" else EXAMPLES)
    commands, expected = _session(block)
    outputs = Program(binary, stop="poll_events", init=init).execute(*commands)
    for command, want, got in zip(commands, expected, outputs):
        if block.options.get("addresses") == "any":
            want, got = _ADDRESS.sub("0x...", want), _ADDRESS.sub("0x...", got)
        assert _matches(want, got), f"{DOC}:{block.line}: (gdb) {command}\n--- documented\n{want}\n--- real\n{got}"


def test_scaffold_block_is_what_scaffold_writes(conn):
    (block,) = _of("scaffold")
    command, _, expected = block.text.partition("\n")
    argv = shlex.split(command.lstrip("$ "))
    assert argv[:2] == ["gdbext", "scaffold"] and argv[3] == "--type", command
    got = scaffold_binary(conn, [argv[4]])
    assert _matches(expected, got), f"{DOC}:{block.line}\n--- documented\n{expected}\n--- real\n{got}"


def test_autoload_is_declined_outside_the_safe_path(conn, tmp_path):
    binary = str(tmp_path / "conn")
    shutil.copy(conn, binary)
    shutil.copy(os.path.join(EXAMPLES, "conn_printers.py"), str(tmp_path / "conn-gdb.py"))
    result = run_gdb(binary, commands=["info auto-load python-scripts"])
    assert re.search(r"No +\S*conn-gdb\.py", result.stdout), result.output
    (block,) = _of("autoload-declined")
    said = (result.stderr + result.stdout).replace(str(tmp_path), "/home/me/gdbext-demo")
    said = re.sub(r'"[^"\n]*gdbinit"', '"/home/me/.config/gdb/gdbinit"', said)
    assert _matches(block.text, said), f"{DOC}:{block.line}\n--- documented\n{block.text}\n--- real\n{said}"


def test_the_testing_example_runs(tmp_path):
    spec = importlib.util.spec_from_file_location("conn_printer_tests", os.path.join(EXAMPLES,
                                                                                    "test_conn_printers.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tests = sorted(name for name in vars(module) if name.startswith("test_"))
    assert len(tests) == 2
    for i, name in enumerate(tests):
        getattr(module, name)(tmp_path / str(i))


def test_readme_links_the_how_to():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        assert "(docs/printer-kit.md)" in fh.read()
