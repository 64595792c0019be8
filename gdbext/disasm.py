# gdbext/disasm.py - capstone disassembly over a MemorySource: decoding at an
# address, finding the call before a return address, and computing the memory
# address an instruction accesses from a thread's registers.
"""Instructions read from target memory, without GDB.

* :func:`disassemble` decodes ``count`` instructions at an address;
* :func:`call_before` finds the call instruction that a return address
  (a saved ``alloc_site``, a stack slot) returns to;
* :func:`memory_access` / :func:`memory_accesses` compute which address an
  instruction reads or writes, from the registers of a core's thread
  (``base + index * scale + disp``, RIP-relative, ``fs:``/``gs:``, and the
  implicit stack slot of ``push``/``pop``/``call``/``ret``).

Architectures are named by string (``"x86-64"``, ``"x86"``, ``"aarch64"``,
``"arm"``); decoding and :func:`call_before` work for all of them, memory
operands are computed for x86 and x86-64 only.  Reads are bounded and never
raise for unreadable memory: the functions return ``[]`` or None.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple


from .errors import GdbextError, MemoryReadError
from .memory import MemorySource

__all__ = [
    "ArchSpec",
    "ARCHES",
    "Insn",
    "MemOperand",
    "Access",
    "arch_spec",
    "disassemble",
    "decode",
    "call_before",
    "memory_access",
    "memory_accesses",
    "register_value",
    "is_canonical",
    "instructions_text",
    "MAX_SWEEP",
]

#: The longest linear sweep :func:`call_before` makes from a function start.
MAX_SWEEP = 1 << 16


@dataclass(frozen=True)
class ArchSpec:
    """How capstone decodes one architecture, and the facts the helpers need."""

    name: str
    cs_arch: str  #: capstone's constant names: the library is loaded only when something is decoded
    cs_mode: str
    pointer_size: int
    max_insn: int  #: longest instruction, in bytes
    #: lengths of call instructions, most likely first (for :func:`call_before`)
    call_lengths: Tuple[int, ...]
    pc: str  #: program-counter register name
    sp: str  #: stack-pointer register name


ARCHES: Dict[str, ArchSpec] = {
    # x86: direct call e8 rel32 (5), call [rip+d32] (6), call reg (2),
    # call [reg+d8] (3), call [reg+idx*s+d32] (7), call [reg+idx*s+d8] (4).
    "x86-64": ArchSpec("x86-64", "CS_ARCH_X86", "CS_MODE_64", 8, 15, (5, 6, 2, 3, 7, 4), "rip", "rsp"),
    "x86": ArchSpec("x86", "CS_ARCH_X86", "CS_MODE_32", 4, 15, (5, 6, 2, 3, 7, 4), "eip", "esp"),
    "aarch64": ArchSpec("aarch64", "CS_ARCH_ARM64", "CS_MODE_ARM", 8, 4, (4,), "pc", "sp"),
    "arm": ArchSpec("arm", "CS_ARCH_ARM", "CS_MODE_ARM", 4, 4, (4,), "pc", "sp"),
}

_ALIASES = {"x86_64": "x86-64", "amd64": "x86-64", "i386": "x86", "i686": "x86", "arm64": "aarch64"}


def arch_spec(arch: str) -> ArchSpec:
    """The :class:`ArchSpec` named ``arch`` (aliases such as ``amd64`` accepted).

    :raises GdbextError: the architecture is not supported.
    """
    key = _ALIASES.get(arch.lower(), arch.lower())
    spec = ARCHES.get(key)
    if spec is None:
        raise GdbextError(f"unsupported architecture {arch!r} (known: {', '.join(sorted(ARCHES))})")
    return spec


@functools.lru_cache(maxsize=None)
def _capstone() -> Any:
    """The capstone module, imported on first use (its library costs ~11 MB of every gdb session)."""
    import capstone

    return capstone


@functools.lru_cache(maxsize=None)
def _engine(name: str) -> Any:
    """One detail-mode capstone engine per architecture (created on first use)."""
    spec = ARCHES[name]
    cs = _capstone()
    md = cs.Cs(getattr(cs, spec.cs_arch), getattr(cs, spec.cs_mode))
    md.detail = True
    return md


@dataclass(frozen=True)
class MemOperand:
    """An explicit memory operand as capstone decoded it (register names, not values)."""

    base: Optional[str]
    index: Optional[str]
    scale: int
    disp: int
    segment: Optional[str]
    size: int  #: bytes accessed
    access: int  #: capstone's CS_AC_* bits (1 read, 2 write), 0 when unknown


@dataclass(frozen=True)
class Insn:
    """One decoded instruction."""

    address: int
    size: int
    mnemonic: str
    op_str: str
    bytes: str  #: the encoding as hex digits
    text: str  #: ``mnemonic op_str``
    arch: str = "x86-64"
    is_call: bool = False
    is_jump: bool = False
    is_return: bool = False
    #: the destination of a direct call or jump, else None
    target: Optional[int] = None
    mem_operands: Tuple[MemOperand, ...] = ()

    @property
    def end(self) -> int:
        """The address after the instruction (what a call pushes as return address)."""
        return self.address + self.size


@dataclass(frozen=True)
class Access:
    """A memory access an instruction makes, resolved with a thread's registers."""

    address: int
    size: int  #: bytes
    kind: str  #: "read", "write", "read-write" or "unknown"
    expression: str  #: e.g. ``"[rax + 0x10]"``
    base: Optional[str] = None
    base_value: Optional[int] = None
    index: Optional[str] = None
    index_value: Optional[int] = None
    scale: int = 1
    disp: int = 0
    segment: Optional[str] = None
    implicit: bool = False  #: the stack slot of push/pop/call/ret, not an explicit operand


def _insn_from_capstone(ci: Any, spec: ArchSpec) -> Insn:
    cs = _capstone()
    from capstone import arm64_const, arm_const, x86_const

    is_call = bool(ci.group(cs.CS_GRP_CALL))
    is_jump = bool(ci.group(cs.CS_GRP_JUMP))
    is_ret = bool(ci.group(cs.CS_GRP_RET))
    target = None
    mems: List[MemOperand] = []
    if spec.cs_arch == "CS_ARCH_X86":
        for op in ci.operands:
            if op.type == x86_const.X86_OP_MEM:
                m = op.mem
                mems.append(
                    MemOperand(
                        base=ci.reg_name(m.base) if m.base else None,
                        index=ci.reg_name(m.index) if m.index else None,
                        scale=m.scale,
                        disp=m.disp,
                        segment=ci.reg_name(m.segment) if m.segment else None,
                        size=op.size,
                        access=getattr(op, "access", 0) or 0,
                    )
                )
            elif op.type == x86_const.X86_OP_IMM and (is_call or is_jump):
                target = op.imm & ((1 << (8 * spec.pointer_size)) - 1)
    elif is_call or is_jump:
        for op in ci.operands:
            if op.type in (arm_const.ARM_OP_IMM, arm64_const.ARM64_OP_IMM):
                target = op.imm & ((1 << (8 * spec.pointer_size)) - 1)
    return Insn(
        address=ci.address,
        size=ci.size,
        mnemonic=ci.mnemonic,
        op_str=ci.op_str,
        bytes=bytes(ci.bytes).hex(),
        text=f"{ci.mnemonic} {ci.op_str}".strip(),
        arch=spec.name,
        is_call=is_call,
        is_jump=is_jump,
        is_return=is_ret,
        target=target,
        mem_operands=tuple(mems),
    )


def decode(code: bytes, address: int, count: int = 0, arch: str = "x86-64") -> List[Insn]:
    """Decode instructions from ``code`` (which sits at ``address``).

    Decoding stops at the first invalid encoding or after ``count``
    instructions (0: as many as the bytes hold).
    """
    spec = arch_spec(arch)
    md = _engine(spec.name)
    return [_insn_from_capstone(ci, spec) for ci in md.disasm(bytes(code), address, count)]


def _read_upto(mem: MemorySource, address: int, size: int) -> bytes:
    """Up to ``size`` readable bytes at ``address`` (fewer at a mapping's end, b"" if none)."""
    if size <= 0 or address < 0:
        return b""
    try:
        return mem.read(address, size)
    except MemoryReadError:
        pass
    region = mem.region_of(address)
    if region is not None and region.end - address < size:
        try:
            return mem.read(address, region.end - address)
        except MemoryReadError:
            pass
    step = size // 2
    while step >= 1:
        try:
            return mem.read(address, step)
        except MemoryReadError:
            step //= 2
    return b""


def disassemble(mem: MemorySource, address: int, count: int = 1, arch: str = "x86-64") -> List[Insn]:
    """Decode ``count`` instructions at ``address`` in ``mem``.

    :param mem: the memory source.
    :param address: where the first instruction starts.
    :param count: how many instructions (at most; fewer at unreadable or invalid bytes).
    :param arch: architecture name, see :data:`ARCHES`.
    :returns: the instructions; ``[]`` when nothing there is readable or decodable.
    :raises GdbextError: ``arch`` is not supported.
    """
    spec = arch_spec(arch)
    if count <= 0:
        return []
    code = _read_upto(mem, address, min(count, 4096) * spec.max_insn)
    return decode(code, address, count, spec.name)


def call_before(
    mem: MemorySource,
    return_address: int,
    func_start: Optional[int] = None,
    arch: str = "x86-64",
) -> Optional[Insn]:
    """The call instruction that returns to ``return_address``, or None.

    With ``func_start`` (the start of the calling function) the function is
    swept linearly up to the return address; when an instruction ends exactly
    there, it is the answer if it is a call and None otherwise.  Without it,
    or when the sweep does not land on the return address (data in code),
    each call length of the architecture is tried backwards and a decoded
    call ending exactly at ``return_address`` is kept (a direct ``call rel32``
    first on x86).

    :param mem: the memory source.
    :param return_address: the address a call pushed (e.g. a saved ``alloc_site``).
    :param func_start: start of the function containing the call, if known.
    :param arch: architecture name.
    """
    spec = arch_spec(arch)
    if func_start is not None and func_start < return_address and return_address - func_start <= MAX_SWEEP:
        span = return_address - func_start
        code = _read_upto(mem, func_start, span)
        if len(code) == span:
            last: Optional[Insn] = None
            for insn in decode(code, func_start, 0, spec.name):
                last = insn
            if last is not None and last.end == return_address:
                return last if last.is_call else None
    window = max(spec.call_lengths)
    start = return_address - window
    code = b""
    if start >= 0:
        code = _read_upto(mem, start, window)
        if len(code) != window:
            code = b""
    for n in spec.call_lengths:
        if code:
            chunk = code[window - n :]
        else:
            chunk = _read_upto(mem, return_address - n, n)
            if len(chunk) != n:
                continue
        found = decode(chunk, return_address - n, 1, spec.name)
        if found and found[0].size == n and found[0].is_call:
            return found[0]
    return None


# -- registers ------------------------------------------------------------

_X86_64_PARENTS: Dict[str, Tuple[str, int, int]] = {}
for _full, _e, _w, _l, _h in (
    ("rax", "eax", "ax", "al", "ah"),
    ("rbx", "ebx", "bx", "bl", "bh"),
    ("rcx", "ecx", "cx", "cl", "ch"),
    ("rdx", "edx", "dx", "dl", "dh"),
    ("rsi", "esi", "si", "sil", None),
    ("rdi", "edi", "di", "dil", None),
    ("rbp", "ebp", "bp", "bpl", None),
    ("rsp", "esp", "sp", "spl", None),
    ("rip", "eip", "ip", None, None),
):
    _X86_64_PARENTS[_e] = (_full, 0xFFFFFFFF, 0)
    _X86_64_PARENTS[_w] = (_full, 0xFFFF, 0)
    if _l:
        _X86_64_PARENTS[_l] = (_full, 0xFF, 0)
    if _h:
        _X86_64_PARENTS[_h] = (_full, 0xFF, 8)
for _n in range(8, 16):
    _X86_64_PARENTS[f"r{_n}d"] = (f"r{_n}", 0xFFFFFFFF, 0)
    _X86_64_PARENTS[f"r{_n}w"] = (f"r{_n}", 0xFFFF, 0)
    _X86_64_PARENTS[f"r{_n}b"] = (f"r{_n}", 0xFF, 0)

#: 32-bit x86 registers as 64-bit names (a 32-bit core may name them either way).
_X86_32_TO_64 = {v[0]: k for k, v in _X86_64_PARENTS.items() if v[1] == 0xFFFFFFFF}


def register_value(name: str, registers: Mapping[str, int]) -> Optional[int]:
    """The value of register ``name`` (``eax``, ``r8d``, ``al``...) from a registers dict.

    The dict may hold 64-bit names (``rax``; what :class:`~gdbext.corefile.Thread`
    gives) or 32-bit ones (``eax``); sub-registers are masked out of their
    parent.  None when the register is not in the dict.
    """
    name = name.lower()
    if name in registers:
        return registers[name]
    parent = _X86_64_PARENTS.get(name)
    if parent is not None and parent[0] in registers:
        full, mask, shift = parent
        return (registers[full] >> shift) & mask
    narrow = _X86_32_TO_64.get(name)  # a 64-bit name asked of a 32-bit dict
    if narrow is not None and narrow in registers:
        return registers[narrow]
    return None


def is_canonical(address: int, va_bits: int = 48) -> bool:
    """True when a 64-bit x86 address is canonical (bits 63..va_bits-1 all equal)."""
    top = address >> (va_bits - 1)
    return top == 0 or top == (1 << (65 - va_bits)) - 1


_ACCESS_KINDS = {1: "read", 2: "write", 3: "read-write"}

#: Instructions whose memory operand is only an address computation or a hint.
_NO_ACCESS = frozenset(("lea", "nop", "nopw", "nopl", "prefetch", "prefetcht0", "prefetcht1", "prefetcht2",
                        "prefetchnta", "prefetchw", "clflush", "clflushopt", "clwb"))  # fmt: skip


def _operand_access(insn: Insn, op: MemOperand, registers: Mapping[str, int], spec: ArchSpec) -> Optional[Access]:
    mask = (1 << (8 * spec.pointer_size)) - 1
    narrow = False
    base_value = index_value = None
    if op.base is not None:
        if op.base in ("rip", "eip"):
            base_value = insn.end
        else:
            base_value = register_value(op.base, registers)
            if base_value is None:
                return None
            narrow = narrow or op.base.startswith("e")
    if op.index is not None:
        index_value = register_value(op.index, registers)
        if index_value is None:
            return None
        narrow = narrow or op.index.startswith("e") or op.index.endswith("d")
    seg_base = 0
    if op.segment in ("fs", "gs"):
        found = registers.get(f"{op.segment}_base")
        if found is None:
            return None
        seg_base = found
    effective = (base_value or 0) + (index_value or 0) * op.scale + op.disp
    if narrow and spec.pointer_size == 8:
        effective &= 0xFFFFFFFF  # address-size prefix: 32-bit effective address
    address = (effective + seg_base) & mask
    parts = []
    if op.base:
        parts.append(op.base)
    if op.index:
        parts.append(op.index if op.scale == 1 else f"{op.index}*{op.scale}")
    expr = " + ".join(parts)
    if op.disp or not parts:
        if expr:
            expr += f" - {-op.disp:#x}" if op.disp < 0 else f" + {op.disp:#x}"
        else:
            expr = f"{op.disp & mask:#x}"
    expr = f"{op.segment}:[{expr}]" if op.segment in ("fs", "gs") else f"[{expr}]"
    kind = _ACCESS_KINDS.get(op.access & 3, "unknown")
    return Access(
        address=address,
        size=op.size,
        kind=kind,
        expression=expr,
        base=op.base,
        base_value=base_value,
        index=op.index,
        index_value=index_value,
        scale=op.scale,
        disp=op.disp,
        segment=op.segment,
    )


def _implicit_stack(insn: Insn, registers: Mapping[str, int], spec: ArchSpec) -> Optional[Access]:
    """The stack slot push/pop/call/ret touch, which capstone lists as no operand."""
    sp = register_value(spec.sp, registers)
    if sp is None:
        return None
    mask = (1 << (8 * spec.pointer_size)) - 1
    word = spec.pointer_size
    m = insn.mnemonic
    if insn.is_call or m.startswith("push"):
        return Access((sp - word) & mask, word, "write", f"[{spec.sp} - {word:#x}]", base=spec.sp, base_value=sp,
                      disp=-word, implicit=True)
    if insn.is_return or m.startswith("pop") or m == "leave":
        base, value = spec.sp, sp
        if m == "leave":  # mov rsp, rbp; pop rbp
            base = "rbp" if spec.pointer_size == 8 else "ebp"
            frame = register_value(base, registers)
            if frame is None:
                return None
            value = frame
        return Access(value & mask, word, "read", f"[{base}]", base=base, base_value=value, implicit=True)
    return None


def memory_accesses(insn: Insn, registers: Mapping[str, int]) -> List[Access]:
    """Every memory access of ``insn`` resolved with ``registers``: explicit operands, then the implicit stack slot.

    Operands whose registers are missing from ``registers`` are left out;
    ``lea``, ``nop`` and prefetches access no memory.  Only x86 and x86-64
    are decoded; other architectures give ``[]``.
    """
    spec = arch_spec(insn.arch)
    if spec.cs_arch != "CS_ARCH_X86" or insn.mnemonic in _NO_ACCESS:
        return []
    out: List[Access] = []
    for op in insn.mem_operands:
        acc = _operand_access(insn, op, registers, spec)
        if acc is not None:
            out.append(acc)
    implicit = _implicit_stack(insn, registers, spec)
    if implicit is not None:
        out.append(implicit)
    return out


def memory_access(insn: Insn, registers: Mapping[str, int]) -> Optional[Access]:
    """The memory access of ``insn`` that matters for a fault: the first explicit operand, else the stack slot.

    :param insn: a decoded instruction (see :func:`disassemble`).
    :param registers: register values by name (``rax``, ``rip``, ``fs_base``...),
        as in :attr:`gdbext.corefile.Thread.registers`.
    :returns: the access, or None (no memory operand, missing registers, or
        an architecture whose operands are not decoded).
    """
    found = memory_accesses(insn, registers)
    return found[0] if found else None


def instructions_text(insns: Sequence[Insn]) -> List[str]:
    """``address: bytes  text`` lines for a listing."""
    return [f"{i.address:#x}: {i.bytes:<20} {i.text}" for i in insns]
