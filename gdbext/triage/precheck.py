# gdbext/triage/precheck.py - every step before gdb (decompression, reading
# the core's headers and notes, pairing, the binary checks) in a child process
# under a time and an address-space limit, so a hostile core cannot make the
# triage hang or swallow the machine before gdb's own timeout applies.
"""The checks made before gdb, run in a budgeted child process.

:func:`checked_inputs` forks a child that decompresses the core (when it is
compressed) into a temporary file owned by the parent, reads it
(:func:`~.pairing.inspect_core`), pairs it with a binary when none was given
(:func:`~.pairing.choose_binary`), checks the binary and the pair
(:func:`~.pairing.check_binary`, :func:`~.pairing.check_match`,
:func:`~.verify.verify_binary`) and sends back a :class:`Checked`.  The
child runs under ``RLIMIT_AS`` (its address space at the fork, plus the
core's size for the read-only mapping, plus :data:`PRECHECK_MEMORY`) and is
killed when the time budget runs out; either way the caller gets one
:class:`~gdbext.errors.GdbextError` line.  The temporary file is removed on
exit of the context, whatever happened.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Iterator, List, Optional, Tuple

import lz4.frame  # noqa: F401  imported before any fork: a child must not take the import lock
import zstandard  # noqa: F401

from ..decompress import DEFAULT_MAX_CORE_SIZE, Compression, compression_of, decompress_to
from ..errors import CoreFileError, GdbextError
from .pairing import DirectoryScan, check_binary, check_match, choose_binary, inspect_core
from .verify import verify_binary

__all__ = ["Checked", "PRECHECK_MEMORY", "checked_inputs"]

#: Address space the checks may use on top of the process as forked and the
#: mapped core (notes are capped at 256 MiB, NT_FILE and threads far below).
PRECHECK_MEMORY = 1 << 30


@dataclass
class Checked:
    """What the checks established: the plain core to give gdb, the binary, and what limits the analysis."""

    plain: str
    binary: str
    paired_by: Optional[str]
    verification: str  #: one line: what agreed between core and binary, or "could not verify ..."
    #: Why a report without findings cannot be called clean: segments the
    #: core's headers lost, an unverified pairing.
    incomplete: List[str] = field(default_factory=list)


def _address_space() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _limit_memory(extra: int) -> int:
    """Limit this process's address space to its present size plus ``extra``; the limit set."""
    limit = _address_space() + extra
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return limit


def _checks(
    core: str, plain: str, binary: Optional[str], scan: Optional[DirectoryScan], max_core_size: int
) -> Checked:
    if plain != core:
        with open(plain, "wb") as out:
            decompress_to(core, out, max_core_size)
    facts = inspect_core(plain, core)
    paired_by = None
    if binary is None:
        if scan is None:
            raise GdbextError(f"{core}: no binary given")
        binary, paired_by = choose_binary(core, facts, scan)
    binary_id = check_binary(binary)
    check_match(core, facts, binary, binary_id)
    verification = verify_binary(core, facts, binary, binary_id)
    summary = verification.summary(core, binary)
    incomplete = [f"core: {s}" for s in facts.skipped_segments]
    if not verification.verified:
        incomplete.append(f"pairing: {summary}")
    return Checked(plain, binary, paired_by, summary, incomplete)


#: The signals the CLI turns into a clean stop: blocked around the fork (a handler raising inside
#: Python's at-fork hooks is lost), and given back their default action in the child.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _child(conn: Connection, memory: int, args: Tuple[object, ...]) -> None:
    for sig in _STOP_SIGNALS:  # the parent's handlers are not ours: a signal simply ends the child
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    limit = 0
    result: object = None
    try:
        limit = _limit_memory(memory)
        result = _checks(*args)  # type: ignore[arg-type]
    except GdbextError as err:
        result = err
    except MemoryError:
        result = None  # the traceback and what the checks built are freed when this block ends
    except RecursionError as err:
        result = GdbextError(f"{args[0]}: the checks before gdb failed: {err}")
    if result is None:
        # The work has stopped: lift the soft limit so the one-line answer can be built and sent.
        resource.setrlimit(resource.RLIMIT_AS, (resource.getrlimit(resource.RLIMIT_AS)[1],) * 2)
        result = GdbextError(
            f"{args[0]}: the checks before gdb ran out of memory (address-space limit {limit >> 20} MiB)"
        )
    conn.send(result)
    conn.close()


@contextlib.contextmanager
def checked_inputs(
    core: str,
    binary: Optional[str] = None,
    scan: Optional[DirectoryScan] = None,
    *,
    timeout: float = 120.0,
    max_core_size: int = DEFAULT_MAX_CORE_SIZE,
    memory: int = PRECHECK_MEMORY,
) -> Iterator[Checked]:
    """Run the checks before gdb on ``core`` (and ``binary``, or pair it in ``scan``) within the budget.

    :param timeout: seconds the checks may take (the gdb run's budget).
    :param max_core_size: cap on the decompressed core.
    :param memory: bytes of address space the checks may add to the forked
        process and the mapped core.
    :raises GdbextError: a check refused the inputs, or the budget ran out.
    """
    if not os.path.lexists(core):
        raise CoreFileError(f"core file {core} does not exist")
    compressed = compression_of(core) is not Compression.NONE
    plain = core
    if compressed:
        fd, plain = tempfile.mkstemp(prefix="gdbext-core-")
        os.close(fd)
    try:
        yield _run_child(core, plain, binary, scan, timeout=timeout, max_core_size=max_core_size, memory=memory)
    finally:
        if compressed:
            os.unlink(plain)


def _run_child(
    core: str, plain: str, binary: Optional[str], scan: Optional[DirectoryScan], *, timeout: float,
    max_core_size: int, memory: int,
) -> Checked:
    try:
        core_size = os.stat(core).st_size if plain == core else max_core_size
    except OSError as err:
        raise CoreFileError(f"{core}: cannot read: {err.strerror}") from None
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # nothing buffered may be written twice by the child
    args = (core, plain, binary, scan, max_core_size)
    proc = ctx.Process(target=_child, args=(send, core_size + memory, args), daemon=True)
    start = time.monotonic()
    # Blocked during the fork; one that arrives meanwhile is handled right after, in the parent's own code.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        proc.start()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        raise
    wait = min(max(timeout, 0.0), 1e7) if timeout == timeout else 0.0  # NaN: no time at all
    try:
        send.close()
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # inside the try: a stop kills the child below
        if not recv.poll(wait):
            raise GdbextError(f"{core}: the checks before gdb did not finish within {timeout:g} s (--timeout)")
        try:
            result = recv.recv()
        except EOFError:
            proc.join(5)
            raise GdbextError(
                f"{core}: the checks before gdb failed (child exit code {proc.exitcode}) after"
                f" {time.monotonic() - start:.1f} s"
            ) from None
    finally:
        recv.close()
        if proc.is_alive():
            proc.kill()
        proc.join()
    if isinstance(result, GdbextError):
        raise result
    assert isinstance(result, Checked)
    return result
