# tests/test_forensics_scan.py - the cores of poisonscan (runs mapped to chunks
# and judged by state, the no-pattern detectors, regions) and of heapexplain
# (one address: chunk, field, location, neighbours, damage) on synthetic heaps
# and pools.  No gdb.
from __future__ import annotations

import pytest
from test_forensics_synthetic import CODE, PERTURB, POOL, PS, allocate, build, image, pool_context, pool_memory, user

from gdbext.errors import GdbextError
from gdbext.forensics import find_all
from gdbext.forensics.address import explain_address
from gdbext.forensics.scan import parse_region, poisonscan
from gdbext.poison import glibc_perturb_preset, parse_user_pattern, pool_preset, preset_by_name


def scan(ctx, patterns, region="heap"):
    return poisonscan(ctx.mem, ctx.heap, ctx.pools, patterns, region, context=ctx)


def test_verdicts_follow_the_chunk_state():
    img, c = image(size=0x50)
    img.main.free(c[1], "fast")
    img.main.free(c[3], "tcache")
    img.put(user(c[1]) + PS, bytes([PERTURB]) * (0x50 - 3 * PS))  # freed fill where it belongs
    img.put(user(c[2]) + 8, bytes([PERTURB]) * 24)  # freed fill inside an in-use chunk
    img.put(user(c[3]) + 16, bytes([PERTURB ^ 0xFF]) * 32)  # fresh fill in a tcache chunk
    img.put(user(c[4]), bytes([PERTURB ^ 0xFF]) * 16)  # fresh fill in an in-use chunk
    img.put(user(c[5]) + 40, bytes([PERTURB]) * 32)  # freed fill up to the usable end: slack
    ctx = build(img, perturb_byte=PERTURB)
    rep = scan(ctx, [glibc_perturb_preset(PERTURB)])
    got = {(h.chunk.address, h.verdict, h.address - h.chunk.user_address, h.size) for h in rep.hits}
    assert got == {(c[1], "expected", 8, 0x50 - 3 * PS), (c[2], "stale-in-use", 8, 24),
                   (c[3], "fresh-in-free", 16, 32), (c[4], "never-written", 0, 16), (c[5], "slack", 40, 32)}
    tc = next(h for h in rep.hits if h.chunk.address == c[3])
    assert "tcache frees are not filled" in tc.note
    assert "8 bytes inside of the 72-byte region" in next(h for h in rep.hits if h.chunk.address == c[2]).location
    d = rep.to_dict()
    assert d["counts"] == {"expected": 1, "stale-in-use": 1, "fresh-in-free": 1, "never-written": 1, "slack": 1}
    assert rep.writes == [] and find_all(ctx) == []


def test_user_patterns_regions_and_suspects():
    img, c = image()
    img.put(user(c[2]) + 4, b"\xde\xad\xbe\xef" * 3)
    img.put(user(c[4]), b"AAAAAAAA")
    ctx = build(img, registers={"rbx": int.from_bytes(b"AAAAAAAA", "little"), "rip": 0x401000})
    rep = scan(ctx, [parse_user_pattern("de ad be ef"), parse_user_pattern('"AAAA"')])
    assert [(h.address, h.pattern.source, h.verdict) for h in rep.hits] == [
        (user(c[2]) + 4, "user", "found"), (user(c[4]), "user", "found")]
    assert [s.where for s in rep.suspects] == ["register rbx"] and rep.suspects[0].word.text == "AAAAAAAA"
    only = scan(ctx, [parse_user_pattern("de ad be ef")], (user(c[4]), user(c[4]) + 0x30))
    assert only.hits == [] and only.spans == [(user(c[4]), user(c[4]) + 0x30, "range")]
    assert parse_region("0x10-0x20") == (0x10, 0x20) and parse_region("pool:x") == "pool:x"
    for bad in ("0x20-0x10", "nowhere", "1-x"):
        with pytest.raises(GdbextError):
            parse_region(bad)
    with pytest.raises(GdbextError):
        scan(ctx, [], "pool:missing")


def test_pool_scan_guard_and_overrun():
    mem = pool_memory()
    allocate(mem, 0, 20)
    mem[POOL][24:24 + 30] = b"0123456789abcdefghijklmnopqrst"  # 10 bytes past the 20 requested, into slack
    ctx = pool_context(mem, head=POOL + 80)
    spec = ctx.pools[0].pool.spec
    rep = scan(ctx, [pool_preset(spec.fill, spec.guard)], "pool:p")
    assert rep.spans == [(POOL, POOL + 320, "pool:p")]
    guards = [h for h in rep.hits if h.pattern.state == "guard"]
    assert len(guards) == 4 and all(h.verdict == "expected" for h in guards)
    free = [h for h in rep.hits if h.pattern.state == "freed"]
    assert [h.chunk.slot for h in free] == [1, 2, 3] and {h.verdict for h in free} == {"expected"}
    (o,) = rep.overruns
    assert o.chunk.slot == 0 and o.end - o.boundary == 10 and o.after == "klmnopqrst"
    assert "runs 10 bytes past its 20-byte region" in o.line()
    # a guard pattern where no guard belongs
    mem[POOL][80 + 24:80 + 24 + 8] = b"\xfd" * 8
    rep = scan(pool_context(mem, head=POOL + 80), [pool_preset(spec.fill, spec.guard)], "pool:p")
    odd = [h for h in rep.hits if h.pattern.state == "guard" and h.verdict != "expected"]
    assert [h.chunk.slot for h in odd] == [1] and "outside the slot's guard area" in odd[0].note


def test_scan_lists_writes_after_free_and_presets_resolve():
    mem = pool_memory()
    mem[POOL][80 + 24:80 + 28] = b"oops"
    ctx = pool_context(mem, head=POOL)
    rep = scan(ctx, [])
    assert rep.hits == [] and [f.chunk.slot for f in rep.writes] == [1]
    assert "written after free:" in rep.text_lines()
    assert preset_by_name("generic").name == "generic"


def test_explain_address_in_glibc_chunks():
    img, c = image()
    img.main.free(c[2], "tcache")
    ctx = build(img)
    rep = explain_address(ctx, c[3] + PS)
    assert rep.chunk.address == c[3] and rep.header_field == "size" and rep.chunk.state == "in-use"
    assert rep.location.startswith(f"{c[3] + PS:#x} is 8 bytes before the 56-byte region")
    assert rep.neighbours["previous"].address == c[2] and rep.neighbours["previous"].bin == "tcache[2]"
    assert rep.neighbours["next"].address == c[4] and rep.findings == [] and rep.damage == []
    assert any("address" in line for line in rep.hexdump)
    rep = explain_address(ctx, user(c[2]) + PS)
    assert rep.header_field == "key" and "tcache[2]" in rep.text_lines()[1]
    d = rep.to_dict()
    assert d["schema"] == "gdbext.heapexplain/1" and d["bin"] == "tcache[2]" and d["offset"] == PS


def test_explain_address_outside_and_with_damage():
    img, c = image()
    img.w(c[3] + PS, 0x1234567890ABCDE3)
    ctx = build(img)
    rep = explain_address(ctx, 0x10)
    assert rep.chunk is None and "not in any mapping" in rep.location and rep.hexdump == []
    rep = explain_address(ctx, user(c[3]))
    assert rep.chunk.state == "corrupt" and [f.kind for f in rep.findings] == ["metadata-corruption"]
    assert "chunk.flags.mmapped" in {d["what"] for d in rep.damage} and rep.damage[0]["field"] == "size"


def test_explain_address_in_a_pool_slot():
    mem = pool_memory()
    allocate(mem, 1, 32)
    ctx = pool_context(mem, head=POOL)
    rep = explain_address(ctx, POOL + 80 + 24 + 40)
    assert rep.chunk.slot == 1 and rep.location.startswith(f"{POOL + 80 + 24 + 40:#x} is 8 bytes after the 32-byte")
    assert rep.allocation_site.function == "make_buf" and rep.allocation_site.pc == CODE + 0x15
    rep = explain_address(ctx, POOL + 80 + 16)
    assert rep.header_field == "next_free"
