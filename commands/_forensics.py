"""The forensic context of the selected inferior, gathered with gdb: shared by heapexplain,
poisonscan and the triage report.

Registers of the innermost frame, pointer values from the frames' arguments
and locals (and the pointer fields they point to), a bounded stack scan, the
declared pools walked, the glibc heap located with the user's overrides, the
abort message, the fault address (from the faulting instruction when the
kernel reports si_addr 0), and the reference finder for "who points here".
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import gdb  # type: ignore[import-not-found]

from gdbext.aborts import read_abort_message
from gdbext.errors import GdbextError
from gdbext.forensics.context import ForensicContext, read_perturb_byte
from gdbext.forensics.corectx import stack_pointers
from gdbext.gdbmem import GdbEvaluator, GdbInferiorSource, source_location
from gdbext.memory import MemorySource
from gdbext.pools import PoolReport, resolve, walk_pool
from gdbext.specs import REGISTRY

from ._heap import locate
from ._roots import reference_finder

__all__ = ["gdb_context", "frame_pointers", "walk_declared_pools"]

_REGS = ("rdi", "rsi", "rdx", "rcx", "r8", "r9", "rax", "rbx", "rbp", "r12", "r13", "r14", "r15", "r10", "r11")
#: Registers of frame 0 kept in the context.
_FRAME0 = _REGS + ("rsp", "rip", "eflags", "fs_base", "gs_base")
#: Frames walked for candidate pointers, at most.
_MAX_FRAMES = 32
#: Bytes of stack scanned after the frames' values.
_STACK = 4096


def _int(value: "gdb.Value") -> Optional[int]:
    try:
        if value.is_optimized_out:
            return None
        return int(value) & ((1 << 64) - 1)
    except (gdb.error, ValueError, OverflowError):
        return None


def _pointer_values(value: "gdb.Value", deref: bool) -> List[int]:
    """A pointer's value, and (one level down) the pointer fields of the struct it points to."""
    out: List[int] = []
    try:
        gtype = value.type.strip_typedefs()
    except gdb.error:
        return out
    if gtype.code != gdb.TYPE_CODE_PTR:
        return out
    got = _int(value)
    if got is None or got < 0x10000:
        return out
    out.append(got)
    if not deref:
        return out
    try:
        target = gtype.target().strip_typedefs()
        if target.code != gdb.TYPE_CODE_STRUCT:
            return out
        obj = value.dereference()
        for f in target.fields():
            if f.name and f.type.strip_typedefs().code == gdb.TYPE_CODE_PTR:
                v = _int(obj[f.name])
                if v is not None and v >= 0x10000:
                    out.append(v)
    except (gdb.error, gdb.MemoryError):
        pass
    return out


def frame_pointers(limit: int = _MAX_FRAMES) -> List[int]:
    """Candidate pointers of the selected thread: each frame's registers (as gdb unwinds them), then
    its pointer arguments and locals and the pointer fields of the structs they point to."""
    out: List[int] = []
    seen = set()

    def add(v: Optional[int]) -> None:
        if v is not None and v >= 0x10000 and v not in seen:
            seen.add(v)
            out.append(v)

    try:
        frame = gdb.newest_frame()
    except gdb.error:
        return out
    n = 0
    while frame is not None and n < limit:
        for reg in _REGS:
            try:
                add(_int(frame.read_register(reg)))
            except (gdb.error, ValueError):
                continue
        try:
            block = frame.block()
        except RuntimeError:
            block = None
        while block is not None:
            for sym in block:
                if not (sym.is_argument or sym.is_variable):
                    continue
                try:
                    for v in _pointer_values(sym.value(frame), deref=True):
                        add(v)
                except (gdb.error, gdb.MemoryError, TypeError):
                    continue
            if block.function is not None:
                break
            block = block.superblock
        try:
            frame = frame.older()
        except gdb.error:
            break
        n += 1
    return out


def walk_declared_pools(mem: GdbInferiorSource, names: Optional[Sequence[str]] = None,
                        notes: Optional[List[str]] = None) -> List[PoolReport]:
    """Walk the declared pools (all, or ``names``); a pool that cannot be resolved becomes a note."""
    out = []
    for name in names if names is not None else list(REGISTRY.pools):
        try:
            out.append(walk_pool(mem, resolve(REGISTRY.pool(name), GdbEvaluator())))
        except GdbextError as err:
            if names is not None:
                raise
            if notes is not None:
                notes.append(f"pool {name}: {err}")
    return out


def _siginfo() -> Dict[str, int]:
    try:
        info = gdb.parse_and_eval("$_siginfo")
        out = {"signo": int(info["si_signo"]), "code": int(info["si_code"])}
        if out["signo"] in (4, 7, 8, 11):
            out["addr"] = int(info["_sifields"]["_sigfault"]["si_addr"])
        return out
    except (gdb.error, ValueError, RuntimeError):
        return {}


_LOCATE = object()  #: "find the heap yourself"


def _program_path() -> Optional[str]:
    """The executable gdb debugs (scanned to infer glibc chunks' allocation sites)."""
    try:
        return gdb.current_progspace().filename
    except (gdb.error, AttributeError):
        return None


def gdb_context(mem: Optional[MemorySource] = None, pools: Optional[Sequence[str]] = None,
                heap: Any = _LOCATE) -> ForensicContext:
    """The forensic context of the selected inferior and thread, gathered with gdb.

    :param mem: the memory source (one per command invocation; the core file itself will do).
    :param pools: declared pools to walk (None: all; a pool that fails to resolve becomes a note).
    :param heap: the glibc heap when the caller located it already (None: there is none).
    """
    mem = mem or GdbInferiorSource()
    notes: List[str] = []
    if heap is _LOCATE:
        heap = None
        try:
            heap = locate(mem)  # type: ignore[arg-type]
        except GdbextError as err:
            notes.append(str(err))
    reports = walk_declared_pools(mem, pools, notes)
    regs: Dict[str, int] = {}
    pc = None
    try:
        frame = gdb.newest_frame()
        pc = int(frame.pc())
        for reg in _FRAME0:
            try:
                v = _int(frame.read_register(reg))
            except (gdb.error, ValueError):
                continue
            if v is not None:
                regs[reg] = v
    except gdb.error:
        notes.append("no frame: registers and candidate pointers unknown")
    sig = _siginfo()
    candidates = frame_pointers()
    if "rsp" in regs:
        candidates += [v for v in stack_pointers(mem, regs["rsp"], _STACK) if v not in candidates]
    refs = reference_finder(mem, heap, reports)  # asks gdb for roots only when a finding needs them
    ctx = ForensicContext(
        mem=mem, heap=heap, pools=reports, abort_message=read_abort_message(mem), pc=pc, registers=regs,
        candidate_pointers=candidates, symbolize=source_location, perturb_byte=read_perturb_byte(mem),
        references=refs.references, field_at=refs.field_at, signal=sig.get("signo"), notes=notes,
        program=_program_path(),
    )
    if sig.get("signo") in (7, 11):
        addr = sig.get("addr")
        acc = ctx.access()
        # SI_KERNEL (a general-protection fault) reports si_addr 0: the operand has the address
        if acc is not None and (sig.get("code") == 0x80 or not addr):
            addr = acc.address
        ctx.fault_address = addr
    return ctx
