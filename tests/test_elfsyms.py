# tests/test_elfsyms.py - gdbext.elfsyms against a real static binary and binutils as the oracle.
#
# A session fixture compiles a two-file C program (static, -g -O0) with a
# global and a static variable of the same name; symbols are checked against
# ``readelf -s``, source lines against ``addr2line`` for every byte of the
# program's own functions, the build-id against ``readelf -n``.  The note
# parser is also checked on synthetic bytes.  Skipped when gcc is missing.
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import time
from typing import Dict, List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elftools.elf.elffile import ELFFile

from gdbext.elfsyms import ElfSymbols, Note, build_id_from_notes, file_build_id, parse_notes
from gdbext.errors import CoreFileError

MAIN_C = r"""
#include <stdio.h>
#include <stdlib.h>

int dup_var = 1;               /* global: wins over helper.c's static one */
long counter = 5;
extern int helper(int);

int compute(int x) {
    int y = x * 3;
    y += helper(y); /* MARK-CALL */
    return y;
}

int main(int argc, char **argv) {
    (void)argv;
    void *p = malloc(32);
    printf("%d %p\n", compute(argc), p);
    return 0;
}
"""

HELPER_C = r"""
static int dup_var = 2;
static int scale(int v) {
    return v * dup_var; /* MARK-SCALE */
}
int helper(int v) {
    return scale(v) + 1;
}
"""


def _marked(source: str, marker: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), 1) if marker in line)


@pytest.fixture(scope="session")
def binary(tmp_path_factory: pytest.TempPathFactory) -> str:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the test binary")
    work = tmp_path_factory.mktemp("elfsyms")
    (work / "main.c").write_text(MAIN_C)
    (work / "helper.c").write_text(HELPER_C)
    out = str(work / "prog")
    subprocess.run(["gcc", "-g", "-O0", "-static", "-o", out, "main.c", "helper.c"], check=True, cwd=work)
    return out


@pytest.fixture(scope="session")
def syms(binary: str) -> ElfSymbols:
    return ElfSymbols(binary, debug_dirs=())


def _readelf_symbols(binary: str) -> List[Tuple[int, int, str, str, str]]:
    """(value, size, type, bind, name) of every defined symbol, from ``readelf -sW``."""
    out = subprocess.run(["readelf", "-sW", binary], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        f = line.split()
        if len(f) == 8 and f[0][:-1].isdigit() and f[6] != "UND":
            rows.append((int(f[1], 16), int(f[2], 0), f[3], f[4], f[7]))
    return rows


def _addr2line(binary: str, addrs: List[int]) -> List[Tuple[str, int]]:
    out = subprocess.run(
        ["addr2line", "-e", binary, *[hex(a) for a in addrs]], capture_output=True, text=True, check=True
    ).stdout
    rows = []
    for line in out.splitlines():
        name, _, num = line.split(" ")[0].rpartition(":")
        rows.append((os.path.basename(name), int(num) if num.isdigit() else 0))
    return rows


# -- symbols -----------------------------------------------------------------
def test_addresses_match_readelf(binary: str, syms: ElfSymbols) -> None:
    rows = _readelf_symbols(binary)
    count: Dict[str, int] = {}
    for r in rows:
        count[r[4]] = count.get(r[4], 0) + 1
    checked = 0
    for value, _size, stype, bind, name in rows:
        if bind == "GLOBAL" and stype in ("FUNC", "OBJECT") and count[name] == 1:
            assert syms.address(name) == value, name
            checked += 1
    assert checked > 500  # all of the static libc's exported functions and objects


def test_global_wins_over_local(binary: str, syms: ElfSymbols) -> None:
    dups = [r for r in _readelf_symbols(binary) if r[4] == "dup_var"]
    assert {r[3] for r in dups} == {"GLOBAL", "LOCAL"}
    glob = next(r for r in dups if r[3] == "GLOBAL")
    assert syms.address("dup_var") == glob[0]
    assert syms.lookup("dup_var").binding == "GLOBAL"  # type: ignore[union-attr]


def test_static_glibc_locals(syms: ElfSymbols) -> None:
    for name, size in (("main_arena", 2200), ("mp_", 136)):  # glibc 2.36 x86-64 sizes
        sym = syms.lookup(name)
        assert sym is not None and sym.binding == "LOCAL" and sym.kind == "OBJECT"
        assert sym.size == size
    assert syms.lookup("scale").binding == "LOCAL"  # type: ignore[union-attr]
    assert syms.address("no_such_symbol") is None


def test_symbolize(syms: ElfSymbols) -> None:
    main = syms.lookup("main")
    assert main is not None and main.kind == "FUNC"
    assert syms.symbolize(main.address) == ("main", 0)
    assert syms.symbolize(main.address + main.size - 1) == ("main", main.size - 1)
    counter = syms.address("counter")
    assert counter is not None and syms.symbolize(counter + 7) == ("counter", 7)
    arena = syms.address("main_arena")
    assert arena is not None and syms.symbolize(arena + 0x60) == ("main_arena", 0x60)
    assert syms.symbolize(0) is None
    assert syms.symbolize(1 << 63) is None
    # Aliases: one name is reported, and it names the same address.
    malloc = syms.address("malloc")
    assert malloc is not None and syms.address(syms.symbolize(malloc)[0]) == malloc  # type: ignore[index]


def test_function_at(syms: ElfSymbols) -> None:
    compute = syms.lookup("compute")
    assert compute is not None
    found = syms.function_at(compute.address + 5)
    assert found is not None and (found.name, found.address, found.size) == ("compute", compute.address, compute.size)
    assert syms.function_at(syms.address("counter")) is None  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(address=st.integers(0x400000, 0x500000))
def test_symbolize_is_consistent(syms: ElfSymbols, address: int) -> None:
    hit = syms.symbolize(address)
    if hit is not None:
        name, offset = hit
        assert offset >= 0
        sym = syms.lookup(name)
        assert sym is not None
        if sym.address == address - offset and sym.size:
            assert offset < sym.size


def test_build_id(binary: str, syms: ElfSymbols) -> None:
    out = subprocess.run(["readelf", "-n", binary], capture_output=True, text=True).stdout
    expected = re.search(r"Build ID: ([0-9a-f]+)", out).group(1)  # type: ignore[union-attr]
    assert syms.build_id() == expected
    assert file_build_id(binary) == expected


def test_no_problems(syms: ElfSymbols) -> None:
    assert syms.problems == []
    assert syms.line_for(syms.address("main")) is not None  # type: ignore[arg-type]
    assert syms.problems == []


def test_header_facts(binary: str, syms: ElfSymbols) -> None:
    assert syms.elf_type == "ET_EXEC"
    assert syms.link_base == 0x400000
    assert syms.pointer_size == 8 and syms.byteorder == "little"
    assert syms.symbolize(syms.entry)[0] == "_start"  # type: ignore[index]


def test_bias(binary: str, syms: ElfSymbols) -> None:
    moved = ElfSymbols(binary, bias=0x10000, debug_dirs=())
    main = syms.address("main")
    assert main is not None
    assert moved.address("main") == main + 0x10000
    assert moved.lookup("main").address == main + 0x10000  # type: ignore[union-attr]
    assert moved.symbolize(main + 0x10003) == ("main", 3)
    assert moved.function_at(main + 0x10003).address == main + 0x10000  # type: ignore[union-attr]
    assert moved.line_for(main + 0x10000) == syms.line_for(main)


# -- source lines --------------------------------------------------------------
def test_lines_match_addr2line(binary: str, syms: ElfSymbols) -> None:
    addrs: List[int] = []
    for name in ("compute", "main", "helper", "scale"):
        sym = syms.lookup(name)
        assert sym is not None
        addrs += range(sym.address, sym.address + sym.size)
    expected = _addr2line(binary, addrs)
    assert len(expected) == len(addrs)
    for addr, want in zip(addrs, expected):
        got = syms.line_for(addr)
        assert got == want, f"{addr:#x}: {got} != {want}"


def test_marked_lines(syms: ElfSymbols) -> None:
    def lines_of(name: str) -> set:
        sym = syms.lookup(name)
        assert sym is not None
        return {syms.line_for(a) for a in range(sym.address, sym.address + sym.size)}

    assert ("main.c", _marked(MAIN_C, "MARK-CALL")) in lines_of("compute")
    assert ("helper.c", _marked(HELPER_C, "MARK-SCALE")) in lines_of("scale")


def test_no_lines_outside_the_program(syms: ElfSymbols) -> None:
    # libc.a has no DWARF: no line for malloc, nor for addresses nowhere.
    assert syms.line_for(syms.address("malloc")) is None  # type: ignore[arg-type]
    assert syms.line_for(0) is None
    assert syms.line_for(1 << 40) is None


def test_load_and_line_table_are_fast(binary: str) -> None:
    t0 = time.perf_counter()
    fresh = ElfSymbols(binary, debug_dirs=())
    assert fresh.line_for(fresh.address("main")) is not None  # type: ignore[arg-type]
    assert time.perf_counter() - t0 < 1.0


def test_shared_library_with_debug_file() -> None:
    libc = "/usr/lib/x86_64-linux-gnu/libc.so.6"
    if not os.path.exists(libc):
        pytest.skip("no libc.so.6 at the Debian path")
    syms = ElfSymbols(libc, bias=0x7F0000000000)
    assert syms.elf_type == "ET_DYN" and syms.link_base == 0
    malloc = syms.address("malloc")
    assert malloc is not None and malloc > 0x7F0000000000
    if syms.debug_file is None:
        pytest.skip("libc6-dbg not installed")
    assert syms.lookup("main_arena") is not None
    t0 = time.perf_counter()
    line = syms.line_for(malloc)
    assert line is not None and line[0].endswith("malloc.c")
    assert time.perf_counter() - t0 < 3.0  # only malloc.c's line program is decoded


# -- errors ------------------------------------------------------------------
def test_errors(tmp_path) -> None:
    with pytest.raises(CoreFileError, match="no such file"):
        ElfSymbols(str(tmp_path / "nope"))
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(CoreFileError, match="empty"):
        ElfSymbols(str(empty))
    text = tmp_path / "text"
    text.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(CoreFileError, match="not an ELF"):
        ElfSymbols(str(text))
    with pytest.raises(CoreFileError, match="directory"):
        ElfSymbols(str(tmp_path))


def test_truncated_binary(binary: str, tmp_path) -> None:
    cut = tmp_path / "cut"
    cut.write_bytes(open(binary, "rb").read(30))
    with pytest.raises(CoreFileError):
        ElfSymbols(str(cut))


# -- notes -------------------------------------------------------------------
def _note(name: bytes, ntype: int, desc: bytes, align: int = 4) -> bytes:
    """One note; name and descriptor each start ``align``-aligned from the note's start."""

    def pad(b: bytes) -> bytes:
        return b + b"\0" * (-len(b) % align)

    return pad(pad(struct.pack("<III", len(name), len(desc), ntype) + name) + desc)


def test_parse_notes() -> None:
    blob = _note(b"GNU\0", 3, bytes(range(20))) + _note(b"CORE\0", 1, b"abc")
    notes, complete = parse_notes(blob)
    assert complete
    assert notes == [Note("GNU", 3, bytes(range(20))), Note("CORE", 1, b"abc")]
    assert build_id_from_notes(notes) == bytes(range(20)).hex()
    notes8, complete8 = parse_notes(_note(b"GNU\0", 5, b"12345", 8) + _note(b"GNU\0", 3, b"\x01\x02", 8), align=8)
    assert complete8 and [n.desc for n in notes8] == [b"12345", b"\x01\x02"]


def test_parse_notes_cut_and_garbage() -> None:
    blob = _note(b"GNU\0", 3, bytes(20)) + _note(b"CORE\0", 1, b"x" * 100)
    notes, complete = parse_notes(blob[:-50])
    assert len(notes) == 1 and not complete
    notes, complete = parse_notes(struct.pack("<III", 4, 0xFFFFFFFF, 1) + b"GNU\0")
    assert notes == [] and not complete


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_parse_notes_never_raises(data: bytes) -> None:
    notes, _complete = parse_notes(data)
    assert sum(len(n.desc) for n in notes) <= len(data)


@settings(max_examples=int(os.environ.get("GDBEXT_FUZZ_EXAMPLES", "30")), deadline=None)
@given(
    edits=st.lists(st.tuples(st.integers(0, 1 << 30), st.integers(0, 255)), min_size=1, max_size=6),
    part=st.sampled_from(["ehdr", "shdrs", "debug"]),
)
def test_damaged_binary(binary: str, tmp_path_factory, edits, part: str) -> None:
    """Bytes overwritten in the ELF header, section headers or DWARF: CoreFileError or working lookups."""
    data = bytearray(open(binary, "rb").read())
    with open(binary, "rb") as f:
        elf = ELFFile(f)
        spans = {
            "ehdr": [(0, 64)],
            "shdrs": [(elf["e_shoff"], elf["e_shnum"] * elf["e_shentsize"])],
            "debug": [(s["sh_offset"], s["sh_size"]) for s in elf.iter_sections() if s.name.startswith(".debug")],
        }[part]
    for k, (pos, value) in enumerate(edits):
        lo, size = spans[k % len(spans)]
        data[lo + pos % size] = value
    p = tmp_path_factory.getbasetemp() / "damaged.elf"  # one file, rewritten per example
    p.write_bytes(data)
    try:
        syms = ElfSymbols(str(p), debug_dirs=())
    except CoreFileError:
        return
    main = syms.address("main") or 0x401000
    syms.symbolize(main), syms.function_at(main), syms.build_id(), syms.line_for(main)
