"""Running gdb in batch mode with gdbext loaded: for the CLI, triage and tests.

The one place that builds a gdb command line.  Core files may be given
compressed (xz, zstd, lz4, gzip); they are decompressed to a temporary file
first (:mod:`gdbext.decompress`).
Arguments are passed as a list (no shell), and nothing read from a core is
ever turned into a gdb command.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence

from . import decompress
from .decompress import DEFAULT_MAX_CORE_SIZE
from .errors import CoreFileError, GdbextError

__all__ = ["GdbResult", "find_gdb", "bootstrap_command", "plain_core", "run_gdb", "has_traceback", "quote_arg",
           "TRACEBACK_MARKERS"]

#: Text that shows a Python traceback escaped into gdb's output.
TRACEBACK_MARKERS = ("Traceback (most recent call last)", "Python Exception <")


@dataclass
class GdbResult:
    """What a batch gdb run printed."""

    returncode: int
    stdout: str
    stderr: str
    argv: List[str]

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def find_gdb() -> str:
    """The gdb executable (``$GDB`` or ``gdb`` on PATH); GdbextError if there is none."""
    named = os.environ.get("GDB")
    gdb = shutil.which(named) if named else shutil.which("gdb")
    if not gdb:
        where = f"$GDB={named} is not an executable" if named else "gdb is not on PATH"
        raise GdbextError(f"gdb not found ({where}): install gdb (12 or newer) or set $GDB")
    return gdb


def bootstrap_command() -> str:
    """A gdb ``python`` command that loads this very copy of gdbext and its dependencies.

    gdb embeds its own Python, which does not see the virtual environment the
    CLI runs in; the dependency directories of this interpreter are added to it.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    dirs = [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and os.path.isdir(p)]
    return (
        "python import site, sys; "
        + "".join(f"site.addsitedir({p!r}); " for p in dirs)
        + f"sys.path.insert(0, {root!r}); import gdbext; gdbext.register()"
    )


@contextlib.contextmanager
def plain_core(path: str, max_size: int = DEFAULT_MAX_CORE_SIZE) -> Iterator[str]:
    """``path`` itself, or a decompressed temporary copy when it is compressed (xz, zstd, lz4, gzip).

    See :mod:`gdbext.decompress` (streamed, ELF header checked first, at most ``max_size`` bytes).
    """
    if not os.path.lexists(path):
        raise CoreFileError(f"core file {path} does not exist")
    with decompress.plain_core(path, max_size) as plain:
        yield plain


def run_gdb(
    binary: Optional[str],
    core: Optional[str] = None,
    commands: Sequence[str] = (),
    spec_files: Sequence[str] = (),
    timeout: float = 120.0,
    load_gdbext: bool = True,
    extra_args: Sequence[str] = (),
) -> GdbResult:
    """Run ``gdb -nx -batch`` on ``binary`` (and ``core``), gdbext loaded, then ``commands``."""
    argv = [find_gdb(), "-nx", "-batch", "-ex", "set pagination off", "-ex", "set width 0",
            "-ex", "set height 0", "-ex", "set confirm off"]
    if load_gdbext:
        argv += ["-ex", bootstrap_command()]
        for spec in spec_files:
            argv += ["-ex", "gdbext load " + quote_arg(spec)]
    argv += list(extra_args)
    for cmd in commands:
        argv += ["-ex", cmd]
    with contextlib.ExitStack() as stack:
        if binary:
            argv.append(binary)
        if core:
            argv.append("--core=" + stack.enter_context(plain_core(core)))
        try:
            proc = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise GdbextError(f"gdb did not finish within {timeout:.0f} s") from None
    return GdbResult(proc.returncode, proc.stdout, proc.stderr, argv)


def has_traceback(text: str) -> bool:
    """True when gdb's output shows a Python traceback or a Python exception message."""
    return any(marker in text for marker in TRACEBACK_MARKERS)


def quote_arg(text: str) -> str:
    """Quote one argument for ``gdb.string_to_argv`` (double quotes, backslash escapes)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
