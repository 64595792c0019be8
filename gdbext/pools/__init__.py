"""Custom pool allocators described by a *pool spec*, walked without gdb.

A pool spec says where a pool lives and how to read it: the root, the
geometry (fixed-size slots in an array, chunks laid end to end with a size
field, or a tree of allocations linked by child/sibling fields), the chunk
header (a DWARF type name, or a construct struct when there is no debug
info), how to tell an in-use chunk (magic values under a mask, a flag bit, or
absence from the free list), the requested-size, allocation-site and label
fields, the free list, and fill/guard bytes.  It is the single description
that the pool printer, ``heapwalk``, ``poisonscan`` and the forensics use.

The package is split by job: :mod:`.spec` (the declarations),
:mod:`.layout` (evaluating them into a :class:`ResolvedPool`), :mod:`.walk`
(reading a pool through a memory source, bounded however corrupt it is) and
:mod:`.validate` (each mistake in a spec as one line naming its field).
"""
from __future__ import annotations

from .layout import Evaluator, HeaderField, HeaderLayout, ResolvedPool, layout_from_construct, resolve
from .spec import (MAX_POOL_CHUNKS, Chained, Expr, Fill, FixedSlots, FlagBit, FreeList, Guard, InFreeList, Magic,
                   Nodes, PointsTo, PoolSpec, Tree)
from .validate import Problem, Validation, validate
from .walk import PoolAnomaly, PoolChunk, PoolReport, iter_chunk_spans, walk_pool

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
    "HeaderField",
    "HeaderLayout",
    "Evaluator",
    "ResolvedPool",
    "PoolChunk",
    "PoolAnomaly",
    "PoolReport",
    "Problem",
    "Validation",
    "resolve",
    "validate",
    "walk_pool",
    "iter_chunk_spans",
    "layout_from_construct",
    "MAX_POOL_CHUNKS",
]
