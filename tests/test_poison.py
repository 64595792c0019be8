# tests/test_poison.py - gdbext.poison (presets scoped by allocator, the run
# scanner on synthetic buffers, word classification, user patterns) and
# gdbext.textutil (printable_text, c_escape, annotated hexdumps).
from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gdbext.errors import SpecError
from gdbext.poison import (
    ALLOCATORS,
    STATIC_PRESETS,
    Pattern,
    classify_word,
    parse_user_pattern,
    preset_by_name,
    presets_for,
    scan,
)
from gdbext.pools import Fill, Guard
from gdbext.textutil import c_escape, hexdump, printable_text

BASE = 0x4B0000


# -- presets -----------------------------------------------------------------------


def fills(preset):
    return {p.bytes: p for p in preset.patterns}


def test_glibc_perturb_preset():
    first = presets_for("glibc", perturb_byte=0xA5)[0]
    assert (first.name, first.allocator) == ("glibc-perturb", "glibc")
    pats = fills(first)
    assert pats[b"\xa5"].state == "freed" and "tcache" in pats[b"\xa5"].meaning
    assert pats[b"\x5a"].state == "uninitialised"  # 0xa5 ^ 0xff
    assert all(p.source == "glibc-perturb" for p in first.patterns)


def test_presets_are_scoped_by_allocator():
    # the same byte means opposite things under different allocators
    jemalloc = fills(presets_for("jemalloc")[0])
    assert jemalloc[b"\xa5"].state == "uninitialised" and jemalloc[b"\x5a"].state == "freed"
    slub = fills(preset_by_name("slub-debug"))
    assert slub[b"\x6b"].tail == b"\xa5" and slub[b"\x5a"].state == "uninitialised"
    assert [p.name for p in presets_for("glibc")] == ["glibc-mcheck", "generic"]  # no perturb byte: no perturb preset
    assert presets_for("generic")[-1].name == "generic"
    names = [p.name for p in presets_for("any", perturb_byte=0x41, pool_fill=0xDD)]
    assert names[:2] == ["glibc-perturb", "pool"] and names[-1] == "generic"
    assert set(names) >= {p.name for p in STATIC_PRESETS}
    assert presets_for("tcmalloc")[0].name == "gperftools-debug"  # alias


def test_expected_bytes_in_tables():
    table = {(p.source, p.bytes): p for preset in STATIC_PRESETS for p in preset.patterns}
    for source, value in [("msvc-debug-crt", 0xCD), ("msvc-debug-crt", 0xDD), ("msvc-debug-crt", 0xFD),
                          ("gperftools-debug", 0xCD), ("gperftools-debug", 0xAB), ("glibc-mcheck", 0x93),
                          ("glibc-mcheck", 0x95), ("asan", 0xBE), ("slub-debug", 0xCC), ("slub-debug", 0xBB)]:
        assert (source, bytes([value])) in table
    generic = {p.bytes for p in preset_by_name("generic").patterns}
    assert generic == {bytes.fromhex(h) for h in ("efbeadde", "0df0adba", "eefeeefe", "abababab")}
    big = {p.bytes for p in preset_by_name("generic", byteorder="big").patterns}
    assert bytes.fromhex("deadbeef") in big


def test_pool_preset_from_spec_objects():
    (pool, generic) = presets_for("pool", pool_fill=Fill(free=0xDD, fresh=0xCD), pool_guard=Guard(72, 8, 0xFD))
    pats = fills(pool)
    assert pats[b"\xdd"].state == "freed" and pats[b"\xcd"].state == "uninitialised"
    assert pats[b"\xfd"].state == "guard" and pats[b"\xfd"].min_run == 8
    assert fills(preset_by_name("pool", pool_guard=0xFD))[b"\xfd"].min_run == 4
    assert fills(preset_by_name("pool", pool_fill=(0x11, 0x22)))[b"\x22"].state == "uninitialised"


def test_preset_errors():
    with pytest.raises(SpecError):
        presets_for("nosuchalloc")
    with pytest.raises(SpecError):
        presets_for("pool")
    with pytest.raises(SpecError):
        preset_by_name("glibc-perturb")
    with pytest.raises(SpecError):
        preset_by_name("nope")
    with pytest.raises(SpecError):
        presets_for("glibc", perturb_byte=0x100)
    assert set(ALLOCATORS) >= {"glibc", "pool", "jemalloc", "slub", "msvc", "gperftools", "asan", "generic", "any"}


# -- scan ------------------------------------------------------------------------------


def test_scan_groups_runs_and_respects_min_run():
    buf = bytearray(b"\x00" * 64)
    buf[8:40] = b"\xa5" * 32  # one run of 32
    buf[44] = 0xA5  # single byte: below min_run
    buf[48:55] = b"\x5a" * 7  # 7 < 8
    buf[56:64] = b"\x5a" * 8  # exactly 8
    hits = scan(bytes(buf), BASE, presets_for("glibc", perturb_byte=0xA5))
    assert [(h.address - BASE, h.size, h.pattern.bytes, h.preset) for h in hits] == [
        (8, 32, b"\xa5", "glibc-perturb"),
        (56, 8, b"\x5a", "glibc-perturb"),
    ]
    assert hits[0].end == BASE + 40 and "free_perturb" in hits[0].meaning


def test_scan_zero_and_ff_do_not_flood():
    buf = bytes(range(256)) * 64 + b"\x00" * 4096 + b"\xff" * 4096
    assert scan(buf, BASE, presets_for("any", perturb_byte=0x41)) == []


def test_scan_multibyte_words_and_tail():
    le = (0xDEADBEEF).to_bytes(4, "little")
    buf = b"xx" + le + b"yyyy" + le * 3 + b"z" + b"\x6b" * 15 + b"\xa5" + b"q"
    hits = scan(buf, BASE, [preset_by_name("generic"), preset_by_name("slub-debug")])
    got = [(h.address - BASE, h.size, h.preset) for h in hits]
    assert (2, 4, "generic") in got
    assert (10, 12, "generic") in got  # three words grouped into one run
    assert (23, 16, "slub-debug") in got  # 15 x 0x6b plus the POISON_END tail
    big = scan((0xDEADBEEF).to_bytes(4, "big"), BASE, [preset_by_name("generic", byteorder="big")])
    assert [(h.address, h.size) for h in big] == [(BASE, 4)]


def test_scan_overlapping_interpretations_and_limit():
    buf = b"\xab" * 16
    hits = scan(buf, BASE, [preset_by_name("gperftools-debug"), preset_by_name("generic")])
    assert {(h.preset, h.size) for h in hits} == {("gperftools-debug", 16), ("generic", 16)}
    many = b"".join(b"\xdd" * 8 + b"\x00" for _ in range(100))
    assert len(scan(many, BASE, [preset_by_name("msvc-debug-crt")], limit=5)) == 5
    assert len(scan(memoryview(many), BASE, [preset_by_name("msvc-debug-crt")])) == 100


def test_scan_is_fast_on_multi_megabyte_buffers():
    rng = random.Random(7)
    buf = bytearray(rng.getrandbits(8) for _ in range(1 << 16)) * 128  # 8 MiB of noise
    spots = sorted(rng.sample(range(0, len(buf) - 64, 4096), 50))
    for at in spots:
        buf[at : at + 24] = b"\x95" * 24
    data = bytes(buf)
    t0 = time.perf_counter()
    hits = scan(data, BASE, presets_for("any", perturb_byte=0xA5, pool_fill=0xDD, pool_guard=0xFD))
    elapsed = time.perf_counter() - t0
    mcheck = [h for h in hits if h.pattern.bytes == b"\x95" and h.size >= 24]
    assert [h.address - BASE for h in mcheck] == spots
    assert elapsed < 1.0, elapsed


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([b"\xa5", b"\x5a", b"\x00", b"\x41"]), st.integers(1, 20)), max_size=20))
def test_scan_runs_are_exact_and_maximal(pieces):
    buf = b"".join(b * n for b, n in pieces)
    pat = Pattern(b"\xa5", "x", 4)
    hits = scan(buf, BASE, [pat])
    expected = []
    i = 0
    while i < len(buf):
        j = i
        while j < len(buf) and buf[j] == 0xA5:
            j += 1
        if j - i >= 4:
            expected.append((BASE + i, j - i))
        i = max(j, i + 1)
    assert [(h.address, h.size) for h in hits] == expected


# -- classify_word ------------------------------------------------------------------------


def test_classify_text_word():
    value = 0x3036333D776F646E  # "ndow=360" in memory on little-endian
    w = classify_word(value, 8, "little")
    assert (w.kind, w.text) == ("text", "ndow=360")
    assert classify_word(int.from_bytes(b"ndow=360", "big"), 8, "big").text == "ndow=360"
    assert classify_word(int.from_bytes(b"abc\0\0\0\0\0", "little"), 8, "little") is None  # too short
    assert classify_word(int.from_bytes(b"abcd\0\0\0\0", "little"), 8, "little").text == "abcd"


def test_classify_poison_word():
    w = classify_word(0xA5A5A5A5A5A5A5A5, 8, "little", perturb_byte=0xA5)
    assert (w.kind, w.preset, w.state) == ("poison", "glibc-perturb", "freed")
    assert ("jemalloc-junk", presets_for("jemalloc")[0].patterns[0].meaning) in w.alternatives
    scoped = classify_word(0xA5A5A5A5A5A5A5A5, 8, "little", allocator="jemalloc")
    assert (scoped.preset, scoped.state, scoped.alternatives) == ("jemalloc-junk", "uninitialised", ())
    fresh = classify_word(0x5A5A5A5A5A5A5A5A, 8, "little", perturb_byte=0xA5, allocator="glibc")
    assert (fresh.preset, fresh.state) == ("glibc-perturb", "uninitialised")  # "ZZZZZZZZ" is poison, not text
    assert classify_word(0xDEADBEEF, 8, "little").preset == "generic"
    assert classify_word(0xDEADBEEFDEADBEEF, 8, "little").preset == "generic"
    assert classify_word(0x6B6B6B6B6B6B6B6B, 8, "little", allocator="slub").state == "freed"
    assert classify_word(0xA56B6B6B6B6B6B6B, 8, "little", allocator="slub").state == "freed"  # last byte POISON_END
    assert classify_word(0xDDDDDDDD, 4, "little", pool_fill=0xDD, allocator="pool").preset == "pool"
    assert "poison" in classify_word(0xFEEEFEEEFEEEFEEE, 8, "little").describe()


def test_classify_plain_values():
    for value in (0, 1, 0xFFFFFFFFFFFFFFFF, 0x4B06E0, 0x7FFFFFFFE000, 0x0000018BCFE56CCB):
        assert classify_word(value, 8, "little") is None


# -- parse_user_pattern -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, data",
    [
        ("de ad be ef", bytes.fromhex("deadbeef")),
        ("deadbeef", bytes.fromhex("deadbeef")),
        ("de:ad,be ef", bytes.fromhex("deadbeef")),
        ("0xde 0xad", bytes.fromhex("dead")),
        ("a5", b"\xa5"),
        ("0xdeadbeef", bytes.fromhex("efbeadde00000000")),
        ('"AAAA"', b"AAAA"),
        ("'ab\\x00\\n'", b"ab\x00\n"),
    ],
)
def test_parse_user_pattern_forms(text, data):
    pat = parse_user_pattern(text)
    assert pat.bytes == data and pat.source == "user"


def test_parse_user_pattern_options():
    assert parse_user_pattern("0xdeadbeef", pointer_size=4, byteorder="big").bytes == bytes.fromhex("deadbeef")
    assert parse_user_pattern("a5").min_run == 8  # one byte: a pointer's worth
    assert parse_user_pattern("de ad").min_run == 2
    assert parse_user_pattern("a5", min_run=32, meaning="mine").min_run == 32
    assert parse_user_pattern("a5", meaning="mine").meaning == "mine"
    hits = scan(b"\x00\xa5\xa5\xa5\xa5\xa5\xa5\xa5\xa5\x00", BASE, [parse_user_pattern("a5")])
    assert [(h.address, h.size) for h in hits] == [(BASE + 1, 8)]


@pytest.mark.parametrize("text", ["", "   ", "abc", "zz", "0xgg", "0x1ffffffffffffffff", '""', "a5 b"])
def test_parse_user_pattern_errors(text):
    with pytest.raises(SpecError):
        parse_user_pattern(text)


# -- textutil -----------------------------------------------------------------------------------


def test_printable_text_edges():
    assert printable_text(b"hello world") == "hello world"
    assert printable_text(b"abc\0\xff\xff\xff") == "abc"  # NUL-terminated text counts
    assert printable_text(b"\0abc") is None
    assert printable_text(b"") is None
    assert printable_text(b"\x01\x02\x03abc") is None  # 3/6 printable < 0.75
    assert printable_text(b"abcdefg\x01") == "abcdefg\\001"  # 7/8, escaped
    assert printable_text(b"abcdefg\x01", threshold=1.0) is None
    assert printable_text(b"line\n") == "line\\n"
    assert printable_text(b"ab", min_len=4) is None
    assert printable_text(memoryview(b"[0000]ch09")) == "[0000]ch09"


def test_c_escape():
    assert c_escape(b'a"b\\c\n\t\0\xff1') == 'a\\"b\\\\c\\n\\t\\000\\3771'


def test_hexdump_plain():
    lines = hexdump(b"ABCDEFGHIJKLMNOPQR", 0x4AA430)
    assert lines == [
        "  0x004aa430: 41 42 43 44 45 46 47 48 49 4a 4b 4c 4d 4e 4f 50  |ABCDEFGHIJKLMNOP|",
        "  0x004aa440: 51 52                                            |QR              |",
    ]
    assert hexdump(b"", 0x1000) == []


def test_hexdump_marks_like_asan():
    data = bytes(range(0x20))
    lines = hexdump(data, 0x1004, marks=[(0x1008, 0x1010, "guard overwritten"), (0x2000, 0x2010, "elsewhere")], width=8)
    assert lines[0] == "  0x00001000:             00 01 02 03  |    ....|"
    assert lines[1] == "=>0x00001008:[04]05 06 07 08 09 0a 0b  |........|  guard overwritten"
    assert lines[2].startswith("  0x00001010: 0c")
    assert lines[-1] == "[..] = first byte of a marked range: 0x1008..0x1010 guard overwritten"
    assert len({len(line) for line in lines[:-1] if not line.endswith("overwritten")}) == 1
    # a mark starting mid-row, two adjacent marks, a mark clipped to the dump
    lines = hexdump(b"\x00" * 8, 0x10, marks=[(0x12, 0x13, "a"), (0x13, 0x14, "b"), (0x0, 0x11, "c")], width=8)
    assert lines[0] == "=>0x00000010:[00]00[00|00]00 00 00 00  |........|  a, b, c"
    assert lines[1] == "[..] = first byte of a marked range: 0x12..0x13 a; 0x13..0x14 b; 0x10..0x11 c"


def test_hexdump_wide_addresses():
    lines = hexdump(b"\x01", 0x7FFFFFFFE000)
    assert lines[0].startswith("  0x7fffffffe000: 01")
