# tests/test_fuzz_poison.py - property-based fuzzing of gdbext.poison: scan()
# results are exactly the maximal runs a plain reference scanner finds, on
# random buffers and random patterns; scan, classify_word and
# parse_user_pattern never raise anything but SpecError (and only on bad input).
"""Fuzzing the poison scanner.

Buffers are drawn as random bytes with runs of the patterns under test spliced
in (so runs, near-misses one byte short of ``min_run``, tails and adjacent runs
of other patterns all occur), patterns as a mix of the real presets and random
user patterns (one to four bytes, any ``min_run``, with or without a tail).
:func:`reference_scan` is an independent, deliberately naive scanner: at each
offset, count whole repetitions of the unit, take the run when there are enough
and add the tail when it follows, else move one byte on.  ``scan`` must return
exactly its hits, sorted by address (longer first), honouring ``limit``.
"""
from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gdbext.errors import SpecError
from gdbext.poison import (ALLOCATORS, STATIC_PRESETS, Pattern, Preset, classify_word, glibc_perturb_preset,
                           parse_user_pattern, pool_preset, presets_for, scan)
from gdbext.textutil import is_printable_byte

#: examples per test in CI; ``GDBEXT_FUZZ_EXAMPLES`` overrides every test's count
MAX_EXAMPLES = {"scan": 400, "classify": 300, "parse": 300}


def fuzz_settings(name: str) -> settings:
    env = os.environ.get("GDBEXT_FUZZ_EXAMPLES")
    return settings(max_examples=int(env) if env else MAX_EXAMPLES[name],
                    derandomize=os.environ.get("GDBEXT_FUZZ_RANDOM") != "1", database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


BASE = 0x7F0000001000
ALL_PATTERNS: Tuple[Pattern, ...] = tuple(p for preset in STATIC_PRESETS for p in preset.patterns) + \
    tuple(glibc_perturb_preset(0xA5).patterns) + tuple(pool_preset(0xDD, 0xFD).patterns)


# -- the reference scanner ---------------------------------------------------------------------------


def reference_scan(buf: bytes, pattern: Pattern, limit: Optional[int] = None) -> List[Tuple[int, int]]:
    """(offset, size) of each run of ``pattern``, scanning left to right, one byte at a time."""
    unit, tail = pattern.bytes, pattern.tail
    need = max(1, -(-pattern.min_run // len(unit)))  # whole units a run needs
    out: List[Tuple[int, int]] = []
    i = 0
    while i + need * len(unit) <= len(buf):
        k = 0
        while buf[i + k * len(unit) : i + (k + 1) * len(unit)] == unit:
            k += 1
        if k >= need:
            end = i + k * len(unit)
            if tail and buf[end : end + len(tail)] == tail:
                end += len(tail)
            out.append((i, end - i))
            if limit is not None and len(out) >= limit:
                break
            i = end
        else:
            i += 1
    return out


# -- strategies ----------------------------------------------------------------------------------------


@st.composite
def user_patterns(draw) -> Pattern:
    unit = draw(st.binary(min_size=1, max_size=4))
    tail = draw(st.one_of(st.just(b""), st.binary(min_size=1, max_size=2)))
    return Pattern(unit, "fuzz", draw(st.integers(1, 24)), tail, source=f"user{len(unit)}")


patterns_st = st.lists(st.one_of(st.sampled_from(ALL_PATTERNS), user_patterns()), min_size=1, max_size=6)


@st.composite
def buffers(draw, patterns: Sequence[Pattern]) -> bytes:
    """Random bytes and runs of the patterns (some a byte short of min_run, some with their tail)."""
    out = bytearray()
    for _ in range(draw(st.integers(0, 24))):
        choice = draw(st.integers(0, 3))
        if choice == 0:
            out += draw(st.binary(max_size=24))
        elif choice == 1:
            out += bytes([draw(st.sampled_from([0, 0xFF, 0x41]))]) * draw(st.integers(1, 16))
        else:
            pat = draw(st.sampled_from(list(patterns)))
            need = max(1, -(-pat.min_run // len(pat.bytes)))
            reps = max(0, need + draw(st.integers(-2, 3)))
            out += pat.bytes * reps
            if pat.tail and draw(st.booleans()):
                out += pat.tail
    return bytes(out)


# -- scan -------------------------------------------------------------------------------------------


@fuzz_settings("scan")
@given(data=st.data(), kind=st.sampled_from(["bytes", "bytearray", "memoryview"]),
       limit=st.one_of(st.none(), st.integers(1, 5)), presets=st.booleans())
def test_scan_hits_are_exact_maximal_runs(data, kind, limit, presets):
    """scan() == the reference scanner, per pattern; hits sorted; limit honoured; each hit's bytes are the run."""
    patterns = data.draw(patterns_st, label="patterns")
    buf = data.draw(buffers(patterns), label="buffer")
    view = {"bytes": bytes, "bytearray": bytearray, "memoryview": memoryview}[kind](buf)
    items: List[object] = list(patterns)
    if presets:  # whole presets as well as single patterns
        items.append(data.draw(st.sampled_from(STATIC_PRESETS), label="preset"))
    hits = scan(view, BASE, items, limit=limit)  # type: ignore[arg-type]
    flat: List[Pattern] = []
    for item in items:
        flat.extend(item.patterns if isinstance(item, Preset) else (item,))  # type: ignore[union-attr]
    expected = sorted((BASE + off, size, id(p)) for p in flat for off, size in reference_scan(buf, p, limit))
    assert sorted((h.address, h.size, id(h.pattern)) for h in hits) == expected
    assert [(h.address, -h.size) for h in hits] == sorted((h.address, -h.size) for h in hits)
    for h in hits:  # each hit is whole units (at least min_run bytes of them), then maybe the tail
        run = buf[h.address - BASE : h.end - BASE]
        unit, tail = h.pattern.bytes, h.pattern.tail
        assert any(len(run) - len(t) >= h.pattern.min_run and (len(run) - len(t)) % len(unit) == 0
                   and run == unit * ((len(run) - len(t)) // len(unit)) + t for t in {b"", tail}), (h, run)
        assert h.meaning == h.pattern.meaning and h.end == h.address + h.size


@fuzz_settings("scan")
@given(buf=st.binary(max_size=2048), base=st.integers(0, (1 << 64) - 1))
def test_scan_of_random_bytes_with_every_preset(buf, base):
    """Every preset at once over random bytes: matches the reference, never raises."""
    items = presets_for("any", perturb_byte=0x41, pool_fill=(0xDD, 0xCD), pool_guard=0xFD)
    hits = scan(buf, base, items)
    flat = [p for preset in items for p in preset.patterns]
    expected = sorted((base + off, size, id(p)) for p in flat for off, size in reference_scan(buf, p))
    assert sorted((h.address, h.size, id(h.pattern)) for h in hits) == expected


# -- classify_word ----------------------------------------------------------------------------------------

allocators = st.sampled_from(sorted(ALLOCATORS) + ["ptmalloc", "tcmalloc", "kernel", "win32", "GLIBC", None])


@fuzz_settings("classify")
@given(value=st.one_of(st.integers(-(1 << 70), 1 << 70),
                       st.sampled_from([p.bytes for p in ALL_PATTERNS]).map(lambda b: int.from_bytes(
                           (b * 8)[:8], "little"))),
       size=st.sampled_from([2, 4, 8, 16]), order=st.sampled_from(["little", "big"]),
       perturb=st.one_of(st.none(), st.integers(-4, 300)), allocator=allocators,
       fill=st.one_of(st.none(), st.integers(-4, 300), st.tuples(st.integers(0, 255), st.integers(0, 255))),
       guard=st.one_of(st.none(), st.integers(-4, 300)))
def test_classify_word_never_raises_but_spec_errors(value, size, order, perturb, allocator, fill, guard):
    """Any value and options: a WordClass or None, or a SpecError when an option is invalid."""
    try:
        w = classify_word(value, size, order, perturb_byte=perturb, allocator=allocator, pool_fill=fill,
                          pool_guard=guard)
    except SpecError:
        bad_byte = lambda b: b is not None and not 0 <= b <= 0xFF  # noqa: E731
        assert (perturb is not None and perturb != 0 and not 0 < perturb <= 0xFF) or bad_byte(guard) \
            or (isinstance(fill, int) and bad_byte(fill)) \
            or (allocator is not None and allocator.lower() == "pool" and fill is None and guard is None), \
            (perturb, allocator, fill, guard)
        return
    if w is None:
        return
    data = (value & ((1 << (8 * size)) - 1)).to_bytes(size, order)  # type: ignore[arg-type]
    if w.kind == "text":  # every byte up to a NUL printable, at least 4 of them
        body = data.split(b"\0", 1)[0]
        assert len(body) >= 4 and all(is_printable_byte(b) for b in body) and w.text
    else:
        assert w.kind == "poison" and w.preset and w.meaning and w.state is not None


@fuzz_settings("classify")
@given(pattern=st.sampled_from([p for p in ALL_PATTERNS if len(p.bytes) == 1]), size=st.sampled_from([4, 8]),
       order=st.sampled_from(["little", "big"]))
def test_classify_word_of_a_fill_names_its_preset(pattern, size, order):
    """A word made of one fill byte is poison from that pattern's preset (first or as an alternative)."""
    value = int.from_bytes(pattern.bytes * size, order)  # type: ignore[arg-type]
    w = classify_word(value, size, order, perturb_byte=0xA5, pool_fill=0xDD, pool_guard=0xFD)
    assert w is not None and w.kind == "poison"
    assert pattern.source == w.preset or pattern.source in {p for p, _m in w.alternatives}


# -- parse_user_pattern ----------------------------------------------------------------------------------------


@fuzz_settings("parse")
@given(text=st.one_of(st.text(max_size=24),
                      st.text(alphabet="0123456789abcdefABCDEFx :,\"'\\", max_size=24)),
       size=st.sampled_from([4, 8]), order=st.sampled_from(["little", "big"]),
       min_run=st.one_of(st.none(), st.integers(-2, 40)), buf=st.binary(max_size=256))
def test_parse_user_pattern_gives_a_pattern_or_a_spec_error(text, size, order, min_run, buf):
    """Any text: a Pattern that scans like the reference, or a SpecError; nothing else."""
    try:
        pat = parse_user_pattern(text, pointer_size=size, byteorder=order, min_run=min_run)
    except SpecError:
        return
    assert pat.bytes and pat.min_run >= 1 and pat.source == "user"
    hits = scan(buf + pat.bytes * 4 + buf, BASE, [pat])
    data = buf + pat.bytes * 4 + buf
    assert [(h.address - BASE, h.size) for h in hits] == reference_scan(data, pat)
