# gdbext/forensics/faults.py - what a SIGSEGV/SIGBUS says about the heap: the
# faulting pointer tied to a damaged field of an existing finding, a poison
# pointer traced to the freed chunk it was read from, or a wild pointer.
"""Faults through bad pointers.

The faulting instruction's base register (``mov eax, [rax]`` with ``rax``
= ``0xa5a5a5a5a5a5a5a5``) is the pointer that was bad; the fault address is
that plus the displacement.  Three outcomes:

* the pointer equals a damaged field of a finding already made (the text
  an overflow left in a free-list link): that finding explains the crash;
* the pointer is a *freed* fill (glibc's perturb byte, a pool's
  ``fill.free``): the instruction that loaded it (the last load into the
  base register before ``pc`` in the same function) gives the offset it was
  read from, and the freed chunk holding that fill at that offset is the
  one used after free (a READ after free);
* otherwise a text or poison value, or a non-canonical address, is a
  ``wild-pointer`` (``poison`` for a known fill), with the places the same
  value is stored in the heap.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from ..branch import BranchTarget, branch_target
from ..disasm import Insn, decode, is_canonical
from ..errors import GdbextError
from ..poison import WordClass, classify_word
from .chunks import ChunkIndex, read_upto
from .context import ForensicContext
from .continuity import find_run
from .evidence import location
from .model import ChunkView, Finding
from .sites import function_start
from .uaf import tail_note, uaf_finding, unfilled_tail

__all__ = ["find_fault_findings", "fault_pointer", "branch_fault", "loading_instruction", "stored_at", "classify"]

#: Places listed where a bad value is stored, at most.
_MAX_STORED = 8
#: Bytes below a branch target's slot searched for the run that overwrote it.
_BELOW = 1024
#: A function longer than this is not swept for the loading instruction.
_MAX_SWEEP = 1 << 14


def branch_fault(ctx: ForensicContext) -> Optional[BranchTarget]:
    """The code pointer of the faulting indirect call/jmp or ret, when it is what was bad (non-canonical).

    The CPU raises #GP on such a branch itself (si_addr 0): the faulting value
    is the target, not the stack slot a call pushes.
    """
    if ctx.signal not in (None, 7, 11):
        return None
    insn = ctx.instruction()
    if insn is None or not ctx.registers:
        return None
    ps, order = ctx.pointer_size, ctx.order

    def word(address: int) -> Optional[int]:
        try:
            raw = ctx.mem.read(address, ps)
        except GdbextError:
            return None
        return int.from_bytes(raw, order) if len(raw) == ps else None

    br = branch_target(insn, ctx.registers, word)
    if br is None or (ps == 8 and is_canonical(br.target)) or ps != 8:
        return None
    return br


def fault_pointer(ctx: ForensicContext) -> Optional[Tuple[int, str]]:
    """(bad pointer, where it was seen): a bad branch target, the faulting access's base register, else the
    fault address."""
    if ctx.signal not in (None, 7, 11) or (ctx.signal is None and ctx.fault_address is None):
        return None
    br = branch_fault(ctx)
    if br is not None:
        insn = ctx.instruction()
        return br.target, f"code pointer: the target of {insn.text if insn is not None else 'the branch'} ({br.how})"
    acc = ctx.access()
    if acc is not None and not acc.implicit and acc.base is not None and acc.base_value is not None \
            and acc.base not in ("rip", "eip", "rsp", "esp", "rbp", "ebp"):
        return acc.base_value, f"base register {acc.base} of the faulting access {acc.expression}"
    if ctx.fault_address is not None:
        return ctx.fault_address, "fault address"
    return None


def _family(reg: str) -> Tuple[str, ...]:
    if reg.startswith("r") and reg[1:].isdigit():
        return (reg, reg + "d", reg + "w", reg + "b")
    base = reg[1:] if reg.startswith(("r", "e")) and len(reg) == 3 else reg
    return ("r" + base, "e" + base, base, base[0] + "l" if base.endswith("x") else base + "l")


def loading_instruction(ctx: ForensicContext, reg: str) -> Optional[Insn]:
    """The last ``mov reg, [mem]`` before ``pc`` in the faulting function (linear sweep), or None."""
    if ctx.pc is None:
        return None
    start = function_start(ctx, ctx.pc)
    if start is None or not 0 < ctx.pc - start <= _MAX_SWEEP:
        return None
    code = read_upto(ctx.mem, start, ctx.pc - start)
    try:
        insns = decode(code, start, 0, ctx.arch)
    except GdbextError:
        return None
    names = _family(reg)
    last: Optional[Insn] = None
    for insn in insns:
        if insn.address >= ctx.pc:
            break
        dest = insn.op_str.split(",")[0].strip()
        if dest in names:
            last = insn if insn.mnemonic.startswith("mov") and insn.mem_operands and "," in insn.op_str else None
    return last


def stored_at(ctx: ForensicContext, index: ChunkIndex, value: int) -> List[Tuple[int, Optional[ChunkView]]]:
    """Aligned places in the heap segments and pools holding ``value`` (at most :data:`_MAX_STORED`)."""
    ps = ctx.pointer_size
    needle = value.to_bytes(ps, ctx.order)
    spans: List[Tuple[int, int]] = []
    if ctx.heap is not None:
        spans += [(s.start, s.end) for s in ctx.heap.segments]
    spans += [(r.pool.first, r.pool.end) for r in ctx.pools]
    out: List[Tuple[int, Optional[ChunkView]]] = []
    for lo, hi in spans:
        data = index.read(lo, hi - lo)
        pos = data.find(needle)
        while pos >= 0 and len(out) < _MAX_STORED:
            if (lo + pos) % ps == 0:
                out.append((lo + pos, index.find(lo + pos)))
            pos = data.find(needle, pos + 1)
    return out


def classify(ctx: ForensicContext, value: int) -> Optional[WordClass]:
    """What a pointer-sized value looks like, the context's allocators first (glibc, then each pool)."""
    ps, order = ctx.pointer_size, ctx.order
    if ctx.heap is not None:
        word = classify_word(value, ps, order, perturb_byte=ctx.perturb_byte, allocator="glibc")
        if word is not None and word.preset != "generic":
            return word
    for report in ctx.pools:
        spec = report.pool.spec
        if spec.fill is None and spec.guard is None:
            continue
        word = classify_word(value, ps, order, allocator="pool", pool_fill=spec.fill, pool_guard=spec.guard)
        if word is not None and word.preset != "generic":
            return word
    return classify_word(value, ps, order, perturb_byte=ctx.perturb_byte)


def _attach(findings: Sequence[Finding], value: int, how: str, note: str) -> bool:
    """Tie the bad pointer to a finding whose damaged field holds it."""
    for f in findings:
        for d in f.evidence.get("damaged", []) or []:
            if not isinstance(d, dict):
                continue
            if d.get("value") == f"{value:#x}":
                f.evidence["fault"] = (f"the faulting pointer {value:#x} ({how}{note}) is the value of "
                                       f"{d.get('field')} at {d.get('address')}: the program followed the "
                                       "damaged link")
            elif d.get("held_value") == f"{value:#x}":
                f.evidence["fault"] = (f"the faulting pointer {value:#x} ({how}{note}) is the value "
                                       f"{d.get('held_in')} holds, loaded from {d.get('field')} at "
                                       f"{d.get('address')}: the program followed the damaged link")
            else:
                continue
            f.explains_crash = True
            return True
    return False


def _loaded_by(ctx: ForensicContext) -> Optional[Insn]:
    """The instruction that read the bad pointer from memory: the branch itself (``call [rax + 8]``), the last
    load into the branch's or the access's base register."""
    br = branch_fault(ctx)
    if br is not None:
        if br.register is not None:
            return loading_instruction(ctx, br.register)
        return ctx.instruction() if br.access is not None and not br.access.implicit else None
    acc = ctx.access()
    if acc is None or acc.base is None:
        return None
    return loading_instruction(ctx, acc.base)


def _freed_holders(ctx: ForensicContext, index: ChunkIndex, value: int, offset: int) -> List[ChunkView]:
    """Freed chunks holding ``value`` at user offset ``offset`` (glibc bins and fastbins, pool free slots)."""
    ps = ctx.pointer_size
    out: List[ChunkView] = []
    if ctx.check is not None and ctx.heap is not None:
        fi = ctx.check.index
        for addr, lid in fi.owner.items():
            if fi.lists[lid].kind == "tcache":
                continue
            word = index.read(addr + 2 * ps + offset, ps)
            if int.from_bytes(word, ctx.order) == value:
                view = index.glibc_chunk(addr)
                if view is not None and view.user_address + offset + ps <= view.end:
                    out.append(view)
    for _report, view in index.pool_views():
        if view.state == "free" and 0 <= offset <= view.usable - ps:
            if int.from_bytes(index.read(view.user_address + offset, ps), ctx.order) == value:
                out.append(view)
    return out


def _read_after_free(ctx: ForensicContext, index: ChunkIndex, findings: List[Finding], value: int,
                     word: WordClass, how: str) -> Optional[Finding]:
    load = _loaded_by(ctx)
    if load is None or not load.mem_operands:
        return None
    op = load.mem_operands[0]
    holders = _freed_holders(ctx, index, value, op.disp)
    pointed = {v.address for _p, v in ((p, index.find(p)) for p in ctx.candidate_pointers) if v is not None}
    if len(holders) > 1:
        holders = [h for h in holders if h.address in pointed] or holders
    if len(holders) != 1:
        return None
    chunk = holders[0]
    address = chunk.user_address + op.disp
    ev: Dict[str, object] = {
        "fault": (f"the faulting pointer {value:#x} ({how}) is {word.describe()}; it was loaded by "
                  f"{load.address:#x}: {load.text} from offset {op.disp} of a freed chunk, "
                  f"{chunk.label} holds exactly that value there"),
        "read": {"address": f"{address:#x}", "size": op.size, "instruction": f"{load.address:#x}: {load.text}",
                 "field": ctx.field_name(chunk.address, op.disp) or index.field_name(chunk, address)},
    }
    if len(pointed & {chunk.address}):
        ev["dangling_pointer"] = "a pointer of the crashing thread (register, frame or stack) still points into it"
    existing = next((f for f in findings if f.kind == "use-after-free" and f.chunk is not None
                     and f.chunk.address == chunk.address), None)
    tail = unfilled_tail(ctx, index, chunk)
    if tail is not None:
        ev["unfilled_tail"] = tail_note(index, chunk, tail)
    if existing is not None:
        existing.evidence.update(ev)
        existing.explains_crash = True
        return None
    f = uaf_finding(ctx, index, chunk, [], ev, [("fault", chunk.address)], address=address, access="READ",
                    reused=chunk.state != "free")
    f.explains_crash = True
    return f


def _branch_source(ctx: ForensicContext, value: int) -> Dict[str, object]:
    """Where a bad branch target was read from (the return-address slot, a memory operand), and the run of
    text, fill or binary data that reaches that slot from below (the buffer that overran it)."""
    br = branch_fault(ctx)
    if br is None or br.target != value or br.access is None:
        return {}
    slot = br.access.address
    region = ctx.mem.region_of(slot)
    out: Dict[str, object] = {"loaded_from": f"{br.how} at {slot:#x}" + (
        f" ({region.path or 'anonymous memory'})" if region is not None and region.path else "")}
    lo = max(slot - _BELOW, region.start if region is not None else slot - _BELOW)
    data = read_upto(ctx.mem, lo, slot + _BELOW - lo)
    run = find_run(data, lo, slot)
    if run is not None and run.start < slot < run.end:
        out["overrun"] = run.evidence()
        out["overrun"]["note"] = (f"{run.kind} runs unbroken from {run.start:#x} ({slot - run.start} bytes below) "
                                  f"over the slot the target was read from: a buffer there ran over it")
    return out


def find_fault_findings(ctx: ForensicContext, index: ChunkIndex, findings: List[Finding]) -> List[Finding]:
    """New findings for the fault (and fault evidence attached to existing ones)."""
    got = fault_pointer(ctx)
    if got is None:
        return []
    value, how = got
    word = classify(ctx, value)
    note = f": {word.describe()}" if word is not None else ""
    if _attach(findings, value, how, note):
        return []
    if word is not None and word.kind == "poison" and word.state == "freed":
        found = _read_after_free(ctx, index, findings, value, word, how)
        if found is not None:
            return [found]
        if any(f.explains_crash for f in findings):
            return []
    wild = word is not None or (ctx.pointer_size == 8 and not is_canonical(value))
    if not wild or ctx.mem.region_of(value) is not None:
        return []
    places = stored_at(ctx, index, value)
    ev: Dict[str, object] = {"pointer": f"{value:#x}", "seen_as": how}
    ev.update(_branch_source(ctx, value))
    if word is not None:
        ev["looks_like"] = word.describe()
    if ctx.pointer_size == 8 and not is_canonical(value):
        ev["non_canonical"] = "the address is non-canonical: the CPU raised a general-protection fault"
    chunk = None
    if places:
        ev["stored_at"] = [f"{a:#x}" + (f" ({location(a, c, index)})" if c is not None else "") for a, c in places]
        holders = {c.address: c for _a, c in places if c is not None}
        if len(holders) == 1:
            chunk = next(iter(holders.values()))
    kind = "poison" if word is not None and word.kind == "poison" else "wild-pointer"
    what = word.describe() if word is not None else "not a mapped address"
    msg = f"SEGV on unknown address {ctx.fault_address or value:#x}: the pointer {value:#x} ({how}) is {what}"
    f = Finding(kind, ctx.fault_address if ctx.fault_address is not None else value, chunk, msg, evidence=ev,
                keys=[("fault", value)])
    f.explains_crash = True
    return [f]
