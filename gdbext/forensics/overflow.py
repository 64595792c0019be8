# gdbext/forensics/overflow.py - overflow source attribution: from each damaged
# chunk header (glibc violations, pool anomalies) to the chunk before it whose
# contents run on, unbroken, into the damage; ASan-style wording.
"""Heap-buffer-overflow attribution.

For every damaged header -- glibc's ``chunk.size.*``, ``chunk.next_size``,
``chunk.prev_size``, ``chunk.flags.*``, ``top.*`` violations, a pool's
``bad-magic``, ``bad-size``, ``guard-overwritten`` and bad free-list links --
the damaged chunk (the *victim*) is found, then the chunk right before it
(the *source*).  When the source's contents run on across the end of its
region and reach the damage (:mod:`~gdbext.forensics.continuity`) the
finding is a ``heap-buffer-overflow`` from the source; otherwise it is
``metadata-corruption`` of the victim.

The region is the requested size when the allocator records it (pools) and
glibc's usable size otherwise (glibc records no requested size; the report
says so).  ``bytes_past_end`` counts from the region's end to the end of
the continuous run, or to the end of the last damaged field that continues
it when later writes (a pool slot handed out again) broke the run: then it
is a lower bound.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..glibc import Violation
from ..pools import PoolAnomaly, PoolReport
from ..textutil import printable_text
from .chunks import ChunkIndex
from .context import ForensicContext
from .continuity import Run, find_run
from .evidence import NO_RECORD, dump, field_bytes, size_class
from .model import ChunkView, Finding
from .sites import alloc_site

__all__ = ["HEADER_CHECKS", "Damage", "find_overflows", "glibc_damage", "pool_damage"]

#: glibc checks that mean a chunk header (or the top chunk's) was overwritten.
HEADER_CHECKS = frozenset({
    "chunk.size.minsize", "chunk.size.alignment", "chunk.flags.mmapped", "chunk.flags.arena",
    "chunk.size.bounds", "chunk.next_size", "chunk.size.mismatch", "chunk.prev_size",
    "chunk.prev_inuse.unlisted", "top.size", "top.bounds", "top.prev_inuse",
})

#: pool anomalies that mean a slot header was overwritten.
POOL_HEADER_KINDS = frozenset({"bad-magic", "bad-size", "freelist-outside", "freelist-misaligned",
                               "freelist-cycle", "bad-node"})

#: Bytes read past the damage when looking for the end of a run.
_TAIL = 256
#: Bytes read before the region's end when looking for the start of a run.
_HEAD = 64 << 10


@dataclass
class Damage:
    """The damaged fields of one victim chunk and the reports that name them."""

    victim: ChunkView
    fields: List[Dict[str, Any]] = field(default_factory=list)
    #: (address, size, name) of each damaged field
    spans: List[Tuple[int, int, str]] = field(default_factory=list)
    keys: List[Tuple[str, Optional[int]]] = field(default_factory=list)
    aborts: List[str] = field(default_factory=list)
    guard: Optional[PoolAnomaly] = None

    @property
    def first(self) -> int:
        return min(a for a, _s, _n in self.spans) if self.spans else self.victim.address

    @property
    def last(self) -> int:
        return max(a + s for a, s, _n in self.spans) if self.spans else self.victim.address

    def names(self) -> List[str]:
        return list(dict.fromkeys(n for _a, _s, n in self.spans))


# -- gathering the damage -----------------------------------------------------------
def _victim_of(v: Violation, ps: int) -> Optional[int]:
    if v.check == "chunk.next_size":
        return v.field_address - ps if v.field_address is not None else None
    return v.chunk


def glibc_damage(ctx: ForensicContext, index: ChunkIndex) -> Dict[int, Damage]:
    """Damaged glibc headers by victim chunk address."""
    out: Dict[int, Damage] = {}
    if ctx.check is None:
        return out
    ps = ctx.pointer_size
    for v in ctx.check.violations:
        if v.check not in HEADER_CHECKS or v.severity != "error":
            continue
        addr = _victim_of(v, ps)
        if addr is None:
            continue
        victim = index.glibc_chunk(addr)
        if victim is None:
            continue
        dmg = out.setdefault(addr, Damage(victim))
        dmg.keys.append((v.check, v.chunk))
        if v.abort:
            dmg.aborts.append(v.abort)
        if v.field_address is None:
            continue
        name = v.field if v.check != "chunk.next_size" else "size"
        check = {"check": v.check, "glibc_abort": v.abort, "explanation": v.explanation}
        for f in dmg.fields:
            if f["address"] == f"{v.field_address:#x}":
                f["checks"].append(check)
                break
        else:
            dmg.spans.append((v.field_address, len(v.raw) or ps, name))
            dmg.fields.append(field_bytes(ctx, name, v.field_address, v.raw, checks=[check]))
    return out


def _slots_holding(report: PoolReport, link: str, value: int) -> List[int]:
    return [c.index for c in report.chunks if c.fields.get(link) == value]


def pool_damage(ctx: ForensicContext, index: ChunkIndex) -> Tuple[Dict[Tuple[str, int], Damage],
                                                                  Dict[Tuple[str, int], PoolAnomaly],
                                                                  List[Tuple[PoolReport, PoolAnomaly]]]:
    """(damaged slot headers, overwritten guards by slot, header anomalies no slot explains)."""
    victims: Dict[Tuple[str, int], Damage] = {}
    guards: Dict[Tuple[str, int], PoolAnomaly] = {}
    orphans: List[Tuple[PoolReport, PoolAnomaly]] = []
    for report in index.pools:
        pool = report.pool
        name = pool.spec.name
        by_index = {c.index: c for c in report.chunks}
        link = pool.spec.free_list.link if pool.spec.free_list is not None else None
        for a in report.anomalies:
            if a.kind == "guard-overwritten" and a.chunk is not None:
                guards.setdefault((name, a.chunk), a)
                continue
            if a.kind not in POOL_HEADER_KINDS:
                continue
            slots: List[Tuple[int, str, Optional[int], bytes]] = []
            if a.kind in ("bad-magic", "bad-size", "bad-node") and a.chunk is not None:
                fname = pool.spec.in_use.field if a.kind == "bad-magic" else None  # type: ignore[union-attr]
                if a.kind == "bad-size":
                    fname = getattr(pool.spec.geometry, "size_field", None)
                fname = a.field or fname  # a node's link or bounds (gdbext.pools Nodes)
                slots.append((a.chunk, fname or "header", a.address, a.data))
            elif link is not None and a.address is not None:
                value = int.from_bytes(a.data, ctx.order) if a.data else a.address
                lf = pool.header.fields[link]
                for i in _slots_holding(report, link, value):
                    holder = by_index[i]
                    faddr = holder.address + pool.spec.header_offset + lf.offset
                    slots.append((i, link, faddr, index.read(faddr, lf.size)))
            if not slots:
                orphans.append((report, a))
                continue
            for i, fname, fat, raw in slots:
                c = by_index.get(i)
                if c is None:
                    continue
                key = (name, i)
                dmg = victims.setdefault(key, Damage(index.pool_view(report, c)))
                dmg.keys.append((f"pool.{a.kind}", a.address))
                if fat is not None and not any(x == fat for x, _s, _n in dmg.spans):
                    dmg.spans.append((fat, len(raw) or ctx.pointer_size, fname))
                    dmg.fields.append(field_bytes(ctx, fname, fat, raw, anomaly=a.kind, explanation=a.message))
    return victims, guards, orphans


# -- attribution ---------------------------------------------------------------------
def _read_window(index: ChunkIndex, source: ChunkView, boundary: int, until: int) -> Tuple[int, bytes]:
    lo = max(source.user_address, boundary - _HEAD)
    return lo, index.read(lo, max(until - lo, 0))


def _islands(ctx: ForensicContext, run: Run, dmg: Damage) -> List[Tuple[int, int, str]]:
    """Damaged fields past a run that stopped at the victim's start and that continue it (text in text)."""
    out: List[Tuple[int, int, str]] = []
    if run.end < dmg.victim.address:
        return out
    for addr, size, name in dmg.spans:
        if addr < run.end:
            continue
        raw = bytes.fromhex(next(str(f["bytes"]) for f in dmg.fields if f["address"] == f"{addr:#x}"))
        if run.kind == "text" and printable_text(raw, threshold=1.0, min_len=min(4, len(raw))):
            out.append((addr, size, name))
        elif run.kind == "fill" and raw and all(b == run.data[0] for b in raw):
            out.append((addr, size, name))
    return out


def _attribute(ctx: ForensicContext, index: ChunkIndex, source: ChunkView,
               dmg: Damage) -> Optional[Tuple[Run, int, List[Tuple[int, int, str]]]]:
    """(run, reach, islands) when the source's contents reach the damage.

    The region of a glibc chunk in no free list includes the next chunk's
    ``prev_size`` (its usable size), even when that chunk's PREV_INUSE bit
    was cleared (an off-by-one NUL does exactly that): a ``prev_size`` the
    checks then find "wrong" is the source's own data, not damage.  A chunk
    really free in a bin ends at the victim's header.
    """
    boundary = source.region_end
    if dmg.victim.address != source.address and source.bin is not None:
        boundary = min(boundary, dmg.victim.address)
    past = [a for a, _s, _n in dmg.spans if a >= boundary]
    first = min(past) if past else dmg.last
    until = max(dmg.last, dmg.victim.address + 2 * ctx.pointer_size) + _TAIL
    lo, data = _read_window(index, source, boundary, until)
    run = find_run(data, lo, boundary)
    if run is None or run.start < source.user_address:
        return None
    if run.end > first:
        return run, run.end, []
    islands = _islands(ctx, run, dmg)
    if islands:
        return run, max(a + s for a, s, _n in islands), islands
    return None


def _bytes(n: int) -> str:
    return f"{n} byte" if n == 1 else f"{n} bytes"


def _region_note(ctx: ForensicContext, chunk: ChunkView) -> str:
    if chunk.requested is not None:
        return f"requested size {chunk.requested} (recorded in the {chunk.heap[5:]} slot header)"
    return f"usable size {chunk.usable} (malloc_usable_size): glibc records no requested size"


def _overflow(ctx: ForensicContext, index: ChunkIndex, source: ChunkView, dmg: Damage,
              got: Tuple[Run, int, List[Tuple[int, int, str]]]) -> Finding:
    run, reach, islands = got
    boundary = run.boundary
    region = boundary - source.user_address
    past = reach - boundary
    lower = bool(islands)
    names = list(dict.fromkeys(n for a, _s, n in dmg.spans if a >= boundary)) or dmg.names()
    into = "its own guard bytes" if dmg.victim.address == source.address else \
        f"{dmg.victim.label} ({', '.join(names) or 'header'})"
    what = "requested" if source.requested is not None else "usable; glibc records no requested size"
    message = (f"{'at least ' if lower else ''}{_bytes(past)} written after the {region}-byte region "
               f"[{source.user_address:#x}, {boundary:#x}) of {source.label} ({what}), into {into}")
    continuity = run.evidence()
    if islands:
        continuity["continued_in"] = [
            {"field": n, "address": f"{a:#x}", "size": s} for a, s, n in islands]
        continuity["note"] = (f"the run stops at {run.end:#x}; {', '.join(n for _a, _s, n in islands)} of "
                              f"{dmg.victim.label} further on still holds {run.kind} of the same overflow (the bytes "
                              "between were rewritten later, e.g. when the slot was handed out again)")
    evidence: Dict[str, object] = {
        "damaged": dmg.fields,
        "continuity": continuity,
        "region": _region_note(ctx, source),
        "bytes_past_end_is_lower_bound": lower,
    }
    if dmg.aborts:
        evidence["glibc_aborts"] = list(dict.fromkeys(dmg.aborts))
    if dmg.guard is not None:
        evidence["guard"] = f"{dmg.guard.message}; bytes {dmg.guard.data.hex()}" + (
            f' ("{printable_text(dmg.guard.data, threshold=1.0)}")'
            if printable_text(dmg.guard.data, threshold=1.0) else "")
    sc = size_class(ctx, source)
    if sc:
        evidence["size_class"] = sc
    site = None
    if source.is_pool:
        if source.alloc_sites:
            site = alloc_site(ctx, source.alloc_sites[0], f"{source.label} header alloc_site")
            if len(source.alloc_sites) > 1:
                evidence["allocation_chain"] = [alloc_site(ctx, pc, "alloc_site").text()
                                                for pc in source.alloc_sites]
        if dmg.victim.address != source.address and dmg.victim.alloc_sites and dmg.victim.state == "in-use":
            evidence["victim_allocation_site"] = alloc_site(ctx, dmg.victim.alloc_sites[0],
                                                            f"{dmg.victim.label} header alloc_site").text()
    else:
        evidence["allocation_record"] = NO_RECORD
    if run.kind == "text" and run.nul_terminated and run.end == boundary + 1:
        continuity["note"] = ("off by one: the string's terminating NUL is the one byte written past the region "
                              "(it clears the low byte of what follows: a size field loses its PREV_INUSE bit)")
    marks = [(boundary, reach, f"{_bytes(past)} past the region")]
    marks += [(a, a + s, f"{dmg.victim.label} {n}") for a, s, n in dmg.spans]
    evidence["hexdump"] = dump(index, min(boundary - 32, dmg.first - 16), max(reach, dmg.last) + 16, marks)
    keys = list(dmg.keys)
    return Finding("heap-buffer-overflow", boundary, dmg.victim, message, source=source, bytes_past_end=past,
                   allocation_site=site, evidence=evidence, keys=keys)


def _corruption(ctx: ForensicContext, index: ChunkIndex, dmg: Damage, prev: Optional[ChunkView]) -> Finding:
    names = ", ".join(dmg.names()) or "header"
    first: Dict[str, Any] = dmg.fields[0] if dmg.fields else {}
    message = f"{dmg.victim.label}'s {names} overwritten at {dmg.first:#x}"
    why = first.get("explanation") or (first.get("checks") or [{}])[0].get("explanation")
    if why:
        message += f": {why}"
    evidence: Dict[str, object] = {"damaged": dmg.fields}
    if prev is not None:
        evidence["previous_chunk"] = (f"{prev.describe()}: no text, fill or regular binary data runs from it "
                                      "into the damaged bytes, so no overflow source is named")
    else:
        evidence["previous_chunk"] = "no chunk precedes it (or the walk could not parse the one before)"
    if dmg.aborts:
        evidence["glibc_aborts"] = list(dict.fromkeys(dmg.aborts))
    if not dmg.victim.is_pool:
        evidence["allocation_record"] = NO_RECORD
    evidence["hexdump"] = dump(index, dmg.first - 32, dmg.last + 32,
                               [(a, a + s, n) for a, s, n in dmg.spans])
    return Finding("metadata-corruption", dmg.first, dmg.victim, message, evidence=evidence, keys=list(dmg.keys))


def find_overflows(ctx: ForensicContext, index: Optional[ChunkIndex] = None) -> List[Finding]:
    """Overflow (or, unattributed, metadata-corruption) findings for every damaged header and pool guard."""
    index = index or ctx.index()
    out: List[Finding] = []
    damage = glibc_damage_cache(ctx, index)
    by_victim: Dict[int, Tuple[Finding, Damage]] = {}
    for addr in sorted(damage):
        dmg = damage[addr]
        prev, _nxt = index.neighbours(dmg.victim)
        got = _attribute(ctx, index, prev, dmg) if prev is not None else None
        if got is None and prev is not None and _consequence(prev, dmg, by_victim):
            continue
        f = _overflow(ctx, index, prev, dmg, got) if got and prev is not None else _corruption(ctx, index, dmg, prev)
        by_victim[addr] = (f, dmg)
        out.append(f)
    victims, guards, _orphans = pool_damage(ctx, index)
    used_guards = set()
    for key in sorted(victims):
        dmg = victims[key]
        prev, _nxt = index.neighbours(dmg.victim)
        got = _attribute(ctx, index, prev, dmg) if prev is not None else None
        if got is not None and prev is not None:
            gkey = (key[0], prev.slot)
            if gkey in guards:
                dmg.guard = guards[gkey]
                dmg.keys.append(("pool.guard-overwritten", guards[gkey].address))
                used_guards.add(gkey)
            out.append(_overflow(ctx, index, prev, dmg, got))
        else:
            out.append(_corruption(ctx, index, dmg, prev))
    for key in sorted(set(guards) - used_guards):
        a = guards[key]
        report = index.pool_report(key[0])
        if report is None:
            continue
        c = next((c for c in report.chunks if c.index == key[1]), None)
        if c is None:
            continue
        slot = index.pool_view(report, c)
        dmg = Damage(slot, guard=a)
        dmg.spans.append((a.address or slot.region_end, len(a.data) or 1, "guard"))
        dmg.fields.append(field_bytes(ctx, "guard", a.address, a.data, anomaly=a.kind, explanation=a.message))
        dmg.keys.append(("pool.guard-overwritten", a.address))
        got = _attribute(ctx, index, slot, dmg)
        if got is None:
            run = _guard_only_run(slot, a)
            got = (run, run.end, [])
        out.append(_overflow(ctx, index, slot, dmg, got))
    return out


def _consequence(prev: ChunkView, dmg: Damage, by_victim: Dict[int, Tuple[Finding, Damage]]) -> bool:
    """Fold damage that only exists because the walk followed an already damaged size into that finding.

    When a chunk's size field was altered (an off-by-one NUL turns 0x461 into
    0x400), the walk lands inside the chunk's old extent and finds garbage
    there: a symptom of the first damage, not a second overflow.
    """
    got = by_victim.get(prev.address)
    if got is None:
        return False
    f, first = got
    if not any(n == "size" for _a, _s, n in first.spans):
        return False
    f.keys.extend(dmg.keys)
    f.evidence.setdefault("consequences", []).append(
        f"following the damaged size of {prev.label} the walk lands at {dmg.victim.address:#x}, inside its old "
        f"extent, and finds no valid header there ({', '.join(dmg.names()) or 'header'})")
    return True


def _guard_only_run(slot: ChunkView, a: PoolAnomaly) -> Run:
    """A run made of the overwritten guard bytes alone (nothing else continues)."""
    start = a.address if a.address is not None else slot.region_end
    return Run("guard", start, start + len(a.data), min(slot.region_end, start), a.data)


def glibc_damage_cache(ctx: ForensicContext, index: ChunkIndex) -> Dict[int, Damage]:
    """:func:`glibc_damage`, computed once per context."""
    if "glibc_damage" not in ctx._cache:
        ctx._cache["glibc_damage"] = glibc_damage(ctx, index)
    return ctx._cache["glibc_damage"]  # type: ignore[no-any-return]

