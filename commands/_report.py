"""The gathering behind ``gdbext report``: the crash through gdb, the pools, the forensic view,
then :func:`gdbext.analysis.analyze`.  Imported when the command runs, not when gdbext loads:
the analysis, forensics and triage modules are heavy and most sessions never report.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

import gdb  # type: ignore[import-not-found]

from gdbext.aborts import read_abort_message
from gdbext.analysis import AnalysisContext, CrashFacts, Location, PoolWalk, analyze
from gdbext.corefile import X86_64_REGISTERS, CoreFile, SigInfo, Thread
from gdbext.crash import CrashInfo, crash_info, signal_name, thread_crash_info
from gdbext.elfsyms import file_build_id
from gdbext.errors import CoreFileError, GdbextError, SpecError
from gdbext.gdbmem import GdbEvaluator, GdbInferiorSource, core_file_path, source_location
from gdbext.memory import MemorySource
from gdbext.pools import resolve, walk_pool
from gdbext.specs import REGISTRY
from gdbext.triage.formats import render_text
from gdbext.triage.report import Frame

from ._forensics import gdb_context
from ._heap import overrides_from_settings

__all__ = ["build_report", "render_text"]

#: The most frames read from the crashing thread.
MAX_FRAMES = 64

#: Signals whose si_addr is a fault address.
_FAULT_SIGNALS = frozenset((4, 5, 7, 8, 11))


def build_report() -> Dict[str, Any]:
    """Gather the crash of the selected inferior and analyze it."""
    core_path = core_file_path()
    binary = _binary_path()
    ctx = AnalysisContext(CrashFacts(), core=core_path, binary=binary, locate=_locate)
    corefile: Optional[CoreFile] = None
    if core_path is not None:
        exe = binary if binary and os.path.isfile(binary) else None
        try:
            corefile = CoreFile(core_path, executable=exe)
        except CoreFileError as err:
            ctx.errors.append(str(err))
    try:
        memory: MemorySource = corefile if corefile is not None else GdbInferiorSource()
        ctx.memory = memory
        ctx.glibc_overrides = overrides_from_settings()
        _gather_crash(ctx, corefile, memory)
        _walk_pools(ctx, memory)
        ctx.build_id = _build_id(corefile, binary)
        try:  # registers, frame pointers and who-points-here for the heap forensics
            ctx.forensic = gdb_context(memory, heap=ctx.glibc_heap())
        except GdbextError as err:
            ctx.errors.append(f"forensics: {err}")
        report = analyze(ctx)
        if core_path is None:  # a live process: what names it where a core's path would
            report["process"] = {"pid": gdb.selected_inferior().pid or None}
        return report
    finally:
        if corefile is not None:
            corefile.close()


def _binary_path() -> Optional[str]:
    name = gdb.current_progspace().filename
    if name:
        return name
    objfiles = gdb.objfiles()
    return objfiles[0].filename if objfiles else None


def _build_id(corefile: Optional[CoreFile], binary: Optional[str]) -> Optional[str]:
    if binary and os.path.isfile(binary):
        try:
            found = file_build_id(binary)
        except CoreFileError:
            found = None
        if found:
            return found
    return corefile.executable_build_id() if corefile is not None else None


def _locate(pc: int) -> Optional[Location]:
    loc = source_location(pc)
    return loc if loc.get("function") or loc.get("file") else None


# -- the crash ---------------------------------------------------------------------


def _gather_crash(ctx: AnalysisContext, corefile: Optional[CoreFile], memory: MemorySource) -> None:
    crash = ctx.crash
    crash_tid = None
    if corefile is not None and corefile.threads():
        crash_tid = corefile.threads()[0].tid
    previous = gdb.selected_thread()
    thread = _select_crash_thread(crash_tid)
    live_state: Optional[Thread] = None
    try:
        if thread is not None:
            crash.thread = {"num": thread.num, "tid": thread.ptid[1] or thread.ptid[2] or None, "name": thread.name}
        crash.threads = len(gdb.selected_inferior().threads())
        siginfo = _signal_from_gdb(crash)
        crash.frames = _frames(ctx)
        if corefile is None and siginfo is not None:
            live_state = _live_thread(crash.thread.get("tid"), siginfo)
    finally:
        if previous is not None and previous.is_valid() and previous != gdb.selected_thread():
            previous.switch()
    if crash.frames and crash.frames[0].pc is not None:
        crash.pc = crash.frames[0].pc
    if corefile is not None:
        try:
            _from_crash_info(ctx, crash_info(corefile))
        except GdbextError as err:
            ctx.errors.append(f"crash info: {err}")
    elif live_state is not None:  # the same analysis as on a core, from gdb's registers and memory
        try:
            _from_crash_info(ctx, thread_crash_info(memory, live_state, live_state.siginfo))
        except GdbextError as err:
            ctx.errors.append(f"crash info: {err}")
    if crash.abort_message is None:
        crash.abort_message = read_abort_message(memory)


def _select_crash_thread(tid: Optional[int]) -> Any:
    """The thread the core says received the signal (selected), else gdb's selected thread."""
    if tid is not None:
        for t in gdb.selected_inferior().threads():
            if tid in (t.ptid[1], t.ptid[2]):
                if t != gdb.selected_thread():
                    t.switch()
                return t
    return gdb.selected_thread()


def _signal_from_gdb(crash: CrashFacts) -> Optional[SigInfo]:
    """Signal, si_code and si_addr from ``$_siginfo`` (left unset, and None returned, when gdb has none)."""
    try:
        info = gdb.parse_and_eval("$_siginfo")
        signo = int(info["si_signo"])
        code = int(info["si_code"])
        errno = int(info["si_errno"])
    except gdb.error:
        return None
    if signo <= 0:
        return None
    crash.signo, crash.signal, crash.si_code = signo, signal_name(signo), code
    addr = None
    if signo in _FAULT_SIGNALS:
        try:
            addr = int(info["_sifields"]["_sigfault"]["si_addr"])
            crash.fault_address, crash.fault_address_source = addr, "siginfo"
        except gdb.error:
            pass
    return SigInfo(signo, errno, code, addr)


def _live_thread(tid: Optional[int], siginfo: SigInfo) -> Optional[Thread]:
    """The selected thread's stop state from gdb: what a core's NT_PRSTATUS and NT_SIGINFO would hold."""
    try:
        frame = gdb.newest_frame()
    except gdb.error:
        return None
    registers: Dict[str, int] = {}
    for name in X86_64_REGISTERS:
        try:
            registers[name] = int(frame.read_register(name)) & 0xFFFFFFFFFFFFFFFF
        except (gdb.error, ValueError):
            continue  # a register this target does not have (another architecture)
    if "rip" not in registers:
        return None
    return Thread(tid or 0, siginfo.signo, registers, siginfo)


def _from_crash_info(ctx: AnalysisContext, info: CrashInfo) -> None:
    """What the crash analysis adds: the signal when gdb had none, the access address when si_addr is 0,
    the faulting instruction, the abort message."""
    crash = ctx.crash
    if crash.signo is None:
        crash.signo, crash.signal, crash.si_code = info.signo, info.signal, info.si_code
        crash.fault_address, crash.fault_address_source = info.fault_address, info.fault_address_source
    elif info.fault_address is not None and info.fault_address_source == "instruction":
        crash.fault_address, crash.fault_address_source = info.fault_address, "instruction"
    crash.si_code_name = info.si_code_name or None
    if crash.pc is None:
        crash.pc = info.pc
    details = info.to_dict()
    crash.access = details.get("access")
    if crash.signo in _FAULT_SIGNALS and info.instruction is not None:
        crash.instruction = info.instruction.text
    crash.notes.extend(info.notes)
    ctx.errors.extend(f"crash info: {p}" for p in info.problems
                      if "abort message" not in p and "no NT_SIGINFO" not in p)
    ctx.perturb_byte = info.perturb_byte
    if info.abort_message is not None:
        crash.abort_message = info.abort_message


def _frames(ctx: AnalysisContext) -> List[Frame]:
    """The selected thread's frames, innermost first; at most :data:`MAX_FRAMES`, stopping at gdb errors."""
    frames: List[Frame] = []
    exe = os.path.basename(ctx.binary) if ctx.binary else None
    try:
        frame = gdb.newest_frame()
    except gdb.error as err:
        ctx.errors.append(f"no backtrace: {err}")
        return frames
    while frame is not None and len(frames) < MAX_FRAMES:
        try:
            pc = frame.pc()
            sal = frame.find_sal()
            symtab = sal.symtab
            module = os.path.basename(symtab.objfile.filename) if symtab is not None else None
            if module is None:
                solib = gdb.current_progspace().solib_name(pc)
                module = os.path.basename(solib) if solib else exe
            frames.append(Frame(frame.name(), symtab.filename if symtab is not None else None,
                                sal.line or None, pc, module))
            frame = frame.older()
        except gdb.error as err:
            ctx.errors.append(f"backtrace stopped after {len(frames)} frames: {err}")
            break
    if frame is not None and len(frames) >= MAX_FRAMES:
        ctx.skipped.append(f"frames after the first {MAX_FRAMES}")
    return frames


# -- pools ------------------------------------------------------------------------------


def _walk_pools(ctx: AnalysisContext, memory: MemorySource) -> None:
    if not REGISTRY.pools:
        ctx.skipped.append("pools: none declared (give --pools FILE)")
        return
    evaluator = GdbEvaluator()
    for name, spec in sorted(REGISTRY.pools.items()):
        try:
            ctx.pools.append(PoolWalk(name, walk_pool(memory, resolve(spec, evaluator))))
        except SpecError as err:
            ctx.pools.append(PoolWalk(name, error=str(err)))
