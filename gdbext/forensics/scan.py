# gdbext/forensics/scan.py - the core of `poisonscan`: runs of fill/poison
# patterns in the heap, a pool, all writable memory or a range, mapped to the
# chunk they sit in and judged against its state; plus the detectors that need
# no pattern (writes after free, strings past their chunk, text/poison words).
"""Poison scanning.

:func:`poisonscan` reads each span once (heap segments and pools through
their bulk buffers), finds runs of the patterns (:func:`gdbext.poison.scan`),
and maps each run to its chunk: offset, ASan-style location, and a
*verdict* from the pattern's meaning and the chunk's state:

==================  ==========================================================
``expected``        freed fill in a free chunk, guard bytes where guards are
``slack``           freed fill at the end of an in-use glibc chunk: most likely
                    the bytes past the request, which malloc does not fill
``stale-in-use``    freed fill inside an in-use chunk: handed out again and
                    read before being written, or a dangling pointer's view
``fresh-in-free``   fresh-allocation fill in a free chunk: freed without ever
                    being written (or freed without the free fill)
``never-written``   fresh-allocation fill in an in-use chunk
``crosses-end``     the run goes on past the chunk's usable end into the next
``outside``         no chunk or pool slot holds it
``found``           a user pattern (or a magic word): no state rule applies
==================  ==========================================================

The no-pattern detectors add: writes after free
(:mod:`~gdbext.forensics.uaf`, :mod:`~gdbext.forensics.links`), damaged
headers with the data that ran into them (:mod:`~gdbext.forensics.overflow`),
pool strings that run past their requested size, and pointer-sized
values in registers, the fault, damaged headers, free-list links and pool
headers that are text or poison.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ..errors import GdbextError, MemoryReadError
from ..glibc import CheckReport, GlibcHeap
from ..memory import MemorySource
from ..poison import Hit, Pattern, Preset, WordClass, scan
from ..pools import PoolReport
from .chunks import ChunkIndex, read_upto
from .context import ForensicContext
from .continuity import text_run
from .evidence import location
from .faults import classify, fault_pointer
from .links import find_link_writes
from .overflow import find_overflows
from .model import ChunkView, Finding, hx
from .uaf import find_fill_breaks

__all__ = ["MappedHit", "Suspect", "Overrun", "ScanReport", "poisonscan", "scan_spans", "parse_region",
           "MAX_HITS", "MAX_SCAN"]

#: Runs reported at most (the rest are counted).
MAX_HITS = 5000
#: Bytes scanned at most with ``region="all"``.
MAX_SCAN = 1 << 30

Span = Tuple[int, int, str]


@dataclass
class MappedHit:
    """A run of one pattern, mapped to the chunk holding its first byte."""

    address: int
    size: int
    pattern: Pattern
    chunk: Optional[ChunkView]
    verdict: str
    location: str
    note: str = ""

    def to_dict(self) -> Dict[str, Any]:
        c = self.chunk
        return {
            "address": hx(self.address), "size": self.size, "end": hx(self.address + self.size),
            "preset": self.pattern.source, "pattern": self.pattern.describe(), "meaning": self.pattern.meaning,
            "fill_state": self.pattern.state or None,
            "chunk": c.to_dict() if c is not None else None,
            "offset": self.address - c.user_address if c is not None else None,
            "location": self.location, "verdict": self.verdict, "note": self.note or None,
        }

    def line(self) -> str:
        note = f"; {self.note}" if self.note else ""
        return (f"{self.address:#x} +{self.size:<6} {self.verdict:<14} {self.pattern.describe()} "
                f"[{self.pattern.source}]: {self.location}{note}")


@dataclass
class Suspect:
    """A pointer-sized value that is text or poison, and where it was seen."""

    where: str
    address: Optional[int]
    value: int
    word: WordClass

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"where": self.where, "address": hx(self.address), "value": hx(self.value),
                               "class": self.word.kind}
        if self.word.kind == "text":
            out["text"] = self.word.text
        else:
            out["preset"] = self.word.preset
            out["meaning"] = self.word.meaning
        return out

    def line(self) -> str:
        at = f" at {self.address:#x}" if self.address is not None else ""
        return f"{self.where}{at} = {self.value:#x}: {self.word.describe()}"


@dataclass
class Overrun:
    """A string that runs past its chunk's requested or usable size."""

    chunk: ChunkView
    boundary: int
    end: int
    before: str
    after: str
    into: Optional[ChunkView]

    def to_dict(self) -> Dict[str, Any]:
        return {"chunk": self.chunk.to_dict(), "boundary": hx(self.boundary), "end": hx(self.end),
                "bytes_past_end": self.end - self.boundary, "text_before": self.before, "text_after": self.after,
                "into": self.into.to_dict() if self.into is not None else None}

    def line(self) -> str:
        into = f", into {self.into.label}" if self.into is not None else ""
        return (f"string in {self.chunk.label} runs {self.end - self.boundary} bytes past its "
                f"{self.chunk.region_size}-byte region (ends {self.end:#x}{into}): "
                f"\"{self.before}\" | \"{self.after}\"")


@dataclass
class ScanReport:
    """What :func:`poisonscan` found."""

    region: str
    spans: List[Span]
    hits: List[MappedHit] = field(default_factory=list)
    suspects: List[Suspect] = field(default_factory=list)
    writes: List[Finding] = field(default_factory=list)
    overflows: List[Finding] = field(default_factory=list)
    overruns: List[Overrun] = field(default_factory=list)
    dropped: int = 0
    notes: List[str] = field(default_factory=list)

    def counts(self) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for h in self.hits:
            out[h.verdict] = out.get(h.verdict, 0) + 1
        return out

    def to_dict(self) -> Dict[str, Any]:
        return {
            "schema": "gdbext.poisonscan/1",
            "region": self.region,
            "spans": [{"start": hx(s), "end": hx(e), "what": w} for s, e, w in self.spans],
            "hits": [h.to_dict() for h in self.hits],
            "counts": self.counts(),
            "dropped": self.dropped,
            "written_after_free": [f.to_dict() for f in self.writes],
            "overflows": [f.to_dict() for f in self.overflows],
            "overruns": [o.to_dict() for o in self.overruns],
            "suspects": [s.to_dict() for s in self.suspects],
            "notes": list(self.notes),
        }

    def text_lines(self) -> List[str]:
        total = sum(e - s for s, e, _w in self.spans)
        out = [f"poisonscan {self.region}: {len(self.spans)} span(s), {total} bytes, {len(self.hits)} run(s)"
               + (f" ({self.dropped} more not listed)" if self.dropped else "")]
        counts = self.counts()
        if counts:
            out.append("  " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        out.extend("  " + h.line() for h in self.hits)
        if self.writes:
            out.append("written after free:")
            out.extend("  " + f.headline for f in self.writes)
        if self.overflows:
            out.append("damaged headers and the data that ran into them:")
            out.extend("  " + f.headline for f in self.overflows)
        if self.overruns:
            out.append("strings past their requested size:")
            out.extend("  " + o.line() for o in self.overruns)
        if self.suspects:
            out.append("text or poison where a pointer or size belongs:")
            out.extend("  " + s.line() for s in self.suspects)
        out.extend(f"note: {n}" for n in self.notes)
        return out


# -- spans ------------------------------------------------------------------------
def parse_region(text: str) -> Union[str, Tuple[int, int]]:
    """``heap``, ``all``, ``pool:NAME`` or ``A-B`` (numbers) -> the region argument of :func:`poisonscan`."""
    if text in ("heap", "all") or text.startswith("pool:"):
        return text
    lo, sep, hi = text.partition("-")
    if not sep:
        raise GdbextError(f"bad region {text!r}: heap, pool:NAME, all or A-B")
    try:
        start, end = int(lo, 0), int(hi, 0)
    except ValueError:
        raise GdbextError(f"bad region {text!r}: A and B must be numbers") from None
    if end <= start:
        raise GdbextError(f"bad region {text!r}: B must be above A")
    return start, end


def scan_spans(mem: MemorySource, heap: Optional[GlibcHeap], pools: Sequence[PoolReport],
               region: Union[str, Tuple[int, int]]) -> List[Span]:
    """The ``(start, end, what)`` spans a region names."""
    if isinstance(region, tuple):
        return [(region[0], region[1], "range")]
    if region.startswith("pool:"):
        name = region[5:]
        for r in pools:
            if r.pool.spec.name == name:
                return [(r.pool.first, r.pool.end, region)]
        known = ", ".join(r.pool.spec.name for r in pools) or "none"
        raise GdbextError(f"no walked pool named {name!r} (walked: {known})")
    if region == "all":
        spans = []
        total = 0
        for mr in mem.regions():
            if "w" not in mr.perms or not mr.perms.startswith("r"):
                continue
            size = min(mr.size, MAX_SCAN - total)
            if size <= 0:
                break
            spans.append((mr.start, mr.start + size, mr.path or "anonymous"))
            total += size
        return spans
    spans = []
    if heap is not None:
        for arena in heap.arenas:
            for seg in arena.segments:
                spans.append((seg.start, seg.end, arena.label))
        spans += [(m.address, m.address + m.size, "mmapped chunk") for m in heap.mmapped]
    covered = [(s, e) for s, e, _w in spans]
    for r in pools:
        if not any(s <= r.pool.first and r.pool.end <= e for s, e in covered):
            spans.append((r.pool.first, r.pool.end, f"pool:{r.pool.spec.name}"))
    return spans


def _read_span(ctx: ForensicContext, start: int, end: int) -> Any:
    if ctx.heap is not None:
        seg = ctx.heap.memory.segment_of(start)
        if seg is not None and end <= seg.end:
            entry = ctx.heap.memory.buffer(seg)
            if entry is not None:
                off = start - entry[0]
                return memoryview(entry[2])[off:off + (end - start)]
    try:
        return ctx.mem.read_buffer(start, end - start)
    except MemoryReadError:
        return read_upto(ctx.mem, start, end - start)


# -- judging ----------------------------------------------------------------------------
def _guard_at(index: ChunkIndex, chunk: ChunkView, start: int, end: int) -> bool:
    got = index.pool_chunk(chunk)
    if got is None or got[0].pool.spec.guard is None:
        return False
    g = got[0].pool.spec.guard
    gs = chunk.address + (g.offset if g.offset >= 0 else chunk.size + g.offset)
    return gs <= start and end <= gs + g.size


def _verdict(index: ChunkIndex, hit: Hit, chunk: Optional[ChunkView]) -> Tuple[str, str]:
    state = hit.pattern.state
    if chunk is None:
        return "outside", ""
    end = hit.address + hit.size
    limit = chunk.end if chunk.is_pool else chunk.user_address + chunk.usable
    if end > limit and state != "guard" and chunk.state not in ("top",):
        nxt = index.find(limit)
        return "crosses-end", f"runs {end - limit} bytes past the end of {chunk.label}" + (
            f" into {nxt.label} ({nxt.state})" if nxt is not None and nxt.address != chunk.address else "")
    if state == "guard":
        if _guard_at(index, chunk, hit.address, end):
            return "expected", ""
        return "found", "guard bytes outside the slot's guard area"
    if state == "freed":
        if chunk.state == "free" or chunk.state == "top":
            return "expected", ""
        if not chunk.is_pool and chunk.state == "in-use" and end >= chunk.user_address + chunk.usable - 8:
            return "slack", ("reaches the end of the usable size: most likely the slack past the requested size "
                             "(glibc records no requested size; malloc's perturb fills only the requested bytes)")
        return "stale-in-use", ("freed-memory fill inside an in-use chunk: it was handed out again and not yet "
                                "written there, or it is read through a dangling pointer")
    if state == "uninitialised":
        if chunk.state == "free":
            note = "fresh-allocation fill in a free chunk: freed without ever being written"
            if chunk.bin and chunk.bin.startswith("tcache"):
                note += " (tcache frees are not filled)"
            elif chunk.is_pool:
                note += ", or freed without the pool's free fill"
            return "fresh-in-free", note
        if chunk.state == "in-use":
            return "never-written", "never written since it was allocated (an uninitialised read risk)"
    return "found", ""


def _map_hits(ctx: ForensicContext, index: ChunkIndex, hits: Sequence[Hit]) -> List[MappedHit]:
    out = []
    for h in hits:
        chunk = index.find(h.address)
        verdict, note = _verdict(index, h, chunk)
        where = location(h.address, chunk, index) if chunk is not None else _outside(ctx, h.address)
        out.append(MappedHit(h.address, h.size, h.pattern, chunk, verdict, where, note))
    return out


def _outside(ctx: ForensicContext, address: int) -> str:
    region = ctx.mem.region_of(address)
    sym = None
    try:
        sym = ctx.mem.symbolize(address)
    except GdbextError:
        sym = None
    name = f" <{sym[0]}+{sym[1]:#x}>" if sym else ""
    if region is None:
        return f"{address:#x}{name} is in no mapping"
    return f"{address:#x}{name} is in {region.path or 'anonymous memory'} ({region.perms}), outside every chunk"


# -- no-pattern detectors ------------------------------------------------------------------
def _overruns(ctx: ForensicContext, index: ChunkIndex, spans: Sequence[Span],
              overflows: Sequence[Finding] = ()) -> List[Overrun]:
    """Strings of in-use pool slots that run past the requested size (into slack, guard or the next slot).

    glibc chunks need no such pass: their usable end is the next chunk's
    size field, so a string running past it breaks that header, which the
    heap checks report and :func:`~gdbext.forensics.overflow.find_overflows`
    attributes.
    """
    out: List[Overrun] = []
    chunks: List[ChunkView] = [v for _r, v in index.pool_views() if v.state == "in-use"]
    for c in chunks:
        if not any(s <= c.address < e for s, e, _w in spans):
            continue
        boundary = c.region_end
        lo = max(c.user_address, boundary - 64)
        data = index.read(lo, boundary + 64 - lo)
        run = text_run(data, lo, boundary)
        if run is None or run.start < c.user_address:
            continue
        ev = run.evidence()
        end, after = run.end, str(ev["text_after_boundary"])
        # the overflow finding from this chunk may have traced the string further (into a field the
        # bytes were moved from, or up to its NUL): one count for both reports
        for f in overflows:
            cont = f.evidence.get("continuity")
            if f.source is None or f.source.address != c.address or f.bytes_past_end is None \
                    or not isinstance(cont, dict) or cont.get("kind") != "text":
                continue
            end = max(end, boundary + f.bytes_past_end)
            after += "".join(f" ... {i['text']}" for i in cont.get("continued_in", []) if "text" in i)
        out.append(Overrun(c, boundary, end, str(ev["text_before_boundary"]), after,
                           index.find(c.end) if end > c.end - (0 if c.is_pool else ctx.pointer_size) else None))
    return out


def _suspects(ctx: ForensicContext, index: ChunkIndex, spans: Sequence[Span]) -> List[Suspect]:
    out: List[Suspect] = []
    seen = set()
    order = ctx.order

    def add(where: str, address: Optional[int], value: int) -> None:
        key = (address, value) if address is not None else (where, value)
        if value < 0x10000 or key in seen:
            return
        word = classify(ctx, value)
        if word is None:
            return
        seen.add(key)
        out.append(Suspect(where, address, value, word))

    for name, value in ctx.registers.items():
        if name not in ("eflags", "fs_base", "gs_base", "cs", "ss", "ds", "es", "fs", "gs", "orig_rax"):
            add(f"register {name}", None, value)
    got = fault_pointer(ctx)
    if got is not None:
        add(f"faulting pointer ({got[1]})", None, got[0])
    if ctx.check is not None:
        for v in ctx.check.violations:
            if len(v.raw) == ctx.pointer_size:
                add(f"{v.check} {v.field}", v.field_address, int.from_bytes(v.raw, order))
    for report in index.pools:
        pool = report.pool
        for c in report.chunks:
            if not any(s <= c.address < e for s, e, _w in spans):
                continue
            for f in pool.header.fields.values():
                if f.size == ctx.pointer_size and f.count == 1 and f.name in c.fields:
                    add(f"{pool.spec.name} slot {c.index} {f.name}", c.address + pool.spec.header_offset + f.offset,
                        c.fields[f.name])
    return out


def poisonscan(mem: MemorySource, heap: Optional[GlibcHeap], pools: Sequence[PoolReport],
               patterns: Sequence[Union[Pattern, Preset]], region: Union[str, Tuple[int, int]] = "heap", *,
               check: Optional[CheckReport] = None, context: Optional[ForensicContext] = None,
               limit: int = MAX_HITS) -> ScanReport:
    """Scan a region for the patterns and map every run to its chunk; add the no-pattern detectors.

    :param mem: the memory source.
    :param heap: the glibc heap (or None).
    :param pools: walked pools.
    :param patterns: patterns and presets to look for (may be empty: only the no-pattern detectors run).
    :param region: ``"heap"`` (heap segments, mmapped chunks and pools), ``"pool:NAME"``, ``"all"``
        (every writable mapping) or ``(start, end)``.
    :param check: the heap's check report (computed when missing).
    :param context: a forensic context to reuse (registers, fault, perturb byte, callbacks).
    :param limit: runs listed at most.
    :raises GdbextError: an unknown pool or a bad region.
    """
    ctx = context or ForensicContext(mem, heap, check, list(pools))
    index = ctx.index()
    spans = scan_spans(mem, heap, pools, region)
    label = region if isinstance(region, str) else f"{region[0]:#x}-{region[1]:#x}"
    report = ScanReport(label, spans)
    hits: List[Hit] = []
    if patterns:
        for start, end, _what in spans:
            buf = _read_span(ctx, start, end)
            if not buf:
                report.notes.append(f"cannot read {start:#x}..{end:#x}")
                continue
            hits.extend(scan(buf, start, patterns))
    hits.sort(key=lambda h: (h.address, -h.size, h.pattern.source))
    # the same bytes matched by several presets: keep the first (the most specific preset)
    unique: List[Hit] = []
    for h in hits:
        if unique and unique[-1].address == h.address and unique[-1].size == h.size \
                and unique[-1].pattern.bytes == h.pattern.bytes:
            continue
        unique.append(h)
    report.dropped = max(len(unique) - limit, 0)
    report.hits = _map_hits(ctx, index, unique[:limit])

    def inside(f: Finding) -> bool:
        return f.chunk is not None and any(s <= f.chunk.address < e for s, e, _w in spans)

    report.writes = [f for f in find_link_writes(ctx, index) + find_fill_breaks(ctx, index) if inside(f)]
    report.overflows = [f for f in find_overflows(ctx, index) if inside(f)]
    report.overruns = _overruns(ctx, index, spans, report.overflows)
    report.suspects = _suspects(ctx, index, spans)
    if ctx.perturb_byte is None and heap is not None:
        report.notes.append("glibc's perturb byte is off or unknown: freed glibc memory carries no fill")
    return report
