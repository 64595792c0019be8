# gdbext/glibc/freelists.py - walk every glibc free list once (tcache, fastbins,
# unsorted, small and large bins) into a chunk -> list index, bounded and
# cycle-safe, recording what breaks on the way.
"""The free-chunk index.

:func:`build_free_index` walks every tcache bin of every known tcache, every
fastbin and every regular bin of every arena, reading list nodes from the
segment buffers of :class:`~gdbext.glibc.segments.HeapMemory`.  The result,
a :class:`FreeIndex`, maps each free chunk's address to the list holding it;
the walkers look chunks up in it instead of re-walking lists per chunk.

Each walk stops at the list's natural end, at a node outside the arena's
heaps, at a misaligned or undecodable link, at a node seen before (a cycle, or
a chunk in two lists) or after a node budget; each such stop is recorded as a
:class:`~gdbext.glibc.findings.Violation`.  A doubly linked bin whose forward
chain breaks is walked backwards from the head's ``bk`` too, so its tail nodes
are still known to be free.  With ``thorough=True`` the walk also checks
``fd``/``bk`` reciprocity, large-bin ``fd_nextsize``/``bk_nextsize``
reciprocity and each node's size against its bin.
"""
from __future__ import annotations

from array import array

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Set, Tuple

from .findings import Findings, Violation
from .layouts import NBINS
from .tunables import malloc_params
from .model import ArenaInfo, GlibcHeap, TcacheInfo

__all__ = [
    "FreeList",
    "FreeIndex",
    "build_free_index",
    "TCACHE",
    "FASTBIN",
    "UNSORTED",
    "SMALL",
    "LARGE",
]

TCACHE = "tcache"
FASTBIN = "fastbin"
UNSORTED = "unsorted"
SMALL = "small"
LARGE = "large"
#: kinds whose chunks are free by boundary tags too (next chunk's PREV_INUSE clear)
REGULAR_KINDS = frozenset({UNSORTED, SMALL, LARGE})


@dataclass
class FreeList:
    """One free list as walked.

    :ivar label: ``"tcache[3]"``, ``"fastbin[2]"``, ``"unsorted"``, ``"small[17]"``
        (glibc bin index, so ``small[i]`` holds chunks of ``16 * i`` bytes on
        x86-64) or ``"large[70]"`` (glibc bin index 64..126).
    :ivar expected: the tcache ``counts[i]`` the list should match.
    :ivar complete: the walk reached the list's natural end.
    """

    id: int
    kind: str
    index: int
    label: str
    head_address: int
    arena: Optional[int] = None
    tcache: Optional[int] = None
    length: int = 0
    expected: Optional[int] = None
    complete: bool = True

    @property
    def regular(self) -> bool:
        return self.kind in REGULAR_KINDS


class FreeIndex:
    """Free chunks by address, and the lists they were found in."""

    def __init__(self) -> None:
        self.owner: Dict[int, int] = {}  #: chunk address -> FreeList.id
        self.lists: List[FreeList] = []
        self.findings = Findings()
        #: (tcache entry chunk, key word) of every tcache node
        self.tcache_keys: List[Tuple[int, int, int]] = []  # (chunk, key, tcache)
        #: (thorough walks) for each node, the link that led to it: kept as flat arrays (a dict of
        #: tuples would cost ~150 bytes a node on a million-chunk heap); read with :meth:`via_of`
        self._via_nodes = array("Q")
        self._via_holders = array("Q")
        self._via_addrs = array("Q")
        self._via_fields = array("H")
        self._via_names: List[str] = []
        self._via_codes: Dict[str, int] = {}
        self._via_lookup: Optional[Dict[int, int]] = None

    def add_via(self, node: int, holder: int, fieldname: str, address: int) -> None:
        """Record that ``fieldname`` of ``holder`` (at ``address``) led to ``node``."""
        code = self._via_codes.get(fieldname)
        if code is None:
            code = self._via_codes[fieldname] = len(self._via_names)
            self._via_names.append(fieldname)
        self._via_nodes.append(node)
        self._via_holders.append(holder)
        self._via_addrs.append(address)
        self._via_fields.append(code)
        self._via_lookup = None

    def via_of(self, node: int) -> Optional[Tuple[int, str, int]]:
        """(holder, link field, link address) of the link that led to ``node``, if recorded."""
        if self._via_lookup is None:  # built on the rare path only (a list node that is no chunk)
            self._via_lookup = {n: i for i, n in enumerate(self._via_nodes)}
        i = self._via_lookup.get(node)
        if i is None:
            return None
        return self._via_holders[i], self._via_names[self._via_fields[i]], self._via_addrs[i]

    def __len__(self) -> int:
        return len(self.owner)

    def __contains__(self, chunk: object) -> bool:
        return chunk in self.owner

    def list_of(self, chunk: int) -> Optional[FreeList]:
        lid = self.owner.get(chunk)
        return None if lid is None else self.lists[lid]

    def label_of(self, chunk: int) -> Optional[str]:
        lid = self.owner.get(chunk)
        return None if lid is None else self.lists[lid].label

    def regular_nodes(self) -> Set[int]:
        """Chunks in unsorted/small/large bins."""
        regular = {fl.id for fl in self.lists if fl.regular}
        return {addr for addr, lid in self.owner.items() if lid in regular}

    def labels(self) -> List[str]:
        return [fl.label for fl in self.lists]


class _Builder:
    def __init__(self, heap: GlibcHeap, thorough: bool, regular: bool = True, count_regular: bool = True) -> None:
        self.regular = regular
        self.count_regular = count_regular
        self.heap = heap
        self.lay = heap.layout
        self.mem = heap.memory
        self.ps = heap.layout.pointer_size
        self.sh = 3 if self.ps == 8 else 2
        self.thorough = thorough
        self.index = FreeIndex()
        total = sum(seg.end - seg.start for seg in heap.segments)
        self.max_nodes = min(heap.limits.max_list_nodes, total // self.lay.minsize + 16)
        self.cache: Tuple[int, int, object] = (0, 0, None)
        self.arena_of_seg: Dict[int, int] = {}

    # -- helpers -------------------------------------------------------------
    def seg(self, addr: int, need: int) -> Optional[Tuple[int, int, Any, int]]:
        """(base, end, words, arena) of the segment holding [addr, addr+need), or None."""
        seg = self.mem.segment_of(addr)
        if seg is None or addr + need > seg.end:
            return None
        entry = self.mem.buffer(seg)
        if entry is None:
            return None
        return entry[0], entry[1], entry[3], seg.arena

    def add(self, v: Violation) -> None:
        self.index.findings.add(v)

    def violation(self, check: str, abort: Optional[str], chunk: Optional[int], fieldname: str,
                  faddr: Optional[int], text: str, arena: Optional[int], severity: str = "error",
                  size: Optional[int] = None) -> None:
        raw = b""
        if faddr is not None:
            raw = self.mem.bytes_at(faddr, size or self.ps) or b""
        self.add(Violation(check, abort, chunk, fieldname, faddr, raw, text, arena, severity))

    def new_list(self, kind: str, index: int, label: str, head_address: int, arena: Optional[int],
                 tcache: Optional[int] = None, expected: Optional[int] = None) -> FreeList:
        fl = FreeList(len(self.index.lists), kind, index, label, head_address, arena, tcache, 0, expected)
        self.index.lists.append(fl)
        return fl

    def seen_before(self, fl: FreeList, node: int, via: Optional[int], via_field: str, via_addr: Optional[int]) -> bool:
        """Record a cycle / double membership when ``node`` is already indexed."""
        lid = self.index.owner.get(node)
        if lid is None:
            return False
        other = self.index.lists[lid]
        fl.complete = False
        if lid == fl.id:
            self.violation("list.cycle", _CYCLE_ABORT.get(fl.kind), via if via is not None else node, via_field,
                           via_addr, f"{fl.label} loops back to {node:#x} after {fl.length} nodes", fl.arena)
        else:
            self.violation("list.duplicate", _DUP_ABORT.get((fl.kind, other.kind)), node, "", None,
                           f"chunk {node:#x} is in {other.label} and also in {fl.label} (double free?)",
                           fl.arena)
        return True

    # -- tcache ---------------------------------------------------------------
    def tcache(self, t: TcacheInfo) -> None:
        lay = self.lay
        ps = self.ps
        hdr = lay.chunk_hdr
        mask = lay.align_mask
        sl = lay.safe_linking
        owner = self.index.owner
        tp = lay.tcache_perthread
        tag = "" if len(self.heap.tcaches) == 1 else f"@{t.address:#x}"
        cname = lay.tcache_counts_field  # counts[] (held) or num_slots[] (slots left, 2.42+)
        fill = malloc_params(lay, self.heap.mp_values, self.heap.tunables)["tcache_count"]
        small = lay.tcache_small_bins
        for i in range(min(lay.tcache_bins, len(t.entries))):
            head = t.entries[i]
            raw = t.counts[i]
            count = lay.tcache_held(raw, fill)
            said = f"{cname}[{i}] = {raw}" + (f" (of {fill}: {count} held)" if cname != "counts" else "")
            entry_field = t.address + tp["entries"] + i * ps
            if count < 0:
                self.violation("tcache.count", None, t.address, f"{cname}[{i}]",
                               t.address + tp[cname] + i * lay.tcache_count_size,
                               f"tcache {cname}[{i}] = {raw} exceeds tcache_count {fill}", None,
                               size=lay.tcache_count_size)
                count = 0
            if not head:
                if count:
                    fl = self.new_list(TCACHE, i, f"tcache[{i}]{tag}", entry_field, None, t.address, count)
                    fl.complete = True
                    # tcache_get would follow the NULL head: the count is off (or the head was cleared)
                    self.violation("tcache.count", None, t.address, f"{cname}[{i}]",
                                   t.address + tp[cname] + i * lay.tcache_count_size,
                                   f"tcache {said} but entries[{i}] is NULL", None,
                                   size=lay.tcache_count_size)
                continue
            prev_size = 0
            fl = self.new_list(TCACHE, i, f"tcache[{i}]{tag}", entry_field, None, t.address, count)
            e = head
            via, via_field, via_addr = t.address, f"entries[{i}]", entry_field
            while e:
                chunk = e - hdr
                if e & mask:
                    fl.complete = False
                    self.violation("tcache.unaligned", "malloc(): unaligned tcache chunk detected", via,
                                   via_field, via_addr,
                                   f"{fl.label} link {e:#x} is not {lay.malloc_alignment}-byte aligned"
                                   + (" after safe-linking decode" if sl and via != t.address else ""),
                                   None)
                    break
                got = self.seg(chunk, 2 * ps + hdr)
                if got is None:
                    fl.complete = False
                    self.violation("list.outside_heap", None, via, via_field, via_addr,
                                   f"{fl.label} link {e:#x} points outside every heap", None)
                    break
                if self.seen_before(fl, chunk, via, via_field, via_addr):
                    break
                base, _end, words, arena = got
                if fl.arena is None:
                    fl.arena = arena
                k = (chunk - base) >> self.sh
                owner[chunk] = fl.id
                if self.thorough:
                    self.index.add_via(chunk, via, via_field, via_addr)
                fl.length += 1
                raw_next = words[k + 2]
                if lay.has_tcache_key:
                    self.index.tcache_keys.append((chunk, words[k + 3], t.address))
                if self.thorough:
                    size = words[k + 1] & ~7
                    tidx = lay.tcache_index(size) if size >= lay.minsize else None
                    if tidx != i:
                        self.violation("tcache.size", None, chunk, "size", chunk + ps,
                                       f"chunk in {fl.label} has size {size:#x}, which belongs in "
                                       f"tcache[{'?' if tidx is None else tidx}]",
                                       arena)
                    elif i >= small and size < prev_size:
                        # 2.42 large bins are kept smallest first (tcache_location_large)
                        self.violation("tcache.size", None, chunk, "size", chunk + ps,
                                       f"chunk in {fl.label} has size {size:#x}, smaller than the "
                                       f"{prev_size:#x} before it: large tcache bins are ordered by size",
                                       arena)
                    prev_size = size
                if fl.length > self.max_nodes:
                    fl.complete = False
                    self.violation("list.too_long", "free(): too many chunks detected in tcache", chunk, "next",
                                   e, f"{fl.label} exceeds {self.max_nodes} nodes", arena)
                    break
                via, via_field, via_addr = chunk, "next", e
                e = raw_next ^ (e >> 12) if sl else raw_next
            if fl.complete and fl.length != count:
                self.violation("tcache.count", "free(): too many chunks detected in tcache"
                               if fl.length > count else None, t.address, f"{cname}[{i}]",
                               t.address + tp[cname] + i * lay.tcache_count_size,
                               f"tcache {said} but the list holds {fl.length} chunks", fl.arena,
                               size=lay.tcache_count_size)

    # -- fastbins -------------------------------------------------------------
    def fastbins(self, arena: ArenaInfo) -> None:
        lay = self.lay
        ps = self.ps
        sl = lay.safe_linking
        owner = self.index.owner
        fast_off = lay.malloc_state["fastbinsY"]
        for i, head in enumerate(arena.fastbins):
            if not head:
                continue
            head_addr = arena.address + fast_off + i * ps
            fl = self.new_list(FASTBIN, i, f"fastbin[{i}]", head_addr, arena.address)
            p = head
            via, via_field, via_addr = arena.address, f"fastbinsY[{i}]", head_addr
            while p:
                if not lay.aligned_ok(p):
                    fl.complete = False
                    self.violation("fastbin.unaligned", "malloc(): unaligned fastbin chunk detected", via,
                                   via_field, via_addr, f"{fl.label} link {p:#x} is misaligned"
                                   + (" after safe-linking decode" if sl and via != arena.address else ""),
                                   arena.address)
                    break
                got = self.seg(p, 3 * ps)
                if got is None:
                    fl.complete = False
                    self.violation("list.outside_heap", None, via, via_field, via_addr,
                                   f"{fl.label} link {p:#x} points outside every heap", arena.address)
                    break
                if self.seen_before(fl, p, via, via_field, via_addr):
                    break
                base, _end, words, seg_arena = got
                k = (p - base) >> self.sh
                owner[p] = fl.id
                fl.length += 1
                if self.thorough:
                    self.index.add_via(p, via, via_field, via_addr)
                if seg_arena != arena.address:
                    self.violation("list.wrong_arena", "invalid fastbin entry (free)", via, via_field, via_addr,
                                   f"{via_field} of {via:#x} leads to chunk {p:#x} in {fl.label} of {arena.label}, "
                                   f"which lies in arena {seg_arena:#x}", arena.address)
                if self.thorough:
                    size = words[k + 1] & ~7
                    if lay.fastbin_index(size) != i:
                        self.violation("fastbin.size", "malloc(): memory corruption (fast)", p, "size", p + ps,
                                       f"chunk in {fl.label} has size {size:#x}; fastbin[{i}] holds "
                                       f"{lay.fastbin_size(i):#x}", arena.address)
                if fl.length > self.max_nodes:
                    fl.complete = False
                    self.violation("list.too_long", None, p, "fd", p + 2 * ps,
                                   f"{fl.label} exceeds {self.max_nodes} nodes", arena.address)
                    break
                raw = words[k + 2]
                via, via_field, via_addr = p, "fd", p + 2 * ps
                p = raw ^ ((p + 2 * ps) >> 12) if sl else raw

    # -- regular bins -----------------------------------------------------------
    def bins(self, arena: ArenaInfo) -> None:
        if not self.regular and not self.count_regular:
            return
        lay = self.lay
        for i in range(1, NBINS):
            fd = arena.bins[2 * (i - 1)]
            bk = arena.bins[2 * (i - 1) + 1]
            b = lay.bin_at(arena.address, i)
            if fd == b and bk == b:
                continue
            if i == 1:
                kind, label = UNSORTED, "unsorted"
            elif i < 64:
                kind, label = SMALL, f"small[{i}]"
            else:
                kind, label = LARGE, f"large[{i}]"
            fl = self.new_list(kind, i, label, b + 2 * self.ps, arena.address)
            if self.regular:
                self.walk_bin(arena, fl, b, fd, bk)
            else:
                self.count_bin(arena, fl, b, fd)

    def count_bin(self, arena: ArenaInfo, fl: FreeList, b: int, head_fd: int) -> None:
        """Count a bin's nodes without indexing them (Brent's cycle detection)."""
        ps = self.ps
        sh = self.sh
        mask = self.lay.align_mask
        residue = self.lay.chunk_align_residue
        need = 4 * ps
        max_nodes = self.max_nodes
        p = head_fd
        prev = b
        base, lim = 1, 0  # forces a segment lookup for the first node (even NULL)
        words: Any = None
        n = 0
        tortoise = p
        power = lam = 1
        while p != b:
            if p < base or p > lim or p & mask != residue:
                got = self.seg(p, need) if p & mask == residue else None
                if got is None:
                    fl.complete = False
                    self.violation("list.outside_heap" if p & mask == residue else "bin.unaligned",
                                   _DL_ABORT[fl.kind], prev, "fd", prev + 2 * ps,
                                   f"{fl.label} link {p:#x} is not a heap chunk", arena.address)
                    break
                base, lim, words = got[0], got[1] - need, got[2]
            n += 1
            prev = p
            p = words[((p - base) >> sh) + 2]
            if p == tortoise:
                fl.complete = False
                self.violation("list.cycle", _CYCLE_ABORT.get(fl.kind), prev, "fd", prev + 2 * ps,
                               f"{fl.label} loops back to {p:#x}", arena.address)
                break
            if power == lam:
                tortoise = p
                power *= 2
                lam = 0
            lam += 1
            if n >= max_nodes:
                fl.complete = False
                self.violation("list.too_long", None, prev, "fd", prev + 2 * ps,
                               f"{fl.label} exceeds {max_nodes} nodes", arena.address)
                break
        fl.length = n

    def walk_bin(self, arena: ArenaInfo, fl: FreeList, b: int, head_fd: int, head_bk: int) -> None:
        lay = self.lay
        ps = self.ps
        sh = self.sh
        owner = self.index.owner
        thorough = self.thorough
        lid = fl.id
        kind = fl.kind
        mask = lay.align_mask
        residue = lay.chunk_align_residue
        if kind == UNSORTED:
            lo, hi = 2 * ps + 8, arena.system_mem + 8  # "invalid size (unsorted)": <= 2*SIZE_SZ or > system_mem
        else:
            lo, hi = lay.bin_size_range(fl.index)
        need = 6 * ps if kind != SMALL else 4 * ps
        large = kind == LARGE
        max_nodes = self.max_nodes
        abort_dl = _DL_ABORT[kind]
        p = head_fd
        prev = b
        base, lim = 1, 0  # forces a segment lookup for the first node (even NULL)
        words: Any = None
        n = 0
        start_len = len(owner)
        setdefault = owner.setdefault
        add_via = self.index.add_via
        broken = False
        while p != b:
            if p < base or p > lim or p & mask != residue:
                got = self.seg(p, need) if p & mask == residue else None
                if got is None:
                    broken = True
                    if p & mask != residue:
                        self.violation("bin.unaligned", abort_dl, prev, "fd", prev + 2 * ps,
                                       f"{fl.label} link {p:#x} is misaligned", arena.address)
                    else:
                        self.violation("list.outside_heap", abort_dl, prev, "fd", prev + 2 * ps,
                                       f"{fl.label} link {p:#x} points outside every heap", arena.address)
                    break
                base, lim, words = got[0], got[1] - need, got[2]
                if got[3] != arena.address:
                    self.violation("list.wrong_arena", abort_dl, prev, "fd", prev + 2 * ps,
                                   f"fd of {prev:#x} leads to chunk {p:#x} in {fl.label} of {arena.label}, "
                                   f"which lies in arena {got[3]:#x}", arena.address)
            k = (p - base) >> sh
            o = setdefault(p, lid)
            n += 1
            if o != lid or len(owner) != start_len + n:  # indexed before: a cycle or a second list
                n -= 1
                fl.length = n
                self.report_repeat(fl, p, o, prev)
                broken = True
                break
            if thorough:
                add_via(p, prev, "fd", prev + 2 * ps)
                if words[k + 3] != prev:
                    self.violation("list.fd_bk", abort_dl, p, "bk", p + 3 * ps,
                                   f"{fl.label}: {prev:#x}->fd is {p:#x} but {p:#x}->bk is {words[k + 3]:#x}",
                                   arena.address)
                if not lo <= words[k + 1] < hi:  # raw size word: lo/hi are aligned, flags < 8
                    self.bad_bin_size(arena, fl, p, words[k + 1] & ~7)
                if large and words[k + 4]:
                    self.nextsize(arena, fl, p, words[k + 4], words[k + 5])
            if n >= max_nodes:
                broken = True
                self.violation("list.too_long", None, p, "fd", p + 2 * ps,
                               f"{fl.label} exceeds {max_nodes} nodes", arena.address)
                break
            prev = p
            p = words[k + 2]
        fl.length = n
        if not broken:
            if thorough and head_bk != prev:
                self.violation("list.fd_bk", abort_dl, b, "bk", b + 3 * ps,
                               f"{fl.label} head bk is {head_bk:#x} but the last node is {prev:#x}",
                               arena.address)
            return
        fl.complete = False
        # recover the tail through bk links from the head
        p = head_bk
        q = b  # whose bk led to p
        steps = 0
        while p != b and steps <= max_nodes:
            if p in owner or p & mask != residue:
                break
            got = self.seg(p, 4 * ps)
            if got is None:
                break
            k = (p - got[0]) >> sh
            owner[p] = lid
            if thorough:
                self.index.add_via(p, q, "bk", q + 3 * ps)
            fl.length += 1
            steps += 1
            q, p = p, got[2][k + 3]

    def report_repeat(self, fl: FreeList, node: int, other: int, prev: int) -> None:
        """``node`` was indexed before this visit: a cycle (same list) or a double membership."""
        fl.complete = False
        if other == fl.id:
            self.violation("list.cycle", _CYCLE_ABORT.get(fl.kind), prev, "fd", prev + 2 * self.ps,
                           f"{fl.label} loops back to {node:#x} after {fl.length} nodes", fl.arena)
        else:
            olist = self.index.lists[other]
            self.violation("list.duplicate", _DUP_ABORT.get((fl.kind, olist.kind)), node, "", None,
                           f"chunk {node:#x} is in {olist.label} and also in {fl.label} (double free?)", fl.arena)

    def bad_bin_size(self, arena: ArenaInfo, fl: FreeList, p: int, size: int) -> None:
        lay = self.lay
        if fl.kind == UNSORTED:
            self.violation("bin.size", "malloc(): invalid size (unsorted)", p, "size", p + self.ps,
                           f"chunk in unsorted bin has size {size:#x} (system_mem {arena.system_mem:#x})",
                           arena.address)
            return
        where = lay.bin_index(size) if size >= lay.minsize else "?"
        self.violation("bin.size", None, p, "size", p + self.ps,
                       f"chunk in {fl.label} has size {size:#x}, which belongs in bin {where}", arena.address)

    def nextsize(self, arena: ArenaInfo, fl: FreeList, p: int, fdn: int, bkn: int) -> None:
        ps = self.ps
        for ptr, fld, back in ((fdn, "fd_nextsize", 5), (bkn, "bk_nextsize", 4)):
            got = self.seg(ptr, 6 * ps) if self.lay.aligned_ok(ptr) else None
            if got is None:
                self.violation("list.nextsize", "corrupted double-linked list (not small)", p, fld,
                               p + (4 if back == 5 else 5) * ps,
                               f"{fl.label}: {p:#x}->{fld} = {ptr:#x} is not a heap chunk", arena.address)
                continue
            k = (ptr - got[0]) >> self.sh
            if got[2][k + back] != p:
                other = "bk_nextsize" if back == 5 else "fd_nextsize"
                self.violation("list.nextsize", "corrupted double-linked list (not small)", p, fld,
                               p + (4 if back == 5 else 5) * ps,
                               f"{fl.label}: {p:#x}->{fld}->{other} is {got[2][k + back]:#x}, not {p:#x}",
                               arena.address)


_DL_ABORT = {
    UNSORTED: "malloc(): unsorted double linked list corrupted",
    SMALL: "corrupted double-linked list",
    LARGE: "corrupted double-linked list",
}
_CYCLE_ABORT = {
    TCACHE: "free(): too many chunks detected in tcache",
    UNSORTED: "malloc(): unsorted double linked list corrupted",
    SMALL: "corrupted double-linked list",
    LARGE: "corrupted double-linked list",
}
_DUP_ABORT = {
    (TCACHE, TCACHE): "free(): double free detected in tcache 2",
    (FASTBIN, FASTBIN): "double free or corruption (fasttop)",
}


def build_free_index(heap: GlibcHeap, thorough: bool = False, regular: bool = True,
                     count_regular: bool = True) -> FreeIndex:
    """Walk every free list of ``heap`` once.

    :param heap: a located heap.
    :param thorough: also check link reciprocity and node sizes (the checks
        pass asks for it; the summary does not need it).
    :param regular: index the unsorted/small/large bins' nodes too; when False
        they are only counted (``FreeList.length``).
    :param count_regular: with ``regular=False``, whether to count them at all.
    """
    b = _Builder(heap, thorough, regular, count_regular)
    for t in heap.tcaches:
        b.tcache(t)
    for arena in heap.arenas:
        if arena.initialized:
            if heap.layout.has_fastbins:  # 2.43 has none: no fastbin list, check or label exists
                b.fastbins(arena)
            b.bins(arena)
    return b.index
