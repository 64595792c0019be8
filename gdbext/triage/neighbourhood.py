# gdbext/triage/neighbourhood.py - the chunks around a finding's damaged chunk (and the chunk that
# overran it), for the HTML report's heap map: a few neighbours each side, bounded.
"""A finding's neighbourhood: ``finding["neighbourhood"]`` in the report.

The damaged chunk, the overflow's source when there is one, the chunks
between them (at most :data:`MAX_BETWEEN`) and :data:`EACH_SIDE` adjacent
chunks before and after, in address order, each
``{address, user_address, size, state, heap, bin, index, role}`` with
``role`` ``damaged``, ``source`` or ``neighbour``.  Read from the forensic
chunk index (glibc arenas and declared pools), so nothing new is read from
the target.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from ..errors import GdbextError

__all__ = ["EACH_SIDE", "MAX_BETWEEN", "neighbourhood", "add_neighbourhoods"]

#: Adjacent chunks kept on each side.
EACH_SIDE = 2
#: The most chunks walked from the source to the damaged chunk.
MAX_BETWEEN = 4


def _addr(value: Any) -> Optional[int]:
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return int(value, 16)
        except ValueError:
            return None
    return None


def _view_dict(view: Any, role: str) -> Dict[str, Any]:
    return {"address": hex(view.address), "user_address": hex(view.user_address), "size": view.size,
            "state": view.state, "heap": view.heap, "bin": view.bin, "index": view.slot, "role": role}


def _exact(index: Any, address: Optional[int]) -> Any:
    if address is None:
        return None
    view = index.find(address)
    return view if view is not None and view.address == address else None


def neighbourhood(index: Any, finding: Dict[str, Any], each_side: int = EACH_SIDE) -> Optional[List[Dict[str, Any]]]:
    """The chunks around ``finding``'s damaged chunk, or None when the index does not hold it.

    :param index: a :class:`gdbext.forensics.chunks.ChunkIndex`.
    :param finding: a finding dict of the report.
    """
    chunk = finding.get("chunk") or {}
    source = (finding.get("source") or {}).get("chunk") or {}
    damaged = _exact(index, _addr(chunk.get("address")))
    if damaged is None:
        return None
    src = _exact(index, _addr(source.get("address")))
    roles = {damaged.address: "damaged"}
    if src is not None and src.address != damaged.address:
        roles[src.address] = "source"
    first, last = (src, damaged) if src is not None and src.address < damaged.address else (damaged, src or damaged)
    views = [first]
    cur = first
    for _ in range(MAX_BETWEEN + 1):  # from the first to the last named chunk, if they are close
        if cur.address == last.address:
            break
        nxt = index.neighbours(cur)[1]
        if nxt is None or nxt.address > last.address:
            views.append(last)  # not adjacent: the picture shows a gap
            break
        views.append(nxt)
        cur = nxt
    else:
        views.append(last)
    before, cur = [], views[0]
    for _ in range(each_side):
        cur = index.neighbours(cur)[0]
        if cur is None:
            break
        before.insert(0, cur)
    after, cur = [], views[-1]
    for _ in range(each_side):
        cur = index.neighbours(cur)[1]
        if cur is None:
            break
        after.append(cur)
    seen, out = set(), []
    for v in before + views + after:
        if v.address not in seen:
            seen.add(v.address)
            out.append(_view_dict(v, roles.get(v.address, "neighbour")))
    return out


def add_neighbourhoods(forensic: Any, findings: List[Dict[str, Any]], errors: List[str]) -> None:
    """Set ``neighbourhood`` on every finding of ``findings`` whose chunk the forensic index holds."""
    if forensic is None:
        return
    try:
        index = forensic.index()
        for f in findings:
            hood = neighbourhood(index, f)
            if hood is not None:
                f["neighbourhood"] = hood
    except GdbextError as err:
        errors.append(f"heap map neighbourhood: {err}")
