"""Pool specs for allocators teams use, as functions of the program's own variables.

A spec file for a program calls these with the expressions that reach its
pools (``specs/talloc.py`` is one).  Each layout is the one of the Debian 12
package named, on x86-64; the comments say where it comes from and what may
change with the release.

* talloc 2.4 (``libtalloc-dev``): every allocation has a 96-byte header
  (``TC_HDR_SIZE``, the private ``struct talloc_chunk`` aligned to 16);
  children hang from ``child`` and are linked by ``next``.  A
  ``talloc_pool`` keeps a 32-byte pool header before its own chunk, whose
  first word is the end of what has been carved; objects are carved end to
  end, each spanning ``TC_ALIGN16(96 + size)``.  The low four bits of
  ``flags`` are flags (FREE 1, LOOP 2, POOL 4, POOLMEM 8), the rest is a
  magic drawn at start-up; a freed chunk gets the build's fixed magic, and
  its ``name`` becomes the file:line of the free.
* APR 1.7 (``libapr1-dev``): a pool allocates from memory nodes (the
  public ``apr_memnode_t``: next, ref, index, free_index, first_avail,
  endp; 40 bytes), on Debian mmapped page by page, chained in a ring from
  the private ``apr_pool_t``'s ``active`` field (its twelfth pointer,
  offset 88, in a build without APR_POOL_DEBUG).  Allocations carry no
  header: ``first_avail`` is where the next one starts.
* A family of pools from one descriptor table (:func:`pools_from_table`):
  lwIP's ``memp_pools[]`` when lwIP is built with ``MEMP_MEM_MALLOC=0``.
  Debian's ``liblwip`` is built with ``MEMP_MEM_MALLOC=1`` (memp_malloc is
  malloc), so it has no such table; custom builds usually do.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import construct as c

from .spec import Chained, FixedSlots, FreeList, InFreeList, Magic, Nodes, PoolSpec, Tree

__all__ = ["TALLOC_CHUNK", "talloc_free_magic", "talloc_pool", "talloc_tree", "APR_MEMNODE", "apr_pool",
           "pools_from_table"]

#: struct talloc_chunk of talloc 2.4 (x86-64), padded to TC_HDR_SIZE (96).
TALLOC_CHUNK = c.Struct(
    "flags" / c.Int32ul, c.Padding(4),
    "next" / c.Int64ul, "prev" / c.Int64ul, "parent" / c.Int64ul, "child" / c.Int64ul,
    "refs" / c.Int64ul, "destructor" / c.Int64ul, "name" / c.Int64ul, "size" / c.Int64ul,
    "limit" / c.Int64ul, "pool" / c.Int64ul, c.Padding(8),
)
_TC_HDR = 96
_TP_HDR = 32
_FLAG_MASK = 0xF
_FREE = 0x1


def talloc_free_magic(version: Tuple[int, int, int] = (2, 4, 0)) -> int:
    """The magic talloc writes into a freed chunk: its fixed (build-time) magic with FREE set."""
    base = 0xE814EC70 + (version[0] << 24) + (version[1] << 16) + (version[2] << 8)
    return (base & ~_FLAG_MASK & 0xFFFFFFFF) | _FREE


def _magic(live: str, version: Tuple[int, int, int]) -> Magic:
    # the run's magic, read from a header known to be live; the mask keeps FREE and the magic bits
    return Magic("flags", used=f"*(unsigned int *)((char *)({live}) - {_TC_HDR}) & ~{_FLAG_MASK:#x}",
                 free=talloc_free_magic(version), mask=~(_FLAG_MASK & ~_FREE))


def talloc_pool(name: str, pool: str, version: Tuple[int, int, int] = (2, 4, 0)) -> PoolSpec:
    """The objects carved from a ``talloc_pool``; ``pool`` is an expression for the pointer it returned."""
    return PoolSpec(
        name=name,
        root=pool,
        geometry=Chained(first=f"(char *)({pool})", end=f"*(char **)((char *)({pool}) - {_TC_HDR + _TP_HDR})",
                         size_field="size", size_includes_header=False, align=16, round_up=True),
        header=TALLOC_CHUNK,
        in_use=_magic(pool, version),
        requested_size="size",
        label="name",
    )


def talloc_tree(name: str, root: str, version: Tuple[int, int, int] = (2, 4, 0)) -> PoolSpec:
    """Every allocation under a talloc context; ``root`` is an expression for the context pointer."""
    return PoolSpec(
        name=name,
        geometry=Tree(root=f"(char *)({root}) - {_TC_HDR}", child="child", sibling="next", size_field="size"),
        header=TALLOC_CHUNK,
        in_use=_magic(root, version),
        requested_size="size",
        label="name",
    )


#: apr_memnode_t of APR 1.7 (x86-64): APR_MEMNODE_T_SIZE is 40.
APR_MEMNODE = c.Struct(
    "next" / c.Int64ul, "ref" / c.Int64ul, "index" / c.Int32ul, "free_index" / c.Int32ul,
    "first_avail" / c.Int64ul, "endp" / c.Int64ul,
)
_APR_ACTIVE = 88  #: offsetof(apr_pool_t, active) without APR_POOL_DEBUG


def apr_pool(name: str, pool: str) -> PoolSpec:
    """The nodes of one APR pool; ``pool`` is an expression for its ``apr_pool_t *``."""
    return PoolSpec(
        name=name,
        root=pool,
        geometry=Nodes(head=f"*(char **)((char *)({pool}) + {_APR_ACTIVE})", next="next",
                       used_end="first_avail", end="endp", ring=True),
        header=APR_MEMNODE,
    )


def pools_from_table(name: str, table: str, count: int, *, first: str, slot_size: str, slots: str,
                     free_head: str, header: object, link: str = "next", payload_offset: int = 0,
                     names: Sequence[str] = ()) -> List[PoolSpec]:
    """A family of fixed-slot pools described by one descriptor table: one spec per entry.

    ``first``, ``slot_size``, ``slots`` and ``free_head`` are expressions with ``{entry}`` standing for
    the table's entry (``TABLE[i]``), e.g. lwIP built with ``MEMP_MEM_MALLOC=0``:
    ``pools_from_table("memp", "memp_pools", MEMP_MAX, first="{entry}->base", slot_size="{entry}->size",
    slots="{entry}->num", free_head="*{entry}->tab", header=c.Struct("next" / c.Int64ul))``.
    A free element's link lives in its own payload (``payload_offset=0``), so a slot is free exactly
    when it is on its list.  ``names`` names the entries (``memp[UDP_PCB]``), else by index.
    """
    out = []
    for i in range(count):
        entry = f"({table})[{i}]"
        label = names[i] if i < len(names) else str(i)
        out.append(PoolSpec(
            name=f"{name}[{label}]",
            geometry=FixedSlots(first=first.format(entry=entry), slot_size=slot_size.format(entry=entry),
                                count=slots.format(entry=entry)),
            header=header,  # type: ignore[arg-type]
            payload_offset=payload_offset,
            free_list=FreeList(head=free_head.format(entry=entry), link=link),
            in_use=InFreeList(),
        ))
    return out
