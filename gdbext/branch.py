# gdbext/branch.py - the code pointer a faulting indirect call/jmp or ret used:
# its target, and where it was read from (a register, a memory operand, the
# return-address slot).
"""Branch targets of faulting control transfers.

When the target of an indirect ``call``/``jmp`` or of a ``ret`` is
non-canonical, the CPU raises #GP on the branch itself (``si_addr`` 0):
the faulting value is the target, not the stack slot a call would push.
GDB-free; decoding comes from :mod:`gdbext.disasm`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Optional

from .disasm import Access, Insn, arch_spec, memory_accesses, register_value

__all__ = ["BranchTarget", "branch_target"]
@dataclass(frozen=True)
class BranchTarget:
    """Where an indirect ``call``/``jmp`` or a ``ret`` was going: the code pointer it used.

    :ivar target: the code address.
    :ivar how: ``"register rcx"``, ``"memory [rax + 0x8]"``, ``"return address [rsp]"``.
    :ivar register: the register that held the target (a register operand), else None.
    :ivar access: the memory the target was read from (a memory operand, or the return slot), else None.
    """

    target: int
    how: str
    register: Optional[str] = None
    access: Optional[Access] = None


def branch_target(insn: Insn, registers: Mapping[str, int],
                  read_word: Callable[[int], Optional[int]]) -> Optional[BranchTarget]:
    """The code pointer of an indirect call/jump (register or memory operand) or of a ``ret``; None otherwise.

    When the target is non-canonical the CPU raises #GP on the branch itself
    (``si_addr`` 0): the target, not the stack slot a call pushes, is what
    was bad.  Only x86-64 and i386 are decoded.

    :param read_word: reads one pointer-sized word of the target's memory (None: unreadable).
    """
    spec = arch_spec(insn.arch)
    if spec.cs_arch != "CS_ARCH_X86" or not (insn.is_call or insn.is_jump or insn.is_return):
        return None
    if insn.is_return:
        sp = register_value(spec.sp, registers)
        value = read_word(sp) if sp is not None else None
        if sp is None or value is None:
            return None
        return BranchTarget(value, f"return address [{spec.sp}]",
                            access=Access(sp, spec.pointer_size, "read", f"[{spec.sp}]", base=spec.sp, base_value=sp,
                                          implicit=True))
    if insn.target is not None:
        return None  # direct: the destination is in the encoding
    if insn.mem_operands:
        acc = next((a for a in memory_accesses(insn, registers) if not a.implicit), None)
        value = read_word(acc.address) if acc is not None else None
        if acc is None or value is None:
            return None
        return BranchTarget(value, f"memory {acc.expression}", access=acc)
    reg = insn.op_str.strip()
    value = register_value(reg, registers)
    if value is None:
        return None
    return BranchTarget(value, f"register {reg}", register=reg)
