# gdbext/triage/pairing.py - which binary a core belongs to, and whether both
# can be analysed at all, decided without gdb: build-ids, the naming rule,
# and the up-front checks of the core and the binary.
"""Pairing cores with binaries, and the checks made before gdb starts.

A core is paired with a binary of the same directory

1. by build-id: the executable's build-id read from the core's memory
   (:meth:`gdbext.corefile.CoreFile.executable_build_id`) equals the
   build-id of an ELF file of the directory;
2. else by name: ``NAME`` for ``NAME.core`` or ``core.NAME``, either
   possibly compressed (``.xz``, ``.zst``, ``.lz4``, ``.gz``) (:func:`name_for_core`);
3. else by the executable's file name the core records (NT_FILE/AT_EXECFN).

A core is any file named by the rule, or any ELF file of type ET_CORE.
:func:`scan_directory` looks only at regular files directly in the
directory, follows a symbolic link only when it stays inside the directory
(unless asked), and lists every file it leaves out with the reason
(:class:`SkippedFile`).  Before gdb runs, :func:`inspect_core` and
:func:`check_binary` refuse (with :class:`~gdbext.errors.CoreFileError`, one
line) a missing, empty, truncated, non-ELF or non-regular core (a FIFO), a
core of an architecture gdbext does not model, or whose notes are absurd, a
binary that is not an ELF program, and :func:`check_match` a core whose
executable has another build-id or another architecture than the binary
(:mod:`.verify` compares the rest).
"""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..corefile import CoreFile
from ..decompress import COMPRESSED_SUFFIXES
from ..elfsyms import file_build_id, file_kind, open_file
from ..errors import CoreFileError, MemoryReadError

__all__ = [
    "CoreFacts",
    "ElfArch",
    "MODELLED_ARCHES",
    "elf_arch",
    "SkippedFile",
    "DirectoryScan",
    "name_for_core",
    "elf_type",
    "scan_directory",
    "inspect_core",
    "check_binary",
    "check_match",
    "choose_binary",
]

_SUFFIXES = "|".join(re.escape(x) for x in COMPRESSED_SUFFIXES)
#: DOTALL: a name may hold a newline (it is still a core; output escapes it).
_CORE_NAME = re.compile(rf"(?:(?P<a>.+)\.core|core\.(?P<b>.+?))(?:{_SUFFIXES})?", re.DOTALL)
_ELF_TYPES = {1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}
#: CoreFile problems that mean the core is cut short.
_TRUNCATION = ("core is truncated", "notes missing", "notes cut short")


#: ``e_machine`` values named in messages (elf.h).
_MACHINES = {3: "i386", 8: "mips", 20: "ppc", 21: "ppc64", 22: "s390", 40: "arm", 62: "x86-64", 183: "aarch64",
             243: "riscv"}


@dataclass(frozen=True)
class ElfArch:
    """The ELF class, byte order and machine of a file: what must agree between a core and its binary."""

    bits: int  #: 32 or 64
    byteorder: str  #: "little" or "big"
    machine: int  #: ``e_machine``

    def __str__(self) -> str:
        name = _MACHINES.get(self.machine, f"machine {self.machine}")
        return f"{name} ({self.bits}-bit, {self.byteorder}-endian)"


#: The architectures gdbext models (registers, glibc layouts): x86-64 only.
MODELLED_ARCHES = frozenset({ElfArch(64, "little", 62)})


def elf_arch(path: str) -> Optional[ElfArch]:
    """The :class:`ElfArch` of an ELF file (None when not ELF or unreadable)."""
    try:
        with open_file(path) as fh:
            head = fh.read(20)
    except CoreFileError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
        return None
    order = "little" if head[5] == 1 else "big"
    return ElfArch(32 * head[4], order, int.from_bytes(head[18:20], order))


@dataclass(frozen=True)
class CoreFacts:
    """What the core says about its program, read before gdb runs."""

    build_id: Optional[str]  #: the executable's build-id, from the core's memory (None if not dumped)
    executable: Optional[str]  #: the executable's path as the core records it
    threads: int
    arch: Optional[ElfArch] = None
    entry: Optional[int] = None  #: AT_ENTRY of NT_AUXV
    phdr: Optional[int] = None  #: AT_PHDR of NT_AUXV
    exe_start: Optional[int] = None  #: where the executable's file offset 0 is mapped (NT_FILE)
    #: The executable's PT_LOAD headers as mapped in the core: (p_offset, p_filesz, p_flags).
    exe_loads: Tuple[Tuple[int, int, int], ...] = ()
    first_page: Optional[bytes] = None  #: the executable's first page, when the core holds it
    skipped_segments: Tuple[str, ...] = ()  #: segments dropped or cut (damaged headers)


@dataclass(frozen=True)
class SkippedFile:
    """A file of a ``--dir`` folder left out, and why."""

    path: str
    reason: str
    core: bool  #: it looked like a core (by name): skipping it loses a core


@dataclass
class DirectoryScan:
    """A directory's cores and programs."""

    directory: str
    cores: List[str]
    binaries: Dict[str, str]  #: build-id -> path (the first file in name order wins)
    programs: List[str]  #: every ELF program (executable or shared object), with or without build-id
    skipped: List[SkippedFile] = field(default_factory=list)  #: every other entry, with the reason


def name_for_core(filename: str) -> Optional[str]:
    """``NAME`` of ``NAME.core``, ``core.NAME``, each maybe with ``.xz``, ``.zst``, ``.lz4``, ``.gz``; else None."""
    m = _CORE_NAME.fullmatch(os.path.basename(filename))
    if m is None:
        return None
    return m.group("a") or m.group("b")


def elf_type(path: str) -> Optional[str]:
    """``"ET_EXEC"``, ``"ET_CORE"``... of an ELF file; None for anything else (or unreadable)."""
    try:
        with open_file(path) as fh:
            head = fh.read(18)
    except (CoreFileError, OSError):
        return None
    if len(head) < 18 or head[:4] != b"\x7fELF" or head[5] not in (1, 2):
        return None
    e_type = int.from_bytes(head[16:18], "little" if head[5] == 1 else "big")
    return _ELF_TYPES.get(e_type, f"type {e_type}")


def scan_directory(directory: str, follow_symlinks: bool = False) -> DirectoryScan:
    """The cores (by name or ELF type) and the programs (by build-id) directly in ``directory``.

    Only regular files count; a symbolic link counts when its target is a
    regular file inside ``directory`` (anywhere with ``follow_symlinks``).
    Everything else is in :attr:`DirectoryScan.skipped` with the reason.

    :raises CoreFileError: ``directory`` is not a readable directory.
    """
    try:
        names = sorted(os.listdir(directory))
    except OSError as err:
        raise CoreFileError(f"{directory}: cannot list: {err.strerror}") from None
    home = os.path.realpath(directory)
    scan = DirectoryScan(directory, [], {}, [])
    for name in names:
        path = os.path.join(directory, name)
        named_core = name_for_core(name) is not None
        reason = _unusable(path, home, follow_symlinks)
        if reason is not None:
            scan.skipped.append(SkippedFile(path, reason, named_core))
            continue
        kind = elf_type(path)
        if named_core or kind == "ET_CORE":
            scan.cores.append(path)
            continue
        if kind not in ("ET_EXEC", "ET_DYN"):
            why = f"ELF {kind}: not a core nor a program" if kind else "not a core (by name) nor an ELF file"
            scan.skipped.append(SkippedFile(path, why, False))
            continue
        scan.programs.append(path)
        try:
            bid = file_build_id(path)
        except CoreFileError:
            continue
        if bid and bid not in scan.binaries:
            scan.binaries[bid] = path
    return scan


def _unusable(path: str, home: str, follow_symlinks: bool) -> Optional[str]:
    """Why ``path`` (an entry of the directory ``home``) is left out, or None."""
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            target = os.path.realpath(path)
            if not follow_symlinks and os.path.commonpath([target, home]) != home:
                return "symbolic link to a file outside the folder (--follow-symlinks to follow it)"
            mode = os.stat(path).st_mode
    except OSError as err:
        return f"cannot read: {err.strerror}"
    if stat.S_ISDIR(mode):
        return "directory (subfolders are not searched)"
    if not stat.S_ISREG(mode):
        return f"not a regular file ({file_kind(mode)})"
    return None


def _relabel(err: CoreFileError, plain: str, label: str) -> CoreFileError:
    return CoreFileError(str(err).replace(plain, label)) if plain != label else err


def inspect_core(plain: str, label: Optional[str] = None) -> CoreFacts:
    """Open the (uncompressed) core and refuse what cannot be analysed.

    :param plain: the core file on disk (decompressed).
    :param label: the name to use in messages (the path the user gave).
    :raises CoreFileError: missing, not a regular file, empty, not ELF, not a
        core, truncated, of an architecture gdbext does not model, notes past
        the caps, or without threads.
    """
    label = label or plain
    try:
        with CoreFile(plain) as core:
            arch = elf_arch(plain)
            if arch is not None and arch not in MODELLED_ARCHES:
                models = ", ".join(str(a) for a in sorted(MODELLED_ARCHES, key=str))
                raise CoreFileError(f"{label}: a core of {arch}; gdbext models {models} only")
            cut = [p for p in core.problems if p.startswith(_TRUNCATION)]
            if cut:
                raise CoreFileError(f"{label}: {cut[0]}")
            if core.notes_capped:
                capped = next(p for p in core.problems if p.startswith(("notes capped", "note segment of")))
                raise CoreFileError(f"{label}: {capped}")
            if not core.threads():
                raise CoreFileError(f"{label}: the core holds no thread (no NT_PRSTATUS note)")
            return _facts(core, arch)
    except CoreFileError as err:
        raise _relabel(err, plain, label) from None


def _facts(core: CoreFile, arch: Optional[ElfArch]) -> CoreFacts:
    exe = core.executable_path()
    auxv = core.auxv()
    start = loads = page = None
    mapping = next((m for m in core.file_mappings() if m.path == exe and m.file_offset == 0), None)
    if mapping is not None:
        start = mapping.start
        loads = tuple(core.executable_loads())
        try:
            page = core.read_dumped(start, min(4096, mapping.end - start))
        except MemoryReadError:
            page = None
    return CoreFacts(
        core.executable_build_id(), exe, len(core.threads()), arch=arch, entry=auxv.get("AT_ENTRY"),
        phdr=auxv.get("AT_PHDR"), exe_start=start, exe_loads=loads or (), first_page=page,
        skipped_segments=tuple(core.skipped_segments),
    )


def check_binary(binary: str) -> Optional[str]:
    """The build-id of ``binary`` (None if it has none), after checking it is an ELF program.

    :raises CoreFileError: missing, empty, not ELF, or an ELF file that is no program (a core, an object file).
    """
    if not os.path.exists(binary):
        raise CoreFileError(f"{binary}: no such file")
    kind = elf_type(binary)
    bid = file_build_id(binary)  # raises for missing / empty / not ELF
    if kind not in ("ET_EXEC", "ET_DYN"):
        raise CoreFileError(f"{binary}: not a program (ELF {kind or 'of unknown type'})")
    return bid


def check_match(core_label: str, facts: CoreFacts, binary: str, binary_id: Optional[str]) -> None:
    """Refuse a core whose executable's build-id, or whose architecture, differs from the binary's.

    :raises CoreFileError: both build-ids are known and differ, or the ELF
        class, byte order or machine differ.
    """
    binary_arch = elf_arch(binary)
    if facts.arch is not None and binary_arch is not None and facts.arch != binary_arch:
        raise CoreFileError(
            f"{core_label} is a core of another architecture: {facts.arch}; {binary} is {binary_arch}"
        )
    if facts.build_id and binary_id and facts.build_id != binary_id:
        recorded = f" ({os.path.basename(facts.executable)})" if facts.executable else ""
        raise CoreFileError(
            f"{core_label} is a core of another program{recorded}: its executable has build-id "
            f"{facts.build_id}, {binary} has {binary_id}"
        )


def choose_binary(core_label: str, facts: CoreFacts, scan: DirectoryScan) -> Tuple[str, str]:
    """``(binary, how)`` for a core of ``scan``'s directory; ``how`` is "build-id", "name" or "recorded name".

    :raises CoreFileError: no binary of the directory fits.
    """
    if facts.build_id and facts.build_id in scan.binaries:
        return scan.binaries[facts.build_id], "build-id"
    candidates: List[Tuple[str, str]] = []
    name = name_for_core(core_label)
    if name:
        candidates.append((os.path.join(scan.directory, name), "name"))
    if facts.executable:
        candidates.append((os.path.join(scan.directory, os.path.basename(facts.executable)), "recorded name"))
    for path, how in candidates:
        if path in scan.programs:
            return path, how
    want = f"build-id {facts.build_id}" if facts.build_id else "a binary"
    named = f" or a file named {name}" if name else ""
    raise CoreFileError(f"{core_label}: no program in {scan.directory} has {want}{named}")
