"""The gdb adapter of the core: the inferior as a memory source, and spec evaluation.

This is the only module of ``gdbext/`` that imports ``gdb``; it is imported
only from inside gdb (by ``printers/`` and ``commands/``).  Reads go through
``Inferior.read_memory`` in bulk, with a small block cache so walkers that
read header by header do not pay gdb's per-call cost each time.  A source is
made per command invocation, so the cache never outlives a stop.
"""
from __future__ import annotations

import re
from typing import Dict, Optional, Sequence, Tuple, Union

import construct
import gdb  # type: ignore[import-not-found]

from .errors import GdbextError, MemoryReadError, SpecError
from .memory import MemorySource, Region, RegionIndex
from .pools import Evaluator, Expr, HeaderField, HeaderLayout, layout_from_construct

__all__ = ["GdbInferiorSource", "GdbEvaluator", "core_file_path", "is_live", "source_location", "lookup_type_name"]

_BLOCK = 64 * 1024  #: cache block size for small reads
_MAX_CACHED_BLOCKS = 256  #: 16 MiB of cache at most
_MAX_READ = 1 << 30  #: never ask gdb for more than 1 GiB at once


def core_file_path() -> Optional[str]:
    """Path of the core file gdb has loaded, or None for a live process."""
    text = gdb.execute("info target", to_string=True)
    m = re.search(r"Local core dump file:\s*`([^']+)'", text)
    return m.group(1) if m else None


def is_live() -> bool:
    """True when the selected inferior is a running process (not a core)."""
    inf = gdb.selected_inferior()
    return inf.pid != 0 and core_file_path() is None


class GdbInferiorSource(MemorySource):
    """The selected inferior (live process or core) as a :class:`MemorySource`."""

    def __init__(self, require_target: bool = True) -> None:
        """:param require_target: refuse to work without a process or core (commands);
            printers pass False so statics of a bare executable still print."""
        self._inferior = gdb.selected_inferior()
        self._core_path = core_file_path()  # asked of gdb once ("info target")
        if require_target and self._inferior.pid == 0 and self._core_path is None:
            raise GdbextError("no process or core file: run the program or load a core first")
        self.pointer_size = gdb.lookup_type("void").pointer().sizeof
        endian = gdb.execute("show endian", to_string=True)
        self.byteorder = "big" if "big endian" in endian else "little"
        self._blocks: Dict[int, Optional[bytes]] = {}
        self._regions: Optional[RegionIndex] = None
        self._corefile = None  #: CoreFile, False (live process / unreadable core), or None (not asked yet)

    # -- reading ------------------------------------------------------------
    def _read_direct(self, address: int, size: int):
        if size < 0 or size > _MAX_READ:
            raise MemoryReadError(address, size, "size out of range")
        if size == 0:
            return b""
        self._refuse_undumped(address, size)
        try:
            return self._inferior.read_memory(address, size)
        except (gdb.MemoryError, gdb.error, OverflowError, ValueError) as err:
            raise MemoryReadError(address, size, str(err).split("\n")[0]) from None

    def _block(self, base: int) -> Optional[bytes]:
        if base not in self._blocks:
            if len(self._blocks) >= _MAX_CACHED_BLOCKS:
                self._blocks.clear()
            try:
                self._blocks[base] = bytes(self._read_direct(base, _BLOCK))
            except MemoryReadError:
                self._blocks[base] = None  # block straddles a hole: fall back to exact reads
        return self._blocks[base]

    def read(self, address: int, size: int) -> bytes:
        if 0 < size <= 256 and address >= 0:
            base = address - address % _BLOCK
            if address + size <= base + _BLOCK:
                block = self._block(base)
                if block is not None:
                    off = address - base
                    return block[off : off + size]
        return bytes(self._read_direct(address, size))

    def read_buffer(self, address: int, size: int):
        """Zero-copy: gdb's own buffer as a ``memoryview``."""
        return memoryview(self._read_direct(address, size))

    def _core(self):
        """The core file read directly (for its segment table), or None for a live process."""
        if self._corefile is None:
            path = self._core_path
            if path is None:
                self._corefile = False
            else:
                from .corefile import CoreFile  # local: only needed for cores

                try:
                    self._corefile = CoreFile(path)
                except GdbextError:
                    self._corefile = False
        return self._corefile or None

    def _refuse_undumped(self, address: int, size: int) -> None:
        """gdb reads anonymous memory that a core left out as zeros; say "not dumped" instead.

        (File-backed pages a core leaves out are real: gdb reads them from the binary.)
        """
        core = self._core()
        if core is None:
            return
        region = core.region_of(address)
        if region is not None and not region.path and not core.dumped(address, size):
            raise MemoryReadError(address, size, "not dumped in the core")

    # -- address space -------------------------------------------------------
    def regions(self) -> Sequence[Region]:
        if self._regions is None:
            self._regions = RegionIndex(self._load_regions())
        return self._regions.regions

    def region_of(self, address: int) -> Optional[Region]:
        self.regions()
        assert self._regions is not None
        return self._regions.find(address)

    def _load_regions(self):
        core = self._core()
        if core is not None:
            return list(core.regions())
        return _proc_maps(self._inferior.pid)

    # -- symbols -------------------------------------------------------------
    def symbol(self, name: str) -> Optional[int]:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.@]*", name):
            return None
        for lookup in (gdb.lookup_global_symbol, gdb.lookup_static_symbol):
            try:
                sym = lookup(name)
            except gdb.error:
                sym = None
            if sym is not None and (sym.is_variable or sym.is_function):
                try:
                    return int(sym.value().address)
                except (gdb.error, TypeError):
                    pass
        try:  # minimal symbols (static glibc's main_arena, mp_): no debug info, still an address
            return int(gdb.parse_and_eval(f"(unsigned long)&'{name}'"))
        except gdb.error:
            return None

    def symbolize(self, address: int) -> Optional[Tuple[str, int]]:
        try:
            text = gdb.execute(f"info symbol {address:#x}", to_string=True)
        except gdb.error:
            return None
        m = re.match(r"(\S+)(?: \+ (\d+))? in section", text)
        if not m:
            return None
        return m.group(1), int(m.group(2) or 0)


def _proc_maps(pid: int):
    """Regions of a live local process from /proc/PID/maps (read-only)."""
    regions = []
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.split(None, 5)
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                path = parts[5].strip() if len(parts) > 5 else ""
                regions.append(Region(lo, hi, parts[1][:3], path, int(parts[2], 16)))
    except OSError as err:
        raise GdbextError(f"cannot read the mappings of process {pid}: {err}") from None
    return regions


def source_location(pc: int) -> Dict[str, object]:
    """Function, file and line of ``pc`` as gdb knows them (file/line None without debug info)."""
    out: Dict[str, object] = {"pc": pc, "function": None, "file": None, "line": None}
    try:
        block = gdb.block_for_pc(pc)
    except (gdb.error, RuntimeError):
        block = None
    while block is not None and block.function is None:
        block = block.superblock
    if block is not None and block.function is not None:
        out["function"] = block.function.print_name
    else:
        try:
            text = gdb.execute(f"info symbol {pc:#x}", to_string=True)
            m = re.match(r"(\S+)", text)
            if m and not text.startswith("No symbol"):
                out["function"] = m.group(1)
        except gdb.error:
            pass
    sal = gdb.find_pc_line(pc)
    if sal.symtab is not None and sal.line:
        out["file"] = sal.symtab.filename
        out["line"] = sal.line
    return out


class GdbEvaluator(Evaluator):
    """Evaluates pool-spec expressions with gdb (they come from the user's spec, never from the core)."""

    def eval_int(self, expr: Expr) -> int:
        if isinstance(expr, int):
            return expr
        try:
            value = gdb.parse_and_eval(expr)
            if value.type.strip_typedefs().code == gdb.TYPE_CODE_ARRAY:
                value = value.address
            return int(value)
        except gdb.error as err:
            raise SpecError(f"gdb cannot evaluate {expr!r}: {err}") from None

    def eval_address(self, expr: Expr) -> int:
        if isinstance(expr, int):
            return expr
        try:
            value = gdb.parse_and_eval(expr)
        except gdb.error as err:
            raise SpecError(f"gdb cannot evaluate {expr!r}: {err}") from None
        if value.address is None:
            raise SpecError(f"{expr!r} is not an object in memory")
        return int(value.address)

    def header_layout(self, header: Union[str, construct.Construct]) -> HeaderLayout:
        if isinstance(header, construct.Construct):
            return layout_from_construct(header)
        gtype = lookup_type_name(header)
        gtype = gtype.strip_typedefs()
        fields = {}
        for f in gtype.fields():
            if f.bitpos is None or not f.name:
                continue
            ftype = f.type.strip_typedefs()
            count = 1
            if ftype.code == gdb.TYPE_CODE_ARRAY:
                lo, hi = ftype.range()
                count = hi - lo + 1
            signed = ftype.code == gdb.TYPE_CODE_INT and not getattr(ftype, "is_unsigned", True)
            fields[f.name] = HeaderField(f.name, f.bitpos // 8, ftype.sizeof, count, signed)
        return HeaderLayout(header, gtype.sizeof, fields)


def lookup_type_name(name: str):
    """The ``gdb.Type`` for "struct x", "union x", "enum x" or a typedef name; SpecError if unknown."""
    bare = re.sub(r"^(struct|union|enum)\s+", "", name.strip())
    try:
        return gdb.lookup_type(bare)
    except gdb.error:
        pass
    try:  # a tag that a typedef of the same name hides, or a scoped C++ name
        return gdb.parse_and_eval(f"({name} *)0").type.target()
    except gdb.error as err:
        raise SpecError(f"no type {name!r} in the program's debug info ({err})") from None
