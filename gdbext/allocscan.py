"""Every call to an allocation function in a program, from its code and DWARF.

glibc records no allocation site, so a glibc chunk's site can only be
*inferred*: the candidates are the program's calls to an allocation function
(``malloc``, ``calloc``, ``realloc``, ``strdup``, ``operator new``...) or to a
*wrapper* (a function that returns what one of them returned), with the size
argument recovered from the instructions before the call where it is a
constant, and where the call's result is stored just after (a local
variable, a global, a struct member at an offset), named from DWARF.

:func:`scan_program` reads the executable only (x86-64, with DWARF for the
program's own functions: without it nothing is inferred), bounded by
:data:`MAX_CODE` bytes of code and :data:`MAX_FUNCTIONS` functions.  No code
is run; nothing here needs gdb.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .elfsyms import checked_sections, open_elf
from .errors import GdbextError

__all__ = ["AllocCall", "ProgramScan", "scan_program", "ALLOC_FUNCTIONS", "MAX_CODE", "MAX_FUNCTIONS"]

#: Bounds of one scan (a crafted binary cannot make it slow).
MAX_CODE = 8 << 20
MAX_FUNCTIONS = 20000
#: How far back from a call the size argument is searched (instructions).
LOOKBACK = 40

#: Allocation functions: name -> indexes of the argument registers whose
#: product is the requested size (``None``: a string's length, unknown).
ALLOC_FUNCTIONS: Dict[str, Optional[Tuple[int, ...]]] = {
    "malloc": (0,), "__libc_malloc": (0,), "valloc": (0,), "pvalloc": (0,),
    "calloc": (0, 1), "__libc_calloc": (0, 1),
    "realloc": (1,), "__libc_realloc": (1,), "reallocarray": (1, 2),
    "aligned_alloc": (1,), "memalign": (1,), "__libc_memalign": (1,), "posix_memalign": (2,),
    "strdup": None, "__strdup": None, "strndup": None, "__strndup": None,
    "_Znwm": (0,), "_Znam": (0,), "_ZnwmRKSt9nothrow_t": (0,), "_ZnamRKSt9nothrow_t": (0,),
    "_ZnwmSt11align_val_t": (0,), "_ZnamSt11align_val_t": (0,),
}
_ARG_REGS = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")
_ALIASES = {
    "rax": ("rax", "eax", "ax", "al"), "rbx": ("rbx", "ebx", "bx", "bl"), "rcx": ("rcx", "ecx", "cx", "cl"),
    "rdx": ("rdx", "edx", "dx", "dl"), "rsi": ("rsi", "esi", "si", "sil"), "rdi": ("rdi", "edi", "di", "dil"),
    "rbp": ("rbp", "ebp"), "rsp": ("rsp", "esp"),
}
for _n in range(8, 16):
    _ALIASES[f"r{_n}"] = (f"r{_n}", f"r{_n}d", f"r{_n}w", f"r{_n}b")
_CANON = {alias: full for full, names in _ALIASES.items() for alias in names}


@dataclass(frozen=True)
class Value:
    """What the backward scan knows of a register: a constant, a parameter, or nothing."""
    const: Optional[int] = None
    param: Optional[int] = None


UNKNOWN = Value()


@dataclass
class AllocCall:
    """One call that allocates, as a site candidate.

    :ivar pc: link-time address of the call to the allocation function
        (inside the wrapper when ``caller_pc`` is set).
    :ivar function: the function holding ``pc``.
    :ivar allocator: the allocation function called (``malloc``...).
    :ivar size: the requested size when it is a constant, else None.
    :ivar caller_pc: the call of the wrapper, when the allocation goes through one.
    :ivar caller: the function holding ``caller_pc``.
    :ivar stored_to: where the result goes just after the (outermost) call:
        ``("local", function, name)``, ``("global", name)``, ``("member", name)``.
    """
    pc: int
    function: str
    allocator: str
    size: Optional[int]
    caller_pc: Optional[int] = None
    caller: Optional[str] = None
    stored_to: Optional[Tuple[str, ...]] = None


@dataclass
class _Func:
    name: str
    low: int
    high: int
    frame_cfa: bool = True
    locals: Dict[int, str] = field(default_factory=dict)   # frame-base offset -> name


@dataclass
class ProgramScan:
    """The result of :func:`scan_program`."""
    calls: List[AllocCall] = field(default_factory=list)
    wrappers: Dict[str, Tuple[str, int]] = field(default_factory=dict)  # name -> (allocator, size param)
    problems: List[str] = field(default_factory=list)
    link_main: Optional[int] = None   # ``main``'s link-time address (to compute a PIE's load bias)


def _capstone() -> Any:
    import capstone  # local: loaded on first use

    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.detail = True
    return md


def _dwarf(elf: Any, scan: ProgramScan) -> Tuple[List[_Func], Dict[int, str], Dict[int, List[str]]]:
    """Own functions (with their locals), globals by address, member names by offset."""
    funcs: List[_Func] = []
    globals_: Dict[int, str] = {}
    members: Dict[int, List[str]] = {}
    if not elf.has_dwarf_info():
        scan.problems.append("no DWARF: the program's own functions are not known")
        return funcs, globals_, members
    dwarf = elf.get_dwarf_info()
    for cu in dwarf.iter_CUs():
        for die in cu.iter_DIEs():
            tag = die.tag
            if tag == "DW_TAG_subprogram" and "DW_AT_low_pc" in die.attributes and "DW_AT_name" in die.attributes:
                low = die.attributes["DW_AT_low_pc"].value
                high_attr = die.attributes.get("DW_AT_high_pc")
                if high_attr is None:
                    continue
                high = high_attr.value if high_attr.form == "DW_FORM_addr" else low + high_attr.value
                fn = _Func(_name(die), low, high)
                fb = die.attributes.get("DW_AT_frame_base")
                fn.frame_cfa = fb is None or (isinstance(fb.value, list) and fb.value[:1] == [0x9C])
                for child in die.iter_children():
                    _collect_local(child, fn)
                funcs.append(fn)
                if len(funcs) > MAX_FUNCTIONS:
                    scan.problems.append(f"more than {MAX_FUNCTIONS} functions: the rest not scanned")
                    return funcs, globals_, members
            elif tag == "DW_TAG_variable" and die.get_parent() is not None \
                    and die.get_parent().tag == "DW_TAG_compile_unit":
                loc = die.attributes.get("DW_AT_location")
                if loc is not None and isinstance(loc.value, list) and loc.value[:1] == [0x03]:
                    addr = int.from_bytes(bytes(loc.value[1:9]), "little")
                    globals_[addr] = _name(die)
            elif tag == "DW_TAG_member" and "DW_AT_name" in die.attributes:
                off = die.attributes.get("DW_AT_data_member_location")
                if off is not None and isinstance(off.value, int):
                    members.setdefault(off.value, []).append(_name(die))
    return funcs, globals_, members


def _name(die: Any) -> str:
    attr = die.attributes.get("DW_AT_name")
    value = attr.value if attr is not None else b"?"
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _sleb(data: List[int]) -> int:
    result = shift = 0
    for byte in data:
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if byte & 0x40:
                result -= 1 << shift
            break
    return result


def _collect_local(die: Any, fn: _Func) -> None:
    if die.tag in ("DW_TAG_variable", "DW_TAG_formal_parameter") and "DW_AT_name" in die.attributes:
        loc = die.attributes.get("DW_AT_location")
        if loc is not None and isinstance(loc.value, list) and loc.value[:1] == [0x91]:  # DW_OP_fbreg
            fn.locals[_sleb(loc.value[1:])] = _name(die)
    elif die.tag == "DW_TAG_lexical_block":
        for child in die.iter_children():
            _collect_local(child, fn)


def _plt_names(elf: Any, sections: Dict[int, Any], md: Any) -> Dict[int, str]:
    """Address of each PLT stub or GOT slot -> the allocation function it reaches."""
    got: Dict[int, str] = {}
    for sec in sections.values():
        if sec.name in (".rela.plt", ".rela.dyn") and hasattr(sec, "iter_relocations"):
            symtab = elf.get_section(sec["sh_link"])
            for rel in sec.iter_relocations():
                idx = rel["r_info_sym"]
                if not idx or symtab is None:
                    continue
                name = symtab.get_symbol(idx).name.split("@")[0]
                if name in ALLOC_FUNCTIONS:
                    got[rel["r_offset"]] = name
    out = dict(got)
    for sec in sections.values():
        if sec.name not in (".plt", ".plt.sec", ".plt.got"):
            continue
        data, base = sec.data(), sec["sh_addr"]
        for ins in md.disasm(data, base):
            if ins.mnemonic in ("jmp", "bnd jmp") and ins.operands and ins.operands[0].type == 3:
                mem = ins.operands[0].mem
                if mem.base and ins.reg_name(mem.base) == "rip":
                    slot = ins.address + ins.size + mem.disp
                    if slot in got:
                        out[(ins.address // 16) * 16] = got[slot]
    return out


def _reads(ins: Any, md: Any) -> Tuple[Optional[str], Any]:
    """(canonical destination register, source operand) of a plain move, else (None, None)."""
    if ins.mnemonic not in ("mov", "movsxd", "movzx", "movsx", "movabs", "lea") or len(ins.operands) != 2:
        return None, None
    dst, src = ins.operands
    if dst.type != 1:
        return None, None
    return _CANON.get(ins.reg_name(dst.reg)), src


def _writes(ins: Any, reg: str) -> bool:
    try:
        _, written = ins.regs_access()
    except Exception:  # noqa: BLE001  (capstone raises its own CsError for some encodings)
        return True
    return any(_CANON.get(ins.reg_name(r)) == reg for r in written)


def _value(insns: List[Any], idx: int, reg: str, md: Any, depth: int = 0) -> Value:
    """What ``reg`` holds just before ``insns[idx]`` (backward scan, bounded)."""
    lo = max(0, idx - LOOKBACK)
    for j in range(idx - 1, lo - 1, -1):
        ins = insns[j]
        if ins.mnemonic in ("call", "ret", "jmp") and j != idx:
            return UNKNOWN if reg != "rax" or ins.mnemonic != "call" else UNKNOWN
        if not _writes(ins, reg):
            continue
        dst, src = _reads(ins, md)
        if dst != reg or src is None or depth > 6:
            return UNKNOWN
        if ins.mnemonic == "lea":
            return UNKNOWN
        if src.type == 2:  # immediate
            return Value(const=src.imm & 0xFFFFFFFFFFFFFFFF)
        if src.type == 1:
            return _value(insns, j, _CANON.get(ins.reg_name(src.reg), ""), md, depth + 1)
        if src.type == 3 and src.mem.base and _CANON.get(ins.reg_name(src.mem.base)) == "rbp" and not src.mem.index:
            return _slot(insns, j, src.mem.disp, md, depth + 1)
        return UNKNOWN
    if idx - LOOKBACK <= 0 and reg in _ARG_REGS:
        return Value(param=_ARG_REGS.index(reg))
    return UNKNOWN


def _slot(insns: List[Any], idx: int, disp: int, md: Any, depth: int) -> Value:
    """What the stack slot ``[rbp+disp]`` holds before ``insns[idx]``: its last store."""
    for j in range(idx - 1, max(0, idx - LOOKBACK) - 1, -1):
        ins = insns[j]
        if ins.mnemonic != "mov" or len(ins.operands) != 2:
            continue
        dst, src = ins.operands
        if dst.type == 3 and dst.mem.base and _CANON.get(ins.reg_name(dst.mem.base)) == "rbp" \
                and dst.mem.disp == disp and not dst.mem.index:
            if src.type == 2:
                return Value(const=src.imm & 0xFFFFFFFFFFFFFFFF)
            if src.type == 1:
                return _value(insns, j, _CANON.get(ins.reg_name(src.reg), ""), md, depth + 1)
            return UNKNOWN
    return UNKNOWN


def _size(insns: List[Any], idx: int, args: Optional[Tuple[int, ...]], md: Any) -> Value:
    if args is None:
        return UNKNOWN
    product = 1
    for a in args:
        v = _value(insns, idx, _ARG_REGS[a], md)
        if v.param is not None and len(args) == 1:
            return v
        if v.const is None:
            return UNKNOWN
        product *= v.const
    return Value(const=product)


def _returns_result(insns: List[Any], idx: int) -> bool:
    """Does the function return, unchanged, what the call at ``insns[idx]`` returned?"""
    holds_rax, slots = True, set()
    for ins in insns[idx + 1: idx + 1 + LOOKBACK]:
        m = ins.mnemonic
        if m == "ret":
            return holds_rax
        if m in ("leave", "pop", "nop", "endbr64") or m.startswith("nop"):
            continue
        if m in ("call", "jmp") or m.startswith("j"):
            return False
        if m == "mov" and len(ins.operands) == 2:
            dst, src = ins.operands
            if dst.type == 3 and src.type == 1 and _CANON.get(ins.reg_name(src.reg)) == "rax":
                if holds_rax:
                    slots.add((dst.mem.base, dst.mem.disp))
                continue
            if dst.type == 1 and _CANON.get(ins.reg_name(dst.reg)) == "rax":
                holds_rax = src.type == 3 and (src.mem.base, src.mem.disp) in slots
                continue
        if _writes(ins, "rax"):
            holds_rax = False
    return False


def _stored_to(insns: List[Any], idx: int, fn: _Func, globals_: Dict[int, str],
               members: Dict[int, List[str]]) -> Optional[Tuple[str, ...]]:
    """Where the call's result (rax) is stored in the next few instructions."""
    for ins in insns[idx + 1: idx + 6]:
        if ins.mnemonic != "mov" or len(ins.operands) != 2:
            continue
        dst, src = ins.operands
        if not (dst.type == 3 and src.type == 1 and _CANON.get(ins.reg_name(src.reg)) == "rax"):
            if dst.type == 1 and _CANON.get(ins.reg_name(dst.reg)) == "rax":
                return None
            continue
        base = _CANON.get(ins.reg_name(dst.mem.base)) if dst.mem.base else None
        if base == "rbp":
            off = dst.mem.disp - 16 if fn.frame_cfa else dst.mem.disp
            name = fn.locals.get(off)
            return ("local", fn.name, name) if name else None
        if base == "rip" or base is None:
            addr = ins.address + ins.size + dst.mem.disp if base == "rip" else dst.mem.disp
            name = globals_.get(addr)
            return ("global", name) if name else None
        names = members.get(dst.mem.disp)
        return ("member", *names) if names else None
    return None


def scan_program(path: str) -> ProgramScan:
    """Every allocating call of the program's own (DWARF-described) functions."""
    scan = ProgramScan()
    try:
        stream, elf = open_elf(path)
    except GdbextError as exc:
        scan.problems.append(str(exc))
        return scan
    try:
        if elf["e_machine"] != "EM_X86_64":
            scan.problems.append(f"{elf['e_machine']}: only x86-64 code is scanned")
            return scan
        md = _capstone()
        sections = checked_sections(elf)
        targets: Dict[int, str] = _plt_names(elf, sections, md)
        symtab = elf.get_section_by_name(".symtab")
        if symtab is not None:
            for sym in symtab.iter_symbols():
                if sym.name == "main" and sym["st_value"]:
                    scan.link_main = sym["st_value"]
                if sym.name in ALLOC_FUNCTIONS and sym["st_value"]:
                    targets.setdefault(sym["st_value"], sym.name)
        funcs, globals_, members = _dwarf(elf, scan)
        texts = [s for s in sections.values() if s["sh_flags"] & 0x4 and s["sh_type"] == "SHT_PROGBITS"]
        code: Dict[str, List[Any]] = {}
        budget = MAX_CODE
        for fn in funcs:
            sec = next((s for s in texts if s["sh_addr"] <= fn.low < s["sh_addr"] + s["sh_size"]), None)
            size = fn.high - fn.low
            if sec is None or size <= 0 or size > budget:
                continue
            budget -= size
            start = fn.low - sec["sh_addr"] + sec["sh_offset"]
            stream.seek(start)
            code[fn.name] = list(md.disasm(stream.read(size), fn.low))
        by_name = {fn.name: fn for fn in funcs}
        own_addr = {fn.low: fn.name for fn in funcs}
        inner: Dict[str, int] = {}
        for _ in range(3):  # wrappers of wrappers
            for name, insns in code.items():
                for i, ins in enumerate(insns):
                    callee = _callee(ins, targets, own_addr)
                    if callee is None:
                        continue
                    args = ALLOC_FUNCTIONS.get(callee) if callee in ALLOC_FUNCTIONS else \
                        ((scan.wrappers[callee][1],) if callee in scan.wrappers else "skip")
                    if args == "skip":
                        continue
                    v = _size(insns, i, args, md)  # type: ignore[arg-type]
                    if v.param is not None and name not in scan.wrappers and _returns_result(insns, i):
                        scan.wrappers[name] = (scan.wrappers.get(callee, (callee, 0))[0], v.param)
                        inner[name] = inner.get(callee, ins.address) if callee in scan.wrappers else ins.address
        for name, insns in code.items():
            if name in scan.wrappers:
                continue
            fn = by_name[name]
            for i, ins in enumerate(insns):
                callee = _callee(ins, targets, own_addr)
                if callee is None or (callee not in ALLOC_FUNCTIONS and callee not in scan.wrappers):
                    continue
                store = _stored_to(insns, i, fn, globals_, members)
                if callee in ALLOC_FUNCTIONS:
                    v = _size(insns, i, ALLOC_FUNCTIONS[callee], md)
                    scan.calls.append(AllocCall(pc=ins.address, function=name, allocator=callee, size=v.const,
                                                stored_to=store))
                else:
                    allocator, param = scan.wrappers[callee]
                    v = _value(insns, i, _ARG_REGS[param], md)
                    scan.calls.append(AllocCall(pc=inner[callee], function=callee, allocator=allocator,
                                                size=v.const, caller_pc=ins.address, caller=name, stored_to=store))
    except (GdbextError, ValueError, KeyError, OSError) as exc:
        scan.problems.append(f"scan stopped: {exc}")
    finally:
        stream.close()
    return scan


def _callee(ins: Any, targets: Dict[int, str], own: Dict[int, str]) -> Optional[str]:
    if ins.mnemonic not in ("call", "jmp") or not ins.operands:
        return None
    op = ins.operands[0]
    if op.type == 2:
        return targets.get(op.imm) or (own.get(op.imm) if ins.mnemonic == "call" else None)
    if op.type == 3 and op.mem.base and ins.reg_name(op.mem.base) == "rip":
        return targets.get(ins.address + ins.size + op.mem.disp)
    return None
