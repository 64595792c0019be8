# commands/_roots.py - the program's roots for "who points here": each thread's
# registers, frame variables and stack words, and the DWARF-typed globals.
"""Collect :class:`gdbext.refs.Root` objects from gdb, and type layouts from DWARF.

Only names and types come from gdb's symbol tables; nothing read from the
core is ever evaluated as an expression.  What is collected:

* registers: the general registers of each thread's innermost frame
  (``gdb.Architecture.registers("general")``), untyped;
* frames: the first :data:`MAX_FRAMES` frames of each thread, their
  arguments and locals with their DWARF types (``Frame.block()`` up to the
  function's block), and the frame's raw stack words ``[sp, caller's sp)``
  (the red zone below ``sp`` too, for the innermost frame), untyped;
* globals and statics: gdb 13's ``gdb.Objfile`` has no list of symtabs, so the
  names in ``info variables -n`` (variables with debug info) lead to one
  symbol per source file, whose symtab's global and static blocks are then
  iterated.  Static binaries whose libc has no DWARF contribute only the
  program's own variables, which are the ones with types.

A root whose type holds no pointer is left out (the raw stack scan still
sees the words of a frame).  Thread and frame selection are restored.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import gdb  # type: ignore[import-not-found]

from gdbext.gdbmem import GdbInferiorSource
from gdbext.refs import MAX_DEPTH, ChunkIndex, Member, PointerSlot, ReferenceFinder, Root, TypeLayout

__all__ = ["collect_roots", "thread_roots", "global_roots", "own_objfiles", "reference_finder", "LayoutBuilder",
           "MAX_FRAMES", "SYSTEM_DIRS"]

MAX_FRAMES = 64  #: frames per thread
MAX_ELEMENTS = 4096  #: elements of an array flattened into its parent's slots
MAX_STRIDED = 1 << 20  #: elements of an array of pointers (or of structs with single pointer slots)
MAX_SLOTS = 1 << 16  #: pointer slots of one type
MAX_NESTING = 16  #: struct-in-struct depth
MAX_FRAME_SCAN = 64 << 10  #: raw stack bytes scanned per frame
OUTERMOST_SCAN = 2048  #: raw bytes scanned above the outermost frame's sp when its CFA is unknown
RED_ZONE = {"i386:x86-64": 128}  #: bytes below sp a leaf function may use (System V x86-64 ABI)
FALLBACK_REGISTERS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12",
                      "r13", "r14", "r15", "rip")

_FUNCTION = TypeLayout("function", 0, kind="function")
_CHARS = {"char", "signed char", "unsigned char"}


def _code(name: str) -> int:
    return int(getattr(gdb, name, -1))


class LayoutBuilder:
    """:class:`~gdbext.refs.TypeLayout` objects from ``gdb.Type``, cached by type name.

    Pointer targets are lazy (a struct may point to itself); arrays of
    pointers become one strided slot, other arrays are flattened up to
    :data:`MAX_ELEMENTS` elements.
    """

    def __init__(self) -> None:
        self._cache: Dict[str, TypeLayout] = {}

    @staticmethod
    def _key(gtype: Any) -> Optional[str]:
        text = str(gtype)
        return None if "{...}" in text else text  # anonymous structs share their spelling

    def layout(self, gtype: Any, depth: int = 0) -> TypeLayout:
        """The layout of ``gtype`` (typedefs kept in the name)."""
        key = self._key(gtype)
        if key is not None and key in self._cache:
            return self._cache[key]
        lay = self._build(gtype, depth)
        if key is not None:
            self._cache[key] = lay
        return lay

    def _pointee(self, target: Any) -> Tuple[str, object]:
        """(name, lazy layout) of a pointer's target; None layout: unknown bytes, scanned raw."""
        try:
            plain = target.unqualified()
        except (gdb.error, AttributeError):
            plain = target
        name = str(plain)
        s = target.strip_typedefs()
        code = s.code
        if code == gdb.TYPE_CODE_VOID:
            return name, None
        if code == gdb.TYPE_CODE_FUNC:
            return name, _FUNCTION
        if code in (gdb.TYPE_CODE_INT, _code("TYPE_CODE_CHAR")) and s.sizeof == 1:
            return name, None
        if code in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION) and not s.fields():
            return name, None  # incomplete (opaque) type
        return name, lambda: self.layout(plain)

    def _build(self, gtype: Any, depth: int) -> TypeLayout:
        name = str(gtype)
        s = gtype.strip_typedefs()
        code = s.code
        size = s.sizeof
        if code in (gdb.TYPE_CODE_PTR, gdb.TYPE_CODE_REF, _code("TYPE_CODE_RVALUE_REF")):
            tname, lazy = self._pointee(s.target())
            return TypeLayout(name, size, [PointerSlot(0, "", tname, lazy)], kind="pointer")
        if code in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION) and depth <= MAX_NESTING:
            return self._struct(name, s, depth)
        if code == gdb.TYPE_CODE_ARRAY and depth <= MAX_NESTING:
            return self._array(name, s, depth)
        return TypeLayout(name, size, kind="scalar")

    def _struct(self, name: str, s: Any, depth: int) -> TypeLayout:
        slots: List[PointerSlot] = []
        members: List[Member] = []
        truncated = False
        for f in s.fields():
            bitpos = getattr(f, "bitpos", None)
            if bitpos is None:  # a static member
                continue
            off = bitpos // 8
            fname = f.name or ""
            base = bool(getattr(f, "is_base_class", False))
            if getattr(f, "bitsize", 0):
                members.append(Member(fname, off, max(f.bitsize // 8, 1)))
                continue
            if getattr(f, "artificial", False):  # the vtable pointer: points into code, never the heap
                continue
            if base and not f.type.strip_typedefs().fields():  # an empty base takes no room (C++ EBO)
                continue
            sub = self.layout(f.type, depth + 1)
            members.append(Member("" if base else fname, off, f.type.sizeof, sub if sub.is_composite else None))
            prefix = "" if base or not fname else "." + fname
            for sl in sub.slots:
                if len(slots) >= MAX_SLOTS:
                    truncated = True
                    break
                slots.append(sl.shifted(off, prefix))
            truncated = truncated or sub.truncated
        kind = "union" if s.code == gdb.TYPE_CODE_UNION else "struct"
        return TypeLayout(name, s.sizeof, slots, members, kind=kind, truncated=truncated)

    def _array(self, name: str, s: Any, depth: int) -> TypeLayout:
        try:
            lo, hi = s.range()
        except (gdb.error, RuntimeError):
            lo, hi = 0, -1
        count = max(hi - lo + 1, 0)
        elem_t = s.target()
        elem = self.layout(elem_t, depth + 1)
        es = elem_t.strip_typedefs().sizeof
        slots: List[PointerSlot] = []
        truncated = elem.truncated
        if elem.slots and es > 0 and count:
            if count > 1 and all(sl.count == 1 and not sl.stride for sl in elem.slots):
                n = min(count, MAX_STRIDED)
                truncated = truncated or n < count
                slots = [PointerSlot(sl.offset, "", sl.target_name, sl.target, n, es, sl.path, lo) for sl in elem.slots]
            else:
                n = min(count, MAX_ELEMENTS)
                truncated = truncated or n < count
                for i in range(n):
                    if len(slots) + len(elem.slots) > MAX_SLOTS:
                        truncated = True
                        break
                    slots.extend(sl.shifted(i * es, f"[{lo + i}]") for sl in elem.slots)
        return TypeLayout(name, s.sizeof, slots, kind="array", element=elem, count=count, truncated=truncated)


# -- threads, registers, frames ---------------------------------------------------
class _Target:
    """Pointer size and byte order of the selected inferior, and its words as bytes."""

    def __init__(self) -> None:
        self.ps = int(gdb.lookup_type("void").pointer().sizeof)
        self.big = "big endian" in gdb.execute("show endian", to_string=True)
        self.mask = (1 << (8 * self.ps)) - 1

    def word(self, value: int) -> bytes:
        return (value & self.mask).to_bytes(self.ps, "big" if self.big else "little")


def _register_names(frame: Any) -> List[str]:
    arch = frame.architecture()
    if hasattr(arch, "registers"):  # gdb 12 and later
        try:
            return [r.name for r in arch.registers("general")]
        except (gdb.error, ValueError):
            pass
    return list(FALLBACK_REGISTERS)


def _register_roots(frame: Any, thread: int, function: Optional[str], tgt: _Target) -> List[Root]:
    """The pointer-sized general registers of the innermost frame, untyped."""
    roots = []
    for name in _register_names(frame):
        try:
            value = frame.read_register(name)
            t = value.type.strip_typedefs()
            if t.sizeof != tgt.ps or t.code not in (gdb.TYPE_CODE_INT, gdb.TYPE_CODE_PTR):
                continue
            raw = int(value)
        except (gdb.error, ValueError):
            continue
        roots.append(Root(f"{name} (thread {thread})", None, tgt.ps, None, "register", thread, 0, function,
                          tgt.word(raw)))
    return roots


def _frame_function(frame: Any) -> str:
    try:
        fn = frame.function()
        if fn is not None:
            return str(fn.print_name)
        return str(frame.name() or "??")
    except gdb.error:
        return "??"


def _frame_symbols(frame: Any) -> List[Any]:
    """Arguments and locals in scope at the frame's pc, innermost first, shadowed names left out."""
    try:
        block = frame.block()
    except (RuntimeError, gdb.error):
        return []
    seen: Set[str] = set()
    out = []
    while block is not None:
        for sym in block:
            if (sym.is_variable or sym.is_argument) and sym.name not in seen:
                seen.add(sym.name)
                out.append(sym)
        if block.function is not None:
            break
        block = block.superblock
    return out


def _variable_root(sym: Any, gframe: Any, builder: LayoutBuilder, tgt: _Target, **where: Any) -> Optional[Root]:
    """A typed root for a variable whose type holds a pointer (None otherwise)."""
    try:
        value = sym.value(gframe) if gframe is not None else sym.value()
        if value.is_optimized_out:
            return None
        gtype = value.type
        layout = builder.layout(gtype)
        if not layout.slots:
            return None
        code = gtype.strip_typedefs().code
        if code in (gdb.TYPE_CODE_REF, _code("TYPE_CODE_RVALUE_REF")):
            # a C++ reference: gdb shows the referent; the pointer it holds is the referent's address
            target = int(value.referenced_value().address)
            return Root(sym.name, None, tgt.ps, layout, value=tgt.word(target), **where)
        address = value.address
        if address is not None:
            return Root(sym.print_name if gframe is None else sym.name, int(address), layout.size, layout, **where)
        if code != gdb.TYPE_CODE_PTR:
            return None  # an aggregate in registers: rare, and not addressable
        return Root(sym.name, None, tgt.ps, layout, value=tgt.word(int(value)), **where)
    except (gdb.error, RuntimeError, ValueError, TypeError):
        return None


def _cfa(frame: Any) -> Optional[int]:
    """The frame's canonical frame address, from ``info frame`` ("frame at 0x...")."""
    try:
        frame.select()
        text = gdb.execute("info frame", to_string=True)
    except gdb.error:
        return None
    m = re.search(r"frame at (0x[0-9a-fA-F]+)", text)
    return int(m.group(1), 16) if m else None


def _frames(limit: int) -> List[Any]:
    frames: List[Any] = []
    try:
        frame = gdb.newest_frame()
    except gdb.error:
        return frames
    while frame is not None and len(frames) < limit:
        frames.append(frame)
        try:
            frame = frame.older()
        except gdb.error:
            break
    return frames


def _sp(frame: Any, tgt: _Target) -> Optional[int]:
    try:
        return int(frame.read_register("sp")) & tgt.mask
    except (gdb.error, ValueError):
        return None


def _stack_span(frames: List[Any], sps: List[Optional[int]], n: int) -> Optional[Tuple[int, int]]:
    """``[sp, caller's sp)`` of frame ``n``: its locals, saved registers and outgoing arguments."""
    sp = sps[n]
    if sp is None:
        return None
    older = sps[n + 1] if n + 1 < len(sps) else None
    if older is not None and older > sp:
        hi = older
    else:
        cfa = _cfa(frames[n]) if n + 1 == len(frames) else None
        hi = cfa if cfa is not None and cfa > sp else sp + OUTERMOST_SCAN
    return sp, min(hi, sp + MAX_FRAME_SCAN)


def _frame_roots(frame: Any, where: Dict[str, Any], builder: LayoutBuilder, tgt: _Target) -> List[Root]:
    """Typed roots of a frame's arguments and locals (its function's statics as globals)."""
    roots = []
    for sym in _frame_symbols(frame):
        if getattr(sym, "addr_class", None) == gdb.SYMBOL_LOC_STATIC:
            root = _variable_root(sym, None, builder, tgt, kind="global", function=where["function"])
            if root is not None:
                root.path = f"{where['function']}::{sym.name}"
        else:
            root = _variable_root(sym, frame, builder, tgt, **where)
        if root is not None:
            roots.append(root)
    return roots


def _one_thread(thread: Any, multi: bool, builder: LayoutBuilder, tgt: _Target, max_frames: int,
                registers: bool, variables: bool, raw_stack: bool) -> List[Root]:
    frames = _frames(max_frames)
    if not frames:
        return []
    roots: List[Root] = []
    if registers:
        roots += _register_roots(frames[0], thread.num, _frame_function(frames[0]), tgt)
    sps = [_sp(f, tgt) for f in frames]
    red = RED_ZONE.get(frames[0].architecture().name(), 0)
    for n, frame in enumerate(frames):
        func = _frame_function(frame)
        context = (f"thread {thread.num} " if multi else "") + f"frame {n} in {func}"
        where: Dict[str, Any] = dict(kind="stack", thread=thread.num, frame=n, function=func, context=context)
        if variables:
            roots += _frame_roots(frame, where, builder, tgt)
        span = _stack_span(frames, sps, n) if raw_stack else None
        if span is not None:
            if n == 0 and red:  # live locals of a leaf function, or leftovers: named apart
                roots.append(Root("red zone", span[0] - red, red, None, **where))
            roots.append(Root("stack", span[0], span[1] - span[0], None, **where))
    return roots


def thread_roots(builder: Optional[LayoutBuilder] = None, max_frames: int = MAX_FRAMES, registers: bool = True,
                 variables: bool = True, raw_stack: bool = True) -> List[Root]:
    """Registers, frame variables and raw stack words of every thread of the selected inferior.

    The selected thread and frame are restored.
    """
    builder = builder or LayoutBuilder()
    tgt = _Target()
    try:
        original = gdb.selected_thread()
    except gdb.error:
        original = None
    if original is None:
        return []
    try:
        selected = gdb.selected_frame()
    except gdb.error:
        selected = None
    threads = sorted(gdb.selected_inferior().threads(), key=lambda t: t.num)
    roots: List[Root] = []
    try:
        for thread in threads:
            thread.switch()
            roots += _one_thread(thread, len(threads) > 1, builder, tgt, max_frames, registers, variables,
                                 raw_stack)
    finally:
        if original.is_valid():
            original.switch()
        if selected is not None and selected.is_valid():
            selected.select()
    return roots


# -- globals ---------------------------------------------------------------------
#: Objfiles under these directories are the system's, not the program's own.
SYSTEM_DIRS = ("/lib/", "/lib32/", "/lib64/", "/usr/lib/", "/usr/lib32/", "/usr/lib64/", "/usr/libexec/")

_MSYMBOL = re.compile(r"^\[\s*\d+\]\s+[DdBb]\s+0x[0-9a-fA-F]+\s+(\S+)\s+section\s")
_FILE = re.compile(r"^File (.+):$")
_FUNC_PTR = re.compile(r"\(\s*\*+\s*([A-Za-z_][\w:]*)")
_LAST_NAME = re.compile(r"([A-Za-z_][\w:]*)\s*(?:\[[^\]]*\]\s*)*$")


def own_objfiles(include_system: bool = False) -> List[Any]:
    """The program's own objfiles: the executable and its libraries outside :data:`SYSTEM_DIRS`.

    Separate debug files are represented by the objfile they belong to.
    """
    out = []
    try:
        executable = gdb.current_progspace().filename
    except (gdb.error, AttributeError):
        executable = None
    for o in gdb.objfiles():
        if not o.is_valid() or getattr(o, "owner", None) is not None:
            continue
        name = o.filename or ""
        if not os.path.isabs(name):  # "system-supplied DSO at 0x...": the vDSO
            continue
        if include_system or name == executable or not name.startswith(SYSTEM_DIRS):
            out.append(o)
    return out


def _data_symbol_names(objfile: Any) -> Optional[List[str]]:
    """Names of the data and bss minimal symbols of ``objfile`` (None when gdb cannot list them).

    ``maint print msymbols`` reads the ELF symbol table gdb already holds and
    expands no debug info, so a libc with DWARF costs nothing here.
    """
    if any(ord(c) < 32 for c in objfile.filename):
        return None  # an objfile path can come from the core (shared libraries): never let it span lines
    name = objfile.filename.replace("\\", "\\\\").replace('"', '\\"')
    try:
        text = gdb.execute(f'maint print msymbols -objfile "{name}"', to_string=True)
    except gdb.error:
        return None
    names = []
    for line in text.splitlines():
        m = _MSYMBOL.match(line.strip())
        if m and "@" not in m.group(1):
            names.append(m.group(1))
    return names


def _declared_names(text: str) -> List[Tuple[str, str]]:
    """(file, name) for each variable ``info variables -n`` lists."""
    out = []
    current = None
    for line in text.splitlines():
        m = _FILE.match(line.strip())
        if m:
            current = m.group(1)
            continue
        if current is None or not line.strip().endswith(";"):
            continue
        decl = re.sub(r"^\s*\d+:\s*", "", line).strip().rstrip(";").strip()
        m = _FUNC_PTR.search(decl) or _LAST_NAME.search(decl)
        if m:
            out.append((current, m.group(1)))
    return out


def _candidates(name: str) -> List[Any]:
    """Every symbol called ``name``: the global one and each file's static one."""
    found: List[Any] = []
    if hasattr(gdb, "lookup_static_symbols"):  # gdb 10 and later: every file's static of that name
        try:
            found += list(gdb.lookup_static_symbols(name))
        except gdb.error:
            pass
    for lookup in (gdb.lookup_global_symbol, gdb.lookup_static_symbol):
        try:
            sym = lookup(name)
        except gdb.error:
            sym = None
        if sym is not None:
            found.append(sym)
    return found


def _owner(objfile: Any) -> Any:
    return getattr(objfile, "owner", None) or objfile


def _variable_names(objfiles: List[Any]) -> List[str]:
    """Names worth a symbol lookup: data symbols of ``objfiles``, or ``info variables -n`` when unlisted."""
    names: List[str] = []
    missing = False
    for o in objfiles:
        got = _data_symbol_names(o)
        if got is None:
            missing = True
        else:
            names += got
    if missing:
        try:
            names += [n for _, n in _declared_names(gdb.execute("info variables -n", to_string=True))]
        except gdb.error:
            pass
    return list(dict.fromkeys(names))


def global_roots(builder: Optional[LayoutBuilder] = None, include_system: bool = False) -> List[Root]:
    """Every global and file-static variable with debug info, of the program's own objfiles, holding a pointer.

    gdb 13 lists no symtabs per objfile, so each objfile's data symbols (its
    ELF symbol table, as gdb holds it) are looked up as typed symbols, and the
    global and static blocks of every compilation unit found that way are
    enumerated whole.

    :param include_system: search libraries under :data:`SYSTEM_DIRS` too (a libc with debug info)
    """
    builder = builder or LayoutBuilder()
    tgt = _Target()
    objfiles = own_objfiles(include_system)
    wanted = {id(o) for o in objfiles}
    done: Set[Tuple[str, str]] = set()  # compilation units enumerated: (objfile, source file)
    covered: Set[str] = set()  # names seen in an enumerated block
    roots: List[Root] = []
    statics: Dict[int, str] = {}  # id(root) -> its file, for file statics
    seen: Set[Tuple[int, str]] = set()
    for name in _variable_names(objfiles):
        if name in covered:
            continue
        for sym in _candidates(name):
            symtab = sym.symtab
            if symtab is None or symtab.objfile is None or id(_owner(symtab.objfile)) not in wanted:
                continue
            key = (symtab.objfile.filename, symtab.fullname())
            if key in done:
                continue
            done.add(key)
            for static, block in ((False, symtab.global_block()), (True, symtab.static_block())):
                for s in block:
                    if not s.is_variable:
                        continue
                    covered.add(s.name)
                    root = _variable_root(s, None, builder, tgt, kind="global")
                    if root is None or root.address is None or root.layout is None:
                        continue
                    if (root.address, root.layout.name) in seen:
                        continue
                    seen.add((root.address, root.layout.name))
                    roots.append(root)
                    if static:
                        statics[id(root)] = s.symtab.filename if s.symtab is not None else symtab.filename
    # file statics of the same name in several files: named as gdb spells them, 'b.c'::s_cache
    counts = Counter(r.path for r in roots)
    for r in roots:
        if counts[r.path] > 1 and id(r) in statics:
            r.path = f"'{os.path.basename(statics[id(r)])}'::{r.path}"
    return roots


def collect_roots(max_frames: int = MAX_FRAMES, registers: bool = True, variables: bool = True,
                  raw_stack: bool = True, globals_: bool = True, include_system: bool = False) -> List[Root]:
    """Every root of the selected inferior: registers, frames (variables and raw words), globals.

    :param include_system: also the globals of system libraries with debug info (see :func:`global_roots`)
    """
    builder = LayoutBuilder()
    roots = thread_roots(builder, max_frames, registers, variables, raw_stack)
    if globals_:
        roots += global_roots(builder, include_system)
    unique: List[Root] = []
    seen: Set[Tuple[object, ...]] = set()
    for r in roots:
        key = (r.kind, r.address, r.layout.name if r.layout else None, r.path, r.thread) if r.address is None \
            else (r.address, r.layout.name if r.layout else None, r.size, r.kind == "global")
        if key in seen:
            continue
        seen.add(key)
        unique.append(r)
    return unique


def reference_finder(mem: Optional[GdbInferiorSource] = None, heap: Any = None, pools: Sequence[Any] = (),
                     max_depth: int = MAX_DEPTH,
                     scan_heap: bool = True) -> ReferenceFinder:
    """A :class:`~gdbext.refs.ReferenceFinder` over the selected inferior, built on its first question.

    ``finder.references`` and ``finder.field_at`` are the forensics report's
    ``references(chunk_address)`` and ``field_at(chunk_address, offset)`` callbacks.

    :param mem: the memory source (default: the selected inferior)
    :param heap: the located glibc heap, or None
    :param pools: walked pool reports
    """
    mem = mem or GdbInferiorSource()
    pools = list(pools)
    return ReferenceFinder(mem, collect_roots, lambda: ChunkIndex.from_heap(heap, pools, mem.pointer_size),
                           max_depth, scan_heap=scan_heap)
