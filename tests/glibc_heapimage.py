# tests/glibc_heapimage.py - a synthetic glibc heap builder for the glibc model's
# tests: arenas, chunks and every kind of free list laid out as glibc would.
"""Build glibc heaps in memory, as glibc would lay them out.

>>> img = HeapImage("2.36")
>>> a = img.main.malloc(0x30)
>>> img.main.free(a, "tcache")
>>> src = img.source()          # a BufferSource with main_arena/mp_ symbols

The builder keeps free lists as Python lists and writes every link when
:meth:`HeapImage.source` is called: tcache bins (safe-linked from 2.32, keys
from 2.29: the tcache address before 2.34, a random ``tcache_key`` after;
2.42's large tcache bins kept smallest first and its ``num_slots`` counting
down), fastbins (safe-linked ``fd``; none on 2.43), the unsorted bin, small
bins and large bins
(sorted, with ``fd_nextsize``/``bk_nextsize`` rings).  Freeing into a regular
bin clears the next chunk's PREV_INUSE and writes its ``prev_size`` (and, in a
non-main arena, drops NON_MAIN_ARENA from the free chunk as glibc's
``set_head`` does).  Tests corrupt the result with :meth:`HeapImage.put` /
:meth:`HeapImage.w` after building or between building and :meth:`source`.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from gdbext.glibc.layouts import IS_MMAPPED, NON_MAIN_ARENA, PREV_INUSE, Layout, layout_for
from gdbext.memory import BufferSource, Region

__all__ = ["HeapImage", "ArenaImage", "TCACHE_KEY"]

TCACHE_KEY = 0x5EED1234ABCD9876
LIBC_DATA = 0x7FFFF7FA8000  #: the fake libc .data region holding main_arena and mp_
HEAP_BASE = 0x555555559000  #: the main (sbrk) heap
THREAD_HEAPS = 0x7FFFF0000000  #: first non-main heap (HEAP_MAX_SIZE-aligned)
MMAP_BASE = 0x7FFFF7A00000  #: where mmapped chunks go


class _Source(BufferSource):
    """BufferSource with per-region permissions and paths."""

    def __init__(self, segments: Dict[int, bytes], regions: Dict[int, Tuple[str, str]], **kw) -> None:
        super().__init__(segments, **kw)
        self._index.regions[:] = [
            Region(r.start, r.end, regions.get(r.start, ("rw-", ""))[0], regions.get(r.start, ("rw-", ""))[1])
            for r in self._index.regions
        ]


class ArenaImage:
    """One arena being built: its heaps, chunks and free lists."""

    def __init__(self, img: "HeapImage", address: int, heap_start: int, heap_end: int, main: bool,
                 heap_info: Optional[int] = None) -> None:
        self.img = img
        self.L = img.L
        self.address = address
        self.main = main
        self.heap_infos: List[int] = [heap_info] if heap_info is not None else []
        self.heap_sizes: List[int] = [heap_end - heap_info] if heap_info is not None else []
        self.top = heap_start
        self.heap_end = heap_end
        self.fastbins: List[List[int]] = [[] for _ in range(self.L.nfastbins)]
        self.bins: Dict[int, List[int]] = {}
        self.chunks: List[int] = []
        self._set_top()

    # -- chunk carving ----------------------------------------------------------
    def _abit(self) -> int:
        return 0 if self.main else NON_MAIN_ARENA

    def _set_top(self, prev_inuse: bool = True) -> None:
        self.img.w(self.top + self.L.size_sz, (self.heap_end - self.top) | (PREV_INUSE if prev_inuse else 0))

    def malloc(self, size: int, request: bool = False) -> int:
        """Carve a chunk of ``size`` bytes (a chunk size, or a request with ``request=True``) from top."""
        L = self.L
        if request:
            size = L.request2size(size)
        assert size % L.malloc_alignment == 0 and size >= L.minsize
        chunk = self.top
        assert chunk + size + L.minsize <= self.heap_end, "arena heap full"
        old = self.img.r(chunk + L.size_sz)
        self.img.w(chunk + L.size_sz, size | (old & PREV_INUSE) | self._abit())
        self.top = chunk + size
        self._set_top()
        self.chunks.append(chunk)
        return chunk

    def size_of(self, chunk: int) -> int:
        return self.img.r(chunk + self.L.size_sz) & ~7

    # -- freeing ------------------------------------------------------------------
    def free(self, chunk: int, where: str = "auto", tcache: Optional[int] = None) -> str:
        """Put ``chunk`` in a free list: "tcache", "fast", "unsorted", "bin" or "auto" (glibc's order)."""
        L = self.L
        size = self.size_of(chunk)
        if where == "auto":
            t = self.img.tcache_lists.get(tcache or self.img.main_tcache)
            idx = L.tcache_index(size)
            if t is not None and idx is not None and size <= L.tcache_max_chunk \
                    and len(t[idx]) < L.default_tcache_count:
                where = "tcache"
            elif L.has_fastbins and size <= L.default_global_max_fast:
                where = "fast"
            elif L.facts.free_small_to_smallbin and size < L.min_large_size:
                where = "bin"
            else:
                where = "unsorted"
        if where == "tcache":
            taddr = tcache or self.img.main_tcache
            assert taddr is not None, "no tcache"
            idx = L.tcache_index(size)
            assert idx is not None, f"no tcache bin holds {size:#x} on {L.version}"
            self.img.tcache_lists[taddr][idx].insert(0, chunk)
        elif where == "fast":
            assert L.has_fastbins, f"glibc {L.version} has no fastbins"
            self.fastbins[L.fastbin_index(size)].insert(0, chunk)
        elif where in ("unsorted", "bin"):
            index = 1 if where == "unsorted" else L.bin_index(size)
            self.bins.setdefault(index, []).insert(0, chunk)
            self._mark_free(chunk, size)
        else:
            raise ValueError(where)
        return where

    def _mark_free(self, chunk: int, size: int) -> None:
        L = self.L
        img = self.img
        nxt = chunk + size
        img.w(nxt, size)  # prev_size of the next chunk
        img.w(nxt + L.size_sz, img.r(nxt + L.size_sz) & ~PREV_INUSE)
        img.w(chunk + L.size_sz, size | PREV_INUSE)  # set_head: no NON_MAIN_ARENA, no IS_MMAPPED
        if size >= L.min_large_size:
            img.w(chunk + 4 * L.size_sz, 0)
            img.w(chunk + 5 * L.size_sz, 0)

    # -- non-main heaps ------------------------------------------------------------------
    def new_heap(self, size: int = 0x21000) -> int:
        """Give a non-main arena a new heap, closing the old one as sysmalloc does:
        fenceposts, and the old top freed (or, when too small, kept as a short
        in-use chunk without NON_MAIN_ARENA)."""
        assert not self.main
        L = self.L
        img = self.img
        old_top = self.top
        hdr = 2 * L.size_sz
        old_size = ((self.heap_end - old_top) - L.minsize) & ~L.align_mask
        old_flags = img.r(old_top + L.size_sz) & PREV_INUSE
        img.w(old_top + old_size + hdr + L.size_sz, 0 | PREV_INUSE)  # final fencepost
        if old_size >= L.minsize:
            img.w(old_top + old_size + L.size_sz, hdr | PREV_INUSE)  # fencepost 1
            img.w(old_top + old_size, hdr)
            img.w(old_top + L.size_sz, old_size | old_flags | NON_MAIN_ARENA)
            self.chunks.append(old_top)
            self.free(old_top, "unsorted")
        else:
            img.w(old_top + L.size_sz, (old_size + hdr) | old_flags)
            img.w(old_top + old_size + hdr, old_size + hdr)
            self.chunks.append(old_top)
        h = self.heap_infos[-1] + img.heap_max_size
        img.region(h, size)
        hi = L.heap_info
        img.w(h + hi["ar_ptr"], self.address)
        img.w(h + hi["prev"], self.heap_infos[-1])
        img.w(h + hi["size"], size)
        img.w(h + hi["mprotect_size"], size)
        if "pagesize" in hi:
            img.w(h + hi["pagesize"], 4096)
        self.heap_infos.append(h)
        self.heap_sizes.append(size)
        self.top = L.first_chunk(h + hi.size)
        self.heap_end = h + size
        self._set_top()
        return h

    # -- writing the arena ------------------------------------------------------------------
    def write(self, next_arena: int) -> None:
        L = self.L
        img = self.img
        ms = L.malloc_state
        ps = L.pointer_size
        a = self.address
        img.w(a + ms["top"], self.top)
        img.w(a + ms["next"], next_arena)
        img.w(a + ms["attached_threads"], 1)
        system_mem = sum(self.heap_sizes) if not self.main else img.heap_size
        img.w(a + ms["system_mem"], system_mem)
        img.w(a + ms["max_system_mem"], system_mem)
        for i, nodes in enumerate(self.fastbins):
            head = 0
            for node in reversed(nodes):  # write tail first
                pos = node + 2 * ps
                img.w(pos, img.protect(pos, head))
                head = node
            img.w(a + ms["fastbinsY"] + i * ps, head)
        for i in range(1, 128):
            b = L.bin_at(a, i)
            nodes = list(self.bins.get(i, []))
            if i >= 64:
                nodes.sort(key=self.size_of, reverse=True)  # large bins: decreasing size
            ring = [b] + nodes
            for k, node in enumerate(ring):
                img.w(node + 2 * ps, ring[(k + 1) % len(ring)])
                img.w(node + 3 * ps, ring[k - 1])
            if i >= 64 and nodes:
                firsts = [n for k, n in enumerate(nodes) if k == 0 or self.size_of(nodes[k - 1]) != self.size_of(n)]
                for k, n in enumerate(firsts):
                    img.w(n + 4 * ps, firsts[(k + 1) % len(firsts)])
                    img.w(n + 5 * ps, firsts[k - 1])


class HeapImage:
    """A whole synthetic process heap.

    :param version: glibc release to imitate.
    :param heap_size: bytes of the main sbrk heap.
    :param tcache: create the main thread's tcache (the first chunk).
    :param symbols: expose ``main_arena``/``mp_``/``tcache_key`` as symbols.
    """

    def __init__(self, version: str = "2.36", heap_size: int = 0x21000, tcache: bool = True,
                 symbols: bool = True, sbrk_offset: int = 0) -> None:
        self.L: Layout = layout_for(version)
        self.version = self.L.version
        self.heap_max_size = self.L.default_heap_max_size
        self.segments: Dict[int, bytearray] = {}
        self.perms: Dict[int, Tuple[str, str]] = {}
        self.region(LIBC_DATA, 0x2000, "rw-", "/usr/lib/x86_64-linux-gnu/libc.so.6")
        self.main_arena = LIBC_DATA + 0xC60
        self.mp = LIBC_DATA + 0x340
        self.tcache_key_addr = LIBC_DATA + 0x1F00
        self.global_max_fast_addr = LIBC_DATA + 0x1F08
        self.heap_size = heap_size - sbrk_offset
        self.region(HEAP_BASE, heap_size, "rw-", "[heap]")
        self.sbrk_base = HEAP_BASE + sbrk_offset
        self.with_symbols = symbols
        self.tcache_lists: Dict[int, List[List[int]]] = {}
        self.tcache_owner: Dict[int, int] = {}
        self.main_tcache: Optional[int] = None
        self.n_mmaps = 0
        self._mmap_next = MMAP_BASE
        self.main = ArenaImage(self, self.main_arena, self.L.first_chunk(self.sbrk_base),
                               HEAP_BASE + heap_size, True)
        self.arenas: List[ArenaImage] = [self.main]
        if tcache:
            self.main_tcache = self.make_tcache(self.main)

    # -- memory ----------------------------------------------------------------------
    def region(self, start: int, size: int, perms: str = "rw-", path: str = "") -> None:
        self.segments[start] = bytearray(size)
        self.perms[start] = (perms, path)

    def _locate(self, addr: int, size: int) -> Tuple[bytearray, int]:
        for start, buf in self.segments.items():
            if start <= addr and addr + size <= start + len(buf):
                return buf, addr - start
        raise KeyError(f"{addr:#x} is not in the image")

    def put(self, addr: int, data: bytes) -> None:
        buf, off = self._locate(addr, len(data))
        buf[off : off + len(data)] = data

    def get(self, addr: int, size: int) -> bytes:
        buf, off = self._locate(addr, size)
        return bytes(buf[off : off + size])

    def w(self, addr: int, value: int, size: Optional[int] = None) -> None:
        size = size or self.L.pointer_size
        self.put(addr, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))

    def r(self, addr: int, size: Optional[int] = None) -> int:
        size = size or self.L.pointer_size
        return int.from_bytes(self.get(addr, size), "little")

    def protect(self, pos: int, ptr: int) -> int:
        """PROTECT_PTR when the release uses safe-linking."""
        return (pos >> 12) ^ ptr if self.L.safe_linking else ptr

    # -- structures ------------------------------------------------------------------
    def make_tcache(self, arena: ArenaImage) -> int:
        """Allocate a tcache_perthread_struct in ``arena`` (a thread's first malloc)."""
        chunk = arena.malloc(self.L.tcache_chunk_size)
        addr = chunk + self.L.chunk_hdr
        self.tcache_lists[addr] = [[] for _ in range(self.L.tcache_bins)]
        self.tcache_owner[addr] = arena.address
        return addr

    def add_arena(self, heap_size: int = 0x21000, tcache: bool = True) -> Tuple[ArenaImage, Optional[int]]:
        """A thread arena in a new HEAP_MAX_SIZE-aligned heap; returns it and its thread's tcache."""
        L = self.L
        h = THREAD_HEAPS - (len(self.arenas) - 1) * 0x8000000
        self.region(h, heap_size)
        hi = L.heap_info
        address = h + hi.size
        self.w(h + hi["ar_ptr"], address)
        self.w(h + hi["size"], heap_size)
        self.w(h + hi["mprotect_size"], heap_size)
        if "pagesize" in hi:
            self.w(h + hi["pagesize"], 4096)
        arena = ArenaImage(self, address, L.first_chunk(address + L.malloc_state.size), h + heap_size, False, h)
        self.arenas.append(arena)
        t = self.make_tcache(arena) if tcache else None
        return arena, t

    def add_mmapped(self, size: int = 0x21000) -> int:
        """An mmapped chunk in its own anonymous mapping."""
        addr = self._mmap_next
        self._mmap_next += size + 0x10000
        self.region(addr, size)
        self.w(addr, 0)
        self.w(addr + self.L.size_sz, (size - self.L.mmap_trailer) | IS_MMAPPED)  # 2.43: size leaves 16 bytes
        self.n_mmaps += 1
        return addr

    def _write_tcaches(self) -> None:
        L = self.L
        tp = L.tcache_perthread
        ps = L.pointer_size
        cs = L.tcache_count_size
        cname = L.tcache_counts_field
        for addr, bins in self.tcache_lists.items():
            for i, nodes in enumerate(bins):
                if i >= L.tcache_small_bins:  # 2.42 large bins: smallest first, LIFO among equals
                    nodes.sort(key=lambda n: self.r(n + L.size_sz) & ~7)
                head = 0
                for node in reversed(nodes):
                    e = node + L.chunk_hdr
                    self.w(e, self.protect(e, head))
                    if L.has_tcache_key:
                        self.w(e + ps, TCACHE_KEY if L.random_tcache_key else addr)
                    head = e
                self.w(addr + tp["entries"] + i * ps, head)
                self.w(addr + tp[cname] + i * cs, L.tcache_raw_count(len(nodes), L.default_tcache_count), cs)

    def _write_mp(self) -> None:
        L = self.L
        mp = L.malloc_par
        vals = {
            "trim_threshold": 128 * 1024, "top_pad": 128 * 1024, "mmap_threshold": 128 * 1024,
            "arena_test": 8, "n_mmaps": self.n_mmaps, "n_mmaps_max": 65536, "max_n_mmaps": self.n_mmaps,
            "sbrk_base": self.sbrk_base, L.mp_tcache_bins_field: L.tcache_small_bins,
            "tcache_max_bytes": L.default_tcache_max_bytes, "tcache_count": L.default_tcache_count,
            "tcache_unsorted_limit": 0,
        }
        for name, value in vals.items():
            self.w(self.mp + mp[name], value, mp.elem_size(name))

    def source(self, symbols: Optional[bool] = None) -> BufferSource:
        """Write every list and struct, and return the image as a memory source."""
        for k, arena in enumerate(self.arenas):
            arena.write(self.arenas[(k + 1) % len(self.arenas)].address)
        self._write_tcaches()
        self._write_mp()
        self.w(self.tcache_key_addr, TCACHE_KEY if self.L.random_tcache_key else 0)
        self.w(self.global_max_fast_addr, self.L.default_global_max_fast)
        syms = {}
        if self.with_symbols if symbols is None else symbols:
            syms = {"main_arena": self.main_arena, "mp_": self.mp, "global_max_fast": self.global_max_fast_addr}
            if self.L.random_tcache_key:
                syms["tcache_key"] = self.tcache_key_addr
        return _Source({k: bytes(v) for k, v in self.segments.items()}, self.perms, symbols=syms)
