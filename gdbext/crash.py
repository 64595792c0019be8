# gdbext/crash.py - what killed the process, read from a core without GDB:
# signal and si_code, the fault address (recomputed from the faulting
# instruction when the kernel reports 0), pc with symbol and line, the
# instruction and its memory access, annotated registers, the glibc abort.
"""The crash summary of a core file.

:func:`crash_info` builds a :class:`CrashInfo` from a
:class:`~gdbext.corefile.CoreFile`:

* the signal of the crashing thread (the first NT_PRSTATUS) and the meaning
  of ``si_code``;
* the fault address.  A general-protection fault (on x86-64 any access
  through a non-canonical pointer such as ``0x3036333d776f646e``) arrives
  as ``SIGSEGV`` with ``si_code`` ``SI_KERNEL`` and ``si_addr`` 0; the
  address is then computed from the faulting instruction's memory operand
  and the registers, and the report says so;
* ``pc`` with its symbol and source line, the instruction (capstone) and the
  memory access it makes;
* every general register with a note: poison (glibc's perturb byte is read
  from the core when the binary has the ``perturb_byte`` symbol), printable
  text, or the mapping it points into with the symbol there and the string
  it points at, if any;
* for ``SIGABRT``, glibc's ``__abort_msg`` and what it means.

:meth:`CrashInfo.to_dict` gives a JSON-ready dict (addresses as ``"0x..."``
strings), :meth:`CrashInfo.text_lines` a human report.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from .aborts import AbortInfo, explain_abort, read_abort_message, read_perturb_byte
from .branch import BranchTarget, branch_target
from .corefile import CoreFile, SigInfo, Thread
from .disasm import Access, Insn, disassemble, is_canonical, memory_access
from .errors import GdbextError, MemoryReadError
from .memory import MemorySource, Region
from .poison import WordClass, classify_word
from .textutil import printable_text

__all__ = [
    "CrashInfo",
    "RegisterNote",
    "crash_info",
    "thread_crash_info",
    "signal_name",
    "si_code_meaning",
    "describe_value",
    "SIGNAL_NAMES",
]

#: Linux signal numbers (x86, ARM and most others share them).
SIGNAL_NAMES: Dict[int, str] = {
    1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
    8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE",
    14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP",
    20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ",
    26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS",
}  # fmt: skip

#: si_code values any signal may carry (include/uapi/asm-generic/siginfo.h).
_GENERIC_CODES: Dict[int, Tuple[str, str]] = {
    0: ("SI_USER", "sent by kill() or raise()"),
    0x80: ("SI_KERNEL", "sent by the kernel"),
    -1: ("SI_QUEUE", "sent by sigqueue()"),
    -2: ("SI_TIMER", "a POSIX timer expired"),
    -3: ("SI_MESGQ", "a POSIX message queue changed state"),
    -4: ("SI_ASYNCIO", "asynchronous I/O completed"),
    -5: ("SI_SIGIO", "queued SIGIO"),
    -6: ("SI_TKILL", "sent by tkill()/tgkill() (abort() and raise() use it)"),
}

_FAULT_CODES: Dict[int, Dict[int, Tuple[str, str]]] = {
    11: {
        1: ("SEGV_MAPERR", "address not mapped"),
        2: ("SEGV_ACCERR", "no permission for the access (write to read-only, execute non-executable, guard page)"),
        3: ("SEGV_BNDERR", "failed address bound check"),
        4: ("SEGV_PKUERR", "protection-key violation"),
        5: ("SEGV_ACCADI", "ADI not enabled for the mapped object"),
        6: ("SEGV_ADIDERR", "disrupting ADI error"),
        7: ("SEGV_ADIPERR", "precise ADI error"),
        8: ("SEGV_MTEAERR", "asynchronous MTE tag-check fault"),
        9: ("SEGV_MTESERR", "synchronous MTE tag-check fault"),
        10: ("SEGV_CPERR", "control-protection fault (shadow stack)"),
    },
    7: {
        1: ("BUS_ADRALN", "invalid address alignment"),
        2: ("BUS_ADRERR", "nonexistent physical address (e.g. past the end of a mapped file)"),
        3: ("BUS_OBJERR", "object-specific hardware error"),
        4: ("BUS_MCEERR_AR", "hardware memory error consumed on a machine check"),
        5: ("BUS_MCEERR_AO", "hardware memory error detected, action optional"),
    },
    4: {
        1: ("ILL_ILLOPC", "illegal opcode"), 2: ("ILL_ILLOPN", "illegal operand"),
        3: ("ILL_ILLADR", "illegal addressing mode"), 4: ("ILL_ILLTRP", "illegal trap (ud2 / __builtin_trap)"),
        5: ("ILL_PRVOPC", "privileged opcode"), 6: ("ILL_PRVREG", "privileged register"),
        7: ("ILL_COPROC", "coprocessor error"), 8: ("ILL_BADSTK", "internal stack error"),
        9: ("ILL_BADIADDR", "unimplemented instruction address"),
    },
    8: {
        1: ("FPE_INTDIV", "integer divide by zero"), 2: ("FPE_INTOVF", "integer overflow"),
        3: ("FPE_FLTDIV", "floating-point divide by zero"), 4: ("FPE_FLTOVF", "floating-point overflow"),
        5: ("FPE_FLTUND", "floating-point underflow"), 6: ("FPE_FLTRES", "floating-point inexact result"),
        7: ("FPE_FLTINV", "invalid floating-point operation"), 8: ("FPE_FLTSUB", "subscript out of range"),
    },
    5: {
        1: ("TRAP_BRKPT", "breakpoint"), 2: ("TRAP_TRACE", "trace trap (single step)"),
        3: ("TRAP_BRANCH", "branch trap"), 4: ("TRAP_HWBKPT", "hardware breakpoint/watchpoint"),
    },
}  # fmt: skip

#: Signals whose si_addr is a fault address.
_FAULT_SIGNALS = frozenset((4, 5, 7, 8, 11))

#: The general registers shown, in display order.
_X86_64_SHOWN = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
                 "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "eflags", "fs_base", "gs_base")  # fmt: skip

#: Values below this are counters and small integers, not worth annotating.
_SMALL = 0x10000

#: Bytes read behind a register that points at data, to show a string there.
_PEEK = 32


def signal_name(signo: int) -> str:
    """``SIGSEGV`` for 11; ``SIG<n>`` for numbers without a name (real-time signals)."""
    return SIGNAL_NAMES.get(signo, f"SIG{signo}")


def si_code_meaning(signo: int, code: int) -> Tuple[str, str]:
    """``(SI_* / SEGV_* name, meaning)`` of a signal's ``si_code``.

    For ``SIGSEGV`` with ``SI_KERNEL`` the meaning says why ``si_addr`` is 0.
    """
    if signo in _FAULT_CODES and code in _FAULT_CODES[signo]:
        return _FAULT_CODES[signo][code]
    if code in _GENERIC_CODES:
        name, meaning = _GENERIC_CODES[code]
        if code == 0x80 and signo in (7, 11):
            meaning = ("raised by the kernel for a general-protection fault (on x86-64: an access through a "
                       "non-canonical address); si_addr is 0, not the bad address")
        return name, meaning
    return (str(code), "unknown si_code")


@dataclass(frozen=True)
class RegisterNote:
    """One register of the crashing thread and what its value looks like."""

    name: str
    value: int
    note: str = ""  #: "" when nothing notable
    word: Optional[WordClass] = None  #: poison / text classification, if any


@dataclass
class CrashInfo:
    """What killed the process."""

    signo: int
    signal: str
    si_code: Optional[int]
    si_code_name: str
    si_code_meaning: str
    tid: Optional[int]
    #: the fault address (None when the signal has none or it is unknown)
    fault_address: Optional[int]
    #: where ``fault_address`` came from: "siginfo", "instruction" or None
    fault_address_source: Optional[str]
    si_addr: Optional[int]  #: the raw si_addr of NT_SIGINFO
    pc: Optional[int]
    pc_symbol: Optional[Tuple[str, int]] = None
    pc_line: Optional[Tuple[str, int]] = None
    instruction: Optional[Insn] = None
    access: Optional[Access] = None
    #: the code pointer of an indirect call/jmp or a ret at pc (its target), else None
    branch: Optional[BranchTarget] = None
    registers: List[RegisterNote] = field(default_factory=list)
    abort_message: Optional[str] = None
    abort: Optional[AbortInfo] = None
    perturb_byte: Optional[int] = None  #: glibc's perturb byte used for the annotations
    notes: List[str] = field(default_factory=list)  #: explanations (why the address was recomputed...)
    problems: List[str] = field(default_factory=list)  #: what could not be determined

    # -- rendering -------------------------------------------------------------
    def headline(self) -> str:
        """One line: signal, access, address, location."""
        parts = [self.signal]
        if self.access is not None and self.fault_address_source is not None:
            parts.append(f"on {self.access.kind} of {self.access.size} bytes")
        if self.fault_address is not None:
            parts.append(f"at {self.fault_address:#x}")
        if self.pc is not None:
            where = f"pc {self.pc:#x}"
            if self.pc_symbol:
                where += f" in {self.pc_symbol[0]}+{self.pc_symbol[1]:#x}"
            if self.pc_line:
                where += f" ({self.pc_line[0]}:{self.pc_line[1]})"
            parts.append(where)
        if self.tid is not None:
            parts.append(f"thread {self.tid}")
        line = " ".join(parts)
        if self.abort is not None:
            line += f": glibc abort \"{self.abort_message}\" ({self.abort.kind})"
        elif self.abort_message:
            line += f': abort "{self.abort_message}"'
        return line

    def text_lines(self) -> List[str]:
        """The human report, one list item per line."""
        out = [self.headline()]
        code = f"si_code {self.si_code} ({self.si_code_name}): {self.si_code_meaning}" if self.si_code is not None else ""
        if code:
            out.append("  " + code)
        if self.fault_address is not None:
            src = {"siginfo": "si_addr", "instruction": "computed from the faulting instruction"}.get(
                self.fault_address_source or "", "?")
            out.append(f"  fault address {self.fault_address:#x} ({src})")
        for note in self.notes:
            out.append(f"  note: {note}")
        if self.instruction is not None:
            out.append(f"  instruction {self.instruction.address:#x}: {self.instruction.text}")
        if self.access is not None:
            acc = self.access
            line = f"  access {acc.kind} {acc.size} bytes at {acc.address:#x} = {acc.expression}"
            if acc.base is not None and acc.base_value is not None and not acc.implicit:
                line += f" with {acc.base} = {acc.base_value:#x}"
            out.append(line)
        if self.abort_message is not None:
            if self.abort is not None:
                out.extend("  " + line for line in self.abort.lines())
            else:
                out.append(f'  abort message "{self.abort_message}" (not a known glibc malloc message)')
        if self.registers:
            out.append("  registers:")
            for reg in self.registers:
                line = f"    {reg.name:<7} {reg.value:#018x}"
                if reg.note:
                    line += f"  {reg.note}"
                out.append(line)
        for problem in self.problems:
            out.append(f"  problem: {problem}")
        return out

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict; addresses are ``"0x..."`` strings."""

        def hx(value: Optional[int]) -> Optional[str]:
            return None if value is None else f"{value:#x}"

        insn = None
        if self.instruction is not None:
            i = self.instruction
            insn = {"address": hx(i.address), "size": i.size, "bytes": i.bytes, "text": i.text}
        acc = None
        if self.access is not None:
            a = self.access
            acc = {
                "address": hx(a.address), "size": a.size, "kind": a.kind, "expression": a.expression,
                "base": a.base, "base_value": hx(a.base_value), "index": a.index, "index_value": hx(a.index_value),
                "scale": a.scale, "disp": a.disp, "segment": a.segment, "implicit": a.implicit,
            }  # fmt: skip
        abort = None
        if self.abort is not None:
            b = self.abort
            abort = {
                "function": b.function, "chunk": b.chunk, "invariant": b.invariant, "usual_cause": b.usual_cause,
                "kind": b.kind, "alternatives": list(b.alternatives), "versions": b.versions, "source": b.source,
            }  # fmt: skip
        regs = []
        for r in self.registers:
            entry: Dict[str, Any] = {"name": r.name, "value": hx(r.value)}
            if r.note:
                entry["note"] = r.note
            if r.word is not None:
                entry["class"] = r.word.kind
                if r.word.kind == "text":
                    entry["text"] = r.word.text
                else:
                    entry["preset"] = r.word.preset
                    entry["meaning"] = r.word.meaning
            regs.append(entry)
        return {
            "signal": {"number": self.signo, "name": self.signal, "code": self.si_code,
                       "code_name": self.si_code_name, "code_meaning": self.si_code_meaning},
            "tid": self.tid,
            "si_addr": hx(self.si_addr),
            "fault_address": hx(self.fault_address),
            "fault_address_source": self.fault_address_source,
            "pc": hx(self.pc),
            "pc_symbol": None if self.pc_symbol is None else {"name": self.pc_symbol[0], "offset": self.pc_symbol[1]},
            "pc_line": None if self.pc_line is None else {"file": self.pc_line[0], "line": self.pc_line[1]},
            "instruction": insn,
            "access": acc,
            "registers": regs,
            "abort_message": self.abort_message,
            "abort": abort,
            "perturb_byte": hx(self.perturb_byte),
            "notes": list(self.notes),
            "problems": list(self.problems),
        }  # fmt: skip


def _region_label(region: Region, stack: Optional[Region]) -> str:
    if stack is not None and region.start == stack.start:
        return f"stack {region.perms}"
    name = os.path.basename(region.path) if region.path else "anonymous"
    return f"{name} {region.perms}"


def describe_value(
    mem: MemorySource,
    value: int,
    perturb_byte: Optional[int] = None,
    stack: Optional[Region] = None,
) -> Tuple[str, Optional[WordClass]]:
    """A short note on what a pointer-sized value is: poison, text, symbol or mapping.

    :returns: ``(note, classification)``; the note is "" for small integers
        and values that point nowhere and look like nothing.
    """
    word = classify_word(value, mem.pointer_size, mem.byteorder, perturb_byte=perturb_byte)
    if word is not None:
        return word.describe(), word
    if value < _SMALL:
        return "", None
    region = mem.region_of(value)
    if region is None:
        if mem.pointer_size == 8 and not is_canonical(value):
            return "non-canonical address", None
        return "", None
    note = f"-> {_region_label(region, stack)}"
    sym = mem.symbolize(value)
    if sym is not None and value - sym[1] >= region.start:  # a symbol of another mapping is no name for this
        name, off = sym
        note += f" <{name}+{off:#x}>" if off else f" <{name}>"
    if "x" not in region.perms:
        try:
            pointee = mem.read(value, min(_PEEK, region.end - value))
        except MemoryReadError:
            pointee = b""
        text = printable_text(pointee, threshold=1.0, min_len=4)
        if text is not None:
            note += f' "{text}"' if len(text) < _PEEK else f' "{text}"...'
    return note, None


def crash_info(core: CoreFile, perturb_byte: Optional[int] = None, arch: str = "x86-64") -> CrashInfo:
    """The crash summary of ``core``.

    :param core: the core file (with its executable, for symbols and lines).
    :param perturb_byte: glibc's perturb byte for the register annotations;
        by default read from the core (symbol ``perturb_byte``) when present.
    :param arch: architecture of the core, for the disassembly.
    :raises GdbextError: the core holds no thread.
    """
    threads = core.threads()
    if not threads:
        raise GdbextError(f"{core.path}: the core holds no thread (no NT_PRSTATUS note)")
    thread: Thread = threads[0]
    return thread_crash_info(core, thread, thread.siginfo or core.siginfo(), perturb_byte=perturb_byte, arch=arch,
                             line_for=core.line_for)


def thread_crash_info(
    mem: MemorySource,
    thread: Thread,
    sig: Optional[SigInfo],
    *,
    perturb_byte: Optional[int] = None,
    arch: str = "x86-64",
    line_for: Optional[Callable[[int], Optional[Tuple[str, int]]]] = None,
) -> CrashInfo:
    """The crash summary of one stopped thread in any memory source: a core's, or a live process's through gdb.

    :param mem: the process's memory, with symbols.
    :param thread: the thread's id, stop signal and registers.
    :param sig: its siginfo (None when unknown: si_code and si_addr are then unknown).
    :param line_for: ``(file, line)`` of a code address, when the caller can tell.
    """
    signo = sig.signo if sig is not None else thread.signal
    code = sig.code if sig is not None else None
    code_name, code_meaning = si_code_meaning(signo, code) if code is not None else ("", "")
    si_addr = sig.addr if sig is not None and signo in _FAULT_SIGNALS else None
    info = CrashInfo(
        signo=signo, signal=signal_name(signo), si_code=code, si_code_name=code_name,
        si_code_meaning=code_meaning, tid=thread.tid, fault_address=None, fault_address_source=None,
        si_addr=si_addr, pc=thread.pc,
    )  # fmt: skip
    if sig is None:
        info.problems.append("the core has no NT_SIGINFO note: si_code and si_addr unknown")
    regs = thread.registers
    if not regs:
        info.problems.append("registers unknown (unsupported machine in NT_PRSTATUS)")
    if perturb_byte is None:
        perturb_byte = read_perturb_byte(mem)
    info.perturb_byte = perturb_byte

    if info.pc is not None:
        info.pc_symbol = mem.symbolize(info.pc)
        info.pc_line = line_for(info.pc) if line_for is not None else None
        insns = disassemble(mem, info.pc, 1, arch)
        if insns:
            info.instruction = insns[0]
            info.access = memory_access(insns[0], regs)
            info.branch = branch_target(insns[0], regs, lambda a: _read_word(mem, a))
        else:
            info.problems.append(f"no instruction readable at pc {info.pc:#x}")

    _fault_address(info)

    stack = mem.region_of(thread.sp) if thread.sp is not None else None
    shown = [name for name in _X86_64_SHOWN if name in regs] or sorted(regs)
    for name in shown:
        value = regs[name]
        if name in ("eflags",):
            info.registers.append(RegisterNote(name, value))
            continue
        note, word = describe_value(mem, value, perturb_byte, stack)
        info.registers.append(RegisterNote(name, value, note, word))

    if signo == 6:
        info.abort_message = read_abort_message(mem)
        if info.abort_message is not None:
            info.abort = explain_abort(info.abort_message)
        elif mem.symbol("__abort_msg") is None:
            info.problems.append("no __abort_msg symbol: the abort message cannot be read")
        else:
            info.notes.append("__abort_msg is NULL: abort() was called without a glibc message")
    return info


def _read_word(mem: MemorySource, address: int) -> Optional[int]:
    """One pointer-sized word of the core, None when unreadable."""
    try:
        return mem.read_pointer(address)
    except GdbextError:
        return None


def _fault_address(info: CrashInfo) -> None:
    """Fill ``fault_address`` from si_addr, or from the instruction when si_addr is 0."""
    if info.signo not in _FAULT_SIGNALS:
        return
    acc = info.access
    si_addr = info.si_addr
    # SI_KERNEL (a #GP) reports si_addr 0; so may a core without NT_SIGINFO.
    # A real access to address 0 (a NULL dereference) keeps si_addr.
    unreported = info.si_code == 0x80 or si_addr is None or (si_addr == 0 and acc is not None and acc.address != 0)
    br = info.branch
    if info.signo in (7, 11) and unreported and br is not None and not is_canonical(br.target):
        # #GP on the branch itself: the target was bad, not the stack slot a call pushes
        info.fault_address = br.target
        info.fault_address_source = "instruction"
        insn = info.instruction.text if info.instruction is not None else "the branch"
        info.notes.append(f"si_addr is 0 (a general-protection fault); {insn} goes to {br.target:#x} (its "
                          f"{br.how}), which is non-canonical, so the CPU faulted on the branch itself")
        return
    if info.signo in (7, 11) and unreported and acc is not None:
        info.fault_address = acc.address
        info.fault_address_source = "instruction"
        why = "si_addr is 0" if not si_addr else f"si_addr is {si_addr:#x}"
        if info.si_code == 0x80:
            why += " (SI_KERNEL: a general-protection fault)"
        line = f"{why}; the address {acc.address:#x} is computed from the faulting instruction's operand {acc.expression}"
        if acc.base_value is not None and not acc.implicit:
            line += f" with {acc.base} = {acc.base_value:#x}"
        if not is_canonical(acc.address):
            line += "; it is non-canonical, so the CPU raised #GP instead of a page fault"
        info.notes.append(line)
        return
    if si_addr is not None:
        info.fault_address = si_addr
        info.fault_address_source = "siginfo"
        if acc is not None and info.signo in (7, 11) and not acc.address <= si_addr < acc.address + max(acc.size, 1):
            info.notes.append(
                f"si_addr {si_addr:#x} is not inside the instruction's access [{acc.address:#x}, "
                f"{acc.address + acc.size:#x}) ({acc.expression}); the fault may come from another operand "
                "or from a page boundary inside the access"
            )
    elif info.signo in (7, 11):
        info.problems.append("fault address unknown: no si_addr and no memory operand")
