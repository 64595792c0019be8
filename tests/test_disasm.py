# tests/test_disasm.py - gdbext.disasm: decoding over a memory source, memory
# operands resolved with registers (synthetic code), call_before on synthetic
# code and on the pool_overflow core's recorded alloc sites, and the faulting
# instructions of the pool_overflow and uaf_perturb cores.
from __future__ import annotations


import pytest
from conftest import Truth

from gdbext.disasm import (
    arch_spec,
    call_before,
    decode,
    disassemble,
    is_canonical,
    memory_access,
    memory_accesses,
    register_value,
)
from gdbext.errors import GdbextError
from gdbext.memory import BufferSource

CODE = 0x401000


def mem_with(code: bytes, at: int = CODE) -> BufferSource:
    return BufferSource({at: code})


REGS = {
    "rax": 0x1000, "rbx": 0x2000, "rcx": 3, "rdx": 0xFFFFFFFF00000010, "rsi": 0x5000, "rdi": 0x6000,
    "rbp": 0x7FFFFFFFE000, "rsp": 0x7FFFFFFFDF00, "r8": 0x8000, "r12": 0x12, "rip": CODE,
    "fs_base": 0x4B0380, "gs_base": 0,
}  # fmt: skip


def one(hexcode: str):
    insns = disassemble(mem_with(bytes.fromhex(hexcode)), CODE, 1)
    assert len(insns) == 1
    return insns[0]


# -- decoding -------------------------------------------------------------------


def test_disassemble_fields():
    insns = disassemble(mem_with(bytes.fromhex("488b4010" "e800000000" "c3")), CODE, 3)
    assert [i.text for i in insns] == ["mov rax, qword ptr [rax + 0x10]", f"call {CODE + 9:#x}", "ret"]
    mov, call, ret = insns
    assert (mov.address, mov.size, mov.bytes, mov.mnemonic) == (CODE, 4, "488b4010", "mov")
    assert call.is_call and call.target == CODE + 9 and call.end == CODE + 9
    assert ret.is_return and not ret.is_call


def test_disassemble_at_mapping_end_and_unreadable():
    m = mem_with(bytes.fromhex("4889c3"))  # 3 bytes, then nothing mapped
    assert [i.text for i in disassemble(m, CODE, 5)] == ["mov rbx, rax"]
    assert disassemble(m, 0xDEAD0000, 3) == []
    assert disassemble(m, CODE, 0) == []
    assert call_before(m, 0xDEAD0000) is None


def test_invalid_bytes_stop_decoding():
    assert disassemble(mem_with(bytes.fromhex("06")), CODE, 1) == []  # push es: invalid in 64-bit mode


def test_arch_names():
    assert arch_spec("amd64").name == "x86-64"
    assert arch_spec("i386").pointer_size == 4
    with pytest.raises(GdbextError):
        arch_spec("vax")
    with pytest.raises(GdbextError):
        disassemble(mem_with(b"\x90"), CODE, 1, arch="vax")


def test_x86_32_decoding():
    insn = decode(bytes.fromhex("8b4004"), 0x8048000, 1, "x86")[0]
    assert insn.text == "mov eax, dword ptr [eax + 4]"
    acc = memory_access(insn, {"eax": 0x1000, "esp": 0x2000})
    assert (acc.address, acc.size) == (0x1004, 4)


def test_aarch64_call_before():
    # bl +8 at 0x1000 (0x94000002), then nop
    code = bytes.fromhex("02000094" "1f2003d5")
    m = BufferSource({0x1000: code})
    insn = call_before(m, 0x1004, arch="aarch64")
    assert insn is not None and insn.mnemonic == "bl" and insn.target == 0x1008
    assert call_before(m, 0x1008, arch="aarch64") is None  # the nop is no call
    assert memory_access(insn, {"sp": 0x1000}) is None  # operands are decoded for x86 only


# -- memory operands ---------------------------------------------------------------


@pytest.mark.parametrize(
    "hexcode, address, size, kind, expression",
    [
        ("488b4010", 0x1010, 8, "read", "[rax + 0x10]"),
        ("c70007000000", 0x1000, 4, "write", "[rax]"),
        ("8b448820", 0x1000 + 3 * 4 + 0x20, 4, "read", "[rax + rcx*4 + 0x20]"),
        ("488b45f8", 0x7FFFFFFFE000 - 8, 8, "read", "[rbp - 0x8]"),
        ("48ff00", 0x1000, 8, "read-write", "[rax]"),
        ("64488b042528000000", 0x4B0380 + 0x28, 8, "read", "fs:[0x28]"),
        ("488b0510000000", CODE + 7 + 0x10, 8, "read", "[rip + 0x10]"),
        ("670fb602", 0x10, 1, "read", "[edx]"),  # 32-bit address size: edx of rdx
        ("42880c02", 0xFFFFFFFF00000010 + 0x8000, 1, "write", "[rdx + r8]"),
    ],
)
def test_memory_access_forms(hexcode, address, size, kind, expression):
    acc = memory_access(one(hexcode), REGS)
    assert acc is not None
    assert (acc.address, acc.size, acc.kind, acc.expression) == (address, size, kind, expression)
    assert not acc.implicit


def test_memory_access_values():
    acc = memory_access(one("8b448820"), REGS)
    assert (acc.base, acc.base_value, acc.index, acc.index_value, acc.scale, acc.disp) == ("rax", 0x1000, "rcx", 3, 4, 0x20)


def test_no_access_and_missing_registers():
    assert memory_access(one("488d4510"), REGS) is None  # lea computes, reads nothing
    assert memory_access(one("0f1f4000"), REGS) is None  # nop dword ptr [rax]
    assert memory_access(one("4889c3"), REGS) is None  # register to register
    assert memory_access(one("488b4010"), {"rbx": 1}) is None  # rax unknown
    assert memory_access(one("64488b042528000000"), {"rax": 0}) is None  # fs_base unknown


def test_implicit_stack_accesses():
    push = memory_access(one("55"), REGS)
    assert (push.address, push.size, push.kind, push.implicit) == (REGS["rsp"] - 8, 8, "write", True)
    pop = memory_access(one("5d"), REGS)
    assert (pop.address, pop.kind) == (REGS["rsp"], "read")
    ret = memory_access(one("c3"), REGS)
    assert (ret.address, ret.kind) == (REGS["rsp"], "read")
    call = memory_accesses(one("ff5010"), REGS)  # call [rax+0x10]: reads the target, pushes the return
    assert [(a.address, a.kind, a.implicit) for a in call] == [(0x1010, "read", False), (REGS["rsp"] - 8, "write", True)]
    leave = memory_access(one("c9"), REGS)
    assert (leave.address, leave.base) == (REGS["rbp"], "rbp")


def test_string_instruction_operands():
    accs = memory_accesses(one("f3a4"), REGS)  # rep movsb [rdi], [rsi]
    assert [(a.address, a.kind) for a in accs[:2]] == [(0x6000, "write"), (0x5000, "read")]


def test_register_value_subregisters():
    regs = {"rax": 0x1122334455667788, "r9": 0xAABBCCDDEEFF0011}
    assert register_value("rax", regs) == 0x1122334455667788
    assert register_value("eax", regs) == 0x55667788
    assert register_value("ax", regs) == 0x7788
    assert register_value("al", regs) == 0x88
    assert register_value("ah", regs) == 0x77
    assert register_value("r9d", regs) == 0xEEFF0011
    assert register_value("r9b", regs) == 0x11
    assert register_value("rbx", regs) is None
    assert register_value("rax", {"eax": 5}) == 5  # a 32-bit dict


def test_is_canonical():
    assert is_canonical(0x00007FFFFFFFE000)
    assert is_canonical(0xFFFF800000000000)
    assert not is_canonical(0x3036333D776F646E)
    assert not is_canonical(0xA5A5A5A5A5A5A5A5)
    assert not is_canonical(0x0000800000000000)


# -- call_before on synthetic code ---------------------------------------------------


def test_call_before_backwards():
    code = bytes.fromhex(
        "55"              # push rbp
        "e8f0ffffff"      # call rel32        -> returns to +6
        "ffd0"            # call rax          -> +8
        "ff1510000000"    # call [rip+0x10]   -> +14
        "ff5018"          # call [rax+0x18]   -> +17
        "ff94c810000000"  # call [rax+rcx*8+0x10] -> +24
        "4889c3"          # mov rbx, rax      -> +27
    )  # fmt: skip
    m = mem_with(code)
    found = {ret: call_before(m, CODE + ret) for ret in (6, 8, 14, 17, 24, 27)}
    assert found[6].text == f"call {CODE + 6 - 0x10:#x}" and found[6].target == CODE + 6 - 0x10
    assert found[8].text == "call rax"
    assert found[14].text == "call qword ptr [rip + 0x10]"
    assert found[17].text == "call qword ptr [rax + 0x18]"
    assert found[24].text == "call qword ptr [rax + rcx*8 + 0x10]"
    assert found[27] is None
    for ret, insn in found.items():
        if insn is not None:
            assert insn.end == CODE + ret


def test_call_before_with_function_start():
    code = bytes.fromhex("55" "4889e5" "e8f0ffffff" "4889c3" "5d" "c3")
    m = mem_with(code)
    insn = call_before(m, CODE + 9, func_start=CODE)
    assert insn is not None and insn.address == CODE + 4 and insn.is_call
    assert call_before(m, CODE + 12, func_start=CODE) is None  # lands on mov: no call
    # a return address inside an instruction: the sweep misses, the backward search decides
    assert call_before(m, CODE + 7, func_start=CODE) is None


def test_call_before_near_mapping_start():
    m = mem_with(bytes.fromhex("ffd0"))  # only two bytes mapped before the return address
    assert call_before(m, CODE + 2).text == "call rax"


# -- real cores -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cores(open_core):
    return open_core


ALLOC_BUFFERS = ("session", "auth_header", "scratch", "request", "trace_header", "config", "response")


@pytest.mark.parametrize("buf", ALLOC_BUFFERS)
def test_pool_alloc_sites_are_calls_to_pool_alloc(cores, buf):
    c = cores("pool_overflow")
    gt = Truth("pool_overflow")
    site = gt.int(f"buf.{buf}.alloc_site")
    insn = call_before(c, site)
    assert insn is not None and insn.is_call and insn.end == site
    assert insn.target == c.symbol("pool_alloc")
    assert c.line_for(insn.address) == ("fixtures/src/pool_overflow.c", gt.int(f"buf.{buf}.alloc_line"))
    assert c.symbolize(insn.address)[0] == gt[f"buf.{buf}.alloc_function"]
    # the same answer by sweeping the calling function from its start
    func = c.executable_symbols().function_at(site)
    swept = call_before(c, site, func_start=func.address)
    assert swept == insn


def test_pool_overflow_faulting_instruction(cores):
    c = cores("pool_overflow")
    gt = Truth("pool_overflow")
    thread = c.threads()[0]
    insn = disassemble(c, thread.pc, 1)[0]
    assert c.symbolize(insn.address)[0] == gt["crash_function"] == "pool_alloc"
    acc = memory_access(insn, thread.registers)
    # h->next_free: the base register holds the text pointer, next_free sits 16 bytes in
    pointer = gt.int("overflow_victim_next_free")
    assert (acc.base, acc.base_value) == ("rax", pointer)
    assert acc.address == pointer + 16 and (acc.size, acc.kind) == (8, "read")
    assert not is_canonical(acc.address)


def test_uaf_perturb_faulting_instruction(cores):
    c = cores("uaf_perturb")
    gt = Truth("uaf_perturb")
    thread = c.threads()[0]
    insn = disassemble(c, thread.pc, 1)[0]
    acc = memory_access(insn, thread.registers)
    assert acc.address == gt.int("victim_next_after_free") == gt.int("uaf_read_pointer")
    assert acc.kind == "read"
