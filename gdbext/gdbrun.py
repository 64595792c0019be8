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
import resource
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Set, Tuple

from . import decompress
from .decompress import DEFAULT_MAX_CORE_SIZE
from .errors import CoreFileError, GdbextError

__all__ = ["GdbResult", "find_gdb", "bootstrap_command", "plain_core", "run_gdb", "has_traceback", "quote_arg",
           "cancel_all", "TRACEBACK_MARKERS", "NO_AUTO_LOAD", "DEFAULT_MEMORY_MIB"]

#: gdb's address-space limit (``RLIMIT_AS``) in MiB unless the caller names another; ``gdbext triage
#: --max-memory`` raises it.
DEFAULT_MEMORY_MIB = 8192

#: gdb options that load nothing found beside the analysed files, whatever gdb's compiled-in defaults:
#: no ``PROGRAM-gdb.py``, no ``.debug_gdb_scripts``, no local ``.gdbinit`` (``-nx`` also skips every
#: init file); libthread_db only from the system's library folders, never from the program's.
NO_AUTO_LOAD = ("-iex", "set auto-load off", "-iex", "set auto-load safe-path /nonexistent",
                "-iex", "set libthread-db-search-path $sdir", "-iex", "set auto-load libthread-db on")

#: The gdb processes running now (for :func:`cancel_all`), and whether the run was cancelled.
_LIVE: Set["subprocess.Popen[str]"] = set()
_CANCELLED = threading.Event()

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
    with decompress.plain_core(path, max_size, should_stop=_CANCELLED.is_set) as plain:
        yield plain


def run_gdb(
    binary: Optional[str],
    core: Optional[str] = None,
    commands: Sequence[str] = (),
    spec_files: Sequence[str] = (),
    timeout: float = 120.0,
    load_gdbext: bool = True,
    extra_args: Sequence[str] = (),
    *,
    auto_load: bool = True,
    memory_mib: int = DEFAULT_MEMORY_MIB,
) -> GdbResult:
    """Run ``gdb -nx -batch`` on ``binary`` (and ``core``), gdbext loaded, then ``commands``.

    ``binary`` and ``core`` reach gdb as absolute paths, so no file name can
    be read as an option.  gdb runs in a process group of its own, under an
    address-space limit of ``memory_mib`` MiB (0: none); the group is killed
    on timeout, on :func:`cancel_all` and when the caller is interrupted.

    :param auto_load: False passes :data:`NO_AUTO_LOAD`: nothing beside the
        binary or core (``PROGRAM-gdb.py``, ``.debug_gdb_scripts``, a
        ``.gdbinit``, a libthread_db outside the system folders) is loaded.
    :raises GdbextError: gdb missing, timed out, or the run was cancelled.
    """
    argv = [find_gdb(), "-nx", "-batch"]
    if not auto_load:
        argv += list(NO_AUTO_LOAD)
    argv += ["-ex", "set pagination off", "-ex", "set width 0", "-ex", "set height 0", "-ex", "set confirm off"]
    if load_gdbext:
        argv += ["-ex", bootstrap_command()]
        for spec in spec_files:
            argv += ["-ex", "gdbext load " + quote_arg(spec)]
    argv += list(extra_args)
    for cmd in commands:
        argv += ["-ex", cmd]
    with contextlib.ExitStack() as stack:
        if binary:
            argv.append(os.path.abspath(binary))
        if core:
            argv.append("--core=" + os.path.abspath(stack.enter_context(plain_core(core))))
        returncode, stdout, stderr = _communicate(argv, timeout, memory_mib)
    return GdbResult(returncode, stdout, stderr, argv)


def _communicate(argv: List[str], timeout: float, memory_mib: int) -> Tuple[int, str, str]:
    """Run ``argv`` in a new process group; its exit code and output."""
    if _CANCELLED.is_set():
        raise GdbextError("cancelled")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, errors="replace", start_new_session=True)
    _LIVE.add(proc)
    try:
        if _CANCELLED.is_set():  # cancel_all() ran between Popen and add(): it did not see this gdb
            _kill_group(proc)
        _limit_memory(proc.pid, memory_mib)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate(timeout=10)
            raise GdbextError(f"gdb did not finish within {timeout:.0f} s") from None
    finally:
        if proc.returncode is None:  # interrupted (a signal, an error): nothing of the run may outlive it
            _kill_group(proc)
            proc.wait()
        _LIVE.discard(proc)
    if _CANCELLED.is_set():
        raise GdbextError("cancelled")
    return proc.returncode, stdout, stderr


def _limit_memory(pid: int, memory_mib: int) -> None:
    if memory_mib <= 0:
        return
    limit = memory_mib << 20
    try:
        resource.prlimit(pid, resource.RLIMIT_AS, (limit, limit))
    except ProcessLookupError:  # gdb already ended: nothing left to limit
        pass
    except OSError as err:  # the caller kills the unlimited gdb
        raise GdbextError(f"cannot limit gdb's memory to {memory_mib} MiB: {err.strerror} "
                          "(--max-memory 0 runs it without a limit)") from None


def _kill_group(proc: "subprocess.Popen[str]") -> None:
    """SIGKILL ``proc``'s process group, while ``proc`` is not yet reaped (so the group id is still its own)."""
    if proc.returncode is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def cancel_all() -> None:
    """Kill every running gdb started by :func:`run_gdb` (whole process groups) and refuse new runs.

    Safe to call from a signal handler: it takes no lock.
    """
    _CANCELLED.set()
    for proc in list(_LIVE):  # list() of a set copies it in one step under the GIL
        _kill_group(proc)


def has_traceback(text: str) -> bool:
    """True when gdb's output shows a Python traceback or a Python exception message."""
    return any(marker in text for marker in TRACEBACK_MARKERS)


def quote_arg(text: str) -> str:
    """Quote one argument for ``gdb.string_to_argv`` (double quotes, backslash escapes).

    :raises GdbextError: ``text`` holds a line break, which would end the gdb command.
    """
    if "\n" in text or "\r" in text:
        raise GdbextError(f"{text!r}: a file name with a line break cannot be passed to a gdb command")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
