"""The declarations a pool spec is made of: geometry, in-use predicate, free list, fill, guard.

Every default stated here is the one docs/specs.md documents; a spec holds
*expressions* (strings the evaluator understands, C in gdb) or plain integers
wherever a value is read from the program, and plain Python values elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional, Sequence, Tuple, Union

import construct

__all__ = [
    "Expr",
    "PointsTo",
    "FixedSlots",
    "Chained",
    "Tree",
    "Nodes",
    "Magic",
    "FlagBit",
    "InFreeList",
    "FreeList",
    "Fill",
    "Guard",
    "PoolSpec",
    "MAX_POOL_CHUNKS",
]

#: A number, or an expression the evaluator understands (a C expression in gdb).
Expr = Union[int, str]

#: No pool walk visits more chunks or free-list nodes than this.
MAX_POOL_CHUNKS = 1_000_000


class PointsTo(str, Enum):
    """What a link in the pool addresses: a chunk's header, or the payload handed to the program."""

    HEADER = "header"
    PAYLOAD = "payload"


@dataclass(frozen=True)
class FixedSlots:
    """Slots of one size in an array: ``count`` slots of ``slot_size`` bytes from ``first``."""

    first: Expr
    slot_size: Expr
    count: Expr


@dataclass(frozen=True)
class Chained:
    """Chunks laid end to end from ``first`` to ``end``; each header's ``size_field`` gives its length.

    ``size_includes_header``: the size counts the header too (else header size is added).
    ``size_mask`` clears flag bits kept in the size's low bits (e.g. ``~7``).
    ``round_up``: the span is rounded up to ``align`` (talloc pools: ``TC_ALIGN16(header + size)``);
    without it a span that is not a multiple of ``align`` is corruption.
    """

    first: Expr
    end: Expr
    size_field: str
    size_includes_header: bool = True
    size_mask: int = -1
    align: int = 8
    round_up: bool = False


@dataclass(frozen=True)
class Tree:
    """Allocations anywhere in memory, linked as a tree from ``root`` (an expression: a header's address).

    Each header names its first child (``child``) and its next sibling (``sibling``); ``size_field``
    holds the payload size (the header is not counted).  ``points_to`` says what the links address.
    talloc is the model: every allocation is a node under its parent context.
    """

    root: Expr
    child: str
    sibling: str
    size_field: str
    points_to: PointsTo = PointsTo.HEADER


@dataclass(frozen=True)
class Nodes:
    """Memory nodes in a chain from ``head``, allocations carved from each without a header (APR pools).

    A node is ``[node header | allocations ... | free space]``: the header's ``used_end`` field points to
    its first free byte and ``end`` one past the node; ``next`` links the nodes.  ``ring``: the chain
    comes back to ``head`` (APR's active ring) instead of ending with NULL.  Each node is one chunk:
    its usable bytes run to ``end`` and the bytes handed out (its requested size) to ``used_end``.
    Allocations have no header, so a finding names the pool and the node.
    """

    head: Expr
    next: str
    used_end: str
    end: str
    ring: bool = True


@dataclass(frozen=True)
class Magic:
    """In use when ``field & mask`` holds ``used``; free when it holds ``free``; anything else is corrupt.

    ``used`` and ``free`` are numbers or expressions (talloc draws its magic at start-up: the spec
    reads it from a known live header).  ``mask`` keeps the bits the magic lives in, so that flag
    bits sharing the word do not count (talloc: the low four bits are flags).
    """

    field: str
    used: Union[Expr, Sequence[Expr]]
    free: Union[Expr, Sequence[Expr]] = ()
    mask: int = -1

    def values(self) -> Tuple[Tuple[Expr, ...], Tuple[Expr, ...]]:
        as_tuple = lambda v: tuple(v) if isinstance(v, (list, tuple)) else (v,)  # noqa: E731
        return as_tuple(self.used), as_tuple(self.free)


@dataclass(frozen=True)
class FlagBit:
    """In use when ``field & mask`` is non-zero (or zero, with ``set_means_used=False``)."""

    field: str
    mask: int
    set_means_used: bool = True


@dataclass(frozen=True)
class InFreeList:
    """In use unless the chunk is on the free list."""


@dataclass(frozen=True)
class FreeList:
    """A singly linked free list: ``head`` (expression) and the header's ``link`` field.

    ``points_to`` says what the links address: the chunk's header (the default) or its payload.
    """

    head: Expr
    link: str
    points_to: Union[PointsTo, str] = PointsTo.HEADER


@dataclass(frozen=True)
class Fill:
    """Bytes the allocator writes into payloads: on free, and on a fresh allocation (None: no fill)."""

    free: Optional[int] = None
    fresh: Optional[int] = None


@dataclass(frozen=True)
class Guard:
    """Guard bytes at ``offset`` from the chunk start (negative: from the chunk end)."""

    offset: int
    size: int
    byte: int


@dataclass(frozen=True)
class PoolSpec:
    """Everything needed to walk one custom pool.

    :param name: the pool's name in listings (``heapwalk --pool NAME``)
    :param geometry: :class:`FixedSlots`, :class:`Chained`, :class:`Tree` or :class:`Nodes`
    :param header: header type: a DWARF type name (``"struct slot_hdr"``) or a construct ``Struct``
    :param root: the pool object (an expression); ``print ROOT`` shows the pool printer
    :param type_name: values of this type are printed as the pool too (e.g. ``"struct pool"``)
    :param header_offset: where the header starts in a chunk
    :param payload_offset: where the user's data starts in a chunk (default: right after the header)
    :param payload_size: usable bytes per chunk (fixed slots; default: up to the guard or slot end)
    :param in_use: :class:`Magic`, :class:`FlagBit` or :class:`InFreeList`
    :param requested_size: header field holding the size the caller asked for
    :param alloc_site: header field holding a return address, or an array of them
    :param label: header field holding a pointer to a C string naming the allocation
        (talloc's ``name``: the type, or the ``file:line`` of the call)
    :param free_list: the :class:`FreeList`, if any
    :param fill: payload fill bytes, if any
    :param guard: guard bytes, if any
    """

    name: str
    geometry: Union[FixedSlots, Chained, Tree, Nodes]
    header: Union[str, construct.Construct]
    root: Optional[Expr] = None
    type_name: Optional[str] = None
    header_offset: int = 0
    payload_offset: Optional[int] = None
    payload_size: Optional[int] = None
    in_use: Union[Magic, FlagBit, InFreeList] = InFreeList()
    requested_size: Optional[str] = None
    alloc_site: Optional[str] = None
    label: Optional[str] = None
    free_list: Optional[FreeList] = None
    fill: Optional[Fill] = None
    guard: Optional[Guard] = None
