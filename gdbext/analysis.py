# gdbext/analysis.py - turning what gdb and the core say about a crash into the
# triage report dict: the AnalysisContext, the finder registry, the pool
# finder, the glibc-abort and fault-address fallback finders, the heap summary.
"""From gathered crash facts to a ``gdbext.triage/1`` report, without GDB.

``commands/report.py`` gathers inside gdb (signal, frames, the abort
message, pool walks) and fills an :class:`AnalysisContext`; tests build one
by hand.  :func:`analyze` then

1. summarizes the heap: the glibc arenas through :mod:`gdbext.glibc` (when
   the context has a memory source) and every walked pool;
2. runs each *finder* of :data:`FINDERS`, a function
   ``finder(context) -> Iterable[Finding]``; when none of them found
   anything it runs :data:`FALLBACK_FINDERS` (what glibc's abort message or
   the fault address alone say), so a precise finding always wins over a
   coarse one;
3. computes the crash signature from the frames and the first finding.

Adding a finder is one function appended to :data:`FINDERS`.  A finder reads
``context.memory`` (any :class:`~gdbext.memory.MemorySource`), the walked
pools, ``context.glibc_heap()`` / ``context.heap_check()`` (located and
checked once per analysis), and symbolizes code addresses with
``context.site(pc, how)``.  A :class:`~gdbext.errors.GdbextError` a finder
raises is recorded in the report's ``errors`` and the other finders go on.
"""
from __future__ import annotations


from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from . import __version__
from .aborts import explain_abort
from .disasm import is_canonical
from .errors import GdbextError
from .memory import MemorySource
from .poison import classify_word
from .pools import FixedSlots, Magic, PoolAnomaly, PoolChunk, PoolReport, ResolvedPool
from .textutil import printable_text
from .triage.report import (SCHEMA, ChunkRef, Evidence, Finding, FindingLike, Findings, Frame, MemoryDump,
                            OverflowSource, SourceSite, hx)
from .triage.neighbourhood import add_neighbourhoods
from .triage.signature import SIGNATURE_FRAMES, crash_signature, program_name, significant_frames

__all__ = [
    "Location",
    "Locate",
    "Finder",
    "CrashFacts",
    "PoolWalk",
    "AnalysisContext",
    "analyze",
    "summarize_heap",
    "pool_finder",
    "abort_finder",
    "fault_finder",
    "FINDERS",
    "FALLBACK_FINDERS",
]

#: What a code address symbolizes to: ``{"function", "file", "line"}`` (values may be None).
Location = Dict[str, Any]
#: Symbolizes one code address; None when nothing is known.
Locate = Callable[[int], Optional[Location]]

#: Violations of the glibc checks listed in the heap summary (the rest are counted).
_MAX_VIOLATIONS = 20
#: Bytes shown before the first damaged byte in an overflow's hexdump.
_DUMP_BEFORE = 48
#: A fault this close past a damaged value was an access through it (``value->field``).
_NEAR = 4096


@dataclass
class CrashFacts:
    """What killed the process, as gathered (addresses as ints).

    :ivar access: the faulting instruction's memory access, as
        :meth:`gdbext.crash.CrashInfo.to_dict` gives it (``kind``, ``size``,
        ``expression``, ``base_value``... as ``"0x"`` strings), or None.
    :ivar thread: ``{"num", "tid", "name"}`` of the crashing thread.
    """

    signal: Optional[str] = None
    signo: Optional[int] = None
    si_code: Optional[int] = None
    si_code_name: Optional[str] = None
    pc: Optional[int] = None
    fault_address: Optional[int] = None
    fault_address_source: Optional[str] = None
    access: Optional[Dict[str, Any]] = None
    instruction: Optional[str] = None
    thread: Dict[str, Any] = field(default_factory=dict)
    threads: Optional[int] = None
    abort_message: Optional[str] = None
    frames: List[Frame] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def access_base(self) -> Optional[int]:
        """The pointer the faulting instruction dereferenced (its base register's value), if known."""
        value = (self.access or {}).get("base_value")
        if isinstance(value, str):
            return int(value, 16)
        return value if isinstance(value, int) else None


@dataclass
class PoolWalk:
    """One declared pool as walked: the report, or why it could not be walked."""

    name: str
    report: Optional[PoolReport] = None
    error: Optional[str] = None


def _no_location(pc: int) -> Optional[Location]:
    return None


@dataclass
class AnalysisContext:
    """Everything a finder may use.

    :param crash: the crash facts.
    :param memory: the target's memory (a core file or the gdb inferior), if any.
    :param pools: the declared pools, walked.
    :param locate: symbolizes a code address (gdb's, or the core's symbols).
    :param perturb_byte: glibc's ``M_PERTURB`` byte, when known.
    :param glibc: look for a glibc heap (off for programs known not to use it).
    """

    crash: CrashFacts
    memory: Optional[MemorySource] = None
    pools: List[PoolWalk] = field(default_factory=list)
    locate: Locate = _no_location
    core: Optional[str] = None
    binary: Optional[str] = None
    build_id: Optional[str] = None
    perturb_byte: Optional[int] = None
    glibc: bool = True
    #: :class:`gdbext.glibc.Overrides` for locating the heap (``set gdbext ...`` in gdb), or None
    glibc_overrides: Any = None
    #: :class:`gdbext.forensics.context.ForensicContext` of the same target (built by the gdb
    #: adapter with registers, frame pointers and the reference finder), or None
    forensic: Any = None
    errors: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    _cache: Dict[str, Any] = field(default_factory=dict, repr=False)

    def site(self, pc: int, how: str, return_address: bool = True) -> SourceSite:
        """A :class:`SourceSite` for ``pc``; a return address is symbolized at ``pc - 1`` (the call)."""
        loc = self.locate(pc - 1 if return_address and pc else pc) or {}
        return SourceSite(pc, how, loc.get("function"), loc.get("file"), loc.get("line"))

    def glibc_heap(self) -> Any:
        """The located glibc heap (:class:`gdbext.glibc.GlibcHeap`), or None; located once."""
        if "glibc_heap" not in self._cache:
            self._cache["glibc_heap"] = None
            if self.memory is None:
                self.skipped.append("glibc heap: no memory source")
            elif not self.glibc:
                self.skipped.append("glibc heap: not requested")
            else:
                from .glibc import locate_heap  # the heap model is large: only when asked

                try:
                    self._cache["glibc_heap"] = locate_heap(self.memory, self.glibc_overrides)
                except GdbextError as err:
                    self.skipped.append(f"glibc heap: {err}")
        return self._cache["glibc_heap"]

    def heap_check(self) -> Any:
        """glibc's invariants checked (:class:`gdbext.glibc.CheckReport`), or None; once."""
        if "heap_check" not in self._cache:
            heap = self.glibc_heap()
            self._cache["heap_check"] = None
            if heap is not None:
                from .glibc import check_heap

                try:
                    self._cache["heap_check"] = check_heap(heap)
                except GdbextError as err:
                    self.errors.append(f"glibc heap check: {err}")
        return self._cache["heap_check"]


#: A finder: reads the context, yields findings (:class:`~gdbext.triage.report.Finding`, or any
#: model with the same ``to_dict()`` form, such as ``gdbext.forensics.model.Finding``).
Finder = Callable[[AnalysisContext], Iterable[FindingLike]]


# -- heap summary -----------------------------------------------------------------


def _glibc_summary(ctx: AnalysisContext) -> Optional[Dict[str, Any]]:
    heap = ctx.glibc_heap()
    if heap is None:
        return None
    from .glibc import HeapWalker

    try:
        summary = HeapWalker(heap).summary()
    except GdbextError as err:
        ctx.errors.append(f"glibc heap summary: {err}")
        return None
    arenas = []
    for a in summary.arenas:
        arenas.append({
            "arena": hx(a.arena), "label": a.label, "chunks": a.chunks, "bytes": a.bytes,
            "in_use": {"count": a.states["in-use"][0], "bytes": a.states["in-use"][1]},
            "free": {"count": a.states["free"][0], "bytes": a.states["free"][1]},
            "top": {"count": a.states["top"][0], "bytes": a.states["top"][1]},
            "corrupt": {"count": a.states["corrupt"][0], "bytes": a.states["corrupt"][1]},
            "free_lists": {k: {"count": v[0], "bytes": v[1]} for k, v in a.free_kinds.items()},
        })  # fmt: skip
    out: Dict[str, Any] = {
        "version": str(heap.version),
        "arenas": arenas,
        "mmapped": {"count": summary.mmapped[0], "bytes": summary.mmapped[1]},
        "notes": list(summary.notes),
    }
    check = ctx.heap_check()
    if check is not None:
        out["violations"] = [
            {"check": v.check, "chunk": hx(v.chunk), "field": v.field, "severity": v.severity,
             "explanation": v.explanation, "abort": v.abort}
            for v in check.violations[:_MAX_VIOLATIONS]
        ]
        out["violation_count"] = len(check.violations)
    return out


def _pool_summary(walk: PoolWalk) -> Dict[str, Any]:
    if walk.report is None:
        return {"name": walk.name, "error": walk.error}
    rep = walk.report
    return {
        "name": walk.name,
        "address": hx(rep.pool.root if rep.pool.root is not None else rep.pool.first),
        "chunks": len(rep.chunks), "in_use": rep.in_use, "free": rep.free, "corrupt": rep.corrupt,
        "free_list_length": len(rep.free_list),
        "anomalies": [a.text() for a in rep.anomalies],
        "stopped": rep.stopped,
    }  # fmt: skip


def summarize_heap(ctx: AnalysisContext) -> Dict[str, Any]:
    """The report's ``heap``: ``{"glibc": {...} or None, "pools": [...]}``."""
    pools = [_pool_summary(w) for w in ctx.pools]
    for w in ctx.pools:
        if w.report is None:
            ctx.errors.append(f"pool {w.name}: {w.error}")
    return {"glibc": _glibc_summary(ctx), "pools": pools}


# -- the pool finder -------------------------------------------------------------------


def _chunk_ref(walk: PoolWalk, c: PoolChunk) -> ChunkRef:
    return ChunkRef(c.address, c.user_address, c.size, c.state, f"pool {walk.name}", c.requested_size, c.index)


def _is_pool_link(pool: ResolvedPool, value: int) -> bool:
    spec = pool.spec
    to_chunk = pool.payload_offset if spec.free_list is not None and spec.free_list.points_to == "payload" \
        else spec.header_offset
    chunk = value - to_chunk
    if not pool.first <= chunk < pool.end:
        return False
    return not (isinstance(spec.geometry, FixedSlots) and pool.slot_size and (chunk - pool.first) % pool.slot_size)


def _is_code(mem: Optional[MemorySource], value: int) -> Optional[bool]:
    if mem is None:
        return None
    region = mem.region_of(value)
    return region is not None and "x" in region.perms


def _damaged_fields(walk: PoolWalk, c: PoolChunk, mem: Optional[MemorySource]) -> List[Tuple[int, int, str, int]]:
    """Header fields of ``c`` holding values the allocator could not have written: (start, end, why, value)."""
    pool = walk.report.pool  # type: ignore[union-attr]
    spec = pool.spec
    base = c.address + spec.header_offset
    out = []
    for f in sorted(pool.header.fields.values(), key=lambda f: f.offset):
        value = c.fields.get(f.name)
        if value is None or f.count != 1:
            continue
        why = None
        if isinstance(spec.in_use, Magic) and f.name == spec.in_use.field:
            used, free = spec.in_use.values()
            if value not in used + free:
                why = f"{f.name} {value:#x} is neither magic"
        elif f.name == spec.requested_size and not 0 <= value <= c.usable_size:
            why = f"{f.name} {value} exceeds the usable {c.usable_size}"
        elif spec.free_list is not None and f.name == spec.free_list.link and value and not _is_pool_link(pool, value):
            why = f"{f.name} {value:#x} is no slot of the pool"
        elif f.name == spec.alloc_site and value and _is_code(mem, value) is False:
            why = f"{f.name} {value:#x} is not a code address"
        if why is not None:
            text = printable_text(value.to_bytes(f.size, "big" if mem and mem.byteorder == "big" else "little"), 1.0, 4)
            if text is not None:
                why += f' (text "{text}")'
            out.append((base + f.offset, base + f.offset + f.size, why, value))
    return out


@dataclass
class _Overflow:
    source: PoolChunk
    victim: Optional[PoolChunk]
    first_bad: int
    end: int  #: one past the last damaged byte still visible
    requested_end: int
    marks: List[Tuple[int, int, str]]
    notes: List[str]
    values: Set[int]  #: values found in damaged fields (a later crash may go through them)


def _guard_span(pool: ResolvedPool, c: PoolChunk) -> Tuple[int, int]:
    guard = pool.spec.guard
    assert guard is not None
    start = c.address + (guard.offset if guard.offset >= 0 else c.size + guard.offset)
    return start, start + guard.size


def _overflow_from(walk: PoolWalk, idx: int, mem: MemorySource) -> Optional[_Overflow]:
    """The overflow out of chunk ``idx`` whose guard bytes are overwritten, measured from the memory."""
    rep = walk.report
    assert rep is not None
    pool, spec = rep.pool, rep.pool.spec
    src = rep.chunks[idx]
    if spec.guard is None:
        return None
    g_start, g_end = _guard_span(pool, src)
    guard = mem.read(g_start, g_end - g_start)
    bad = [i for i, b in enumerate(guard) if b != spec.guard.byte]
    if not bad:
        return None
    req = src.requested_size if src.requested_size is not None and 0 <= src.requested_size <= src.usable_size \
        else src.usable_size
    req_end = src.user_address + req
    marks: List[Tuple[int, int, str]] = []
    notes: List[str] = []
    first_bad = g_start + bad[0]
    fresh = spec.fill.fresh if spec.fill is not None else None
    if g_start > req_end:
        slack = mem.read(req_end, g_start - req_end)
        if fresh is None:
            first_bad = req_end
            notes.append(f"the {len(slack)} bytes between the requested end and the guard are assumed written "
                         "(no fresh-fill byte declared to tell)")
        else:
            written = [i for i, b in enumerate(slack) if b != fresh]
            if written:
                first_bad = req_end + written[0]
                notes.append(f"{len(slack) - written[0]} bytes after the {req}-byte request of slot {src.index} "
                             f"no longer hold the fresh fill {fresh:#04x}")
        if first_bad < g_start:
            marks.append((first_bad, g_start, f"past the {req}-byte request"))
    marks.append((g_start + bad[0], g_start + bad[-1] + 1, f"slot {src.index} guard overwritten"))
    notes.append(f"guard bytes {bad[0]}..{bad[-1]} of slot {src.index} overwritten "
                 f"(first byte {guard[bad[0]]:#04x} instead of {spec.guard.byte:#04x})")
    end = g_start + bad[-1] + 1
    victim = None
    values: Set[int] = set()
    nxt = rep.chunks[idx + 1] if idx + 1 < len(rep.chunks) else None
    if bad[-1] == len(guard) - 1 and nxt is not None and 0 <= nxt.address - g_end < 2 * mem.pointer_size:
        for start, stop, why, value in _damaged_fields(walk, nxt, mem):
            marks.append((start, stop, f"slot {nxt.index} {why.split(' ', 1)[0]} overwritten"))
            notes.append(f"slot {nxt.index} header: {why}")
            values.add(value)
            end = max(end, stop)
            victim = nxt
        fill_free = spec.fill.free if spec.fill is not None else None
        if nxt.state == "free" and fill_free is not None:
            payload = mem.read(nxt.user_address, nxt.usable_size)
            run = next((i for i, b in enumerate(payload) if b == fill_free), len(payload))
            if run:
                marks.append((nxt.user_address, nxt.user_address + run, f"slot {nxt.index} free payload overwritten"))
                end = max(end, nxt.user_address + run)
                victim = nxt
    return _Overflow(src, victim, first_bad, end, req_end, marks, notes, values)


def _overflow_finding(ctx: AnalysisContext, walk: PoolWalk, ov: _Overflow, mem: MemorySource) -> Finding:
    src = ov.source
    spec = walk.report.pool.spec  # type: ignore[union-attr]
    site = ctx.site(src.alloc_sites[0], f"pool header field {spec.alloc_site}: the allocation call's return "
                    "address, symbolized at pc-1") if src.alloc_sites else None
    req = ov.requested_end - src.user_address
    past = ov.end - ov.requested_end
    origin = f"allocated by {site.short()}" if site is not None else "of unknown allocation site"
    message = (f"heap-buffer-overflow on {ov.first_bad:#x}: {past} bytes after the {req}-byte region "
               f"[{src.user_address:#x}, {ov.requested_end:#x}) {origin}")
    ev = Evidence()
    ev.notes.append(f"pool {walk.name}: slot {src.index} [{src.address:#x}, {src.address + src.size:#x}) is "
                    f"{src.state}, {req} of {src.usable_size} usable bytes requested")
    ev.notes.extend(ov.notes)
    dump_start = max(src.user_address, ov.first_bad - _DUMP_BEFORE)
    dump_start -= dump_start % 16
    dump_end = min(ov.end + (-ov.end) % 16, dump_start + 1024)
    data = mem.read(dump_start, dump_end - dump_start)
    head = mem.read(src.user_address, max(0, ov.end - src.user_address))
    run = next((i for i, b in enumerate(head) if not 0x20 <= b < 0x7F), len(head))
    if run >= 8:
        more = "..." if run > 96 else ""
        ev.notes.append(f'the block and what follows it hold text: "{head[:min(run, 96)].decode("ascii")}{more}" '
                        f"({run} printable bytes from {src.user_address:#x})")
    for a in walk.report.anomalies:  # type: ignore[union-attr]
        if a.kind.startswith("freelist") and a.address in ov.values:
            into = f"slot {ov.victim.index}" if ov.victim is not None else "the pool"
            ev.notes.append(f"{a.message}: the value the overflow wrote into {into}")
    fault = ctx.crash.fault_address
    base = ctx.crash.access_base()
    for value in sorted(ov.values):
        if fault is not None and (base == value or 0 <= fault - value < _NEAR):
            ev.notes.append(f"the crash ({ctx.crash.signal}) accesses {fault:#x} through {value:#x}, "
                            "a value the overflow wrote")
    ev.notes.append(f"bytes_past_end counts to the last damaged byte still visible ({ov.end:#x}); bytes the "
                    "program rewrote after the overflow do not show how far it went")
    ev.memory.append(MemoryDump(dump_start, data, tuple(ov.marks)))
    victim = ov.victim or src
    return Finding(
        kind="heap-buffer-overflow", message=message, address=ov.first_bad, chunk=_chunk_ref(walk, victim),
        source=OverflowSource(_chunk_ref(walk, src), past), allocation_site=site, evidence=ev, finder="pool_finder",
    )  # fmt: skip


def _corruption_finding(ctx: AnalysisContext, walk: PoolWalk, a: PoolAnomaly) -> Finding:
    rep = walk.report
    assert rep is not None
    chunk = rep.chunks[a.chunk] if a.chunk is not None and a.chunk < len(rep.chunks) else None
    ev = Evidence([a.text()])
    if a.data:
        text = printable_text(a.data, 1.0, 4)
        ev.notes.append(f"bytes found: {a.data.hex()}" + (f' (text "{text}")' if text else ""))
    site = None
    if chunk is not None and chunk.alloc_sites and chunk.state != "corrupt":
        site = ctx.site(chunk.alloc_sites[0], f"pool header field {rep.pool.spec.alloc_site} (last owner), "
                        "symbolized at pc-1")
    where = f" on {a.address:#x}" if a.address is not None else ""
    return Finding(
        kind="metadata-corruption", message=f"metadata-corruption{where}: pool {walk.name}: {a.message}",
        address=a.address, chunk=_chunk_ref(walk, chunk) if chunk is not None else None, allocation_site=site,
        evidence=ev, finder="pool_finder",
    )  # fmt: skip


def pool_finder(ctx: AnalysisContext) -> Iterator[Finding]:
    """Findings from the walked pools' anomalies.

    Overwritten guard bytes after slot *k* are a ``heap-buffer-overflow`` out
    of slot *k*: the first bad byte is found from the requested size (the
    slack keeps the fresh fill), the damage is followed into slot *k+1*'s
    header (fields that hold what the allocator cannot have written) and
    free payload; the finding's ``chunk`` is the damaged slot, ``source`` slot
    *k*, and the allocation site slot *k*'s recorded return address.
    Anomalies an overflow explains (its victim's bad magic, a free list that
    leads to the value it wrote) are folded into it; any other anomaly is a
    ``metadata-corruption`` finding.
    """
    mem = ctx.memory
    for walk in ctx.pools:
        rep = walk.report
        if rep is None:
            continue
        overflows: List[_Overflow] = []
        if mem is not None:
            for i, c in enumerate(rep.chunks):
                if any(a.kind == "guard-overwritten" for a in c.anomalies):
                    ov = _overflow_from(walk, i, mem)
                    if ov is not None:
                        overflows.append(ov)
        explained_chunks = {ov.source.index for ov in overflows} | {ov.victim.index for ov in overflows if ov.victim}
        explained_values = {v for ov in overflows for v in ov.values}
        for ov in overflows:
            assert mem is not None
            yield _overflow_finding(ctx, walk, ov, mem)
        for a in rep.anomalies:
            if a.kind == "unreadable":
                ctx.errors.append(f"pool {walk.name}: {a.text()}")
                continue
            if a.chunk is not None and a.chunk in explained_chunks and a.kind in ("guard-overwritten", "bad-magic",
                                                                                    "bad-requested-size"):
                continue
            if a.kind.startswith("freelist") and a.address in explained_values:
                continue
            yield _corruption_finding(ctx, walk, a)


# -- fallback finders ------------------------------------------------------------------


def abort_finder(ctx: AnalysisContext) -> Iterator[Finding]:
    """A finding from glibc's abort message alone: glibc's own check caught the corruption.

    The kind is the message's most likely kind (:mod:`gdbext.aborts`); the
    heap checks' violations, when the heap could be walked, are the evidence.
    """
    msg = ctx.crash.abort_message
    info = explain_abort(msg) if msg else None
    if info is None:
        return
    ev = Evidence([line.strip() for line in info.lines()])
    check = ctx.heap_check()
    if check is not None:
        for v in [v for v in check.violations if v.severity == "error"][:5]:
            ev.notes.append(f"heap check: {v}")
    yield Finding(kind=info.kind, message=f"{info.kind} detected by glibc in {info.function}: \"{msg}\"",
                  evidence=ev, finder="abort_finder")


def fault_finder(ctx: AnalysisContext) -> Iterator[Finding]:
    """A finding from the fault address alone: a pointer that is poison or text.

    ``poison`` when the dereferenced pointer (or the fault address) is a
    known fill pattern (glibc's perturb byte first), ``wild-pointer`` when it
    is printable text or non-canonical.  A NULL or plain unmapped address
    gives nothing: that is not evidence of heap damage.
    """
    crash = ctx.crash
    if crash.signo not in (7, 11) or crash.fault_address is None:
        return
    mem = ctx.memory
    size, order = (mem.pointer_size, mem.byteorder) if mem is not None else (8, "little")
    for value in (crash.access_base(), crash.fault_address):
        if value is None or value < _NEAR:
            continue
        word = classify_word(value, size, order, perturb_byte=ctx.perturb_byte)
        what = f"{crash.signal} at {crash.fault_address:#x}"
        if value != crash.fault_address:
            what += f" through the pointer {value:#x}"
        if word is not None and word.kind == "poison":
            yield Finding(kind="poison", address=crash.fault_address, finder="fault_finder",
                          message=f"poison on {crash.fault_address:#x}: {what}, {word.preset} fill: {word.meaning}",
                          evidence=Evidence([f"{value:#x}: {word.describe()}"]))
            return
        if word is not None and word.kind == "text":
            yield Finding(kind="wild-pointer", address=crash.fault_address, finder="fault_finder",
                          message=f'wild-pointer on {crash.fault_address:#x}: {what}, which is text "{word.text}"',
                          evidence=Evidence([f"{value:#x} holds printable bytes: data used as a pointer"]))
            return
        if size == 8 and not is_canonical(value):
            yield Finding(kind="wild-pointer", address=crash.fault_address, finder="fault_finder",
                          message=f"wild-pointer on {crash.fault_address:#x}: {what}, a non-canonical address",
                          evidence=Evidence([f"{value:#x} is not a canonical x86-64 address"]))
            return


def forensic_finder(ctx: AnalysisContext) -> Iterator[FindingLike]:
    """The heap forensics (:func:`gdbext.forensics.find_all`) on the context's forensic view.

    The forensic view shares the analysis's located heap and its check, so
    neither is done twice.
    """
    fctx = ctx.forensic
    if fctx is None:
        return
    from .forensics import find_all  # the forensics are large: only when asked

    heap = ctx.glibc_heap()
    if heap is not None and fctx.heap is None:
        fctx.heap = heap
    if fctx.heap is heap and fctx.check is None:
        fctx.check = ctx.heap_check()
    yield from find_all(fctx)


#: Finders that look at the heap: the forensics; the pool finder covers pools when there is
#: no forensic view (a context built without gdb's frames).
FINDERS: List[Finder] = [forensic_finder, lambda ctx: pool_finder(ctx) if ctx.forensic is None else ()]
#: Finders run only when :data:`FINDERS` found nothing.
FALLBACK_FINDERS: List[Finder] = [abort_finder, fault_finder]


# -- the report ----------------------------------------------------------------------


def _run_finders(ctx: AnalysisContext, finders: Sequence[Finder], into: Findings) -> None:
    for finder in finders:
        name = getattr(finder, "__name__", repr(finder))
        try:
            into.extend(finder(ctx))
        except GdbextError as err:  # MemoryReadError included: one finder's gap, not the report's
            ctx.errors.append(f"{name}: {err}")


def analyze(
    ctx: AnalysisContext,
    finders: Optional[Sequence[Finder]] = None,
    fallback_finders: Optional[Sequence[Finder]] = None,
) -> Dict[str, Any]:
    """The ``gdbext.triage/1`` report dict of the crash ``ctx`` describes.

    :param ctx: the gathered facts.
    :param finders: the finders to run (default :data:`FINDERS`).
    :param fallback_finders: run when those found nothing (default :data:`FALLBACK_FINDERS`).
    """
    heap = summarize_heap(ctx)
    findings = Findings()
    _run_finders(ctx, FINDERS if finders is None else finders, findings)
    if not findings:
        _run_finders(ctx, FALLBACK_FINDERS if fallback_finders is None else fallback_finders, findings)
    crash = ctx.crash
    first = next(iter(findings), None)
    crash_class = first.kind if first is not None else (crash.signal or "crash")
    sig_frames = significant_frames(crash.frames)
    location = crash.frames[sig_frames[0][0]].to_dict() if sig_frames else None
    finding_list = findings.to_list()
    add_neighbourhoods(ctx.forensic, finding_list, ctx.errors)
    return {
        "schema": SCHEMA,
        "tool": {"name": "gdbext", "version": __version__},
        "core": ctx.core,
        "binary": ctx.binary,
        "build_id": ctx.build_id,
        "crash": {
            "signal": crash.signal, "signo": crash.signo, "si_code": crash.si_code,
            "si_code_name": crash.si_code_name, "pc": hx(crash.pc), "fault_address": hx(crash.fault_address),
            "fault_address_source": crash.fault_address_source, "access": crash.access,
            "instruction": crash.instruction, "thread": dict(crash.thread), "threads": crash.threads,
            "abort_message": crash.abort_message, "location": location,
            "frames": [f.to_dict() for f in crash.frames],
            "program": program_name(ctx.binary),
            "signature": crash_signature(crash.frames, crash_class, program=program_name(ctx.binary)),
            "signature_frames": [name for _, name in sig_frames[:SIGNATURE_FRAMES]],
            "notes": list(crash.notes),
        },  # fmt: skip
        "heap": heap,
        "findings": finding_list,
        "errors": list(dict.fromkeys(ctx.errors)),
        "skipped": list(dict.fromkeys(ctx.skipped)),
    }
