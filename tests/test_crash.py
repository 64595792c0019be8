# tests/test_crash.py - gdbext.crash on the fixture cores, compared with their
# truth files: the recomputed fault address of the non-canonical SIGSEGVs,
# register annotations (text, glibc perturb poison), pc symbol and line, the
# glibc abort of the SIGABRT cores, and the dict/text renderings.
from __future__ import annotations

import json

import pytest
from conftest import Truth

from gdbext.crash import crash_info, si_code_meaning, signal_name


@pytest.fixture(scope="module")
def crash(open_core):
    cache = {}

    def get(name):
        if name not in cache:
            c = open_core(name)
            cache[name] = (c, crash_info(c), Truth(name))
        return cache[name]

    return get


def reg(info, name):
    return next(r for r in info.registers if r.name == name)


def test_pool_overflow_fault_address_from_instruction(crash):
    c, info, gt = crash("pool_overflow")
    assert (info.signo, info.signal) == (11, gt["crash_signal"])
    assert (info.si_code, info.si_code_name, info.si_addr) == (0x80, "SI_KERNEL", 0)
    pointer = gt.int("overflow_victim_next_free")
    assert pointer == gt.int("crash_fault_addr_value")
    assert info.fault_address_source == "instruction"
    assert info.fault_address == info.access.address == pointer + 16  # h->next_free
    assert (info.access.base, info.access.base_value, info.access.kind, info.access.size) == ("rax", pointer, "read", 8)
    assert any("si_addr is 0" in n and "non-canonical" in n for n in info.notes)
    assert info.pc_symbol[0] == gt["crash_function"]
    assert info.pc_line == ("fixtures/src/pool_overflow.c", gt.int("crash_line"))
    assert info.instruction.text == "mov rax, qword ptr [rax + 0x10]"
    rax = reg(info, "rax")
    assert rax.value == pointer
    assert (rax.word.kind, rax.word.text) == ("text", gt["overflow_victim_next_free_text"])
    assert rax.note == 'text "ndow=360"'
    assert info.abort_message is None and info.abort is None
    assert info.perturb_byte is None  # not set in this program


def test_uaf_perturb_poison_register(crash):
    c, info, gt = crash("uaf_perturb")
    bad = gt.int("victim_next_after_free")
    assert info.perturb_byte == gt.int("perturb_byte") == 0xA5  # read from glibc's perturb_byte
    assert (info.fault_address, info.fault_address_source) == (bad, "instruction")
    assert info.pc_symbol[0] == gt["crash_function"]
    assert info.pc_line == ("fixtures/src/uaf_perturb.c", gt.int("crash_line"))
    rax = reg(info, "rax")
    assert rax.value == bad
    assert (rax.word.kind, rax.word.preset, rax.word.state) == ("poison", "glibc-perturb", "freed")
    assert "0xa5" in rax.note


def test_uaf_perturb_without_perturb_symbol(crash):
    c, _info, gt = crash("uaf_perturb")
    info = crash_info(c, perturb_byte=0x11)  # an explicit byte wins over the core's
    assert info.perturb_byte == 0x11
    rax = reg(info, "rax")
    assert rax.word.preset != "glibc-perturb" and rax.word.kind == "poison"  # jemalloc / SLUB readings remain


@pytest.mark.parametrize(
    "name, kind",
    [("heap_overflow", "heap-buffer-overflow"), ("double_free", "double-free"),
     ("binary_overflow", "heap-buffer-overflow"), ("tcache_uaf", "use-after-free")],
)  # fmt: skip
def test_sigabrt_with_glibc_message(crash, name, kind):
    c, info, gt = crash(name)
    assert (info.signo, info.signal, info.si_code_name) == (6, gt["crash_signal"], "SI_TKILL")
    assert info.fault_address is None and info.si_addr is None
    assert info.abort_message == gt["abort_message"]
    assert info.abort.kind == kind
    assert gt["abort_message"] in info.headline()


def test_sigabrt_without_message(crash):
    c, info, gt = crash("threads")
    assert info.signal == "SIGABRT" and info.abort_message is None and info.abort is None
    assert any("__abort_msg is NULL" in n for n in info.notes)


def test_null_write_keeps_si_addr(crash):
    c, info, gt = crash("sensor")
    assert info.si_code_name == "SEGV_MAPERR"
    assert (info.fault_address, info.fault_address_source) == (0, "siginfo")
    assert info.access.kind == "write" and info.access.address == 0
    assert info.pc_symbol[0] == gt["crash_function"]
    assert info.pc_line == ("fixtures/src/sensor.c", gt.int("crash_line"))
    assert info.notes == []


def test_register_mapping_notes(crash):
    c, info, gt = crash("pool_overflow")
    assert reg(info, "rsp").note == "-> stack rw-"
    assert reg(info, "rip").note.endswith("<pool_alloc+0x33>")
    assert reg(info, "rdx").note == ""  # a small integer
    assert [r.name for r in info.registers][:4] == ["rax", "rbx", "rcx", "rdx"]


def test_to_dict_and_text(crash):
    c, info, gt = crash("pool_overflow")
    d = info.to_dict()
    json.dumps(d)
    assert d["fault_address"] == f"{gt.int('overflow_victim_next_free') + 16:#x}"
    assert d["si_addr"] == "0x0" and d["fault_address_source"] == "instruction"
    assert d["signal"] == {"number": 11, "name": "SIGSEGV", "code": 128, "code_name": "SI_KERNEL",
                           "code_meaning": info.si_code_meaning}
    assert d["access"]["base_value"] == gt["overflow_victim_next_free"]
    assert d["pc_line"] == {"file": "fixtures/src/pool_overflow.c", "line": gt.int("crash_line")}
    rax = next(r for r in d["registers"] if r["name"] == "rax")
    assert rax == {"name": "rax", "value": gt["overflow_victim_next_free"], "note": 'text "ndow=360"',
                   "class": "text", "text": "ndow=360"}
    text = info.text_lines()
    assert text[0].startswith("SIGSEGV on read of 8 bytes at 0x3036333d776f647e pc 0x")
    assert "pool_alloc+0x" in text[0] and "pool_overflow.c:96" in text[0]
    assert any(line.strip().startswith("rax") and "ndow=360" in line for line in text)
    _c, abort_info, _gt = crash("heap_overflow")
    d = abort_info.to_dict()
    json.dumps(d)
    assert d["abort"]["kind"] == "heap-buffer-overflow" and d["abort_message"] == "free(): invalid next size (normal)"
    assert any("expected:" in line for line in abort_info.text_lines())


def test_signal_tables():
    assert signal_name(11) == "SIGSEGV" and signal_name(6) == "SIGABRT" and signal_name(40) == "SIG40"
    assert si_code_meaning(11, 1)[0] == "SEGV_MAPERR"
    assert si_code_meaning(11, 2)[0] == "SEGV_ACCERR"
    assert si_code_meaning(7, 1)[0] == "BUS_ADRALN"
    assert si_code_meaning(6, -6)[0] == "SI_TKILL"
    name, meaning = si_code_meaning(11, 0x80)
    assert name == "SI_KERNEL" and "si_addr is 0" in meaning
    assert si_code_meaning(11, 999)[1] == "unknown si_code"


def test_describe_value_synthetic():
    from gdbext.crash import describe_value
    from gdbext.memory import BufferSource, Region

    mem = BufferSource({0x600000: b"session:alice\0" + b"\xcd" * 18, 0x7FF000: b"\0" * 64},
                       symbols={"g_name": 0x600000})
    note, word = describe_value(mem, 0x600000)
    assert word is None and note == '-> anonymous rw- <g_name> "session:alice"'
    note, _ = describe_value(mem, 0x600005, stack=Region(0x7FF000, 0x7FF040, "rw-"))
    assert note == '-> anonymous rw- <g_name+0x5> "on:alice"'
    assert describe_value(mem, 0x7FF008, stack=Region(0x7FF000, 0x7FF040, "rw-"))[0] == "-> stack rw-"
    assert describe_value(mem, 0x1234)[0] == ""  # small
    assert describe_value(mem, 0x900000)[0] == ""  # unmapped, canonical
    assert describe_value(mem, 0x8000000000000000)[0] == "non-canonical address"
    note, word = describe_value(mem, 0xDDDDDDDDDDDDDDDD)
    assert word.kind == "poison" and word.preset == "msvc-debug-crt"
