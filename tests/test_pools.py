"""Unit tests of the pool model (no gdb) on synthetic memory built here."""
import struct

import construct as c
import pytest

from gdbext.errors import SpecError
from gdbext.memory import BufferSource
from gdbext.pools import (Chained, Evaluator, FixedSlots, FlagBit, FreeList, Guard, InFreeList, Magic,
                          PoolSpec, layout_from_construct, resolve, walk_pool)

HDR = c.Struct("magic" / c.Int32ul, "req_size" / c.Int32ul, "alloc_site" / c.Int64ul, "next_free" / c.Int64ul)
USED, FREE = 0xA110C8ED, 0xF4EEF4EE
BASE, SLOT, N = 0x10000, 80, 6


def build_pool(states, links, head, overflow=None):
    """Slots in ``states`` ('u'/'f'), free-list ``links`` {slot: next slot or None}, head slot."""
    mem = bytearray()
    for i, s in enumerate(states):
        nxt = links.get(i)
        hdr = HDR.build(dict(magic=USED if s == "u" else FREE, req_size=10 * (i + 1) if s == "u" else 0,
                             alloc_site=0x401000 + i if s == "u" else 0,
                             next_free=BASE + nxt * SLOT if nxt is not None else 0))
        mem += hdr + bytes([0xCD if s == "u" else 0xDD]) * 48 + b"\xfd" * 8
    if overflow:
        off, data = overflow
        mem[off:off + len(data)] = data
    head_ptr = BASE + head * SLOT if head is not None else 0
    return BufferSource({BASE: bytes(mem), 0x9000: struct.pack("<Q", head_ptr)})


SPEC = PoolSpec(
    name="p", geometry=FixedSlots(first=BASE, slot_size=SLOT, count=N), header=HDR,
    in_use=Magic("magic", USED, FREE), requested_size="req_size", alloc_site="alloc_site",
    free_list=FreeList(head=0x9000, link="next_free"), guard=Guard(72, 8, 0xFD), payload_size=48)


class Ev(Evaluator):
    def eval_int(self, expr):
        return expr


def walk(mem, spec=SPEC):
    pool = resolve(spec, Ev())
    # the head expression is the address of the head pointer: read it as gdb would evaluate the global
    pool = pool.__class__(**{**pool.__dict__, "free_head": mem.read_pointer(0x9000)})
    return walk_pool(mem, pool)


def test_header_layout_from_construct():
    layout = layout_from_construct(HDR)
    assert layout.size == 24
    assert layout.fields["next_free"].offset == 16


def test_clean_pool():
    mem = build_pool("uufuff", {2: 4, 4: 5, 5: None}, 2)
    r = walk(mem)
    assert (r.in_use, r.free, r.corrupt) == (3, 3, 0)
    assert r.free_list == [BASE + 2 * SLOT, BASE + 4 * SLOT, BASE + 5 * SLOT]
    assert r.anomalies == []
    c0 = r.chunks[0]
    assert c0.user_address == BASE + 24 and c0.requested_size == 10 and c0.alloc_sites == [0x401000]
    assert c0.usable_size == 48


def test_overflow_into_next_header_is_reported():
    text = b"GET /api/v1/sensors/calibration?channel=12&mode=full&verbose=1 HTTP/1.1 Host: gw"
    assert len(text) >= 80
    # slot 1's payload starts at 80+24; 48 + 8 + 24 bytes reach through slot 2's header
    mem = build_pool("uufuff", {2: 4, 4: 5, 5: None}, 2, overflow=(SLOT + 24, text[:48 + 8 + 24]))
    r = walk(mem)
    kinds = [(a.kind, a.chunk) for a in r.anomalies]
    assert ("guard-overwritten", 1) in kinds
    assert ("bad-magic", 2) in kinds
    assert r.chunks[2].state == "corrupt"
    guard = next(a for a in r.anomalies if a.kind == "guard-overwritten")
    assert guard.data == text[48:56]
    # the corrupted head's link now points at text: reported, and the walk stops there
    assert any(a.kind == "freelist-outside" for a in r.anomalies)


def test_free_list_cycle_terminates():
    mem = build_pool("uffuff", {1: 2, 2: 4, 4: 1}, 1)
    r = walk(mem)
    assert any(a.kind == "freelist-cycle" for a in r.anomalies)
    assert len(r.free_list) == 3


def test_free_list_pointing_at_in_use_slot():
    mem = build_pool("uffuff", {1: 3, 3: None}, 1)
    r = walk(mem)
    assert any(a.kind == "freelist-in-use" and a.chunk == 3 for a in r.anomalies)
    assert any(a.kind == "free-not-listed" for a in r.anomalies)


def test_flag_bit_and_in_free_list_predicates():
    mem = build_pool("uufuff", {2: 4, 4: 5, 5: None}, 2)
    spec = PoolSpec(**{**SPEC.__dict__, "in_use": InFreeList()})
    r = walk(mem, spec)
    assert [ch.state for ch in r.chunks] == ["in-use", "in-use", "free", "in-use", "free", "free"]
    spec = PoolSpec(**{**SPEC.__dict__, "in_use": FlagBit("magic", 0x1)})  # USED is odd, FREE is even
    assert [ch.state for ch in walk(mem, spec).chunks][:3] == ["in-use", "in-use", "free"]


def test_chained_geometry_stops_on_bad_size():
    hdr = c.Struct("size" / c.Int64ul, "flags" / c.Int64ul)
    blob = b"".join(struct.pack("<QQ", n, 1) + b"x" * (n - 16) for n in (32, 48, 32))
    blob += struct.pack("<QQ", 0x4141414141414141, 0) + b"y" * 16
    mem = BufferSource({0x5000: blob})
    spec = PoolSpec("arena", Chained(first=0x5000, end=0x5000 + len(blob), size_field="size"), hdr,
                    in_use=FlagBit("flags", 1))
    r = walk_pool(mem, resolve(spec, Ev()))
    assert len(r.chunks) == 4
    assert r.stopped and "bad size" in r.stopped
    assert any(a.kind == "bad-size" and a.data == b"AAAAAAAA" for a in r.anomalies)


def test_unreadable_pool_does_not_raise():
    mem = BufferSource({0x9000: struct.pack("<Q", 0)})
    r = walk(mem)
    assert r.chunks == [] and "slot 0" in r.stopped


def test_spec_errors_name_the_problem():
    with pytest.raises(SpecError, match="no field 'nope'"):
        resolve(PoolSpec(**{**SPEC.__dict__, "requested_size": "nope"}), Ev())
    with pytest.raises(SpecError, match="geometry.slot_size: 8 is smaller than header"):
        resolve(PoolSpec(**{**SPEC.__dict__, "geometry": FixedSlots(BASE, 8, 4)}), Ev())
    with pytest.raises(SpecError, match="without a debugger"):
        resolve(PoolSpec(**{**SPEC.__dict__, "geometry": FixedSlots("g_pool.slots", 80, 4)}), Evaluator())
