# tests/test_glibc_layouts.py - gdbext.glibc.layouts: struct tables per glibc
# release against DWARF facts, size arithmetic, and the debug-info cross-check.
from __future__ import annotations

import pytest

from gdbext.errors import SpecError
from gdbext.glibc.layouts import SIZEOF_KEY, GlibcVersion, cross_check, layout_for

# ptype /o of Debian 12's libc6-dbg (glibc 2.36, x86-64)
DWARF_236 = {
    "malloc_par": {
        "trim_threshold": 0, "top_pad": 8, "mmap_threshold": 16, "arena_test": 24, "arena_max": 32,
        "thp_pagesize": 40, "hp_pagesize": 48, "hp_flags": 56, "n_mmaps": 60, "n_mmaps_max": 64,
        "max_n_mmaps": 68, "no_dyn_threshold": 72, "mmapped_mem": 80, "max_mmapped_mem": 88, "sbrk_base": 96,
        "tcache_bins": 104, "tcache_max_bytes": 112, "tcache_count": 120, "tcache_unsorted_limit": 128,
        SIZEOF_KEY: 136,
    },
    "malloc_state": {
        "mutex": 0, "flags": 4, "have_fastchunks": 8, "fastbinsY": 16, "top": 96, "last_remainder": 104,
        "bins": 112, "binmap": 2144, "next": 2160, "next_free": 2168, "attached_threads": 2176,
        "system_mem": 2184, "max_system_mem": 2192, SIZEOF_KEY: 2200,
    },
    "_heap_info": {"ar_ptr": 0, "prev": 8, "size": 16, "mprotect_size": 24, "pagesize": 32, "pad": 40,
                   SIZEOF_KEY: 48},
    "tcache_perthread_struct": {"counts": 0, "entries": 128, SIZEOF_KEY: 640},
    "tcache_entry": {"next": 0, "key": 8, SIZEOF_KEY: 16},
}


def test_236_matches_dwarf():
    lay, mismatches = cross_check(layout_for("2.36"), DWARF_236)
    assert mismatches == []
    assert lay.source == "table"


@pytest.mark.parametrize("version, sbrk, mp_size, hi_size", [
    ("2.27", 0x48, 0x70, 0x20), ("2.31", 0x48, 0x70, 0x20), ("2.34", 0x48, 0x70, 0x20),
    ("2.35", 0x60, 0x88, 0x30), ("2.41", 0x60, 0x88, 0x30),
])
def test_mp_and_heap_info_by_release(version, sbrk, mp_size, hi_size):
    lay = layout_for(version)
    assert lay.malloc_par["sbrk_base"] == sbrk
    assert lay.malloc_par.size == mp_size
    assert lay.heap_info.size == hi_size
    assert ("pagesize" in lay.heap_info) == (lay.version >= (2, 35))
    assert lay.malloc_state["top"] == 0x60 and lay.malloc_state["next"] == 0x870
    assert lay.malloc_state.size == 0x898


@pytest.mark.parametrize("version, tchunk, key, sl, rnd", [
    ("2.27", 0x250, None, False, False), ("2.28", 0x250, None, False, False),
    ("2.29", 0x250, 8, False, False), ("2.30", 0x290, 8, False, False), ("2.31", 0x290, 8, False, False),
    ("2.32", 0x290, 8, True, False), ("2.33", 0x290, 8, True, False), ("2.34", 0x290, 8, True, True),
    ("2.36", 0x290, 8, True, True), ("2.41", 0x290, 8, True, True),
])
def test_tcache_by_release(version, tchunk, key, sl, rnd):
    lay = layout_for(version)
    assert lay.tcache_chunk_size == tchunk
    assert lay.tcache_entry.offsets.get("key") == key
    assert lay.safe_linking is sl
    assert lay.random_tcache_key is rnd
    assert lay.tcache_count_size == (2 if lay.version >= (2, 30) else 1)


def test_constants_x86_64():
    lay = layout_for("2.36")
    assert (lay.minsize, lay.chunk_hdr, lay.align_mask, lay.nfastbins) == (32, 16, 15, 10)
    assert lay.default_global_max_fast == 0x80
    assert lay.tcache_max_chunk == 0x410
    assert lay.default_heap_max_size == 64 << 20
    assert lay.request2size(0) == 32 and lay.request2size(24) == 32 and lay.request2size(25) == 48
    assert lay.request2size(1100) == 0x460
    assert lay.fastbin_index(0x30) == 1 and lay.fastbin_size(1) == 0x30
    assert lay.csize2tidx(0x50) == 3 and lay.tidx2csize(3) == 0x50
    assert lay.smallbin_index(0x110) == 17
    assert lay.largebin_index(0x400) == 64 and lay.largebin_index(0xc00) == 96 and lay.largebin_index(0xc40) == 97
    assert lay.bin_at(0x1000, 1) == 0x1000 + 0x70 - 0x10
    assert lay.aligned_ok(0x1000) and not lay.aligned_ok(0x1008)
    assert lay.first_chunk(0x4c2d48) == 0x4c2d50


def test_bin_ranges_cover_every_size():
    lay = layout_for("2.36")
    for size in list(range(0x20, 0x4000, 0x10)) + [0x10000, 0x7fff0, 0x80000, 1 << 30]:
        lo, hi = lay.bin_size_range(lay.bin_index(size))
        assert lo <= size < hi, hex(size)
    assert lay.bin_size_range(17) == (0x110, 0x120)
    assert lay.bin_size_range(126)[0] == 0x80000


def test_i386_layout():
    lay = layout_for("2.36", pointer_size=4, malloc_alignment=16)
    assert lay.minsize == 16
    assert (lay.heap_info.size + 2 * 4) % 16 == 0
    assert lay.aligned_ok(0x8) and not lay.aligned_ok(0x10)
    assert lay.default_heap_max_size == 1 << 20
    assert lay.tcache_perthread.size == 128 + 4 * 64


def test_construct_decode():
    lay = layout_for("2.36")
    data = bytearray(lay.malloc_par.size)
    data[0x60:0x68] = (0x4C2D40).to_bytes(8, "little")
    data[0x68:0x70] = (64).to_bytes(8, "little")
    parsed = lay.malloc_par.parse(bytes(data))
    assert parsed.sbrk_base == 0x4C2D40 and parsed.tcache_bins == 64
    counts = lay.tcache_perthread.parse(bytes(range(256)) * 3)
    assert len(counts.counts) == 64 and len(counts.entries) == 64


def test_cross_check_reports_and_adopts():
    lay = layout_for("2.36")
    debug = {"malloc_par": dict(DWARF_236["malloc_par"], sbrk_base=0x48, extra_field=200)}
    del debug["malloc_par"]["hp_flags"]
    debug["malloc_par"][SIZEOF_KEY] = 0x90
    adopted, mismatches = cross_check(lay, debug)
    found = {(m.struct, m.field): (m.table, m.debug) for m in mismatches}
    assert found[("malloc_par", "sbrk_base")] == (0x60, 0x48)
    assert found[("malloc_par", "hp_flags")] == (56, None)
    assert found[("malloc_par", "extra_field")] == (None, 200)
    assert found[("malloc_par", "")] == (0x88, 0x90)
    assert adopted.malloc_par["sbrk_base"] == 0x48 and adopted.malloc_par.size == 0x90
    assert adopted.source == "table+debuginfo"
    assert "sbrk_base: table says 96" in str(mismatches[0]) or any("sbrk_base" in str(m) for m in mismatches)
    kept, _ = cross_check(lay, debug, adopt=False)
    assert kept.malloc_par["sbrk_base"] == 0x60


def test_version_parse():
    assert GlibcVersion.parse("2.36") == (2, 36)
    assert GlibcVersion.parse("2.36.9000") == GlibcVersion(2, 36)
    assert GlibcVersion.parse((2, 31)).minor == 31
    assert str(GlibcVersion(2, 41)) == "2.41"
    with pytest.raises(SpecError):
        GlibcVersion.parse("glibc")
    with pytest.raises(SpecError):
        layout_for("2.36", pointer_size=2)
    # outside the table: nearest layout
    assert layout_for("2.45").malloc_par["sbrk_base"] == 0x68  # the 2.43 row
    assert layout_for("2.26").tcache_chunk_size == 0x250
