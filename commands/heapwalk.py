"""``heapwalk``: every chunk of every glibc arena and declared pool, listed, summarised or checked."""
from __future__ import annotations

import json
from typing import Dict, Iterator, List, Optional

import gdb  # type: ignore[import-not-found]

from gdbext.errors import GdbextError, MemoryReadError
from gdbext.gdbmem import GdbInferiorSource
from gdbext.glibc import GlibcHeap, HeapWalker, check_heap
from gdbext.pools import PoolReport
from gdbext.textutil import printable_text

from ._base import ArgumentParser, GdbextCommand, parse_address
from ._heap import locate
from ._pools import walk_pools

__all__ = ["HeapwalkCommand", "SCHEMA"]

SCHEMA = "gdbext.heapwalk/1"
PREVIEW = 16  #: bytes of user data shown per chunk
GLIBC_STATES = {"in-use", "free", "top", "mmapped", "corrupt"}
BIN_KINDS = {"tcache", "fastbin", "unsorted", "small", "large"}


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="heapwalk", add_help=False)
    p.add_argument("--arena", help="only this arena: its address, or 'main'")
    p.add_argument("--pool", action="append", default=[], help="only this declared pool (repeatable)")
    p.add_argument("--pools-only", action="store_true", help="only the declared pools, not the glibc heap")
    p.add_argument("--state", help="comma-separated: in-use, free, top, mmapped, corrupt, tcache, fastbin, ...")
    p.add_argument("--min-size", type=lambda t: int(t, 0), default=0)
    p.add_argument("--max-size", type=lambda t: int(t, 0), default=None)
    p.add_argument("--range", nargs=2, metavar=("A", "B"))
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--summary", action="store_true")
    p.add_argument("--check", action="store_true")
    p.add_argument("--json", action="store_true")
    return p


def _hex(value: Optional[int]) -> Optional[str]:
    return None if value is None else f"{value:#x}"


class _Filter:
    """The listing filters, applied to glibc chunks and pool chunks alike."""

    def __init__(self, args, arena_addr: Optional[int]) -> None:
        wanted = {s.strip() for s in (args.state or "").split(",") if s.strip()}
        unknown = wanted - GLIBC_STATES - BIN_KINDS
        if unknown:
            raise GdbextError(f"unknown state {', '.join(sorted(unknown))} "
                              f"(one of {', '.join(sorted(GLIBC_STATES | BIN_KINDS))})")
        self.states = wanted & GLIBC_STATES
        self.bins = wanted & BIN_KINDS
        self.min_size, self.max_size = args.min_size, args.max_size
        self.lo, self.hi = (parse_address(args.range[0]), parse_address(args.range[1])) if args.range else (0, None)
        self.arena = arena_addr

    def state_ok(self, state: str, bin_label: Optional[str]) -> bool:
        if not self.states and not self.bins:
            return True
        if state in self.states:
            return True
        return bool(bin_label) and bin_label.split("[")[0] in self.bins

    def ok(self, address: int, size: int, state: str, bin_label: Optional[str]) -> bool:
        if size < self.min_size or (self.max_size is not None and size > self.max_size):
            return False
        if address < self.lo or (self.hi is not None and address >= self.hi):
            return False
        return self.state_ok(state, bin_label)


def _preview(mem: GdbInferiorSource, address: int, size: int) -> bytes:
    n = max(0, min(PREVIEW, size))
    try:
        return mem.read(address, n) if n else b""
    except MemoryReadError:
        return b""


def _preview_text(data: bytes) -> str:
    if not data:
        return ""
    ascii_ = "".join(chr(b) if 32 <= b < 127 else "." for b in data)
    return f"{data.hex(' ')}  |{ascii_}|"


class HeapwalkCommand(GdbextCommand):
    """Walk every chunk of every glibc arena and declared pool; list, summarise or check them.

Usage: heapwalk [--arena ADDR|main] [--pool NAME]... [--pools-only] [--state S[,S...]]
                [--min-size N] [--max-size N] [--range A B] [--limit N] [--summary] [--check] [--json]

Without options, one line per chunk of every arena and every declared pool:
address, size, state (free chunks with their bin: tcache[i], fastbin[i],
unsorted, small[i], large[i]; pool slots on their free list: free-list),
usable size, arena or pool, and the first bytes.  --pool NAME narrows to
that pool, --arena to that arena, --pools-only to the declared pools.  --summary: counts and bytes per state and
size class for each arena and pool.  --check: only the violations of
glibc's invariants (each with the abort message it corresponds to, the field
and its bytes) and the byte ranges that could not be parsed.  --json emits
the same content as JSON (docs/heapwalk.md).  States: in-use, free, top,
mmapped, corrupt, and bin kinds tcache, fastbin, unsorted, small, large.
Heap location can be overridden with `set gdbext main-arena|mp|tcache|...'."""

    command_name = "heapwalk"

    def run(self, argv: List[str], from_tty: bool) -> None:
        args = _parser().parse_args(argv)
        if args.summary and args.check:
            raise GdbextError("choose one of --summary and --check")
        mem = GdbInferiorSource()
        notes: List[str] = []
        # --pool narrows to those pools, --arena to that arena; neither: every arena and every pool
        with_pools = bool(args.pool) or args.arena is None
        with_glibc = not args.pools_only and (not args.pool or args.arena is not None)
        reports = walk_pools(mem, args.pool, notes) if with_pools else []
        heap: Optional[GlibcHeap] = None
        if with_glibc:
            try:
                heap = locate(mem)
            except GdbextError as err:
                if not reports:
                    raise
                notes.append(str(err))  # the pools are still worth showing
        if not args.json:
            for note in notes:
                gdb.write(f"note: {note}\n")
        arena_addr = self._arena(heap, args.arena)
        if args.summary:
            self._summary(heap, reports, arena_addr, args.json, notes)
        elif args.check:
            self._check(heap, reports, args.json)
        else:
            self._list(mem, heap, reports, _Filter(args, arena_addr), args.limit, args.json)

    @staticmethod
    def _arena(heap: Optional[GlibcHeap], text: Optional[str]) -> Optional[int]:
        if text is None or heap is None:
            return None
        if text == "main":
            return heap.main_arena
        addr = parse_address(text)
        if heap.arena_at(addr) is None:
            known = ", ".join(f"{a.address:#x}" for a in heap.arenas)
            raise GdbextError(f"{addr:#x} is not an arena (arenas: {known})")
        return addr

    # -- listing -------------------------------------------------------------
    def _glibc_rows(self, mem, heap: GlibcHeap, flt: _Filter) -> Iterator[Dict[str, object]]:
        walker = HeapWalker(heap)
        labels = {a.address: a.label for a in heap.arenas}
        states = None
        if flt.states and not flt.bins:
            states = flt.states
        for c in walker.chunks(arena=flt.arena, states=states, min_size=flt.min_size, max_size=flt.max_size):
            if not flt.ok(c.address, c.size, c.state, c.bin):
                continue
            user = c.address + 2 * mem.pointer_size
            yield {"heap": labels.get(c.arena, "mmapped") if c.arena is not None else "mmapped",
                   "address": c.address, "user_address": user, "size": c.size, "state": c.state, "bin": c.bin,
                   "usable": c.usable, "preview": _preview(mem, user, c.size - 2 * mem.pointer_size)}
        for u in walker.unparsed:
            yield {"heap": labels.get(u.arena, "?"), "unparsed": (u.start, u.end), "reason": u.reason}

    @staticmethod
    def _pool_rows(mem, report: PoolReport, flt: _Filter) -> Iterator[Dict[str, object]]:
        for c in report.chunks:
            if not flt.ok(c.address, c.size, c.state, None):
                continue
            yield {"heap": f"pool:{report.pool.spec.name}", "address": c.address, "user_address": c.user_address,
                   "size": c.size, "state": c.state, "bin": "free-list" if c.in_free_list else None,
                   "usable": c.usable_size, "requested": c.requested_size,
                   "preview": _preview(mem, c.user_address, c.usable_size),
                   "anomalies": [a.kind for a in c.anomalies], "label": c.label}

    def _list(self, mem, heap, reports, flt: _Filter, limit: Optional[int], as_json: bool) -> None:
        def rows():
            if heap is not None:
                yield from self._glibc_rows(mem, heap, flt)
            for report in reports:
                yield from self._pool_rows(mem, report, flt)

        shown = 0
        if as_json:
            gdb.write('{"schema": "%s", "chunks": [\n' % SCHEMA)
        for row in rows():
            if limit is not None and shown >= limit:
                break
            if as_json:
                gdb.write(("," if shown else "") + json.dumps(_json_row(row)) + "\n")
            else:
                gdb.write(_text_row(row) + "\n")
            shown += 1
        if as_json:
            gdb.write("]}\n")
        elif shown == 0:
            gdb.write("heapwalk: no chunk matches\n")

    # -- summary -------------------------------------------------------------
    def _summary(self, heap, reports, arena_addr, as_json: bool, notes: List[str]) -> None:
        data: Dict[str, object] = {"schema": SCHEMA}
        if heap is not None:
            summary = HeapWalker(heap).summary(arena=arena_addr)
            data.update({"chunks": summary.chunks, "bytes": summary.bytes, "glibc": str(heap.version),
                         "notes": list(heap.notes),
                         "arenas": [a.to_dict() for a in summary.arenas],
                         "mmapped": [{"address": _hex(m.address), "size": m.size} for m in heap.mmapped]
                         if arena_addr is None else []})
        else:
            data["chunks"] = 0
        data["pools"] = [_pool_summary(r) for r in reports]
        if notes:
            data["pool_notes"] = list(notes)
        if as_json:
            gdb.write(json.dumps(data, default=_jsonable) + "\n")
            return
        if heap is not None:
            gdb.write(f"{heap.version}; main_arena {heap.main_arena:#x} ({heap.main_arena_how}); "
                      f"{data['chunks']} chunks, {data['bytes']} bytes\n")
            for note in heap.notes:
                gdb.write(f"note: {note}\n")
            for arena in data["arenas"]:  # type: ignore[union-attr]
                _write_arena_summary(arena)
            for m in data["mmapped"]:  # type: ignore[union-attr]
                gdb.write(f"mmapped chunk {m['address']} size {m['size']:#x}\n")
        for pool in data["pools"]:  # type: ignore[union-attr]
            gdb.write(f"pool {pool['name']}: {pool['chunks']} chunks: " + ", ".join(
                f"{k} {v['count']} ({v['bytes']} bytes)" for k, v in pool["states"].items()) +
                f"; free list {pool['free_list']}; {pool['anomalies']} anomalies\n")

    # -- checks --------------------------------------------------------------
    def _check(self, heap, reports, as_json: bool) -> None:
        count = 0
        if as_json:
            gdb.write('{"schema": "%s", "violations": [\n' % SCHEMA)
        if heap is not None:
            report = check_heap(heap)
            for v in report.violations:
                if as_json:
                    gdb.write(("," if count else "") + json.dumps(_violation_json(v), default=_jsonable) + "\n")
                else:
                    gdb.write(_violation_line(v) + "\n")
                count += 1
            for u in report.unparsed:
                item = {"check": "walk.unparsed", "start": _hex(u.start), "end": _hex(u.end), "reason": u.reason}
                if as_json:
                    gdb.write(("," if count else "") + json.dumps(item) + "\n")
                else:
                    gdb.write(f"could not parse {u.start:#x}..{u.end:#x} ({u.end - u.start} bytes): {u.reason}\n")
                count += 1
        for r in reports:
            for a in r.anomalies:
                item = {"check": f"pool.{a.kind}", "pool": r.pool.spec.name, "address": _hex(a.address),
                        "chunk": a.chunk, "explanation": a.message, "raw": a.data.hex()}
                if as_json:
                    gdb.write(("," if count else "") + json.dumps(item) + "\n")
                else:
                    gdb.write(f"[pool {r.pool.spec.name}] {a.text()}{_bytes_note(a.data)}\n")
                count += 1
        if as_json:
            gdb.write("]}\n")
        else:
            gdb.write(f"heapwalk --check: {count} violation{'s' if count != 1 else ''}\n")


def _bytes_note(data: bytes) -> str:
    if not data:
        return ""
    text = printable_text(data)
    return f" bytes {data.hex()}" + (f" ({text!r})" if text else "")


def _violation_json(v) -> Dict[str, object]:
    out = v.to_dict()
    for key in ("chunk", "field_address", "arena"):
        if isinstance(out.get(key), int):
            out[key] = _hex(out[key])  # type: ignore[arg-type]
    return out


def _violation_line(v) -> str:
    where = f" @{v.field_address:#x}" if v.field_address is not None else ""
    chunk = f"chunk {v.chunk:#x} " if v.chunk is not None else ""
    glibc = f' [glibc: "{v.abort}"]' if v.abort else ""
    return f"{v.severity}: {v.check}: {chunk}{v.field}{where}{_bytes_note(v.raw)}: {v.explanation}{glibc}"


def _text_row(row: Dict[str, object]) -> str:
    if "unparsed" in row:
        start, end = row["unparsed"]  # type: ignore[misc]
        return f"{start:#x}  unparsed {end - start:#x} bytes ({row['reason']})  {row['heap']}"
    state = str(row["state"]) + (f" {row['bin']}" if row.get("bin") else "")
    extra = f" req {row['requested']}" if row.get("requested") is not None else ""
    anomalies = f" !! {','.join(row['anomalies'])}" if row.get("anomalies") else ""  # type: ignore[arg-type]
    if row.get("label") is not None:
        anomalies = f' "{row["label"]}"' + anomalies
    return (f"{row['address']:#x} {row['size']:#8x} {state:<16} usable {row['usable']:#6x}{extra} "
            f"{row['heap']}  {_preview_text(row['preview'])}{anomalies}")  # type: ignore[arg-type]


def _json_row(row: Dict[str, object]) -> Dict[str, object]:
    if "unparsed" in row:
        start, end = row["unparsed"]  # type: ignore[misc]
        return {"heap": row["heap"], "state": "unparsed", "address": _hex(start), "end": _hex(end),
                "reason": row["reason"]}
    out = dict(row)
    out["address"] = _hex(row["address"])  # type: ignore[arg-type]
    out["user_address"] = _hex(row["user_address"])  # type: ignore[arg-type]
    out["preview"] = row["preview"].hex()  # type: ignore[union-attr]
    return out


def _pool_summary(report: PoolReport) -> Dict[str, object]:
    states: Dict[str, Dict[str, int]] = {}
    for c in report.chunks:
        entry = states.setdefault(c.state, {"count": 0, "bytes": 0})
        entry["count"] += 1
        entry["bytes"] += c.size
    return {"name": report.pool.spec.name, "chunks": len(report.chunks), "states": states,
            "free_list": len(report.free_list), "anomalies": len(report.anomalies), "stopped": report.stopped}


def _write_arena_summary(arena: Dict[str, object]) -> None:
    gdb.write(f"{arena['label']}: {arena['segments']} segment(s), {arena['chunks']} chunks, {arena['bytes']} bytes\n")
    for state, v in arena["states"].items():  # type: ignore[union-attr]
        if v["count"]:
            gdb.write(f"  {state:<8} {v['count']:>9} chunks {v['bytes']:>12} bytes\n")
    for kind, v in arena["free"].items():  # type: ignore[union-attr]
        if v["count"]:
            gdb.write(f"    free in {kind:<8} {v['count']:>9} chunks {v['bytes']:>12} bytes\n")
    sizes = arena["sizes"]  # type: ignore[assignment]
    if sizes:
        gdb.write("  size class    in-use      free\n")
        for size, v in sizes.items():  # type: ignore[union-attr]
            gdb.write(f"  {size:>10} {v['in-use']:>9} {v['free']:>9}\n")
    if arena.get("unparsed_bytes"):
        gdb.write(f"  unparsed {arena['unparsed_bytes']} bytes\n")


def _jsonable(obj: object) -> object:
    if isinstance(obj, (bytes, bytearray)):
        return obj.hex()
    if isinstance(obj, set):
        return sorted(obj)
    return str(obj)
