# gdbext/forensics/corectx.py - a forensic context from a core file alone (no
# gdb): crash facts from gdbext.crash, the glibc heap, registers and a stack
# scan for candidate pointers, symbols and lines from the ELF files.
"""Building a :class:`~gdbext.forensics.context.ForensicContext` without gdb.

Without an unwinder the candidate pointers are the crashing thread's
registers followed by the words of its stack from ``sp`` up (the pointer a
failing ``free()`` got is saved there by the frames between ``free`` and
``abort``); inside gdb the command adapters use gdb's frames instead.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from ..corefile import CoreFile
from ..crash import crash_info
from ..errors import GdbextError, MemoryReadError
from ..glibc import HeapNotFoundError, Overrides, locate_heap
from ..glibc.segments import byteorder_of
from ..memory import MemorySource
from ..pools import PoolReport
from .context import FieldAt, ForensicContext, References, Symbolize, no_field, no_references, read_perturb_byte

__all__ = ["context_from_core", "core_symbolizer", "stack_pointers", "STACK_SCAN"]

#: Bytes of the crashing thread's stack scanned for candidate pointers.
STACK_SCAN = 8192
#: Register order for candidates: arguments first, then callee-saved.
_REGS = ("rdi", "rsi", "rdx", "rcx", "r8", "r9", "rax", "rbx", "rbp", "r12", "r13", "r14", "r15", "r10", "r11")


def core_symbolizer(core: CoreFile) -> Symbolize:
    """``pc -> {function, file, line}`` from the core's ELF symbols and DWARF line tables."""

    def symbolize(pc: int) -> Optional[Dict[str, Any]]:
        sym = core.symbolize(pc)
        line = core.line_for(pc)
        if sym is None and line is None:
            return None
        return {"function": sym[0] if sym else None, "file": line[0] if line else None,
                "line": line[1] if line else None}

    return symbolize


def stack_pointers(mem: MemorySource, sp: int, size: int = STACK_SCAN) -> List[int]:
    """Distinct pointer-sized values on the stack from ``sp`` (aligned words), that point into mapped memory."""
    ps = mem.pointer_size
    region = mem.region_of(sp)
    if region is None:
        return []
    size = min(size, region.end - sp)
    try:
        data = mem.read(sp, size)
    except MemoryReadError:
        return []
    out: List[int] = []
    seen = set()
    for off in range(0, len(data) - ps + 1, ps):
        value = int.from_bytes(data[off:off + ps], byteorder_of(mem))
        if value < 0x10000 or value in seen:
            continue
        if mem.region_of(value) is None:
            continue
        seen.add(value)
        out.append(value)
    return out


def context_from_core(core: CoreFile, pools: Sequence[PoolReport] = (), overrides: Optional[Overrides] = None,
                      references: References = no_references, field_at: FieldAt = no_field,
                      stack_bytes: int = STACK_SCAN, arch: str = "x86-64") -> ForensicContext:
    """The forensic context of a core file.

    :param core: the core (opened with its executable, for symbols).
    :param pools: pools already walked over the core.
    :param overrides: heap-location overrides.
    :param references: the reference finder.
    :param field_at: the typed-field namer.
    :param stack_bytes: bytes of stack scanned for candidate pointers.
    :param arch: architecture name.
    """
    info = crash_info(core, arch=arch)
    notes: List[str] = list(info.problems)
    threads = core.threads()
    regs: Dict[str, int] = dict(threads[0].registers) if threads else {}
    heap = None
    try:
        heap = locate_heap(core, overrides)
    except HeapNotFoundError as err:
        notes.append(f"no glibc heap: {err}")
    except GdbextError as err:
        notes.append(f"glibc heap not located: {err}")
    candidates: List[int] = [regs[r] for r in _REGS if r in regs]
    sp = regs.get("rsp")
    if sp is not None:
        candidates += [v for v in stack_pointers(core, sp, stack_bytes) if v not in candidates]
    return ForensicContext(
        mem=core, heap=heap, pools=list(pools), abort_message=info.abort_message, fault_address=info.fault_address,
        pc=info.pc, registers=regs, candidate_pointers=candidates, symbolize=core_symbolizer(core),
        perturb_byte=read_perturb_byte(core), references=references, field_at=field_at, arch=arch,
        signal=info.signo, notes=notes, program=core._executable_arg,
    )
