# tests/test_glibc_release_table.py - every glibc release fact lives in the
# layout table: no release tuple or version literal elsewhere in the code; the
# table's 2.42/2.43 rows against glibc's own definitions; the abort table
# against the strings of the static fixture binaries of each release.
from __future__ import annotations

import ast
import os
import re

import pytest
from conftest import CORES

from gdbext.aborts import ABORTS
from gdbext.glibc.layouts import (
    MAX_VERSION,
    RELEASES,
    SIZEOF_KEY,
    cross_check,
    facts_for,
    first_release,
    layout_for,
    release_in,
    releases_where,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: the modules allowed to name releases: the table, and the abort table (whose ranges release_in reads)
TABLES = {os.path.join("gdbext", "glibc", "layouts.py"), os.path.join("gdbext", "aborts.py")}
_RELEASE_TEXT = re.compile(r"^2\.\d\d?$")


def _sources():
    for top in ("gdbext", "commands", "printers"):
        for dirpath, _dirs, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(dirpath, f)
                    yield os.path.relpath(path, ROOT), path


def _is_int(node, lo=None):
    return isinstance(node, ast.Constant) and type(node.value) is int and (lo is None or node.value >= lo)


def release_literals(tree):
    """(line, text) of every release written as code: ``(2, 35)``, ``GlibcVersion(2, 35)``, ``"2.35"``."""
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple) and len(node.elts) == 2 and _is_int(node.elts[0]) \
                and node.elts[0].value == 2 and _is_int(node.elts[1], 20):
            out.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "GlibcVersion" \
                and len(node.args) == 2 and all(_is_int(a) for a in node.args):
            out.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings \
                and _RELEASE_TEXT.match(node.value):
            out.append((node.lineno, repr(node.value)))
    return out


def test_no_release_fact_outside_the_table():
    found = []
    for rel, path in _sources():
        if rel in TABLES:
            continue
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), path)
        found += [f"{rel}:{line}: {text}" for line, text in release_literals(tree)]
    assert found == [], "release facts belong in gdbext/glibc/layouts.py RELEASES:\n" + "\n".join(found)


def test_the_guard_bites():
    code = "x = v >= (2, 35)\ny = GlibcVersion(2, 43)\nz = layout_for('2.42')\nw = (2, 8)\n"
    assert sorted(t for _l, t in release_literals(ast.parse(code))) == ["'2.42'", "(2, 35)", "GlibcVersion(2, 43)"]


def test_table_rows_are_ordered_and_name_known_facts():
    firsts = [first for first, _delta, _why in RELEASES]
    assert firsts == sorted(firsts) and len(set(firsts)) == len(firsts)
    fields = set(facts_for(MAX_VERSION).__dataclass_fields__)
    for _first, delta, why in RELEASES:
        assert set(delta) <= fields and why
    assert MAX_VERSION == (2, 43)


# -- 2.42 and 2.43 against glibc's definitions --------------------------------------------------

# ptype /o of Debian sid's libc6-dbg 2.43-7 (x86-64)
DWARF_243 = {
    "malloc_par": {
        "trim_threshold": 0, "top_pad": 8, "mmap_threshold": 16, "arena_test": 24, "arena_max": 32,
        "thp_mode": 40, "thp_pagesize": 48, "hp_pagesize": 56, "hp_flags": 64, "n_mmaps": 68, "n_mmaps_max": 72,
        "max_n_mmaps": 76, "no_dyn_threshold": 80, "mmapped_mem": 88, "max_mmapped_mem": 96, "sbrk_base": 104,
        "tcache_small_bins": 112, "tcache_max_bytes": 120, "tcache_count": 128, "tcache_unsorted_limit": 136,
        SIZEOF_KEY: 144,
    },
    "malloc_state": {
        "mutex": 0, "flags": 4, "top": 8, "last_remainder": 16, "bins": 24, "binmap": 2056, "next": 2072,
        "next_free": 2080, "attached_threads": 2088, "system_mem": 2096, "max_system_mem": 2104, SIZEOF_KEY: 2112,
    },
    "_heap_info": {"ar_ptr": 0, "prev": 8, "size": 16, "mprotect_size": 24, "pagesize": 32, "pad": 40,
                   SIZEOF_KEY: 48},
    "tcache_perthread_struct": {"num_slots": 0, "entries": 152, SIZEOF_KEY: 760},
    "tcache_entry": {"next": 0, "key": 8, SIZEOF_KEY: 16},
}


def test_243_matches_dwarf():
    lay, mismatches = cross_check(layout_for("2.43"), DWARF_243)
    assert mismatches == [] and lay.source == "table"
    assert lay.nfastbins == 0 and not lay.has_fastbins and "fastbinsY" not in lay.malloc_state
    assert lay.default_tcache_count == 16 and lay.tcache_bins == 76 and lay.tcache_chunk_size == 0x300


def test_242_from_its_sources():
    """glibc-2.42 malloc.c: TCACHE_SMALL_BINS 64 + TCACHE_LARGE_BINS 12, ``uint16_t num_slots[]``,
    TCACHE_FILL_COUNT 7, ``tcache_max_bytes = tidx2usize(63)`` compared as ``chunksize < max``,
    ``large_csize2tidx(nb) = 64 + clz(0x408) - clz(nb)``; malloc_state and malloc_par as in 2.41
    (``tcache_bins`` renamed ``tcache_small_bins``)."""
    lay, old = layout_for("2.42"), layout_for("2.41")
    assert lay.has_fastbins and lay.malloc_state.offsets == old.malloc_state.offsets
    assert sorted(lay.malloc_par.offsets.values()) == sorted(old.malloc_par.offsets.values())
    assert "tcache_small_bins" in lay.malloc_par and "tcache_bins" not in lay.malloc_par
    tp = lay.tcache_perthread
    assert (tp["num_slots"], tp["entries"], tp.size) == (0, 152, 760) and lay.tcache_bins == 76
    assert lay.default_tcache_count == 7 and lay.default_tcache_max_bytes == 0x408
    assert lay.tcache_max_chunk == 0x400  # 0x410 < 0x408 is false: the last small bin is unused by default
    # large bins: by bit length from 0x410 up, 4 MiB at most
    assert [lay.tcache_index(s) for s in (0x400, 0x410, 0x7F0, 0x800, 0x3FFFF0, 0x400000)] == \
        [62, 63, 64, 65, 75, None]
    assert lay.tcache_max_chunk_for({"tcache_max_bytes": 0x10001}) == 0x10000  # glibc.malloc.tcache_max
    assert lay.tcache_held(3, 7) == 4 and lay.tcache_raw_count(4, 7) == 3


def test_facts_by_release():
    assert first_release("fastbins", False) == (2, 43)
    assert first_release("tcache_large_bins", 12) == (2, 42)
    assert first_release("safe_linking") == (2, 32)
    assert releases_where(lambda L: L.tcache_chunk_size == 0x300) == ((2, 42), (2, 43))
    assert releases_where(lambda L: L.malloc_state.size == 0x840) == ((2, 43), (2, 43))
    assert layout_for("2.43").tcache_max_chunk == 0x410 and layout_for("2.43").default_tcache_max_bytes == 0x411
    assert layout_for("2.43").mmap_trailer == 16 and layout_for("2.42").mmap_trailer == 0
    assert not facts_for("2.43").tcache_first_chunk and facts_for("2.42").tcache_first_chunk


@pytest.mark.parametrize("versions, inside, outside", [
    ("2.27+", ["2.27", "2.43"], ["2.26"]), ("2.32-2.42", ["2.32", "2.42"], ["2.31", "2.43"]),
    ("2.42", ["2.42"], ["2.41", "2.43"]), ("2.27+ (MALLOC_CHECK_ only)", ["2.30"], ["2.26"]),
])
def test_release_in(versions, inside, outside):
    assert all(release_in(v, versions) for v in inside)
    assert not any(release_in(v, versions) for v in outside)


# -- the abort table against glibc's binaries ------------------------------------------------------

#: fixture binaries built against each release (static: malloc.o is linked whole)
RELEASE_BINARIES = {"2.31": "glibc/heapmix-bullseye", "2.36": "glibc/heapmix-bookworm",
                    "2.41": "glibc/heapmix-trixie", "2.43": "glibc/heapmix-sid"}


@pytest.mark.parametrize("version", sorted(RELEASE_BINARIES))
def test_abort_strings_match_the_release(version):
    path = os.path.join(CORES, RELEASE_BINARIES[version])
    if not os.path.exists(path):
        pytest.skip(f"{path} not built")
    data = open(path, "rb").read()
    present, absent = [], []
    for message, info in ABORTS.items():
        if info.source != "malloc.c" or "~" in info.versions:
            continue  # MALLOC_CHECK_/mcheck live in other objects; "~" ranges are not exact
        said = release_in(version, info.versions)
        there = message.encode() + b"\0" in data  # whole strings: one message can start another
        if said and not there:
            present.append(message)
        elif there and not said:
            absent.append(message)
    assert present == [], f"the table says glibc {version} has these, its malloc.o does not"
    assert absent == [], f"glibc {version}'s malloc.o has these, the table says it does not"


def test_243_has_no_fastbin_message():
    path = os.path.join(CORES, RELEASE_BINARIES["2.43"])
    if not os.path.exists(path):
        pytest.skip("heapmix-sid not built")
    data = open(path, "rb").read()
    for text in (b"fastbin chunk detected", b"(fast)\0", b"(fasttop)", b"fastbin entry", b"in fastbins"):
        assert text not in data
    assert not any("fastbin" in m or "fast)" in m for m, i in ABORTS.items() if release_in("2.43", i.versions))
