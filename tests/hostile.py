"""Hostile inputs built by the tests from the real fixture cores (nothing big is committed).

Each builder writes a file under a test's tmp_path: a fixture core with
program headers added (note bombs, thousands of threads, tens of thousands
of NT_FILE mappings, a damaged PT_LOAD), ELF files with many note sections,
cores of other architectures, compression bombs.  Big ranges are holes of a
sparse file, so a "4 GiB" core takes a few blocks of disk.
"""
import functools
import lzma
import os
import struct
from typing import Callable, List, Sequence, Tuple

from conftest import CORES

PHDR = struct.Struct("<IIQQQQQQ")  # type, flags, offset, vaddr, paddr, filesz, memsz, align
PT_LOAD, PT_NOTE = 1, 4
NT_PRSTATUS, NT_AUXV, NT_FILE = 1, 6, 0x46494C45
MiB = 1 << 20


@functools.lru_cache(maxsize=4)
def fixture_core(name: str = "double_free") -> bytes:
    """The decompressed fixture core ``name``."""
    return lzma.decompress(open(os.path.join(CORES, name + ".core.xz"), "rb").read())


def phdrs_of(core: bytes) -> List[Tuple[int, ...]]:
    phoff, = struct.unpack_from("<Q", core, 32)
    phnum, = struct.unpack_from("<H", core, 56)
    return [PHDR.unpack_from(core, phoff + PHDR.size * i) for i in range(phnum)]


def note(name: bytes, ntype: int, desc: bytes) -> bytes:
    """One ELF note, 4-byte aligned."""
    def pad(b: bytes) -> bytes:
        return b + b"\0" * (-len(b) % 4)
    return struct.pack("<III", len(name) + 1, len(desc), ntype) + pad(name + b"\0") + pad(desc)


def notes_of(core: bytes) -> List[Tuple[str, int, bytes]]:
    """(name, type, desc) of every note of the core's PT_NOTE segments."""
    out = []
    for ptype, _fl, off, _va, _pa, filesz, _ms, _al in phdrs_of(core):
        if ptype != PT_NOTE:
            continue
        pos, end = off, off + filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", core, pos)
            name = core[pos + 12 : pos + 12 + namesz].rstrip(b"\0").decode()
            dstart = pos + 12 + (namesz + 3) // 4 * 4
            out.append((name, ntype, core[dstart : dstart + descsz]))
            pos = dstart + (descsz + 3) // 4 * 4
    return out


def write_core(
    path: str,
    base: bytes,
    extra: Callable[[int], Sequence[Tuple[int, ...]]] = lambda at: (),
    payload: bytes = b"",
    hole: int = 0,
    keep: Callable[[Tuple[int, ...]], bool] = lambda ph: True,
    edit: Callable[[Tuple[int, ...]], Tuple[int, ...]] = lambda ph: ph,
) -> str:
    """Write ``base`` with its program headers rewritten at the end of the file.

    Layout: ``base``, a hole of ``hole`` zero bytes (sparse), ``payload``,
    then the header table: the old headers kept by ``keep`` and changed by
    ``edit``, then ``extra(payload_offset)``.
    """
    at = len(base) + hole
    table = at + len(payload)
    table += -table % 8
    phdrs = [edit(ph) for ph in phdrs_of(base) if keep(ph)] + list(extra(at))
    head = bytearray(base[:64])
    struct.pack_into("<Q", head, 32, table)
    struct.pack_into("<H", head, 56, len(phdrs))
    with open(path, "wb") as fh:
        fh.write(base)
        fh.seek(0)
        fh.write(head)
        fh.seek(at)
        fh.write(payload)
        fh.seek(table)
        for ph in phdrs:
            fh.write(PHDR.pack(*ph))
    return path


def note_bomb(path: str, count: int = 64, size: int = 64 * MiB, distinct: bool = False) -> str:
    """``count`` PT_NOTE headers of ``size`` zero bytes each: one shared range, or ``distinct`` ones."""
    base = fixture_core()
    hole = size * (count if distinct else 1)
    return write_core(
        path, base, hole=hole,
        extra=lambda at: [(PT_NOTE, 4, len(base) + (k * size if distinct else 0), 0, 0, size, 0, 1)
                          for k in range(count)],
    )


def many_threads(path: str, count: int = 20_000) -> str:
    """The double_free core with ``count`` more NT_PRSTATUS notes (threads), each with its own tid."""
    base = fixture_core()
    desc = next(d for n, t, d in notes_of(base) if n == "CORE" and t == NT_PRSTATUS)
    blob = b"".join(note(b"CORE", NT_PRSTATUS, desc[:32] + struct.pack("<i", 100000 + k) + desc[36:])
                    for k in range(count))
    return write_core(path, base, payload=blob, extra=lambda at: [(PT_NOTE, 4, at, 0, 0, len(blob), 0, 1)])


def many_mappings(path: str, count: int = 40_000) -> str:
    """The double_free core with an NT_FILE of ``count`` more mappings, each of its own file, none dumped."""
    base = fixture_core()
    old = next(d for n, t, d in notes_of(base) if n == "CORE" and t == NT_FILE)
    n_old, page = struct.unpack_from("<QQ", old)
    triples = [struct.unpack_from("<QQQ", old, 16 + 24 * i) for i in range(n_old)]
    names = old[16 + 24 * n_old :].split(b"\0")[:n_old]
    for k in range(count):  # 8 KiB each from 0x100000000000: nowhere near a PT_LOAD
        start = 0x100000000000 + k * 0x2000
        triples.append((start, start + 0x2000, 0))
        names.append(b"/nonexistent/lib%05d.so" % k)
    desc = struct.pack("<QQ", len(triples), page) + b"".join(struct.pack("<QQQ", *t) for t in triples)
    desc += b"\0".join(names) + b"\0"
    blob = b"".join(note(n.encode(), t, d) for n, t, d in notes_of(base) if not (n == "CORE" and t == NT_FILE))
    blob += note(b"CORE", NT_FILE, desc)
    return write_core(path, base, payload=blob, keep=lambda ph: ph[0] != PT_NOTE,
                      extra=lambda at: [(PT_NOTE, 4, at, 0, 0, len(blob), 0, 1)])


def damaged_memsz(path: str, vaddr: int = 0x4AE000, memsz: int = (1 << 64) - 1, name: str = "double_free") -> str:
    """The core of fixture ``name`` with the heap PT_LOAD's p_memsz set to ``memsz``."""
    def edit(ph: Tuple[int, ...]) -> Tuple[int, ...]:
        return ph[:6] + (memsz,) + ph[7:] if ph[0] == PT_LOAD and ph[3] == vaddr else ph
    return write_core(path, fixture_core(name), edit=edit)


def elf_header(bits: int, order: str, machine: int, e_type: int, phoff: int, phnum: int) -> bytes:
    """An ELF header of the given class, byte order and machine."""
    e = "<" if order == "little" else ">"
    ident = b"\x7fELF" + bytes([bits // 32, 1 if order == "little" else 2, 1]) + bytes(9)
    if bits == 64:
        return ident + struct.pack(e + "HHIQQQIHHHHHH", e_type, machine, 1, 0, phoff, 0, 0, 64, 56, phnum, 64, 0, 0)
    return ident + struct.pack(e + "HHIIIIIHHHHHH", e_type, machine, 1, 0, phoff, 0, 0, 52, 32, phnum, 40, 0, 0)


def foreign_core(path: str, bits: int, order: str, machine: int) -> str:
    """A small core of another architecture: one thread (NT_PRSTATUS, signal 11), one 4 KiB PT_LOAD."""
    e = "<" if order == "little" else ">"
    prstatus = struct.pack(e + "iiih", 11, 0, 0, 11) + bytes(400)

    def note_e(name: bytes, ntype: int, desc: bytes) -> bytes:
        def pad(b: bytes) -> bytes:
            return b + b"\0" * (-len(b) % 4)
        return struct.pack(e + "III", len(name) + 1, len(desc), ntype) + pad(name + b"\0") + pad(desc)

    notes = note_e(b"CORE", NT_PRSTATUS, prstatus)
    ehsize, phsize = (64, 56) if bits == 64 else (52, 32)
    notes_at = ehsize + 2 * phsize
    load_at = notes_at + len(notes)
    load_at += -load_at % 4096
    if bits == 64:
        ph = struct.Struct(e + "IIQQQQQQ")
        table = ph.pack(PT_NOTE, 4, notes_at, 0, 0, len(notes), 0, 4) + ph.pack(PT_LOAD, 6, load_at, 0x10000, 0,
                                                                                  4096, 4096, 1)
    else:
        ph = struct.Struct(e + "IIIIIIII")  # type, offset, vaddr, paddr, filesz, memsz, flags, align
        table = ph.pack(PT_NOTE, notes_at, 0, 0, len(notes), 0, 4, 4) + ph.pack(PT_LOAD, load_at, 0x10000, 0,
                                                                                  4096, 4096, 6, 1)
    data = elf_header(bits, order, machine, 4, ehsize, 2) + table + notes
    data += bytes(load_at - len(data)) + bytes(4096)
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def many_note_sections(path: str, binary: str, count: int = 60_000, size: int = 4 * MiB) -> str:
    """A copy of ``binary`` whose section table is ``count`` SHT_NOTE sections all covering one ``size`` range."""
    data = open(binary, "rb").read()
    at = len(data) + (-len(data) % 8)
    table = at + size
    shdr = struct.Struct("<IIQQQQIIQQ")  # name, type, flags, addr, offset, size, link, info, addralign, entsize
    with open(path, "wb") as fh:
        fh.write(data)
        fh.seek(table)
        fh.write(shdr.pack(0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        one = shdr.pack(0, 7, 0, 0, at, size, 0, 0, 4, 0)  # SHT_NOTE over the zero range
        fh.write(one * (count - 1))
        fh.seek(0x28)  # e_shoff, then after e_flags/e_ehsize/e_phentsize/e_phnum: e_shentsize, e_shnum, e_shstrndx
        fh.write(struct.pack("<Q", table))
        fh.seek(0x3A)
        fh.write(struct.pack("<HHH", 64, count, 0))
    os.chmod(path, 0o755)
    return path


def zero_stream(size: int, chunk: int = 4 * MiB):
    """``size`` zero bytes in chunks."""
    left = size
    while left > 0:
        n = min(chunk, left)
        yield bytes(n)
        left -= n
