# gdbext/forensics/context.py - what the forensic detectors are given: memory,
# the located glibc heap and its check report, the walked pools, the crash
# facts (abort message, fault, registers, candidate pointers) and callbacks.
"""The forensic context.

A :class:`ForensicContext` is built once per analysis, inside gdb by the
command adapters (``commands/heapexplain.py``: ``gdb_context``) or without
gdb from a core file (:func:`gdbext.forensics.corectx.context_from_core`),
and handed to :func:`gdbext.forensics.find_all` and the other entry points.
Everything the detectors derive from it (the chunk index, the faulting
instruction's access) is computed on first use and cached on the context.

Callbacks keep the detectors free of gdb:

* ``symbolize(pc) -> {"function", "file", "line"}`` (gdb's answer in gdb,
  the ELF symbols and DWARF line table outside);
* ``references(chunk_address) -> ["g_table[3]", ...]``: who points at a
  chunk (supplied by the reference finder; default: nobody known);
* ``field_at(chunk_address, offset) -> "value"``: the field of a typed
  referrer at an offset (default: unknown).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from ..aborts import read_perturb_byte  # noqa: F401  (re-exported)
from ..disasm import Access, Insn, disassemble, memory_access
from ..errors import GdbextError
from ..glibc import CheckReport, GlibcHeap, check_heap
from ..glibc.segments import ByteOrder, byteorder_of
from ..memory import MemorySource
from ..pools import PoolReport

__all__ = [
    "ForensicContext",
    "Symbolize",
    "References",
    "FieldAt",
    "no_symbols",
    "no_references",
    "no_field",
    "read_perturb_byte",
]

#: ``symbolize(pc) -> {"function": str|None, "file": str|None, "line": int|None}`` or None.
Symbolize = Callable[[int], Optional[Dict[str, Any]]]
#: ``references(chunk_address) -> [path, ...]``: referrers of a chunk, as readable paths.
References = Callable[[int], List[str]]
#: ``field_at(chunk_address, offset) -> field name`` of a typed referrer, or None.
FieldAt = Callable[[int, int], Optional[str]]


def no_symbols(pc: int) -> Optional[Dict[str, Any]]:
    """The default symbolizer: nothing is known."""
    return None


def no_references(chunk: int) -> List[str]:
    """The default reference finder: nobody is known to point at the chunk."""
    return []


def no_field(chunk: int, offset: int) -> Optional[str]:
    """The default field namer: no typed referrer is known."""
    return None


@dataclass
class ForensicContext:
    """Everything the detectors read.

    :ivar mem: the target's memory.
    :ivar heap: the located glibc heap, or None (no glibc heap, pools only).
    :ivar check: ``check_heap(heap)``; computed when None and a heap is given.
    :ivar pools: the walked pools.
    :ivar abort_message: glibc's ``__abort_msg`` text, if any.
    :ivar fault_address: the address a SIGSEGV/SIGBUS faulted on.
    :ivar pc: the crashing thread's pc (frame 0).
    :ivar registers: frame 0's registers by name (``rax``...).
    :ivar candidate_pointers: values from the crashing thread's registers,
        frames' arguments and stack, most relevant first (the pointer a
        failing ``free()`` was given is among them).
    :ivar symbolize: code address -> ``{function, file, line}``.
    :ivar perturb_byte: glibc's perturb byte, None when off or unknown.
    :ivar references: chunk address -> referrer paths.
    :ivar field_at: (chunk address, offset) -> field name.
    :ivar arch: architecture name for the disassembler.
    :ivar signal: the signal number that killed the process, if known.
    :ivar notes: what could not be gathered (one line each).
    :ivar program: the executable's path (None: not known; no site is inferred).
    """

    mem: MemorySource
    heap: Optional[GlibcHeap] = None
    check: Optional[CheckReport] = None
    pools: List[PoolReport] = field(default_factory=list)
    abort_message: Optional[str] = None
    fault_address: Optional[int] = None
    pc: Optional[int] = None
    registers: Dict[str, int] = field(default_factory=dict)
    candidate_pointers: List[int] = field(default_factory=list)
    symbolize: Symbolize = no_symbols
    perturb_byte: Optional[int] = None
    references: References = no_references
    field_at: FieldAt = no_field
    arch: str = "x86-64"
    signal: Optional[int] = None
    notes: List[str] = field(default_factory=list)
    #: the executable's path, scanned for allocating calls to infer glibc chunks' sites
    program: Optional[str] = None
    _cache: Dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.heap is not None and self.check is None:
            self.check = check_heap(self.heap)

    @property
    def pointer_size(self) -> int:
        return self.mem.pointer_size

    @property
    def order(self) -> ByteOrder:
        """The target's byte order, typed for ``int.from_bytes``."""
        return byteorder_of(self.mem)

    def index(self) -> "Any":
        """The :class:`~gdbext.forensics.chunks.ChunkIndex` of this context (built once)."""
        if "index" not in self._cache:
            from .chunks import ChunkIndex  # local: chunks imports this module's types

            self._cache["index"] = ChunkIndex(self.mem, self.heap, self.check, self.pools)
        return self._cache["index"]

    def instruction(self) -> Optional[Insn]:
        """The instruction at ``pc``, or None."""
        if "insn" not in self._cache:
            insn = None
            if self.pc is not None:
                try:
                    found = disassemble(self.mem, self.pc, 1, self.arch)
                except GdbextError:
                    found = []
                insn = found[0] if found else None
            self._cache["insn"] = insn
        return self._cache["insn"]  # type: ignore[no-any-return]

    def access(self) -> Optional[Access]:
        """The faulting instruction's memory access, resolved with :attr:`registers`."""
        if "access" not in self._cache:
            insn = self.instruction()
            self._cache["access"] = memory_access(insn, self.registers) if insn is not None and self.registers else None
        return self._cache["access"]  # type: ignore[no-any-return]

    def site(self, pc: int) -> Optional[Dict[str, Any]]:
        """``symbolize(pc)`` that never raises (a symbolizer's error means "unknown")."""
        try:
            return self.symbolize(pc)
        except GdbextError:
            return None

    def referrers(self, chunk: int) -> List[str]:
        """``references(chunk)`` that never raises."""
        try:
            return list(self.references(chunk))
        except GdbextError:
            return []

    def field_name(self, chunk: int, offset: int) -> Optional[str]:
        """``field_at(chunk, offset)`` that never raises."""
        try:
            return self.field_at(chunk, offset)
        except GdbextError:
            return None
