"""Testing printers against the real gdb from pytest, one line per assertion.

A :class:`Program` is a binary (compiled from a C snippet by
:meth:`Program.from_c`, or an existing one with its core), the printer
modules and spec files to load, and where to stop::

    from gdbext.testing import Program

    SNIPPET = '''
    struct conn { int fd; unsigned state; } g_conn = { 7, 1 };
    int main(void) { g_conn.fd++; /* MARK */ return 0; }
    '''

    def test_conn(tmp_path):
        prog = Program.from_c(SNIPPET, tmp_path, specs=["conn_printers.py"])
        assert prog.show("g_conn") == "fd 7 OPEN = {fd = 7, state = OPEN}"

The snippet stops *before* the line holding ``/* MARK */`` runs, or inside a
call to ``gdbext_marker()`` (defined for you when the snippet only calls it;
expressions are then evaluated in the caller's frame).  :meth:`Program.show_all`
prints many expressions in one gdb run; :meth:`Program.execute` returns any
commands' output.  gdb's errors (a missing symbol, unreadable memory, a
Python traceback from a printer, a spec file that does not load) raise
:class:`GdbFailure` carrying gdb's own message.  Without gcc or gdb the test
is skipped.

gdb runs through :func:`gdbext.gdbrun.run_gdb`; inside gdb, :func:`_drive`
executes the steps and writes what each printed to a JSON file.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Union

from .errors import GdbextError
from .gdbrun import bootstrap_command, has_traceback, quote_arg, run_gdb

__all__ = ["GdbFailure", "Program", "compile_c", "find_marker", "require_tools", "MARK", "MARKER_FUNCTION",
           "CFLAGS"]

#: A comment that marks the line to stop at (before it runs).
MARK = "/* MARK */"

#: A function the snippet calls to stop there; expressions are evaluated in its caller.
MARKER_FUNCTION = "gdbext_marker"

#: How snippets are compiled: debug info, nothing optimised away.
CFLAGS = ("-g", "-O0", "-fno-omit-frame-pointer")

_MARKER_DECLARATION = f"void {MARKER_FUNCTION}(void);\n"
_MARKER_DEFINITION = _MARKER_DECLARATION + f"void {MARKER_FUNCTION}(void) {{ }}\n"
_DEFINES_MARKER = re.compile(rf"\b{MARKER_FUNCTION}\s*\(\s*(void)?\s*\)\s*\{{")
_HISTORY = re.compile(r"^\$\d+ = ")

PathLike = Union[str, "os.PathLike[str]"]


class GdbFailure(GdbextError):
    """gdb could not do what the test asked; the text is gdb's own message."""


def require_tools(*tools: str) -> None:
    """Skip the calling test when one of ``tools`` (``"gdb"``, ``"gcc"``) is not installed."""
    import pytest

    for tool in tools:
        path = os.environ.get("GDB") if tool == "gdb" and os.environ.get("GDB") else shutil.which(tool)
        if not path:
            pytest.skip(f"{tool} is not installed")


def find_marker(source: str, filename: str) -> Optional[str]:
    """Where a snippet asks to stop: ``FILE:LINE`` of its ``/* MARK */``, the marker function, or None."""
    for number, line in enumerate(source.splitlines(), 1):
        if MARK in line:
            return f"{filename}:{number}"
    if re.search(rf"\b{MARKER_FUNCTION}\s*\(", source):
        return MARKER_FUNCTION
    return None


def compile_c(source: str, workdir: PathLike, name: str = "snippet", cflags: Sequence[str] = ()) -> str:
    """Compile ``source`` into ``workdir/name`` with :data:`CFLAGS`; the path of the binary.

    A snippet that calls ``gdbext_marker()`` without defining it gets its
    declaration (``-include``) and is linked with a file that defines it.  Skips the test when gcc is missing.

    :raises GdbFailure: with gcc's messages when the snippet does not compile
    """
    require_tools("gcc")
    workdir = os.fspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    src = os.path.join(workdir, name + ".c")
    with open(src, "w", encoding="utf-8") as fh:
        fh.write(source)
    sources = [name + ".c"]
    if re.search(rf"\b{MARKER_FUNCTION}\s*\(", source) and not _DEFINES_MARKER.search(source):
        for suffix, text in ((".h", _MARKER_DECLARATION), (".c", _MARKER_DEFINITION)):
            with open(os.path.join(workdir, MARKER_FUNCTION + suffix), "w", encoding="utf-8") as fh:
                fh.write(text)
        sources = ["-include", MARKER_FUNCTION + ".h", *sources, MARKER_FUNCTION + ".c"]
    out = os.path.join(workdir, name)
    proc = subprocess.run(["gcc", *CFLAGS, *cflags, "-o", out, *sources], cwd=workdir,
                          capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        raise GdbFailure(f"gcc could not compile {src}:\n{proc.stderr.strip()}")
    return out


@dataclass(frozen=True)
class Program:
    """A program to print values of under gdb: a binary, maybe a core, what to load, where to stop.

    :param binary: the executable (with DWARF)
    :param core: a core file of it (``.xz`` is fine); expressions are then evaluated in the core
    :param specs: printer modules and spec files, each loaded with ``gdbext load``
    :param setup: gdb commands run after stopping, before the prints (``set print pretty on``, ``frame 2``)
    :param stop: a breakpoint location to run to (``func``, ``file.c:LINE``); None: do not run
    :param up: frames to go up after stopping (1 for the marker function: its caller's locals)
    :param init: gdbinit lines, run before gdb loads the program, with gdbext already loaded
        (``add-auto-load-safe-path DIR`` to test auto-loaded printers); their errors are not checked
    :param timeout: seconds one gdb run may take
    """

    binary: str
    core: Optional[str] = None
    specs: Sequence[str] = ()
    setup: Sequence[str] = ()
    stop: Optional[str] = None
    up: int = 0
    init: Sequence[str] = ()
    timeout: float = 60.0

    @classmethod
    def from_c(cls, source: str, workdir: PathLike, *, name: str = "snippet", cflags: Sequence[str] = (),
               specs: Sequence[PathLike] = (), setup: Sequence[str] = (), stop: Optional[str] = None,
               init: Sequence[str] = (), timeout: float = 60.0) -> "Program":
        """Compile ``source`` in ``workdir`` and stop where it marks (``/* MARK */`` or ``gdbext_marker()``).

        :param stop: a breakpoint location instead of the marker
        :raises GdbFailure: when the snippet does not compile, or marks no place to stop and gives no ``stop``
        """
        require_tools("gdb")
        binary = compile_c(source, workdir, name, cflags)
        where = stop or find_marker(source, name + ".c")
        if where is None:
            raise GdbFailure(f"the snippet has no {MARK} line and calls no {MARKER_FUNCTION}(): give stop=")
        return cls(binary, specs=tuple(os.fspath(s) for s in specs), setup=tuple(setup), stop=where,
                   up=1 if where == MARKER_FUNCTION else 0, init=tuple(init), timeout=timeout)

    def with_setup(self, *commands: str) -> "Program":
        """The same program with more setup commands (``prog.with_setup("set print pretty on")``)."""
        return replace(self, setup=tuple(self.setup) + commands)

    def show(self, expr: str) -> str:
        """What ``print EXPR`` shows after ``$N = `` (several lines under ``set print pretty on``).

        :raises GdbFailure: with gdb's message when the print fails or a printer raises
        """
        return self.show_all(expr)[0]

    def show_all(self, *exprs: str) -> List[str]:
        """:meth:`show` for each expression, in one gdb run."""
        outputs = self._run([f"print {e}" for e in exprs])
        return [_HISTORY.sub("", text, count=1).rstrip("\n") for text in outputs]

    def execute(self, *commands: str) -> List[str]:
        """Each command's output as gdb prints it (``info pretty-printer``, ``print/x``, ...), in one run."""
        return self._run(list(commands))

    def _run(self, commands: List[str]) -> List[str]:
        require_tools("gdb")
        if self.stop and self.core:
            raise GdbFailure("give a core or a place to stop, not both")
        request = {"specs": [os.path.abspath(s) for s in self.specs], "stop": self.stop, "up": self.up,
                   "setup": list(self.setup), "commands": commands}
        fd, path = tempfile.mkstemp(prefix="gdbext-testing-", suffix=".json")
        os.close(fd)
        try:
            request["result"] = path
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(request, fh)
            early = ["-iex", bootstrap_command()] if self.init else []
            for line in self.init:
                early += ["-iex", line]
            result = run_gdb(self.binary, self.core, timeout=self.timeout, extra_args=early, commands=[
                f"python from gdbext.testing import _drive; _drive({path!r})"])
            with open(path, encoding="utf-8") as fh:
                answer = json.load(fh) if os.path.getsize(path) else None
        finally:
            os.unlink(path)
        if has_traceback(result.output):
            raise GdbFailure(f"gdb showed a Python traceback:\n{result.output.strip()}")
        if answer and answer.get("failed"):
            raise GdbFailure(f"{answer['failed']}: {answer['message']}")
        if not answer or "outputs" not in answer:
            raise GdbFailure(f"gdb stopped before the prints (exit {result.returncode}):\n{result.output.strip()}")
        for command, item in zip(commands, answer["outputs"]):
            if "error" in item:
                raise GdbFailure(f"{command}: {item['error']}")
            if has_traceback(item["output"]):
                raise GdbFailure(f"{command}: a printer raised:\n{item['output'].strip()}")
        return [item["output"] for item in answer["outputs"]]


# -- inside gdb -----------------------------------------------------------------
def _drive(request_path: str) -> None:
    """Run a test's steps inside gdb and write each output (or gdb's error) to the request's result file."""
    import gdb  # type: ignore[import-not-found]  # only ever called inside gdb

    with open(request_path, encoding="utf-8") as fh:
        req = json.load(fh)
    answer: Dict[str, object] = {}

    def step(command: str) -> Optional[str]:
        try:
            return gdb.execute(command, to_string=True)
        except gdb.error as err:  # gdb.MemoryError included
            answer.update(failed=command, message=str(err))
            return None

    def finish() -> None:
        with open(req["result"], "w", encoding="utf-8") as fh:
            json.dump(answer, fh)

    for spec in req["specs"]:
        if step("gdbext load " + quote_arg(spec)) is None:
            return finish()
    if req["stop"]:
        _debuginfod_off(gdb)
        before = len(gdb.breakpoints())
        said = step("break " + req["stop"])
        if said is None:
            return finish()
        if len(gdb.breakpoints()) == before:
            answer.update(failed="break " + req["stop"], message=said.strip())
            return finish()
        ran = step("run")
        if ran is None:
            return finish()
        if gdb.selected_thread() is None:
            answer.update(failed=f"run to {req['stop']}", message="the program ended without stopping there: "
                          + ran.strip()[-500:])
            return finish()
        if req["up"] and step(f"up {req['up']}") is None:
            return finish()
    for command in req["setup"]:
        if step(command) is None:
            return finish()
    outputs: List[Dict[str, str]] = []
    for command in req["commands"]:
        try:
            outputs.append({"output": gdb.execute(command, to_string=True)})
        except gdb.error as err:
            outputs.append({"error": str(err)})
    answer["outputs"] = outputs
    finish()


def _debuginfod_off(gdb) -> None:
    """Keep gdb from asking debuginfod servers about the system libraries of a snippet."""
    try:
        gdb.execute("set debuginfod enabled off", to_string=True)
    except gdb.error:  # a gdb built without debuginfod has no such setting: nothing to turn off
        return
