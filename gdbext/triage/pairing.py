# gdbext/triage/pairing.py - which binary a core belongs to, and whether both
# can be analysed at all, decided without gdb: build-ids, the naming rule,
# and the up-front checks of the core and the binary.
"""Pairing cores with binaries, and the checks made before gdb starts.

A core is paired with a binary of the same directory

1. by build-id: the executable's build-id read from the core's memory
   (:meth:`gdbext.corefile.CoreFile.executable_build_id`) equals the
   build-id of an ELF file of the directory;
2. else by name: ``NAME`` for ``NAME.core``, ``NAME.core.xz``, ``core.NAME``
   or ``core.NAME.xz`` (:func:`name_for_core`);
3. else by the executable's file name the core records (NT_FILE/AT_EXECFN).

A core is any file named by the rule, or any ELF file of type ET_CORE.
Before gdb runs, :func:`inspect_core` and :func:`check_binary` refuse (with
:class:`~gdbext.errors.CoreFileError`, one line) a missing, empty,
truncated or non-ELF core, a binary that is not an ELF program, and
:func:`check_match` a core whose executable has another build-id.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ..corefile import CoreFile
from ..elfsyms import file_build_id
from ..errors import CoreFileError

__all__ = [
    "CoreFacts",
    "DirectoryScan",
    "name_for_core",
    "elf_type",
    "scan_directory",
    "inspect_core",
    "check_binary",
    "check_match",
    "choose_binary",
]

_CORE_NAME = re.compile(r"^(?:(?P<a>.+)\.core|core\.(?P<b>.+?))(?:\.xz)?$")
_ELF_TYPES = {1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}
#: CoreFile problems that mean the core is cut short.
_TRUNCATION = ("core is truncated", "notes missing", "notes cut short")


@dataclass(frozen=True)
class CoreFacts:
    """What the core says about its program, read before gdb runs."""

    build_id: Optional[str]  #: the executable's build-id, from the core's memory (None if not dumped)
    executable: Optional[str]  #: the executable's path as the core records it
    threads: int


@dataclass
class DirectoryScan:
    """A directory's cores and programs."""

    directory: str
    cores: List[str]
    binaries: Dict[str, str]  #: build-id -> path (the first file in name order wins)
    programs: List[str]  #: every ELF program (executable or shared object), with or without build-id


def name_for_core(filename: str) -> Optional[str]:
    """``NAME`` of ``NAME.core``, ``NAME.core.xz``, ``core.NAME``, ``core.NAME.xz``; None otherwise."""
    m = _CORE_NAME.match(os.path.basename(filename))
    if m is None:
        return None
    return m.group("a") or m.group("b")


def elf_type(path: str) -> Optional[str]:
    """``"ET_EXEC"``, ``"ET_CORE"``... of an ELF file; None for anything else (or unreadable)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(18)
    except OSError:
        return None
    if len(head) < 18 or head[:4] != b"\x7fELF" or head[5] not in (1, 2):
        return None
    e_type = int.from_bytes(head[16:18], "little" if head[5] == 1 else "big")
    return _ELF_TYPES.get(e_type, f"type {e_type}")


def scan_directory(directory: str) -> DirectoryScan:
    """The cores (by name or ELF type) and the programs (by build-id) directly in ``directory``.

    :raises CoreFileError: ``directory`` is not a readable directory.
    """
    try:
        names = sorted(os.listdir(directory))
    except OSError as err:
        raise CoreFileError(f"{directory}: cannot list: {err.strerror}") from None
    cores: List[str] = []
    binaries: Dict[str, str] = {}
    programs: List[str] = []
    for name in names:
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        kind = elf_type(path)
        if name_for_core(name) is not None or kind == "ET_CORE":
            cores.append(path)
            continue
        if kind not in ("ET_EXEC", "ET_DYN"):
            continue
        programs.append(path)
        try:
            bid = file_build_id(path)
        except CoreFileError:
            continue
        if bid and bid not in binaries:
            binaries[bid] = path
    return DirectoryScan(directory, cores, binaries, programs)


def _relabel(err: CoreFileError, plain: str, label: str) -> CoreFileError:
    return CoreFileError(str(err).replace(plain, label)) if plain != label else err


def inspect_core(plain: str, label: Optional[str] = None) -> CoreFacts:
    """Open the (uncompressed) core and refuse what cannot be analysed.

    :param plain: the core file on disk (decompressed).
    :param label: the name to use in messages (the path the user gave).
    :raises CoreFileError: missing, empty, not ELF, not a core, truncated, or without threads.
    """
    label = label or plain
    try:
        with CoreFile(plain) as core:
            cut = [p for p in core.problems if p.startswith(_TRUNCATION)]
            if cut:
                raise CoreFileError(f"{label}: {cut[0]}")
            if not core.threads():
                raise CoreFileError(f"{label}: the core holds no thread (no NT_PRSTATUS note)")
            return CoreFacts(core.executable_build_id(), core.executable_path(), len(core.threads()))
    except CoreFileError as err:
        raise _relabel(err, plain, label) from None


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
    """Refuse a core whose executable's build-id differs from the binary's.

    :raises CoreFileError: both build-ids are known and differ.
    """
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
