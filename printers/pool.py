"""Printer for custom pools declared with :func:`gdbext.specs.pool`.

``print g_pool`` (the spec's root, or any value of its ``type_name``) shows a
summary line, one child per anomaly, and one child per chunk with its state,
requested size and allocation site as function + file:line of the call.
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Tuple

import gdb  # type: ignore[import-not-found]

from gdbext.errors import GdbextError
from gdbext.gdbmem import GdbEvaluator, GdbInferiorSource, source_location
from gdbext.pools import PoolChunk, PoolReport, PoolSpec, resolve, walk_pool
from gdbext.specs import REGISTRY

from ._base import ProgramCache, SubPrinter, ValuePrinter, type_names

__all__ = ["PoolPrinter", "subprinters", "describe_site", "chunk_line", "PRIORITY"]

#: Order among printer modules (declared pools).
PRIORITY = 30

_ROOTS = ProgramCache()


def describe_site(pc: int) -> str:
    """``function (file:line)`` of the call that returned to ``pc``: the call's own line, hence ``pc - 1``."""
    loc = source_location(pc - 1)
    func = loc["function"] or "??"
    if loc["file"]:
        return f"{func} ({loc['file']}:{loc['line']})"
    return f"{func} ({pc:#x})"


def chunk_line(chunk: PoolChunk) -> str:
    """One line for a chunk: state, user address, requested/usable size, allocation site(s)."""
    parts = [f"{chunk.state} {chunk.user_address:#x}"]
    if chunk.requested_size is not None and chunk.state != "free":
        parts.append(f"req {chunk.requested_size}/{chunk.usable_size}")
    else:
        parts.append(f"usable {chunk.usable_size}")
    if chunk.alloc_sites and chunk.state == "in-use":
        parts.append("from " + " <- ".join(describe_site(pc) for pc in chunk.alloc_sites))
    if chunk.label is not None:
        parts.append(f'"{chunk.label}"')
    if chunk.anomalies:
        parts.append("!! " + "; ".join(a.kind for a in chunk.anomalies))
    return " ".join(parts)


def summary_line(report: PoolReport) -> str:
    pool = report.pool
    spec = pool.spec
    if pool.slot_size:
        shape = f"{pool.count} slots x {pool.slot_size} B at {pool.first:#x}"
    else:
        shape = f"{len(report.chunks)} chunks in [{pool.first:#x}, {pool.end:#x})"
    text = (f"pool {spec.name}: {shape}, {report.in_use} in use, {report.free} free"
            f"{f', {report.corrupt} corrupt' if report.corrupt else ''}")
    if spec.free_list is not None:
        text += f", free list {len(report.free_list)}"
    if report.anomalies:
        text += f", {len(report.anomalies)} anomal{'y' if len(report.anomalies) == 1 else 'ies'}"
    if report.stopped:
        text += f" (walk stopped: {report.stopped})"
    return text


class PoolPrinter(ValuePrinter):
    """A pool: summary, anomalies, then each chunk."""

    def __init__(self, spec: PoolSpec) -> None:
        self._spec = spec
        self._report: Optional[PoolReport] = None
        self._error: Optional[str] = None
        try:
            mem = GdbInferiorSource(require_target=False)
            self._report = walk_pool(mem, resolve(spec, GdbEvaluator()))
        except GdbextError as err:
            text = str(err)
            self._error = f"<{text}>" if text.startswith(f"pool {spec.name}: ") else f"<pool {spec.name}: {text}>"

    def to_string(self) -> str:
        if self._report is None:
            return self._error or f"<pool {self._spec.name}>"
        return summary_line(self._report)

    def children(self) -> Iterator[Tuple[str, str]]:
        if self._report is None:
            return
        for n, anomaly in enumerate(self._report.anomalies, 1):
            yield f"anomaly {n}", anomaly.text()
        for chunk in self._report.chunks:
            yield f"[{chunk.index}]", chunk_line(chunk)


def _root(spec: PoolSpec) -> Optional[Tuple[int, str]]:
    """Address and type of the spec's root object (cached until the program changes)."""
    if spec.root is None:
        return None
    if spec.name not in _ROOTS.data:
        try:
            value = gdb.parse_and_eval(spec.root) if isinstance(spec.root, str) else None
            _ROOTS.data[spec.name] = (int(value.address), str(value.type.strip_typedefs())) \
                if value is not None and value.address is not None else None
        except gdb.error:
            _ROOTS.data[spec.name] = None
    return _ROOTS.data[spec.name]  # type: ignore[return-value]


def _matcher(spec: PoolSpec):
    def match(val: gdb.Value) -> Optional[PoolPrinter]:
        gtype = val.type.strip_typedefs()
        if gtype.code not in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_ARRAY, gdb.TYPE_CODE_PTR):
            return None
        if gtype.code == gdb.TYPE_CODE_PTR and spec.root is None:
            return None  # a pointer is the pool only as the root variable itself (talloc_pool's result)
        if spec.type_name and (spec.type_name in type_names(val.type) or spec.type_name == str(gtype)):
            return PoolPrinter(spec)
        root = _root(spec)
        if root is not None and val.address is not None and (int(val.address), str(gtype)) == root:
            return PoolPrinter(spec)
        return None

    return match


def subprinters() -> List[SubPrinter]:
    return [SubPrinter(f"pool:{name}", _matcher(spec)) for name, spec in REGISTRY.pools.items()]
