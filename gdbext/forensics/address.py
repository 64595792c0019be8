# gdbext/forensics/address.py - the core of `heapexplain ADDR`: which chunk or
# pool slot holds an address, its state, the ASan-style location, neighbours,
# damage and findings touching it, allocation site, referrers and a hexdump.
"""Everything about one address.

:func:`explain_address` answers "what is this pointer?" for an address in
a glibc heap, an mmapped chunk or a declared pool (or, outside them, which
mapping and symbol it falls in) and gathers what the heap model knows about
the chunk holding it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from ..errors import GdbextError
from ..textutil import Mark
from .chunks import ChunkIndex
from .context import ForensicContext
from .evidence import dump, location, size_class, word_note
from .model import AllocSite, ChunkView, Finding, hx
from .render import finding_lines
from .sites import alloc_site

__all__ = ["AddressReport", "explain_address"]

#: Bytes shown after the address in the hexdump, at most.
_AFTER = 64
#: Bytes shown before the address, at most (the header is included when it is this close).
_BEFORE = 128


@dataclass
class AddressReport:
    """What :func:`explain_address` found."""

    address: int
    chunk: Optional[ChunkView]
    location: str
    header_field: Optional[str] = None
    neighbours: Dict[str, Optional[ChunkView]] = field(default_factory=dict)
    damage: List[Dict[str, Any]] = field(default_factory=list)
    findings: List[Finding] = field(default_factory=list)
    allocation_site: Optional[AllocSite] = None
    references: List[str] = field(default_factory=list)
    value: Optional[Dict[str, Any]] = None
    size_class: Optional[str] = None
    hexdump: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        c = self.chunk
        return {
            "schema": "gdbext.heapexplain/1",
            "address": hx(self.address),
            "chunk": c.to_dict() if c is not None else None,
            "bin": c.bin if c is not None else None,
            "slot": c.slot if c is not None else None,
            "offset": self.address - c.user_address if c is not None else None,
            "field": self.header_field,
            "location": self.location,
            "neighbours": {k: (v.to_dict() if v is not None else None) for k, v in self.neighbours.items()},
            "damage": self.damage,
            "findings": [f.to_dict() for f in self.findings],
            "allocation_site": self.allocation_site.to_dict() if self.allocation_site is not None else None,
            "referenced_by": list(self.references),
            "value": self.value,
            "size_class": self.size_class,
            "hexdump": list(self.hexdump),
            "notes": list(self.notes),
        }

    def text_lines(self) -> List[str]:
        out = [self.location]
        c = self.chunk
        if c is not None:
            out.append(f"  chunk: {c.describe()}, user data {c.user_address:#x}, usable {c.usable}")
            if self.header_field:
                out.append(f"  field: {self.header_field}")
            if self.size_class:
                out.append(f"  {self.size_class}")
            for role in ("previous", "next"):
                n = self.neighbours.get(role)
                out.append(f"  {role}: {n.describe() if n is not None else '-'}")
        if self.value is not None:
            note = f" ({self.value['looks_like']})" if self.value.get("looks_like") else ""
            out.append(f"  value at the address: {self.value['value']}{note}")
        if self.allocation_site is not None:
            out.append(f"  allocated at: {self.allocation_site.text()}")
        if self.references:
            out.append(f"  referenced by: {', '.join(self.references)}")
        for d in self.damage:
            out.append(f"  damage: {d['what']}: {d['explanation']}")
        for f in self.findings:
            out.extend("  " + line for line in finding_lines(f, hexdump=False)[:1])
        out.extend(f"  note: {n}" for n in self.notes)
        out.extend("  " + line for line in self.hexdump)
        return out


def _damage(ctx: ForensicContext, index: ChunkIndex, chunk: ChunkView) -> List[Dict[str, Any]]:
    out: List[Dict[str, Any]] = []
    if not chunk.is_pool and ctx.check is not None:
        for v in ctx.check.violations:
            hit = v.chunk == chunk.address or (v.field_address is not None
                                               and chunk.address <= v.field_address < chunk.end)
            if hit:
                out.append({"what": v.check, "field": v.field, "address": hx(v.field_address), "bytes": v.raw.hex(),
                            "explanation": v.explanation, "glibc_abort": v.abort, "severity": v.severity})
    got = index.pool_chunk(chunk)
    if got is not None:
        report, c = got
        for a in report.anomalies:
            if a.chunk == c.index or (a.address is not None and chunk.address <= a.address < chunk.end):
                out.append({"what": f"pool.{a.kind}", "field": None, "address": hx(a.address), "bytes": a.data.hex(),
                            "explanation": a.message, "glibc_abort": None, "severity": "error"})
    return out


def _outside(ctx: ForensicContext, address: int) -> str:
    region = ctx.mem.region_of(address)
    try:
        sym = ctx.mem.symbolize(address)
    except GdbextError:
        sym = None
    name = f" <{sym[0]}+{sym[1]:#x}>" if sym and sym[1] else (f" <{sym[0]}>" if sym else "")
    if region is None:
        return f"{address:#x}{name} is not in any mapping, heap or pool"
    what = region.path or "anonymous memory"
    return f"{address:#x}{name} is in {what} ({region.perms}) [{region.start:#x}, {region.end:#x}), " \
           "outside every heap chunk and pool slot"


def explain_address(ctx: ForensicContext, address: int, findings: Optional[Sequence[Finding]] = None) -> AddressReport:
    """Everything known about ``address``.

    :param ctx: the forensic context.
    :param address: any address (a user pointer, a header, a pointer into a chunk).
    :param findings: the context's findings (``find_all(ctx)`` when None).
    """
    index = ctx.index()
    if findings is None:
        from . import find_all  # local: the package imports this module

        findings = find_all(ctx)
    chunk = index.find(address)
    ps = ctx.pointer_size
    raw = index.read(address, ps)
    value = None
    if len(raw) == ps:
        value = {"value": hx(int.from_bytes(raw, ctx.order)), "bytes": raw.hex(),
                 "looks_like": word_note(ctx, raw)}
    if chunk is None:
        rep = AddressReport(address, None, _outside(ctx, address), value=value)
        rep.findings = [f for f in findings if f.address == address]
        data_marks: List[Mark] = [(address, address + 1, "address")]
        rep.hexdump = dump(index, address - 32, address + 32, data_marks) if ctx.mem.region_of(address) else []
        return rep
    rep = AddressReport(address, chunk, location(address, chunk, index), value=value)
    if address < chunk.user_address or not chunk.is_pool:
        rep.header_field = index.field_name(chunk, address)
    prev, nxt = index.neighbours(chunk)
    rep.neighbours = {"previous": prev, "next": nxt}
    rep.damage = _damage(ctx, index, chunk)
    rep.findings = [f for f in findings if f.touches(address)
                    or any(c is not None and c.address == chunk.address for c in (f.chunk, f.source))]
    rep.size_class = size_class(ctx, chunk)
    if chunk.is_pool and chunk.alloc_sites:
        owner = "" if chunk.state == "in-use" else " (its last owner)"
        rep.allocation_site = alloc_site(ctx, chunk.alloc_sites[0], f"{chunk.label} header alloc_site{owner}")
    elif not chunk.is_pool:
        rep.notes.append("glibc keeps no allocation record: the allocation site is unknown")
    rep.references = ctx.referrers(chunk.address)
    lo = chunk.address if address - chunk.address <= _BEFORE else address - 48
    hi = min(chunk.end, max(address + _AFTER, chunk.user_address + 32))
    marks: List[Mark] = [(chunk.address, chunk.user_address, "header"), (address, address + 1, "address")]
    if lo <= chunk.region_end < hi and chunk.region_end != chunk.user_address + chunk.usable:
        marks.append((chunk.region_end, chunk.region_end + 1, "end of the requested size"))
    rep.hexdump = dump(index, lo, hi, marks)
    return rep
