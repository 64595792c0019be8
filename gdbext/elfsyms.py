# gdbext/elfsyms.py - symbols, source lines and build-id of an ELF binary, without GDB.
#
# Covers: the ELF note format (parse_notes), the GNU build-id, bounds-checked
# access to sections and segments of untrusted files, .symtab/.dynsym (plus
# the .symtab of a separate debug file found by build-id or .gnu_debuglink)
# loaded once into sorted arrays for bisect lookups, and the DWARF line
# programs turned lazily into sorted address -> (file, line) tables (the
# whole program's at once when small, else one compilation unit at a time).
# pyelftools parses the headers; the symbol tables are decoded with
# ``struct`` because per-symbol construct parsing is far too slow for large
# binaries.
"""Symbols and source lines of one ELF binary, read with pyelftools.

:class:`ElfSymbols` answers the questions a core-file reader needs without
GDB: where is a symbol (``main_arena`` included, though it is a local symbol
of a static glibc), which function or object covers an address, which source
line an address belongs to, and which build-id the file carries.  Every
address it takes or returns is *biased*: the file's link-time address plus
``bias`` (the load bias of a PIE or shared library in the target).
"""
from __future__ import annotations

import bisect
import inspect
import os
import stat
import struct
import zlib
from dataclasses import dataclass, replace
from typing import BinaryIO, Dict, Iterable, List, Optional, Sequence, Tuple

from elftools.common.exceptions import DWARFError, ELFError
from elftools.dwarf.compileunit import CompileUnit
from elftools.dwarf.dwarfinfo import DWARFInfo
from elftools.dwarf.lineprogram import LineProgram
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import Section
from elftools.elf.segments import Segment

from .errors import CoreFileError

__all__ = [
    "Note",
    "Symbol",
    "ElfSymbols",
    "parse_notes",
    "build_id_from_notes",
    "elf_build_id",
    "file_build_id",
    "open_elf",
    "open_file",
    "file_kind",
    "ELF_PARSE_ERRORS",
    "checked_sections",
    "checked_segments",
    "segment_data",
    "DEFAULT_DEBUG_DIRS",
    "NT_GNU_BUILD_ID",
]

#: Where separate debug files are looked for, as GDB's ``debug-file-directory``.
DEFAULT_DEBUG_DIRS: Tuple[str, ...] = ("/usr/lib/debug",)

#: Note type of the GNU build-id (owner ``GNU``).
NT_GNU_BUILD_ID = 3

#: A NOBITS section (.bss, .tbss) larger than this has a garbage header:
#: pyelftools would allocate its size in zeros when asked for its data.
_MAX_NOBITS = 1 << 30

#: What pyelftools raises for headers pointing at wild offsets: its own
#: errors, a short read (struct.error), seeks past 2**63 (ValueError,
#: OverflowError, OSError) and a damaged compressed section (zlib.error).
#: Callers catch exactly these around header parsing.
ELF_PARSE_ERRORS = (ELFError, struct.error, ValueError, OverflowError, OSError, zlib.error)

#: What pyelftools' DWARF decoder raises on corrupt debug info, besides the
#: above (all seen while fuzzing .debug_line/.debug_info of a real binary,
#: pyelftools 0.33): it indexes tables with values from the file (KeyError,
#: IndexError), divides by header fields (a zero ``line_range``:
#: ZeroDivisionError), checks some fields with ``assert`` (address sizes),
#: and meets a DW_LNE_define_file in a DWARF 5 program with its file table
#: as a tuple (AttributeError) or a missing table as None (TypeError).
#: Caught only around DWARF decoding; the error is recorded in ``problems``
#: (tests assert that list is empty for good binaries) and lookups go on.
_DWARF_ERRORS = ELF_PARSE_ERRORS + (
    DWARFError,
    KeyError,
    IndexError,
    AssertionError,
    ZeroDivisionError,
    AttributeError,
    TypeError,
)

#: A note larger than this is treated as garbage (the biggest real notes,
#: NT_FILE of a huge process or an XSAVE area, are far smaller).
_MAX_NOTE_DESC = 64 << 20

# st_info type and binding values (elf.h).
_STT_NOTYPE, _STT_OBJECT, _STT_FUNC, _STT_SECTION, _STT_FILE = 0, 1, 2, 3, 4
_STT_COMMON, _STT_TLS, _STT_GNU_IFUNC = 5, 6, 10
_STB_LOCAL, _STB_GLOBAL, _STB_WEAK, _STB_GNU_UNIQUE = 0, 1, 2, 10
_SHN_UNDEF = 0

_TYPE_NAMES = {
    _STT_NOTYPE: "NOTYPE",
    _STT_OBJECT: "OBJECT",
    _STT_FUNC: "FUNC",
    _STT_COMMON: "COMMON",
    _STT_GNU_IFUNC: "IFUNC",
}
_BIND_NAMES = {_STB_LOCAL: "LOCAL", _STB_GLOBAL: "GLOBAL", _STB_WEAK: "WEAK", _STB_GNU_UNIQUE: "UNIQUE"}
# Lower is preferred when one name or one address has several symbols.
_BIND_RANK = {_STB_GLOBAL: 0, _STB_GNU_UNIQUE: 0, _STB_WEAK: 1, _STB_LOCAL: 2}
_TYPE_RANK = {_STT_FUNC: 0, _STT_OBJECT: 0, _STT_GNU_IFUNC: 0, _STT_COMMON: 1, _STT_NOTYPE: 2}
# Types symbolize() reports (data and code); FUNC_TYPES for function_at().
_COVER_TYPES = (_STT_FUNC, _STT_OBJECT, _STT_GNU_IFUNC)
_FUNC_TYPES = (_STT_FUNC, _STT_GNU_IFUNC)

#: Above this much .debug_line (as stored, maybe compressed), line programs
#: are decoded one compilation unit at a time (found through .debug_aranges)
#: instead of all at once: pyelftools needs ~10 s for all of libc's, ~0.2 s
#: for the one CU an address is in.
_WHOLE_TABLE_MAX = 64 << 10

# Sorted parallel arrays: row address, file id (-1 past a sequence end), line.
_LineTable = Tuple[List[int], List[int], List[int]]


@dataclass(frozen=True)
class Note:
    """One ELF note: owner name (without the NUL), type and descriptor bytes."""

    name: str
    type: int
    desc: bytes


@dataclass(frozen=True)
class Symbol:
    """A defined symbol; ``address`` already includes the load bias."""

    name: str
    address: int
    size: int
    kind: str  #: "FUNC", "OBJECT", "IFUNC", "NOTYPE" or "COMMON"
    binding: str  #: "GLOBAL", "WEAK", "LOCAL" or "UNIQUE"

    def __contains__(self, address: object) -> bool:
        return isinstance(address, int) and self.address <= address < self.address + max(self.size, 1)


def parse_notes(
    data: bytes, byteorder: str = "little", align: int = 4, max_notes: Optional[int] = None
) -> Tuple[List[Note], bool]:
    """Split the contents of a PT_NOTE segment or SHT_NOTE section into notes.

    :param data: the raw bytes (may be cut short: parsing stops at the cut).
    :param byteorder: ``"little"`` or ``"big"``.
    :param align: 4 (cores and most notes) or 8 (a segment with ``p_align`` 8).
    :param max_notes: stop after this many notes (zero-filled data is one
        empty note per 12 bytes); None for no limit.
    :returns: ``(notes, complete)``; ``complete`` is False when the data ended
        inside a note, a note was absurdly large, or ``max_notes`` stopped it.
    """
    head = struct.Struct(("<" if byteorder == "little" else ">") + "III")
    pad = max(align, 4)
    notes: List[Note] = []
    pos = 0
    end = len(data)
    while pos + head.size <= end:
        if max_notes is not None and len(notes) >= max_notes:
            return notes, False
        namesz, descsz, ntype = head.unpack_from(data, pos)
        pos += head.size
        if namesz > _MAX_NOTE_DESC or descsz > _MAX_NOTE_DESC:
            return notes, False
        name_end = pos + namesz
        desc_start = (name_end + pad - 1) // pad * pad
        desc_end = desc_start + descsz
        if desc_end > end:
            return notes, False
        name = bytes(data[pos:name_end]).split(b"\0", 1)[0].decode("latin-1")
        notes.append(Note(name, ntype, bytes(data[desc_start:desc_end])))
        pos = (desc_end + pad - 1) // pad * pad
    # Trailing bytes shorter than a note header are padding, not a cut note.
    return notes, end - pos < head.size and all(b == 0 for b in data[pos:end])


def build_id_from_notes(notes: Sequence[Note]) -> Optional[str]:
    """The hex GNU build-id among ``notes``, or None."""
    for note in notes:
        if note.name == "GNU" and note.type == NT_GNU_BUILD_ID and note.desc:
            return note.desc.hex()
    return None


def open_file(path: str) -> BinaryIO:
    """``path`` opened for reading in binary, or :class:`CoreFileError` with a one-line reason.

    Only a regular file is accepted: a FIFO, socket or device would block or
    never end.  It is opened without blocking and checked by ``fstat`` on the
    open descriptor, so a file swapped after a check cannot slip through.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise CoreFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CoreFileError(f"{path}: is a directory") from None
    except OSError as exc:
        raise CoreFileError(f"{path}: cannot open: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise CoreFileError(f"{path}: is a directory")
        raise CoreFileError(f"{path}: not a regular file ({file_kind(mode)}); refused")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def file_kind(mode: int) -> str:
    """``"FIFO"``, ``"socket"``, ``"character device"``... for an ``st_mode``."""
    kinds = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
             (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "directory"), (stat.S_ISLNK, "symbolic link"),
             (stat.S_ISREG, "regular file"))
    return next((name for test, name in kinds if test(mode)), f"mode {mode:#o}")


def open_elf(path: str) -> Tuple[BinaryIO, ELFFile]:
    """Open ``path`` as an ELF file, or raise :class:`CoreFileError` with a one-line reason.

    :returns: the open binary stream (the caller closes it) and its ELFFile.
    """
    stream = open_file(path)
    try:
        magic = stream.read(4)
        if not magic:
            raise CoreFileError(f"{path}: empty file")
        if magic != b"\x7fELF":
            raise CoreFileError(f"{path}: not an ELF file")
        stream.seek(0)
        try:
            elf = ELFFile(stream)
        except ELF_PARSE_ERRORS as exc:
            raise CoreFileError(f"{path}: malformed ELF header: {exc}") from None
    except CoreFileError:
        stream.close()
        raise
    return stream, elf


def _stream_size(elf: ELFFile) -> int:
    stream = elf.stream
    here = stream.tell()
    size = stream.seek(0, os.SEEK_END)
    stream.seek(here)
    return size


def checked_sections(elf: ELFFile) -> Dict[int, Section]:
    """The sections of ``elf`` whose headers and contents lie inside the file, by index.

    A section header table running past the end of the file, or a garbage
    section-name table, gives no sections at all; a section whose contents
    run past the end (or whose compressed size is absurd) is left out.  So
    ``data()`` of what this returns never seeks to a wild offset nor
    allocates a wild size.
    """
    size = _stream_size(elf)
    try:
        count = elf.num_sections()
        table_end = elf["e_shoff"] + count * elf["e_shentsize"]
        if count == 0 or table_end > size or elf["e_shentsize"] < (64 if elf.elfclass == 64 else 40):
            return {}
        shstrndx = elf["e_shstrndx"]
        if 0 < shstrndx < count and not _fits(elf.get_section(shstrndx), size):
            return {}
        return {i: sec for i, sec in enumerate(elf.iter_sections()) if _fits(sec, size)}
    except ELF_PARSE_ERRORS:
        return {}


def _fits(sec: Section, size: int) -> bool:
    if sec["sh_type"] == "SHT_NOBITS":
        return sec.data_size <= _MAX_NOBITS
    if sec["sh_offset"] + sec["sh_size"] > size:
        return False
    # zlib expands at most ~1032:1; more than that is a garbage header.
    return not sec.compressed or sec.data_size <= 1100 * sec["sh_size"] + 4096


def checked_segments(elf: ELFFile) -> List[Segment]:
    """The program headers of ``elf``, or none when the table runs past the end of the file."""
    size = _stream_size(elf)
    try:
        count = elf.num_segments()
        if elf["e_phoff"] + count * elf["e_phentsize"] > size:
            return []
        return list(elf.iter_segments())
    except ELF_PARSE_ERRORS:
        return []


def segment_data(seg: Segment, size: int) -> bytes:
    """The file contents of a segment, cut at the end of the file.

    :param seg: a segment from :func:`checked_segments`.
    :param size: the size of the file it is in.
    """
    offset = seg["p_offset"]
    if offset >= size:
        return b""
    seg.stream.seek(offset)
    return seg.stream.read(min(seg["p_filesz"], size - offset))


#: Bounds of a build-id search, so a file with thousands of note sections
#: (or note sections all covering one huge range) costs little: the section
#: and program headers looked at, the distinct byte ranges parsed, the bytes
#: read from each (a real build-id note is 36 bytes, at the start of its
#: section or near the start of a PT_NOTE segment), and the notes per range.
_BUILD_ID_MAX_HEADERS = 4096
_BUILD_ID_MAX_RANGES = 64
_BUILD_ID_MAX_BYTES = 64 << 10
_BUILD_ID_MAX_NOTES = 64


def _note_ranges(elf: ELFFile, size: int) -> Iterable[Tuple[int, int, int]]:
    """``(offset, size, align)`` of the SHT_NOTE sections, then the PT_NOTE segments, inside the file."""
    try:
        count = elf.num_sections()
        entsize = elf["e_shentsize"]
        if count and elf["e_shoff"] + count * entsize <= size and entsize >= (64 if elf.elfclass == 64 else 40):
            for i in range(min(count, _BUILD_ID_MAX_HEADERS)):
                h = elf._get_section_header(i)  # the raw header: no name lookup, no data
                if h["sh_type"] == "SHT_NOTE" and h["sh_offset"] < size:
                    yield h["sh_offset"], min(h["sh_size"], size - h["sh_offset"]), h["sh_addralign"]
    except ELF_PARSE_ERRORS:
        pass
    try:
        count = elf.num_segments()
        if elf["e_phoff"] + count * elf["e_phentsize"] <= size:
            for i in range(min(count, _BUILD_ID_MAX_HEADERS)):
                h = elf._get_segment_header(i)
                if h["p_type"] == "PT_NOTE" and h["p_offset"] < size:
                    yield h["p_offset"], min(h["p_filesz"], size - h["p_offset"]), h["p_align"]
    except ELF_PARSE_ERRORS:
        pass


def elf_build_id(elf: ELFFile) -> Optional[str]:
    """The GNU build-id of an open ELF file (SHT_NOTE sections, then PT_NOTE segments), or None.

    Bounded work whatever the headers say: at most ``_BUILD_ID_MAX_HEADERS``
    headers of each kind, ``_BUILD_ID_MAX_RANGES`` distinct byte ranges (a
    range named twice is parsed once), ``_BUILD_ID_MAX_BYTES`` read from each.

    :raises ELF_PARSE_ERRORS: one of them, for malformed headers.
    """
    byteorder = "little" if elf.little_endian else "big"
    size = _stream_size(elf)
    seen = set()
    for offset, length, align in _note_ranges(elf, size):
        length = min(length, _BUILD_ID_MAX_BYTES)
        if (offset, length) in seen:
            continue
        if len(seen) >= _BUILD_ID_MAX_RANGES:
            break
        seen.add((offset, length))
        elf.stream.seek(offset)
        data = elf.stream.read(length)
        notes, _ = parse_notes(data, byteorder, 8 if align == 8 else 4, max_notes=_BUILD_ID_MAX_NOTES)
        found = build_id_from_notes(notes)
        if found:
            return found
    return None


def file_build_id(path: str) -> Optional[str]:
    """The GNU build-id of the ELF file at ``path``, or None when it has none.

    :param path: an ELF file on disk.
    :raises CoreFileError: the file is missing, empty or not ELF.
    """
    stream, elf = open_elf(path)
    try:
        return elf_build_id(elf)
    except ELF_PARSE_ERRORS as exc:
        raise CoreFileError(f"{path}: notes unreadable: {exc}") from None
    finally:
        stream.close()


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class _AddressTable:
    """Symbols sorted by start, with precomputed ends, for covering lookups."""

    def __init__(self, entries: List[Tuple[int, int, int, str, int, int]]) -> None:
        # entries: (start, end, rank, name, type, bind), end > start.
        entries.sort(key=lambda e: (e[0], e[2], e[3]))
        self.starts = [e[0] for e in entries]
        self.ends = [e[1] for e in entries]
        self.entries = entries
        # max_end[i] = the largest end among entries[0..i]: once it is <= the
        # address, nothing further left can cover it, so the scan stops.
        self.max_end: List[int] = []
        running = 0
        for e in entries:
            running = max(running, e[1])
            self.max_end.append(running)

    def find(self, address: int) -> Optional[Tuple[int, int, int, str, int, int]]:
        i = bisect.bisect_right(self.starts, address) - 1
        found = None
        while i >= 0 and self.max_end[i] > address:
            if found is not None and self.starts[i] != found[0]:
                break
            if self.ends[i] > address:
                # Same start as an earlier hit: sorted by rank, so this is better.
                found = self.entries[i]
            i -= 1
        return found


class ElfSymbols:
    """Symbols, source lines and build-id of one ELF file.

    :param path: the ELF file (executable, shared library or debug file).
    :param bias: load bias added to every link-time address (0 for a
        non-PIE executable; the mapping address of file offset 0 minus the
        lowest PT_LOAD ``p_vaddr`` for a PIE or a shared library).  It is a
        plain attribute and may be changed later.
    :param debug_dirs: directories searched for a separate debug file, by
        build-id (``DIR/.build-id/xx/yyyy.debug``) and by ``.gnu_debuglink``;
        its ``.symtab`` and DWARF are used too.  Pass ``()`` to disable.
    :raises CoreFileError: the file is missing, empty or not ELF.
    """

    def __init__(self, path: str, bias: int = 0, debug_dirs: Sequence[str] = DEFAULT_DEBUG_DIRS) -> None:
        self.path = path
        self.bias = bias
        #: Non-fatal problems met while loading (bad sections, unreadable DWARF).
        self.problems: List[str] = []
        self.debug_file: Optional[str] = None
        self._by_name: Dict[str, Tuple[Tuple[int, int], Symbol]] = {}
        cover: List[Tuple[int, int, int, str, int, int]] = []
        stream, elf = open_elf(path)
        try:
            self.elf_type: str = elf["e_type"]
            self.entry: int = elf["e_entry"]
            self.pointer_size = 8 if elf.elfclass == 64 else 4
            self.byteorder = "little" if elf.little_endian else "big"
            self.link_base = self._read_link_base(elf)
            self._build_id = self._read_build_id(elf)
            sections = checked_sections(elf)
            self._has_lines = self._has_dwarf_lines(elf, sections)
            self._load_symbols(elf, sections, path, cover)
            debuglink = self._read_debuglink(sections)
        finally:
            stream.close()
        #: The file whose DWARF line programs are used ("" when none has any).
        self._lines_from = path if self._has_lines else ""
        debug_path = self._find_debug_file(debuglink, debug_dirs)
        if debug_path is not None:
            try:
                dstream, delf = open_elf(debug_path)
            except CoreFileError as exc:
                self.problems.append(f"debug file skipped: {exc}")
            else:
                try:
                    self.debug_file = debug_path
                    dsections = checked_sections(delf)
                    self._load_symbols(delf, dsections, debug_path, cover)
                    if not self._lines_from and self._has_dwarf_lines(delf, dsections):
                        self._lines_from = debug_path
                finally:
                    dstream.close()
        cover = list(set(cover))  # .symtab and .dynsym repeat the exported symbols
        self._all = _AddressTable(cover)
        self._funcs = _AddressTable([e for e in cover if e[4] in _FUNC_TYPES])
        # Line tables, built on first use (see _prepare_lines).
        self._dwarf: Optional[DWARFInfo] = None
        self._lines_ready = False
        self._line_names: List[str] = []
        self._line_name_ids: Dict[str, int] = {}
        self._whole_table: Optional[_LineTable] = None
        self._cu_starts: List[int] = []
        self._cu_ranges: List[Tuple[int, int, int]] = []  # (begin, end, CU offset)
        self._cu_tables: Dict[int, _LineTable] = {}

    # -- loading ------------------------------------------------------------
    @staticmethod
    def _read_link_base(elf: ELFFile) -> int:
        """Link-time address of file offset 0 (``p_vaddr - p_offset`` of the lowest PT_LOAD)."""
        lowest: Optional[Tuple[int, int]] = None
        for seg in checked_segments(elf):
            if seg["p_type"] == "PT_LOAD" and (lowest is None or seg["p_vaddr"] < lowest[0]):
                lowest = (seg["p_vaddr"], seg["p_offset"])
        if lowest is None:
            return 0
        return max(0, lowest[0] - lowest[1])

    def _read_build_id(self, elf: ELFFile) -> Optional[str]:
        try:
            return elf_build_id(elf)
        except ELF_PARSE_ERRORS as exc:
            self.problems.append(f"{self.path}: notes unreadable: {exc}")
        return None

    def _has_dwarf_lines(self, elf: ELFFile, sections: Dict[int, Section]) -> bool:
        """True when ``elf`` has a line table and every section pyelftools loads with it is sane.

        ``get_dwarf_info`` reads all the debug sections and ``.eh_frame``, so
        one of them with a wild offset or size disqualifies the whole file.
        """
        try:
            sane = {sec.name for sec in sections.values()}
            with_bits = {sec.name for sec in sections.values() if sec["sh_type"] != "SHT_NOBITS"}
            every = [sec.name for sec in elf.iter_sections()]
        except ELF_PARSE_ERRORS:
            return False
        loaded = {n for n in every if n.startswith((".debug", ".zdebug")) or n in (".eh_frame", ".gnu_debugaltlink")}
        damaged = sorted(loaded - sane) + sorted({n for n in loaded if every.count(n) > 1})
        if damaged:
            if ".debug_line" in every:
                self.problems.append(f"{elf.stream.name}: DWARF ignored, damaged sections {damaged}")
            return False
        return ".debug_line" in with_bits and ".debug_info" in with_bits

    @staticmethod
    def _read_debuglink(sections: Dict[int, Section]) -> Optional[str]:
        try:
            sec = next((x for x in sections.values() if x.name == ".gnu_debuglink"), None)
            if sec is None:
                return None
            raw = sec.data().split(b"\0", 1)[0]
        except ELF_PARSE_ERRORS:
            return None
        return raw.decode("utf-8", "replace") or None

    def _find_debug_file(self, debuglink: Optional[str], debug_dirs: Sequence[str]) -> Optional[str]:
        candidates: List[str] = []
        bid = self._build_id
        for d in debug_dirs:
            if bid and len(bid) > 2:
                candidates.append(os.path.join(d, ".build-id", bid[:2], bid[2:] + ".debug"))
        if debuglink:
            here = os.path.dirname(os.path.abspath(self.path))
            candidates.append(os.path.join(here, debuglink))
            candidates.append(os.path.join(here, ".debug", debuglink))
            for d in debug_dirs:
                candidates.append(os.path.join(d, here.lstrip("/"), debuglink))
        me = os.path.realpath(self.path)
        for cand in candidates:
            if os.path.isfile(cand) and os.path.realpath(cand) != me:
                return cand
        return None

    def _load_symbols(
        self, elf: ELFFile, sections: Dict[int, Section], path: str, cover: List[Tuple[int, int, int, str, int, int]]
    ) -> None:
        """Decode .symtab and .dynsym of ``elf`` into the name map and ``cover``."""
        is64 = elf.elfclass == 64
        endian = "<" if elf.little_endian else ">"
        # Elf64_Sym: name, info, other, shndx, value, size; Elf32_Sym: name, value, size, info, other, shndx.
        fmt = struct.Struct(endian + ("IBBHQQ" if is64 else "IIIBBH"))
        if not sections:
            self.problems.append(f"{path}: no usable section headers")
            return
        # [start, end) of every allocated section, to bound zero-sized symbols.
        bounds: Dict[int, Tuple[int, int]] = {}
        for idx, sec in sections.items():
            if sec["sh_flags"] & 0x2:  # SHF_ALLOC
                bounds[idx] = (sec["sh_addr"], sec["sh_addr"] + sec["sh_size"])
        raw: List[Tuple[int, int, int, int, int, str]] = []
        for sec in sections.values():
            if sec["sh_type"] not in ("SHT_SYMTAB", "SHT_DYNSYM"):
                continue
            link = sec["sh_link"]
            if link not in sections or link == 0:
                self.problems.append(f"{path}: {sec.name} has no string table")
                continue
            try:
                data = sec.data()
                strtab = sections[link].data()
            except ELF_PARSE_ERRORS as exc:
                self.problems.append(f"{path}: {sec.name} unreadable: {exc}")
                continue
            usable = len(data) - len(data) % fmt.size
            for fields in fmt.iter_unpack(data[:usable]):
                if is64:
                    name_off, info, _other, shndx, value, size = fields
                else:
                    name_off, value, size, info, _other, shndx = fields
                stype, bind = info & 0xF, info >> 4
                if shndx == _SHN_UNDEF or stype in (_STT_SECTION, _STT_FILE, _STT_TLS):
                    continue
                if not 0 < name_off < len(strtab):
                    continue
                nul = strtab.find(b"\0", name_off)
                name = strtab[name_off : nul if nul >= 0 else len(strtab)].decode("utf-8", "replace")
                if not name or stype not in _TYPE_NAMES:
                    continue
                raw.append((value, size, stype, bind, shndx, name))
        starts_by_section: Dict[int, List[int]] = {}
        for value, _size, stype, _bind, shndx, _name in raw:
            if stype in _COVER_TYPES and shndx in bounds:
                starts_by_section.setdefault(shndx, []).append(value)
        for lst in starts_by_section.values():
            lst.sort()
        for value, size, stype, bind, shndx, name in raw:
            rank = (_BIND_RANK.get(bind, 3), _TYPE_RANK.get(stype, 3))
            sym = Symbol(name, value, size, _TYPE_NAMES[stype], _BIND_NAMES.get(bind, str(bind)))
            old = self._by_name.get(name)
            if old is None or rank < old[0]:
                self._by_name[name] = (rank, sym)
            if stype not in _COVER_TYPES or shndx not in bounds:
                continue
            if size:
                end = value + size
            else:
                # A zero-sized symbol covers up to the next symbol in its section.
                sec_end = bounds[shndx][1]
                later = starts_by_section[shndx]
                j = bisect.bisect_right(later, value)
                end = min(later[j] if j < len(later) else sec_end, sec_end)
                if end <= value:
                    end = value + 1
            score = rank[0] * 4 + (0 if size else 1) * 2 + (1 if name.startswith("_") else 0)
            cover.append((value, end, score, name, stype, bind))

    # -- public API ---------------------------------------------------------
    def __len__(self) -> int:
        return len(self._by_name)

    def lookup(self, name: str) -> Optional[Symbol]:
        """The preferred symbol called ``name`` (global over weak over local), or None.

        :param name: exact symbol name, e.g. ``"main_arena"``.
        """
        hit = self._by_name.get(name)
        return replace(hit[1], address=hit[1].address + self.bias) if hit else None

    def address(self, name: str) -> Optional[int]:
        """Biased address of the symbol ``name``, or None.

        :param name: exact symbol name; a global definition wins over a local
            one of the same name, but locals (``main_arena``, ``mp_``) are found.
        """
        hit = self._by_name.get(name)
        return hit[1].address + self.bias if hit else None

    def symbolize(self, address: int) -> Optional[Tuple[str, int]]:
        """``(name, offset)`` of the FUNC or OBJECT symbol covering ``address``, or None.

        :param address: a biased address.  A symbol with a size covers
            ``[start, start + size)``; a zero-sized one covers up to the next
            symbol of its section.
        """
        hit = self._all.find(address - self.bias)
        return (hit[3], address - self.bias - hit[0]) if hit else None

    def function_at(self, address: int) -> Optional[Symbol]:
        """The FUNC (or IFUNC) symbol covering ``address``, or None.

        :param address: a biased address.
        """
        hit = self._funcs.find(address - self.bias)
        if hit is None:
            return None
        return Symbol(hit[3], hit[0] + self.bias, hit[1] - hit[0], _TYPE_NAMES[hit[4]], _BIND_NAMES.get(hit[5], ""))

    def build_id(self) -> Optional[str]:
        """The GNU build-id as lowercase hex, or None when the file has none."""
        return self._build_id

    def line_for(self, address: int) -> Optional[Tuple[str, int]]:
        """``(file, line)`` of the instruction at ``address``, or None.

        The file is the name the compiler recorded, joined to its include
        directory unless that is the compilation directory (as GDB's
        ``symtab.filename``).  The row used is the last one at or below the
        address within the same sequence.  Tables are built the first time
        they are needed: the whole program's for small DWARF, else only the
        compilation unit's that holds the address.

        :param address: a biased address.
        """
        a = address - self.bias
        table = self._line_table_for(a)
        if table is None:
            return None
        addrs, files, lines = table
        i = bisect.bisect_right(addrs, a) - 1
        if i < 0 or files[i] < 0 or lines[i] == 0:
            return None
        return self._line_names[files[i]], lines[i]

    # -- line tables --------------------------------------------------------
    def _line_table_for(self, a: int) -> Optional[_LineTable]:
        if not self._lines_ready:
            self._prepare_lines()
        if self._whole_table is not None:
            return self._whole_table
        dwarf = self._dwarf
        i = bisect.bisect_right(self._cu_starts, a) - 1
        if dwarf is None or i < 0 or a >= self._cu_ranges[i][1]:
            return None
        offset = self._cu_ranges[i][2]
        table = self._cu_tables.get(offset)
        if table is None:
            try:
                table = self._decode([dwarf.get_CU_at(offset)], dwarf)
            except _DWARF_ERRORS as exc:
                self.problems.append(f"{self._lines_from}: CU at {offset:#x} unreadable: {exc!r}")
                table = ([], [], [])
            self._cu_tables[offset] = table
        return table

    def _prepare_lines(self) -> None:
        """Load the DWARF sections, then either decode everything or index the CUs."""
        self._lines_ready = True
        if not self._lines_from:
            return
        try:
            stream, elf = open_elf(self._lines_from)
        except CoreFileError as exc:
            self.problems.append(f"line table: {exc}")
            return
        try:
            line_sec = elf.get_section_by_name(".debug_line")
            line_size = line_sec["sh_size"] if line_sec is not None else 0
            # pyelftools >= 0.30 would chase .gnu_debugaltlink; we never need it.
            if "follow_links" in inspect.signature(elf.get_dwarf_info).parameters:
                dwarf = elf.get_dwarf_info(follow_links=False)
            else:
                dwarf = elf.get_dwarf_info()
            aranges = dwarf.get_aranges() if line_size > _WHOLE_TABLE_MAX else None
        except _DWARF_ERRORS as exc:
            self.problems.append(f"{self._lines_from}: DWARF unreadable: {exc!r}")
            return
        finally:
            # The DWARFInfo holds its own copies of the sections from here on.
            stream.close()
        self._dwarf = dwarf
        if aranges is not None and aranges.entries:
            ranges = sorted(
                (e.begin_addr, e.begin_addr + e.length, e.info_offset)
                for e in aranges.entries
                if e.length > 0 and e.begin_addr != 0
            )
            self._cu_ranges = ranges
            self._cu_starts = [r[0] for r in ranges]
            return
        try:
            self._whole_table = self._decode(dwarf.iter_CUs(), dwarf)
        except _DWARF_ERRORS as exc:
            self.problems.append(f"{self._lines_from}: DWARF line table unreadable: {exc!r}")
            self._whole_table = ([], [], [])

    def _decode(self, cus: Iterable[CompileUnit], dwarf: DWARFInfo) -> _LineTable:
        """Every row of the line programs of ``cus`` as sorted parallel arrays.

        End-of-sequence rows carry file -1 so an address past the end of a
        sequence finds nothing; they sort before a row of another sequence
        starting at the same address.  Sequences starting at address 0 are
        code the linker discarded and are dropped.
        """
        rows: List[Tuple[int, int, int, int]] = []  # (address, 0 end / 1 row, file id, line)
        for cu in cus:
            prog = dwarf.line_program_for_CU(cu)
            if prog is None:
                continue
            ids = [self._intern(name) for name in self._file_names(prog)]
            base = 0 if prog.header["version"] >= 5 else 1
            seq: List[Tuple[int, int, int, int]] = []
            for entry in prog.get_entries():
                st = entry.state
                if st is None:
                    continue
                if st.end_sequence:
                    if seq and seq[0][0] != 0:
                        rows.extend(seq)
                        rows.append((st.address, 0, -1, 0))
                    seq = []
                    continue
                k = st.file - base
                seq.append((st.address, 1, ids[k] if 0 <= k < len(ids) else -1, st.line))
        rows.sort(key=lambda r: (r[0], r[1]))
        return [r[0] for r in rows], [r[2] for r in rows], [r[3] for r in rows]

    def _intern(self, name: str) -> int:
        found = self._line_name_ids.get(name)
        if found is None:
            found = self._line_name_ids[name] = len(self._line_names)
            self._line_names.append(name)
        return found

    @staticmethod
    def _file_names(prog: LineProgram) -> List[str]:
        header = prog.header
        version = header["version"]
        dirs = [_text(d) for d in header["include_directory"] or ()]
        out = []
        for fe in header["file_entry"] or ():
            name = _text(fe.name)
            d = fe.dir_index
            # DWARF 5 indexes directories from 0 (the compilation directory);
            # earlier versions from 1, with 0 meaning the compilation directory.
            k = d if version >= 5 else d - 1
            if not os.path.isabs(name) and d != 0 and 0 <= k < len(dirs):
                name = os.path.join(dirs[k], name)
            out.append(name)
        return out
