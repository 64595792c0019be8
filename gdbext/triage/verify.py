# gdbext/triage/verify.py - does this core belong to this binary?  Checked
# by more than the build-id, before gdb runs: the entry point, the program
# headers and the first page of the executable as the core holds them.
"""Checking a core against its binary beyond the build-id.

A binary without a build-id (or a core that did not dump it) would be
analysed against whatever program it is given.  :func:`verify_binary`
compares what the core says about its executable (:class:`~.pairing.CoreFacts`)
with the binary file:

* the entry point: ``AT_ENTRY`` of the core's auxiliary vector against the
  binary's ``e_entry`` plus its load bias (0 for ``ET_EXEC``; for a PIE, where
  the core maps the file's offset 0, or ``AT_PHDR`` against ``PT_PHDR``);
* the program headers: the executable's ``PT_LOAD`` (offset, size, flags) as
  mapped in the core against the binary's;
* the first page: the executable's first bytes in the core against the
  file's (up to the end of its first ``PT_LOAD``);
* the build-id, when both have one (:func:`~.pairing.check_match`).

Any of them differing refuses the pair (:class:`~gdbext.errors.CoreFileError`).
The recorded file name is reported but never decides (binaries get renamed).
When nothing could be compared the result says so ("could not verify"), and
the triage cannot claim a clean result (exit 2 instead of 0).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from ..elfsyms import ELF_PARSE_ERRORS, open_elf
from ..errors import CoreFileError
from .pairing import CoreFacts

__all__ = ["Verification", "BinaryFacts", "binary_facts", "verify_binary"]

_PT_LOAD, _PT_PHDR = "PT_LOAD", "PT_PHDR"
_PAGE = 4096


@dataclass(frozen=True)
class BinaryFacts:
    """The parts of a binary a core can be compared with."""

    elf_type: str  #: "ET_EXEC" or "ET_DYN"
    entry: int
    link_base: Optional[int]  #: lowest PT_LOAD p_vaddr - p_offset
    phdr_vaddr: Optional[int]  #: PT_PHDR p_vaddr
    loads: Tuple[Tuple[int, int, int], ...]  #: (p_offset, p_filesz, p_flags)
    first_page: bytes  #: the file's bytes up to the end of its first PT_LOAD, at most a page


@dataclass
class Verification:
    """What agreed between a core and a binary."""

    agreed: List[str] = field(default_factory=list)  #: e.g. "entry point", "program headers"
    unchecked: List[str] = field(default_factory=list)  #: what could not be compared, and why

    @property
    def verified(self) -> bool:
        return bool(self.agreed)

    def summary(self, core: str, binary: str) -> str:
        if self.verified:
            return f"{core} matches {binary}: " + ", ".join(self.agreed)
        return (
            f"could not verify that {core} belongs to {binary}: nothing to compare"
            f" ({'; '.join(self.unchecked) or 'no evidence in the core'})"
        )


def binary_facts(binary: str) -> BinaryFacts:
    """Read :class:`BinaryFacts` of an ELF program.

    :raises CoreFileError: unreadable or malformed.
    """
    stream, elf = open_elf(binary)
    try:
        loads: List[Tuple[int, int, int, int]] = []
        phdr = None
        count = elf.num_segments()
        for i in range(min(count, 512)):
            h = elf.get_segment(i).header
            if h["p_type"] == _PT_LOAD:
                loads.append((h["p_vaddr"], h["p_offset"], h["p_filesz"], h["p_flags"]))
            elif h["p_type"] == _PT_PHDR:
                phdr = h["p_vaddr"]
        entry, etype = elf["e_entry"], elf["e_type"]
        first = min(loads) if loads else None
        size = _PAGE
        if first is not None and first[1] == 0:
            size = min(_PAGE, first[2])
        stream.seek(0)
        page = stream.read(size)
    except ELF_PARSE_ERRORS as exc:
        raise CoreFileError(f"{binary}: malformed program headers: {exc}") from None
    finally:
        stream.close()
    return BinaryFacts(
        elf_type=etype,
        entry=entry,
        link_base=(first[0] - first[1]) if first is not None else None,
        phdr_vaddr=phdr,
        loads=tuple((off, filesz, flags) for _va, off, filesz, flags in loads),
        first_page=page,
    )


def _bias(facts: CoreFacts, binary: BinaryFacts) -> Optional[int]:
    if binary.elf_type == "ET_EXEC":
        return 0
    if facts.exe_start is not None and binary.link_base is not None:
        return facts.exe_start - binary.link_base
    if facts.phdr is not None and binary.phdr_vaddr is not None:
        return facts.phdr - binary.phdr_vaddr
    return None


def verify_binary(core_label: str, facts: CoreFacts, binary: str, binary_id: Optional[str]) -> Verification:
    """Compare the core's executable with ``binary``.

    :param core_label: the core's name for messages.
    :param facts: from :func:`~.pairing.inspect_core`.
    :param binary: the program file.
    :param binary_id: its build-id (None when it has none).
    :raises CoreFileError: something compared differs.
    """
    out = Verification()
    bfacts = binary_facts(binary)
    if facts.build_id and binary_id:
        out.agreed.append("build-id")  # check_match refused a difference already
    else:
        out.unchecked.append("build-id: " + ("the binary has none" if not binary_id else "not in the core"))
    differ: List[str] = []
    bias = _bias(facts, bfacts)
    if facts.entry is None:
        out.unchecked.append("entry point: no AT_ENTRY in the core")
    elif bias is None:
        out.unchecked.append("entry point: the load bias of the executable is unknown")
    elif facts.entry == bfacts.entry + bias:
        out.agreed.append("entry point")
    else:
        differ.append(f"entry point {facts.entry:#x} in the core, {bfacts.entry + bias:#x} for the binary")
    if not facts.exe_loads:
        out.unchecked.append("program headers: not in the core")
    elif sorted(facts.exe_loads) == sorted(bfacts.loads):
        out.agreed.append("program headers")
    else:
        differ.append(f"program headers differ ({len(facts.exe_loads)} PT_LOAD in the core, {len(bfacts.loads)} in"
                      " the binary, or other offsets, sizes or flags)")
    if facts.first_page is None:
        out.unchecked.append("first page: not in the core")
    else:
        n = min(len(facts.first_page), len(bfacts.first_page))
        if n and facts.first_page[:n] == bfacts.first_page[:n]:
            out.agreed.append("first page")
        elif n:
            at = next(i for i in range(n) if facts.first_page[i] != bfacts.first_page[i])
            differ.append(f"first page differs at byte {at:#x}")
    if differ:
        recorded = f" (the core's program is {os.path.basename(facts.executable)})" if facts.executable else ""
        raise CoreFileError(f"{core_label} is not a core of {binary}{recorded}: " + "; ".join(differ))
    if facts.executable and os.path.basename(facts.executable) == os.path.basename(binary) and out.agreed:
        out.agreed.append("file name")
    return out
