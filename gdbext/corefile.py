# gdbext/corefile.py - an ELF core file read directly (pyelftools + mmap), no GDB.
#
# Covers: opening and validating the core, the PT_LOAD segments as regions
# (with the NT_FILE mapping names, and NT_FILE mappings the dumper left out),
# reads that span segments and fall back to the mapped file on disk for bytes
# that were not dumped, the notes (NT_PRSTATUS threads declared with
# construct, NT_SIGINFO, NT_AUXV, NT_FILE), build-ids of the mapped files, and
# symbols through gdbext.elfsyms with each file's load bias.
"""A core file as a :class:`~gdbext.memory.MemorySource`.

>>> with CoreFile("core.1234", executable="./prog") as core:   # doctest: +SKIP
...     core.read_pointer(core.symbol("main_arena") + 0x60)

The file is mapped read-only; a read is a bisect over the segments and a
slice of the mapping, so a 300 MB core costs no more to open than a small one.
Bytes a segment declares but the core does not hold (``p_filesz <
p_memsz``, or a file mapping the dumper skipped entirely, as GDB does for
unmodified library text) are read from the mapped file on disk when it can be
found and its build-id matches; otherwise the read raises
:class:`~gdbext.errors.MemoryReadError`.  Non-fatal oddities (a truncated
core, a note cut short, a file that does not match) are collected in
:attr:`CoreFile.problems` rather than raised.
"""
from __future__ import annotations

import bisect
import mmap
import os
import struct
from dataclasses import dataclass, field, replace
from typing import BinaryIO, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from construct import ConstructError, Int16sb, Int16sl, Int32sb, Int32sl, Int32ub, Int32ul
from construct import Int64sb, Int64sl, Int64ub, Int64ul, Padding, Struct
from elftools.elf.elffile import ELFFile

from .elfsyms import ELF_PARSE_ERRORS, ElfSymbols, Note, build_id_from_notes, checked_segments, file_build_id
from .elfsyms import open_elf, open_file, parse_notes
from .errors import CoreFileError, MemoryReadError
from .memory import MemorySource, Region, RegionIndex

__all__ = [
    "CoreFile",
    "Thread",
    "SigInfo",
    "FileMapping",
    "X86_64_REGISTERS",
    "PRSTATUS_X86_64",
    "MAX_READ",
    "MAX_NOTES",
    "AUXV_NAMES",
]

#: The largest single read accepted; anything bigger is a garbage size.
MAX_READ = 1 << 30

#: x86-64 ``struct user_regs_struct``, the ``pr_reg`` of NT_PRSTATUS, in order.
X86_64_REGISTERS: Tuple[str, ...] = (
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8",
    "rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags",
    "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs",
)  # fmt: skip


def _prstatus_header(is64: bool, little: bool) -> Struct:
    """``struct elf_prstatus`` up to ``pr_reg`` (the same on every Linux architecture)."""
    s16 = Int16sl if little else Int16sb
    s32 = Int32sl if little else Int32sb
    if is64:
        slong, ulong = (Int64sl, Int64ul) if little else (Int64sb, Int64ub)
    else:
        slong, ulong = (Int32sl, Int32ul) if little else (Int32sb, Int32ub)
    timeval = Struct("sec" / slong, "usec" / slong)
    return Struct(
        "si_signo" / s32,  # struct elf_siginfo
        "si_code" / s32,
        "si_errno" / s32,
        "pr_cursig" / s16,
        Padding(2),
        "pr_sigpend" / ulong,
        "pr_sighold" / ulong,
        "pr_pid" / s32,
        "pr_ppid" / s32,
        "pr_pgrp" / s32,
        "pr_sid" / s32,
        "pr_utime" / timeval,
        "pr_stime" / timeval,
        "pr_cutime" / timeval,
        "pr_cstime" / timeval,
    )


_PRSTATUS_HEADERS = {
    (is64, little): _prstatus_header(is64, little) for is64 in (True, False) for little in (True, False)
}

#: NT_PRSTATUS of x86-64 Linux (336 bytes): the header, ``user_regs_struct``, ``pr_fpvalid``.
PRSTATUS_X86_64 = Struct(
    "header" / _PRSTATUS_HEADERS[(True, True)],
    "pr_reg" / Struct(*[name / Int64ul for name in X86_64_REGISTERS]),
    "pr_fpvalid" / Int32sl,
    Padding(4),
)


_PRSTATUS_HEADER_SIZES = {is64: _PRSTATUS_HEADERS[(is64, True)].sizeof() for is64 in (True, False)}
_PRSTATUS_X86_64_SIZE = PRSTATUS_X86_64.sizeof()
_X86_64_REGS_AT = _PRSTATUS_HEADERS[(True, True)].sizeof()
_X86_64_REGS = struct.Struct("<" + "Q" * len(X86_64_REGISTERS))

# Note types (owner "CORE" unless said otherwise).
_NT_PRSTATUS = 1
_NT_PRPSINFO = 3
_NT_AUXV = 6
_NT_SIGINFO = 0x53494749
_NT_FILE = 0x46494C45

#: The most note bytes read from all PT_NOTE segments together (a garbage
#: p_filesz must not copy a whole 300 MB core); real ones are ~4 KB per
#: thread plus NT_FILE.  A byte range named by several PT_NOTE headers is
#: read once.
_MAX_NOTE_BYTES = 256 << 20
#: The most notes decoded (zero-filled note bytes are one empty note per 12
#: bytes): about four per thread, so 50,000 threads fit.
MAX_NOTES = 200_000
_PF_X, _PF_W, _PF_R = 1, 2, 4
_PAGE = 4096

#: Signals whose ``si_addr`` is a fault address (SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV).
_FAULT_SIGNALS = frozenset((4, 5, 7, 8, 11))

#: Names of the auxiliary-vector entries (``AT_*`` of elf.h); others are ``"AT_<n>"``.
AUXV_NAMES: Dict[int, str] = {
    2: "AT_EXECFD", 3: "AT_PHDR", 4: "AT_PHENT", 5: "AT_PHNUM", 6: "AT_PAGESZ",
    7: "AT_BASE", 8: "AT_FLAGS", 9: "AT_ENTRY", 10: "AT_NOTELF", 11: "AT_UID",
    12: "AT_EUID", 13: "AT_GID", 14: "AT_EGID", 15: "AT_PLATFORM", 16: "AT_HWCAP",
    17: "AT_CLKTCK", 23: "AT_SECURE", 24: "AT_BASE_PLATFORM", 25: "AT_RANDOM",
    26: "AT_HWCAP2", 27: "AT_RSEQ_FEATURE_SIZE", 28: "AT_RSEQ_ALIGN",
    31: "AT_EXECFN", 32: "AT_SYSINFO", 33: "AT_SYSINFO_EHDR", 51: "AT_MINSIGSTKSZ",
}  # fmt: skip


@dataclass(frozen=True)
class Thread:
    """One thread of the core (one NT_PRSTATUS note); the first is the one that crashed."""

    tid: int
    #: ``pr_cursig``.  GDB writes the process's stop signal for every thread,
    #: so this does not single out the crashing thread; the note order does.
    signal: int
    registers: Dict[str, int] = field(default_factory=dict)  #: empty for an unsupported machine
    #: The NT_SIGINFO note following this thread's NT_PRSTATUS: GDB writes one
    #: per thread (SIGSTOP for the threads it stopped), the kernel one for
    #: the dumping thread only.
    siginfo: Optional["SigInfo"] = None

    @property
    def pc(self) -> Optional[int]:
        """The program counter, when the registers are known."""
        return self.registers.get("rip")

    @property
    def sp(self) -> Optional[int]:
        """The stack pointer, when the registers are known."""
        return self.registers.get("rsp")


@dataclass(frozen=True)
class SigInfo:
    """The NT_SIGINFO note: the signal that killed the process."""

    signo: int
    errno: int
    code: int  #: ``si_code``: > 0 when the kernel raised it (SEGV_MAPERR = 1, ...)
    addr: Optional[int]  #: the fault address for SIGSEGV/SIGBUS/SIGILL/SIGFPE/SIGTRAP, else None


class FileMapping(NamedTuple):
    """One NT_FILE entry, offsets in bytes: ``[start, end)`` maps ``path`` from ``file_offset``."""

    start: int
    end: int
    file_offset: int
    path: str


@dataclass(frozen=True)
class _Segment:
    """A readable range: ``[start, start + present)`` is in the core at ``core_offset``.

    ``[present, dumped)`` was written but lies past the end of a truncated
    core; ``[dumped, end - start)`` was never dumped.
    """

    start: int
    end: int
    core_offset: int
    dumped: int
    present: int
    perms: str


@dataclass
class _Image:
    """What the core's memory says about one mapped ELF file."""

    start: int  #: where file offset 0 is mapped
    link_base: Optional[int] = None  #: lowest PT_LOAD p_vaddr - p_offset, from its program headers
    build_id: Optional[str] = None
    loads: List[Tuple[int, int, int]] = field(default_factory=list)  #: (p_offset, p_filesz, p_flags)

    @property
    def bias(self) -> Optional[int]:
        return None if self.link_base is None else self.start - self.link_base


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def _perms(flags: int) -> str:
    return ("r" if flags & _PF_R else "-") + ("w" if flags & _PF_W else "-") + ("x" if flags & _PF_X else "-")


class CoreFile(MemorySource):
    """An ELF core file, memory-mapped, as a memory source.

    :param path: the core file.
    :param executable: the program that dumped it; by default the file named
        in the core (NT_FILE, AT_EXECFN) is used when it exists.
    :param search_paths: directories where mapped files missing at their
        recorded path are looked for (``DIR/<recorded path>``, then
        ``DIR/<basename>``), like GDB's ``solib-search-path``.
    :raises CoreFileError: the core is missing, empty, not ELF, not a core,
        or its headers are cut off; or ``executable`` does not exist.
    """

    def __init__(self, path: str, executable: Optional[str] = None, search_paths: Sequence[str] = ()) -> None:
        self.path = path
        #: Non-fatal problems: truncation, cut notes, files that do not match the core.
        self.problems: List[str] = []
        #: PT_LOAD segments dropped or cut because their headers are damaged
        #: (also in :attr:`problems`): memory an analysis of this core misses.
        self.skipped_segments: List[str] = []
        #: True when :data:`MAX_NOTES` or the note byte cap stopped the note parsing.
        self.notes_capped = False
        self._search_paths = tuple(search_paths)
        self._file: Optional[BinaryIO] = None
        self._mm: Optional[mmap.mmap] = None
        self._view: Optional[memoryview] = None  #: of the whole core, sliced by read_buffer
        self._closed = False
        self._backing: Dict[str, Optional[Tuple[BinaryIO, Optional[mmap.mmap], int]]] = {}
        self._resolved: Dict[str, Optional[str]] = {}
        self._matches: Dict[Tuple[str, str], bool] = {}
        self._exe_path: Optional[str] = None
        self._exe_path_known = False
        self._images: Dict[str, Optional[_Image]] = {}
        self._objfiles: Dict[str, Optional[ElfSymbols]] = {}
        self._index = RegionIndex([])
        if executable is not None and not os.path.isfile(executable):
            raise CoreFileError(f"{executable}: no such executable")
        self._executable_arg = executable
        self._open()
        try:
            self._load()
        except BaseException:
            self.close()
            raise

    # -- opening ------------------------------------------------------------
    def _open(self) -> None:
        path = self.path
        fobj = open_file(path)
        self._file = fobj
        self._size = os.fstat(fobj.fileno()).st_size
        ident = fobj.read(64)
        if not ident:
            self.close()
            raise CoreFileError(f"{path}: empty file")
        if ident[:4] != b"\x7fELF":
            self.close()
            raise CoreFileError(f"{path}: not an ELF file")
        if len(ident) < 6 or ident[4] not in (1, 2) or ident[5] not in (1, 2):
            self.close()
            raise CoreFileError(f"{path}: truncated or invalid ELF identification")
        is64 = ident[4] == 2
        self.pointer_size = 8 if is64 else 4
        self.byteorder = "little" if ident[5] == 1 else "big"
        ehsize = 64 if is64 else 52
        if len(ident) < ehsize:
            self.close()
            raise CoreFileError(f"{path}: truncated headers (ELF header cut off)")
        e_type = struct.unpack_from("<H" if ident[5] == 1 else ">H", ident, 16)[0]
        if e_type != 4:  # ET_CORE
            kinds = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN"}
            self.close()
            raise CoreFileError(f"{path}: not a core file (ELF type {kinds.get(e_type, e_type)})")
        try:
            self._mm = mmap.mmap(fobj.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            self.close()
            raise CoreFileError(f"{path}: cannot map the file: {exc}") from None
        self._view = memoryview(self._mm)
        fobj.seek(0)
        try:
            self._elf = ELFFile(fobj)
            self._machine = self._elf["e_machine"]
            phoff, phentsize = self._elf["e_phoff"], self._elf["e_phentsize"]
            phnum = self._elf.num_segments()
        except ELF_PARSE_ERRORS as exc:
            self.close()
            raise CoreFileError(f"{path}: malformed ELF header: {exc}") from None
        if phnum == 0:
            self.close()
            raise CoreFileError(f"{path}: core has no program headers")
        if phoff + phnum * phentsize > self._size:
            self.close()
            raise CoreFileError(f"{path}: truncated headers (program headers cut off)")

    def _load(self) -> None:
        """Read the program headers and the notes; build the segment and region tables."""
        assert self._mm is not None
        loads: List[_Segment] = []
        note_ranges: Dict[Tuple[int, int], int] = {}  #: (p_offset, p_filesz) -> p_align, first one kept
        limit = 1 << (8 * self.pointer_size)
        try:
            for seg in self._elf.iter_segments():
                h = seg.header
                if h["p_type"] == "PT_LOAD" and h["p_memsz"] > 0:
                    start, end = h["p_vaddr"], h["p_vaddr"] + h["p_memsz"]
                    dumped = min(h["p_filesz"], h["p_memsz"])
                    if end > limit:
                        # A damaged p_memsz: keep what the core holds (p_filesz) when that fits.
                        what = f"PT_LOAD at {start:#x}: p_memsz {h['p_memsz']:#x} runs past the end of the address space"
                        if not 0 < dumped <= limit - start:
                            self._skip_segment(what + "; dropped")
                            continue
                        self._skip_segment(what + f"; cut to its p_filesz {dumped:#x}")
                        end = start + dumped
                    present = max(0, min(dumped, self._size - h["p_offset"]))
                    loads.append(_Segment(start, end, h["p_offset"], dumped, present, _perms(h["p_flags"])))
                elif h["p_type"] == "PT_NOTE" and h["p_filesz"] > 0:
                    note_ranges.setdefault((h["p_offset"], h["p_filesz"]), h["p_align"])
        except ELF_PARSE_ERRORS as exc:
            raise CoreFileError(f"{self.path}: malformed program headers: {exc}") from None
        notes = self._read_all_notes(note_ranges)
        cut = [s for s in loads if s.present < s.dumped]
        if cut:
            lost = sum(s.dumped - s.present for s in cut)
            self.problems.append(f"core is truncated: {lost} bytes of {len(cut)} segments missing")
        self._notes = notes
        self._parse_notes()
        # NT_FILE mappings no PT_LOAD covers (GDB leaves out unmodified file
        # mappings) become segments with nothing dumped, read from the file.
        segs = self._without_overlaps(loads)
        starts = [s.start for s in segs]
        gaps: List[FileMapping] = []
        for m in self._mappings:
            for lo, hi in self._uncovered(m.start, m.end, segs, starts):
                gaps.append(FileMapping(lo, hi, m.file_offset + (lo - m.start), m.path))
        self._set_segments(segs + [_Segment(g.start, g.end, 0, 0, 0, "r--") for g in gaps])
        if gaps:
            # Reads work from here on: take the gaps' permissions from the
            # mapped files' own program headers.
            perms = [self._gap_perms(g.start) for g in gaps]
            self._set_segments(segs + [_Segment(g.start, g.end, 0, 0, 0, p) for g, p in zip(gaps, perms)])
        regions = []
        for s in self._segs:
            fm = self._mapping_at(s.start)
            if fm is not None:
                regions.append(Region(s.start, s.end, s.perms, fm.path, fm.file_offset + (s.start - fm.start)))
            else:
                regions.append(Region(s.start, s.end, s.perms))
        self._index = RegionIndex(regions)

    def _skip_segment(self, text: str) -> None:
        """A segment dropped or cut: kept in :attr:`skipped_segments` and :attr:`problems`."""
        self.skipped_segments.append(text)
        self.problems.append(text)

    def _without_overlaps(self, loads: List[_Segment]) -> List[_Segment]:
        """The segments sorted, each overlapping its successor cut at the successor's start.

        Real cores never overlap; one that does has a damaged header (a huge
        ``p_memsz`` most often), and cutting the damaged one keeps every
        segment after it readable.  Two segments starting at the same address:
        the second is dropped.  Each change is recorded.
        """
        loads.sort(key=lambda s: (s.start, s.end))
        out: List[_Segment] = []
        j = 0  # the first segment starting after the current one
        for k, seg in enumerate(loads):
            if out and seg.start == out[-1].start:
                self._skip_segment(f"PT_LOAD at {seg.start:#x} starts where another does; dropped")
                continue
            j = max(j, k + 1)
            while j < len(loads) and loads[j].start <= seg.start:
                j += 1
            nxt = loads[j] if j < len(loads) else None
            if nxt is not None and seg.end > nxt.start:
                size = nxt.start - seg.start
                self._skip_segment(
                    f"PT_LOAD at {seg.start:#x} (size {seg.end - seg.start:#x}) overlaps the one at {nxt.start:#x};"
                    f" cut to {size:#x} bytes"
                )
                seg = replace(seg, end=nxt.start, dumped=min(seg.dumped, size), present=min(seg.present, size))
            out.append(seg)
        return out

    @staticmethod
    def _uncovered(lo: int, hi: int, segs: List[_Segment], starts: List[int]) -> List[Tuple[int, int]]:
        """The parts of ``[lo, hi)`` that no segment covers."""
        out = []
        i = max(0, bisect.bisect_right(starts, lo) - 1)
        cur = lo
        while cur < hi and i < len(segs):
            s = segs[i]
            if s.end <= cur:
                i += 1
                continue
            if s.start >= hi:
                break
            if s.start > cur:
                out.append((cur, s.start))
            cur = max(cur, s.end)
            i += 1
        if cur < hi:
            out.append((cur, hi))
        return out

    def _set_segments(self, segs: List[_Segment]) -> None:
        self._segs = sorted(segs, key=lambda s: s.start)
        self._starts = [s.start for s in self._segs]

    def _read_all_notes(self, ranges: Dict[Tuple[int, int], int]) -> List[Note]:
        """The notes of every distinct PT_NOTE byte range, within :data:`MAX_NOTES` and the byte cap."""
        notes: List[Note] = []
        budget = _MAX_NOTE_BYTES
        for (offset, size), align in ranges.items():
            if len(notes) >= MAX_NOTES or budget <= 0:
                self.problems.append(
                    f"notes capped: more than {MAX_NOTES} notes or {_MAX_NOTE_BYTES} note bytes; the rest not read"
                )
                self.notes_capped = True
                break
            if size > budget:
                self.problems.append(f"note segment of {size} bytes: only the first {budget} read")
                self.notes_capped = True
            notes.extend(self._read_notes(offset, min(size, budget), align, MAX_NOTES - len(notes)))
            budget -= size
        return notes

    def _read_notes(self, offset: int, size: int, align: int, max_notes: int) -> List[Note]:
        assert self._view is not None
        if offset >= self._size:
            self.problems.append("notes missing: the core is truncated before them")
            return []
        end = min(offset + size, self._size)
        notes, complete = parse_notes(self._view[offset:end], self.byteorder, 8 if align == 8 else 4, max_notes)
        if end < offset + size:
            self.problems.append(f"notes cut short by truncation: {len(notes)} notes readable")
        elif len(notes) >= max_notes:
            self.problems.append(f"notes capped: more than {MAX_NOTES} notes; the rest not read")
            self.notes_capped = True
        elif not complete:
            self.problems.append(f"malformed note after {len(notes)} notes")
        return notes

    def _parse_notes(self) -> None:
        """Decode the notes this class uses: threads, signal, auxv and mapped files."""
        is64 = self.pointer_size == 8
        little = self.byteorder == "little"
        self._threads: List[Thread] = []
        self._siginfo: Optional[SigInfo] = None
        self._auxv: Dict[int, int] = {}
        self._mappings: List[FileMapping] = []
        word = struct.Struct(("<" if little else ">") + ("Q" if is64 else "I"))
        for note in self._notes:
            if note.name != "CORE":
                continue
            try:
                if note.type == _NT_PRSTATUS:
                    self._threads.append(self._parse_prstatus(note.desc, is64, little))
                elif note.type == _NT_SIGINFO:
                    info = self._parse_siginfo(note.desc, is64, little)
                    if self._siginfo is None:
                        self._siginfo = info
                    if self._threads and self._threads[-1].siginfo is None:
                        self._threads[-1] = replace(self._threads[-1], siginfo=info)
                elif note.type == _NT_AUXV and not self._auxv:
                    pairs = word.size * 2
                    for k in range(0, len(note.desc) - pairs + 1, pairs):
                        key = word.unpack_from(note.desc, k)[0]
                        if key == 0:  # AT_NULL
                            break
                        self._auxv.setdefault(key, word.unpack_from(note.desc, k + word.size)[0])
                elif note.type == _NT_FILE and not self._mappings:
                    self._mappings = self._parse_nt_file(note.desc, is64, little)
            except (ConstructError, struct.error) as exc:
                self.problems.append(f"note type {note.type:#x} malformed: {exc}")
        self._mappings.sort(key=lambda m: m.start)
        kept: List[FileMapping] = []
        for m in self._mappings:
            if kept and m.start < kept[-1].end:
                self.problems.append(f"NT_FILE entry at {m.start:#x} overlaps the previous one; ignored")
                continue
            kept.append(m)
        self._mappings = kept
        self._mapping_starts = [m.start for m in self._mappings]
        #: The mapping of each path's file offset 0 (the first one): one pass,
        #: so per-path lookups stay linear in the number of mappings overall.
        self._headers_at: Dict[str, FileMapping] = {}
        for m in self._mappings:
            if m.file_offset == 0:
                self._headers_at.setdefault(m.path, m)

    def _parse_prstatus(self, desc: bytes, is64: bool, little: bool) -> Thread:
        # struct (not the construct declarations above, which document the
        # layout): a core may hold tens of thousands of threads, and construct
        # takes ~300 us per note.
        end = "<" if little else ">"
        if len(desc) < _PRSTATUS_HEADER_SIZES[is64]:
            raise struct.error(f"NT_PRSTATUS of {len(desc)} bytes")
        cursig, = struct.unpack_from(end + "h", desc, 12)
        pid, = struct.unpack_from(end + "i", desc, 32 if is64 else 24)
        if self._machine == "EM_X86_64" and len(desc) >= _PRSTATUS_X86_64_SIZE:
            regs = dict(zip(X86_64_REGISTERS, _X86_64_REGS.unpack_from(desc, _X86_64_REGS_AT)))
            return Thread(pid, cursig, regs)
        return Thread(pid, cursig, {})

    def _parse_siginfo(self, desc: bytes, is64: bool, little: bool) -> SigInfo:
        end = "<" if little else ">"
        signo, errno, code = struct.unpack_from(end + "iii", desc, 0)
        # The union starts after the three ints, aligned to a pointer.
        at = 16 if is64 else 12
        addr = struct.unpack_from(end + ("Q" if is64 else "I"), desc, at)[0]
        fault = signo in _FAULT_SIGNALS and code > 0
        return SigInfo(signo, errno, code, addr if fault else None)

    def _parse_nt_file(self, desc: bytes, is64: bool, little: bool) -> List[FileMapping]:
        wsize = 8 if is64 else 4
        word = struct.Struct(("<" if little else ">") + ("Q" if is64 else "I"))
        count = word.unpack_from(desc, 0)[0]
        fits = max(0, (len(desc) - 2 * wsize) // (3 * wsize))
        if count > fits:
            self.problems.append(f"NT_FILE claims {count} mappings, holds at most {fits}")
            count = fits
        page = word.unpack_from(desc, wsize)[0] or 1
        # One struct call for all the triples (construct is ~100x slower per entry).
        triples = struct.unpack_from(word.format[0] + word.format[1] * (3 * count), desc, 2 * wsize)
        names = desc[(2 + 3 * count) * wsize :].split(b"\0", count)
        out = []
        for i in range(count):
            start, end, page_offset = triples[3 * i : 3 * i + 3]
            if end <= start:
                continue
            name = os.fsdecode(names[i]) if i < len(names) else ""
            out.append(FileMapping(start, end, page_offset * page, name))
        return out

    # -- MemorySource -------------------------------------------------------
    def read(self, address: int, size: int) -> bytes:
        """Exactly ``size`` bytes at ``address``.

        :param address: target address.
        :param size: byte count, 0 to :data:`MAX_READ`.
        :raises MemoryReadError: unmapped, not dumped (and no matching file on
            disk), past the end of a truncated core, or an invalid size.
        """
        if size < 0 or size > MAX_READ:
            raise MemoryReadError(address, size, "invalid size")
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0:
            seg = self._segs[i]
            off = address - seg.start
            if size and off + size <= seg.present:
                base = seg.core_offset + off
                return self._mm[base : base + size]  # type: ignore[index]
        return self._read_slow(address, size, True)

    def read_buffer(self, address: int, size: int) -> Union[bytes, memoryview]:
        """Like :meth:`read`, but a zero-copy ``memoryview`` of the core when
        the range lies in one dumped segment (a whole heap, say).

        A view stays valid after :meth:`close`: the core is then unmapped
        when the last view is released.

        :param address: target address.
        :param size: byte count, 0 to :data:`MAX_READ`.
        :raises MemoryReadError: as :meth:`read`.
        """
        if size < 0 or size > MAX_READ:
            raise MemoryReadError(address, size, "invalid size")
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0 and size and self._view is not None:
            seg = self._segs[i]
            off = address - seg.start
            if off + size <= seg.present:
                base = seg.core_offset + off
                return self._view[base : base + size]
        return self._read_slow(address, size, True)

    def _read_slow(self, address: int, size: int, files: bool) -> bytes:
        if self._closed:
            raise MemoryReadError(address, size, "core file is closed")
        if address < 0 or address + size > 1 << (8 * self.pointer_size):
            raise MemoryReadError(address, size, "address out of range")
        mm = self._mm
        assert mm is not None
        if size == 0:
            if self._index.find(address) is None:
                raise MemoryReadError(address, size, "unmapped")
            return b""
        out = bytearray()
        cur, end = address, address + size
        while cur < end:
            i = bisect.bisect_right(self._starts, cur) - 1
            if i < 0 or cur >= self._segs[i].end:
                raise MemoryReadError(address, size, "unmapped" if cur == address else f"unmapped at {cur:#x}")
            seg = self._segs[i]
            off = cur - seg.start
            stop = min(end, seg.end)
            if off < seg.present:
                n = min(stop - cur, seg.present - off)
                out += mm[seg.core_offset + off : seg.core_offset + off + n]
            elif off < seg.dumped:
                raise MemoryReadError(address, size, "core is truncated")
            else:
                data = self._read_file_backed(cur, stop - cur) if files else None
                if data is None:
                    raise MemoryReadError(address, size, "not dumped in the core")
                n = len(data)
                out += data
            cur += n
        return bytes(out)

    def _read_file_backed(self, address: int, size: int) -> Optional[bytes]:
        """Up to ``size`` bytes at ``address`` from the mapped file on disk, or None.

        Stops at the end of the mapping; bytes past the end of the file but in
        its last page read as zeros, as the kernel maps them.
        """
        m = self._mapping_at(address)
        if m is None:
            return None
        backing = self._backing_file(m.path)
        if backing is None:
            return None
        _fobj, fmm, fsize = backing
        n = min(size, m.end - address)
        offset = m.file_offset + (address - m.start)
        data = fmm[offset : offset + n] if fmm is not None and offset < fsize else b""
        if len(data) < n:
            page_end = (fsize + _PAGE - 1) // _PAGE * _PAGE
            zeros = min(offset + n, page_end) - max(offset + len(data), fsize)
            data += b"\0" * max(0, zeros)
        return data or None

    def _backing_file(self, path: str) -> Optional[Tuple[BinaryIO, Optional[mmap.mmap], int]]:
        """The open, mapped file on disk standing for the mapped ``path``, if it matches."""
        if path in self._backing:
            return self._backing[path]
        found = None
        disk = self.resolve_file(path)
        if disk is not None and self._matches_core(path, disk):
            try:
                fobj = open(disk, "rb")
            except OSError as exc:
                self.problems.append(f"{disk}: cannot open: {exc.strerror}")
            else:
                fsize = os.fstat(fobj.fileno()).st_size
                fmm = mmap.mmap(fobj.fileno(), 0, access=mmap.ACCESS_READ) if fsize else None
                found = (fobj, fmm, fsize)
        self._backing[path] = found
        return found

    def regions(self) -> Sequence[Region]:
        """The mapped regions, sorted: every PT_LOAD, plus NT_FILE mappings not dumped at all."""
        return self._index.regions

    def region_of(self, address: int) -> Optional[Region]:
        return self._index.find(address)

    def dumped(self, address: int, size: int = 1) -> bool:
        """True when the core itself holds every byte of ``[address, address + size)``; reads nothing."""
        cur, end = address, address + max(size, 1)
        while cur < end:
            i = bisect.bisect_right(self._starts, cur) - 1
            if i < 0 or cur >= self._segs[i].end:
                return False
            seg = self._segs[i]
            if cur - seg.start >= seg.present:
                return False
            cur = min(end, seg.start + seg.present)
        return True

    def read_dumped(self, address: int, size: int) -> bytes:
        """Like :meth:`read`, but only bytes the core itself holds (never the file on disk).

        :raises MemoryReadError: any byte of the range is not in the core.
        """
        if size < 0 or size > MAX_READ:
            raise MemoryReadError(address, size, "invalid size")
        return self._read_slow(address, size, False)

    def in_core(self, address: int, size: int = 1) -> bool:
        """True when ``[address, address + size)`` is held by the core file itself (not read from disk)."""
        try:
            self._read_slow(address, size, False)
        except MemoryReadError:
            return False
        return True

    def symbol(self, name: str) -> Optional[int]:
        """Address of ``name`` in the executable, else in the other mapped files, or None.

        The other files' symbols (with their separate debug files, so
        ``main_arena`` of a shared libc is found when libc6-dbg is installed)
        are loaded in mapping order only when the executable lacks the name.

        :param name: exact symbol name (locals such as ``main_arena`` included).
        """
        exe = self.executable_symbols()
        if exe is not None:
            found = exe.address(name)
            if found is not None:
                return found
        exe_path = self.executable_path()
        for path in self._mapped_paths():
            if path == exe_path:
                continue
            syms = self.objfile_symbols(path)
            found = syms.address(name) if syms is not None else None
            if found is not None:
                return found
        return None

    def symbolize(self, address: int) -> Optional[Tuple[str, int]]:
        """``(symbol, offset)`` for ``address`` from the symbols of the file mapped there, or None."""
        syms = self._symbols_at(address)
        return syms.symbolize(address) if syms is not None else None

    def line_for(self, address: int) -> Optional[Tuple[str, int]]:
        """``(file, line)`` for a code address, from the DWARF of the file mapped there, or None."""
        syms = self._symbols_at(address)
        return syms.line_for(address) if syms is not None else None

    def _symbols_at(self, address: int) -> Optional[ElfSymbols]:
        m = self._mapping_at(address)
        if m is not None:
            return self.objfile_symbols(m.path)
        # No NT_FILE (or an address outside it): only the executable can say.
        return self.executable_symbols() if not self._mappings else None

    # -- notes --------------------------------------------------------------
    def threads(self) -> List[Thread]:
        """The threads, in note order: the first is the one that received the signal."""
        return list(self._threads)

    def siginfo(self) -> Optional[SigInfo]:
        """The first NT_SIGINFO note (the crashing thread's), or None when the core has none."""
        return self._siginfo

    def auxv(self) -> Dict[str, int]:
        """The auxiliary vector by ``AT_*`` name (``"AT_<n>"`` for unknown types); empty when absent."""
        return {AUXV_NAMES.get(k, f"AT_{k}"): v for k, v in self._auxv.items()}

    def file_mappings(self) -> List[FileMapping]:
        """The NT_FILE entries, sorted by start address; empty when the note is absent."""
        return list(self._mappings)

    def _mapping_at(self, address: int) -> Optional[FileMapping]:
        i = bisect.bisect_right(self._mapping_starts, address) - 1
        if i >= 0 and address < self._mappings[i].end:
            return self._mappings[i]
        return None

    def _mapped_paths(self) -> List[str]:
        seen: Dict[str, None] = {}
        for m in self._mappings:
            seen.setdefault(m.path, None)
        return list(seen)

    def executable_path(self) -> Optional[str]:
        """The executable as recorded in the core: the NT_FILE mapping holding
        AT_ENTRY (or AT_PHDR), else the AT_EXECFN string; None if neither is known.
        """
        if not self._exe_path_known:
            self._exe_path_known = True  # also stops a recursion through read()
            self._exe_path = self._find_executable_path()
        return self._exe_path

    def _find_executable_path(self) -> Optional[str]:
        for key in (9, 3):  # AT_ENTRY, AT_PHDR
            if key in self._auxv:
                m = self._mapping_at(self._auxv[key])
                if m is not None:
                    return m.path
        if 31 in self._auxv:  # AT_EXECFN
            name = self.read_cstring(self._auxv[31])
            if name:
                return os.fsdecode(name)
        return None

    # -- files on disk, build-ids, symbols ----------------------------------
    def resolve_file(self, path: str) -> Optional[str]:
        """The file on disk standing for the mapped ``path``, or None.

        The ``executable`` argument stands for the executable; otherwise
        ``path`` itself (without a `` (deleted)`` suffix), then each search
        path joined with ``path`` and with its basename.
        """
        if path in self._resolved:
            return self._resolved[path]
        found = None
        if self._executable_arg is not None and path == self.executable_path():
            found = self._executable_arg
        else:
            names = [path]
            if path.endswith(" (deleted)"):
                names.append(path[: -len(" (deleted)")])
            candidates = list(names)
            for d in self._search_paths:
                for name in names:
                    candidates.append(os.path.join(d, name.lstrip("/")))
                    candidates.append(os.path.join(d, os.path.basename(name)))
            for cand in candidates:
                if cand and os.path.isfile(cand):
                    found = cand
                    break
        self._resolved[path] = found
        return found

    def _matches_core(self, path: str, disk: str) -> bool:
        """False (and a problem noted) when the core's build-id for ``path`` differs from ``disk``'s.

        The ``executable`` argument is trusted even then, as GDB does, with a warning.
        """
        key = (path, disk)
        if key not in self._matches:
            self._matches[key] = self._check_match(path, disk)
        return self._matches[key]

    def _check_match(self, path: str, disk: str) -> bool:
        image = self._image(path)
        if image is None or image.build_id is None:
            return True
        try:
            on_disk = file_build_id(disk)
        except CoreFileError as exc:
            self.problems.append(str(exc))
            return False
        if on_disk is None or on_disk == image.build_id:
            return True
        trusted = disk == self._executable_arg
        self.problems.append(
            f"{disk} does not match the core (build-id {on_disk}, core has {image.build_id})"
            + ("; used anyway" if trusted else "; not used")
        )
        return trusted

    def _image(self, path: str) -> Optional[_Image]:
        """ELF header, program headers and build-id of ``path`` as mapped in the core (core bytes only)."""
        if path in self._images:
            return self._images[path]
        m = self._headers_at.get(path)
        image = self._read_image(m.start) if m is not None else None
        self._images[path] = image
        return image

    def _read_image(self, start: int) -> Optional[_Image]:
        try:
            ident = self._read_slow(start, 64, False)
        except MemoryReadError:
            return None
        if ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
            return None
        is64 = ident[4] == 2
        end = "<" if ident[5] == 1 else ">"
        if is64:
            phoff, = struct.unpack_from(end + "Q", ident, 32)
            phentsize, phnum = struct.unpack_from(end + "HH", ident, 54)
            phdr = struct.Struct(end + "IIQQQQQQ")  # type, flags, offset, vaddr, paddr, filesz, memsz, align
        else:
            phoff, = struct.unpack_from(end + "I", ident, 28)
            phentsize, phnum = struct.unpack_from(end + "HH", ident, 42)
            phdr = struct.Struct(end + "IIIIIIII")  # type, offset, vaddr, paddr, filesz, memsz, flags, align
        image = _Image(start)
        if phentsize < phdr.size or not 0 < phnum <= 512:
            return image
        try:
            table = self._read_slow(start + phoff, phentsize * phnum, False)
        except MemoryReadError:
            return image
        notes = []
        lowest: Optional[Tuple[int, int]] = None
        for k in range(phnum):
            f = phdr.unpack_from(table, k * phentsize)
            if is64:
                ptype, flags, offset, vaddr, _pa, filesz, _memsz, align = f
            else:
                ptype, offset, vaddr, _pa, filesz, _memsz, flags, align = f
            if ptype == 1:  # PT_LOAD
                image.loads.append((offset, filesz, flags))
                if lowest is None or vaddr < lowest[0]:
                    lowest = (vaddr, offset)
            elif ptype == 4:  # PT_NOTE
                notes.append((vaddr, min(filesz, 1 << 16), align))
        if lowest is None:
            return image
        image.link_base = lowest[0] - lowest[1]
        bias = start - image.link_base
        for vaddr, filesz, align in notes:
            try:
                data = self._read_slow(bias + vaddr, filesz, False)
            except MemoryReadError:
                continue
            found = build_id_from_notes(parse_notes(data, "little" if end == "<" else "big", align)[0])
            if found:
                image.build_id = found
                break
        return image

    def _gap_perms(self, address: int) -> str:
        """Permissions of an undumped file mapping, from its file's PT_LOAD covering that offset."""
        m = self._mapping_at(address)
        if m is None:
            return "r--"
        loads = []
        image = self._image(m.path)
        if image is not None and image.loads:
            loads = image.loads
        else:
            disk = self.resolve_file(m.path)
            if disk is not None:
                try:
                    stream, elf = open_elf(disk)
                except CoreFileError:
                    stream = None
                if stream is not None:
                    try:
                        loads = [
                            (s["p_offset"], s["p_filesz"], s["p_flags"])
                            for s in checked_segments(elf)
                            if s["p_type"] == "PT_LOAD"
                        ]
                    finally:
                        stream.close()
        offset = m.file_offset + (address - m.start)
        for p_offset, p_filesz, flags in loads:
            if p_offset // _PAGE * _PAGE <= offset < p_offset + max(p_filesz, 1):
                return _perms(flags)
        return "r--"

    def build_ids(self) -> Dict[str, str]:
        """Build-id (hex) of each mapped file: from the core's memory, else from the file on disk."""
        out: Dict[str, str] = {}
        for path in self._mapped_paths():
            image = self._image(path)
            found = image.build_id if image is not None else None
            if found is None:
                disk = self.resolve_file(path)
                if disk is not None:
                    try:
                        found = file_build_id(disk)
                    except CoreFileError:
                        found = None
            if found:
                out[path] = found
        return out

    def executable_loads(self) -> List[Tuple[int, int, int]]:
        """The executable's PT_LOAD headers as mapped in the core, ``(p_offset, p_filesz, p_flags)``;
        empty when the core does not hold them.
        """
        path = self.executable_path()
        image = self._image(path) if path is not None else None
        return list(image.loads) if image is not None else []

    def executable_build_id(self) -> Optional[str]:
        """The executable's build-id, from the core's memory or else from the file on disk."""
        path = self.executable_path()
        if path is not None:
            image = self._image(path)
            if image is not None and image.build_id:
                return image.build_id
            disk = self.resolve_file(path)
        else:
            disk = self._executable_arg
        if disk is None:
            return None
        try:
            return file_build_id(disk)
        except CoreFileError:
            return None

    def objfile_symbols(self, path: str) -> Optional[ElfSymbols]:
        """Symbols of the mapped file ``path``, biased to where it is mapped.

        None when the file is not found on disk, does not match the core, or
        is not ELF (a locale archive, a font).  Loaded once, on first use.
        """
        if path in self._objfiles:
            return self._objfiles[path]
        syms = None
        disk = self.resolve_file(path)
        if disk is not None and _is_elf(disk) and self._matches_core(path, disk):
            try:
                syms = ElfSymbols(disk)
            except CoreFileError as exc:
                self.problems.append(str(exc))
            else:
                syms.bias = self._bias_for(path, syms)
        self._objfiles[path] = syms
        return syms

    def executable_symbols(self) -> Optional[ElfSymbols]:
        """Symbols of the executable (the argument, or the file the core names), or None."""
        path = self.executable_path()
        if path is not None:
            return self.objfile_symbols(path)
        if self._executable_arg is None:
            return None
        key = "\0executable"
        if key not in self._objfiles:
            syms: Optional[ElfSymbols] = None
            try:
                syms = ElfSymbols(self._executable_arg)
            except CoreFileError as exc:
                self.problems.append(str(exc))
            else:
                syms.bias = self._bias_for(None, syms)
            self._objfiles[key] = syms
        return self._objfiles[key]

    def _bias_for(self, path: Optional[str], syms: ElfSymbols) -> int:
        """Load bias of a file: where offset 0 is mapped minus its link base; 0 when unknown."""
        if path is not None and path in self._headers_at:
            return self._headers_at[path].start - syms.link_base
        if path is None or path == self.executable_path():
            if syms.elf_type == "ET_EXEC":
                return 0
            if 9 in self._auxv and syms.entry:  # AT_ENTRY
                return self._auxv[9] - syms.entry
        self.problems.append(f"load bias of {syms.path} unknown; assuming 0")
        return 0

    # -- lifetime -----------------------------------------------------------
    def close(self) -> None:
        """Unmap and close the core and every file opened for it; reads then raise."""
        self._closed = True
        self._segs, self._starts = [], []
        if self._view is not None:
            self._view.release()
            self._view = None
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:
                # Views from read_buffer are alive: dropping our reference
                # lets the last of them unmap the core.
                self.problems.append("core still mapped: read_buffer views are alive")
            self._mm = None
        if self._file is not None:
            self._file.close()
            self._file = None
        for backing in self._backing.values():
            if backing is not None:
                fobj, fmm, _ = backing
                if fmm is not None:
                    fmm.close()
                fobj.close()
        self._backing = {}

    def __enter__(self) -> "CoreFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
