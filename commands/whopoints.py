# commands/whopoints.py - the ``whopoints`` command: who points into a heap chunk
# or pool slot, by C path, with offsets, fields, the inferred type and size class.
"""``whopoints``: every pointer into the heap chunk holding an address, and what it says the chunk is."""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

import gdb  # type: ignore[import-not-found]

from gdbext.errors import GdbextError
from gdbext.gdbmem import GdbEvaluator, GdbInferiorSource
from gdbext.pools import PoolReport, resolve, walk_pool
from gdbext.refs import MAX_DEPTH, MAX_OBJECTS, ChunkIndex, ChunkReferences, Reference, ReferenceFinder
from gdbext.specs import REGISTRY

from ._base import ArgumentParser, GdbextCommand, parse_address
from ._complete import Complete, Completion, pool_names as complete_pools
from ._output import write
from ._heap import locate
from ._roots import collect_roots

__all__ = ["WhopointsCommand", "SCHEMA"]

SCHEMA = "gdbext.whopoints/1"


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="whopoints", add_help=False)
    p.add_argument("address")
    p.add_argument("--depth", type=int, default=MAX_DEPTH)
    p.add_argument("--max-objects", type=int, default=MAX_OBJECTS)
    p.add_argument("--no-heap-scan", action="store_true")
    p.add_argument("--pool", action="append", default=[])
    p.add_argument("--all-objfiles", action="store_true")
    p.add_argument("--json", action="store_true")
    return p


def _hex(value: Optional[int]) -> Optional[str]:
    return None if value is None else f"{value:#x}"


def _pools(mem: GdbInferiorSource, names: List[str], notes: List[str]) -> List[PoolReport]:
    """Walk the pools asked for (every declared pool by default); a pool that does not resolve is a note."""
    reports = []
    for name in names or sorted(REGISTRY.pools):
        try:
            reports.append(walk_pool(mem, resolve(REGISTRY.pool(name), GdbEvaluator())))
        except GdbextError as err:
            if names:
                raise
            notes.append(f"pool {name} skipped: {err}")
    return reports


class WhopointsCommand(GdbextCommand):
    """List every pointer into the heap chunk or pool slot holding ADDR, with C paths, offsets and fields.

Usage: whopoints ADDR [--depth N] [--max-objects N] [--no-heap-scan] [--pool NAME]... [--all-objfiles] [--json]

ADDR may be a chunk's header, its user address or any byte inside it (a
number or an expression).  References are searched from each thread's
registers, the variables and raw stack words of its frames, the globals and
statics with debug info of the program's own objfiles (--all-objfiles: of
system libraries too), and the heap objects reachable from them (at most
--depth pointer hops, default 3, and --max-objects objects): each is named
by a C path such as `g_table[2]->next', with the pointer's location, the
offset into the chunk and the field there.  Then every word of every in-use
chunk is checked (--no-heap-scan skips that).  Pointers to a free chunk are
reported as dangling.  glibc keeps no allocation record, so the chunk's type
is inferred from its referrers' static pointer types, with its size class.
Declared pools (gdbext load SPEC) are searched too; --pool restricts them."""

    command_name = "whopoints"
    completion = Completion(parser=lambda: _parser(), positional=Complete.EXPRESSION,
                            values={"--pool": complete_pools})

    def run(self, argv: List[str], from_tty: bool) -> None:
        args = _parser().parse_args(argv)
        if args.depth < 0 or args.max_objects < 0:
            raise GdbextError("--depth and --max-objects must not be negative")
        address = parse_address(args.address)
        mem = GdbInferiorSource()
        notes: List[str] = []
        reports = _pools(mem, args.pool, notes)
        try:
            heap = locate(mem)
        except GdbextError as err:
            heap = None
            notes.append(str(err))
        index = ChunkIndex.from_heap(heap, reports, mem.pointer_size)
        if index.lookup(address) is None:
            extra = f" ({'; '.join(notes)})" if notes else ""
            raise GdbextError(f"{address:#x} is in no heap chunk or declared pool slot{extra}")
        roots = collect_roots(include_system=args.all_objfiles)
        finder = ReferenceFinder(mem, roots, index, args.depth, args.max_objects, scan_heap=not args.no_heap_scan)
        result = finder.find([address])[address]
        if args.json:
            gdb.write(json.dumps(_json(result, finder, notes), indent=1) + "\n")
        else:
            write(_text(result, finder, notes))


def _chunk_words(result: ChunkReferences) -> str:
    o = result.obj
    where = o.bin and f" {o.bin}" or ""
    return (f"chunk {o.chunk:#x} ({o.source}, size class {o.size:#x}, {o.state}{where}), "
            f"user data {o.start:#x}..{o.end:#x}")


def _type_words(result: ChunkReferences) -> str:
    o = result.obj
    no_record = "glibc keeps no allocation record; " if o.source.startswith("glibc") else ""
    if result.inferred_type is None:
        return f"inferred type: unknown ({no_record}no typed pointer to its start); size class {o.size:#x}"
    votes = ", ".join(f"{n} x{c}" for n, c in result.type_votes.items())
    return f"inferred type: {result.inferred_type} ({no_record}from the referrers: {votes}); size class {o.size:#x}"


def _ref_line(r: Reference) -> str:
    if r.address_of_pointer is not None:
        at = f"@{r.address_of_pointer:#x}"
    else:
        at = "(register)" if r.kind == "register" else "(not in memory)"
    field = f" {r.field}" if r.field else ""
    bits = [f"{r.kind}", at, f"= {r.pointer_value:#x}", f"{r.offset_into_target:+#x}{field}"]
    if r.inferred_type:
        bits.append(f"as {r.inferred_type} *")
    if r.holder is not None:
        hf = f" {r.holder_field}" if r.holder_field else ""
        bits.append(f"in chunk {r.holder:#x} at +{r.holder_offset:#x}{hf}")
    if r.stale:
        bits.append("read through freed memory")
    also = "".join(f"\n      also {a}" for a in r.aliases)
    return f"  {r.path}\n      " + ", ".join(bits) + also + "\n"


def _text(result: ChunkReferences, finder: ReferenceFinder, notes: List[str]) -> str:
    o = result.obj
    out = [f"{result.address:#x} is in {_chunk_words(result)}\n"]
    if result.dangling:
        out.append(f"the chunk is {o.state.upper()}: every pointer below is dangling\n")
    out.append(_type_words(result) + "\n")
    refs = result.references
    if not refs:
        out.append("no references found\n")
    else:
        out.append(f"{len(refs)} reference{'s' if len(refs) != 1 else ''}:\n")
        out.extend(_ref_line(r) for r in refs)
    st = finder.stats
    limits = []
    if st.object_limit_hit:
        limits.append(f"object limit {finder.max_objects} reached")
    if st.depth_limited:
        limits.append(f"{st.depth_limited} heap pointers beyond depth {finder.max_depth} not followed")
    if st.unreadable:
        limits.append(f"{len(st.unreadable)} unreadable objects")
    scan = "; every in-use chunk scanned" if finder.scan_heap else ""
    out.append(f"searched {st.roots} roots and {st.objects} heap objects{scan}"
               + (f" ({'; '.join(limits)})" if limits else "") + "\n")
    out.extend(f"note: {n}\n" for n in notes)
    return "".join(out)


def _json(result: ChunkReferences, finder: ReferenceFinder, notes: List[str]) -> Dict[str, Any]:
    o = result.obj
    return {
        "schema": SCHEMA,
        "address": _hex(result.address),
        "chunk": {"address": _hex(o.chunk), "user_address": _hex(o.start), "end": _hex(o.end), "size": o.size,
                  "usable": o.usable, "state": o.state, "bin": o.bin, "allocator": o.source},
        "dangling": result.dangling,
        "inferred_type": result.inferred_type,
        "type_votes": result.type_votes,
        "size_class": o.size,
        "allocation_record": None,
        "references": [r.to_dict() for r in result.references],
        "stats": dict(finder.stats.to_dict(), max_depth=finder.max_depth, max_objects=finder.max_objects,
                      heap_scan=finder.scan_heap),
        "notes": notes,
    }
