"""Pool specs are checked before anything is walked: each mistake is one line naming the spec field (no gdb)."""
import dataclasses
import struct

import construct as c
import pytest

from gdbext.errors import SpecError
from gdbext.memory import BufferSource
from gdbext.pools import (Chained, Evaluator, FixedSlots, FreeList, Guard, InFreeList, Magic, PoolSpec, Tree,
                          resolve, validate, walk_pool)

from test_pools import BASE, FREE, HDR, SLOT, SPEC, USED, Ev, build_pool

#: The header type that already holds the payload (the mistake that gave 20 false use-after-free findings).
WHOLE_SLOT = c.Struct("magic" / c.Int32ul, "req_size" / c.Int32ul, "alloc_site" / c.Int64ul,
                      "next_free" / c.Int64ul, "payload" / c.Bytes(48), "guard" / c.Bytes(8))


def spec(**changes):
    return dataclasses.replace(SPEC, **changes)


def problems(s, mem=None, slot_type_size=None):
    return [p.text() for p in validate(s, Ev(), mem, slot_type_size).problems]


def test_the_fixture_spec_is_clean():
    mem = build_pool("uufuff", {2: 4, 4: 5, 5: None}, 2)
    assert problems(spec(free_list=FreeList(head=BASE + 2 * SLOT, link="next_free")), mem) == []


@pytest.mark.parametrize("changes, line", [
    (dict(header=WHOLE_SLOT, payload_size=None, guard=None),
     "pool p: payload_offset: missing, but header header holds 48-byte array 'payload' at offset 24"),
    (dict(payload_offset="offsetof(struct slot, payload)"),
     "pool p: payload_offset: 'offsetof(struct slot, payload)' is an expression; this field takes a number"),
    (dict(free_list=FreeList(head=0x9000, link="next")),
     "pool p: free_list.link: header header has no field 'next'"),
    (dict(header=c.Struct("magic" / c.Int32ul, "req_size" / c.Int16ul, "link" / c.Int16ul,
                          "alloc_site" / c.Int64ul, "next_free" / c.Int64ul),
          free_list=FreeList(head=0x9000, link="link")),
     "pool p: free_list.link: field 'link' is 2 bytes, not a pointer"),
    (dict(free_list=FreeList(head=0x9000, link="next_free", points_to="data")),
     "pool p: free_list.points_to: 'data' is neither 'header' nor 'payload'"),
    (dict(geometry=FixedSlots(BASE, 16, 4)), "pool p: geometry.slot_size: 16 is smaller than header header"),
    (dict(in_use=Magic("magic", used=())), "pool p: in_use.used: no in-use magic value given"),
    (dict(in_use=InFreeList(), free_list=None), "pool p: in_use: InFreeList() needs a free_list"),
    (dict(guard=Guard(72, 8, 0x1FD)), "pool p: guard.byte: 509 is not a byte"),
    (dict(payload_size=60), "pool p: payload_size: 60 bytes from payload offset 24 run past the 80-byte slot"),
    (dict(guard=Guard(16, 8, 0xFD)), "pool p: guard: bytes [16, 24) overlap the header (ends at 24)"),
])
def test_each_mistake_is_one_line_naming_the_field(changes, line):
    got = problems(spec(**changes))
    assert len(got) == 1 and got[0].startswith(line), got
    if "slot_size" not in line and "payload_size" not in line and "guard:" not in line:
        with pytest.raises(SpecError, match="^" + line.split(": ", 1)[0]):
            resolve(spec(**changes), Ev())  # the same line when resolved, never a TypeError later


def test_header_that_fills_the_slot_without_a_payload_offset():
    # no byte array to point at, but the default payload would be empty: the header must hold it
    hdr = c.Struct("magic" / c.Int32ul, "req_size" / c.Int32ul, "alloc_site" / c.Int64ul,
                   "next_free" / c.Int64ul, "words" / c.Array(7, c.Int64ul))
    got = problems(spec(header=hdr, payload_size=None, guard=None))
    assert got == ["pool p: payload_offset: missing, and header header (80 bytes) fills the 80-byte slot: "
                   "the payload would be empty; the header type seems to hold the payload"]


def test_slot_size_that_disagrees_with_the_slot_type():
    got = problems(spec(), slot_type_size=96)
    assert got == ["pool p: geometry.slot_size: 80 bytes, but geometry.first points to a 96-byte slot type"]


def test_magic_that_matches_no_slot():
    mem = build_pool("uufuff", {2: 4, 4: 5, 5: None}, 2)
    s = spec(in_use=Magic("magic", used=0xC0FFEE01, free=0xF4EE0000), free_list=None)
    got = problems(s, mem)
    assert got == [f"pool p: in_use.used: magic 0xc0ffee01 (mask 0xffffffff) matches no slot of 6; "
                   f"field 'magic' holds {USED:#x}, {FREE:#x}"]
    # corruption alone never looks like that: one slot with a bad magic among good ones is an anomaly
    mem = build_pool("uufuff", {2: 4, 4: 5, 5: None}, 2, overflow=(SLOT, b"XXXX"))
    assert problems(spec(free_list=FreeList(head=BASE + 2 * SLOT, link="next_free")), mem) == []


def test_free_list_head_outside_the_pool_is_only_a_warning():
    mem = build_pool("uufuff", {2: 4, 4: 5, 5: None}, 2)
    result = validate(spec(free_list=FreeList(head=0x41414141, link="next_free")), Ev(), mem)
    assert result.errors == [] and len(result.warnings) == 1
    assert result.warnings[0].field == "free_list.head" and "(or corruption)" in result.warnings[0].text()


def test_a_tree_needs_a_magic_or_flag():
    s = PoolSpec("t", Tree(root=0x1000, child="child", sibling="next", size_field="size"),
                 c.Struct("child" / c.Int64ul, "next" / c.Int64ul, "size" / c.Int64ul))
    assert problems(s) == ["pool t: in_use: InFreeList() needs a free_list to tell free chunks"]


def test_masked_magic_read_from_an_expression():
    """talloc keeps flag bits under its magic and draws the magic at start-up."""
    hdr = c.Struct("flags" / c.Int32ul, "pad" / c.Int32ul, "size" / c.Int64ul)
    magic = 0xE8150C70

    class MagicEv(Ev):
        def eval_int(self, expr):
            return magic | 0x4 if expr == "root_flags" else expr  # the root is a pool: flag 0x4 set

    blob = b"".join(struct.pack("<IIQ", f, 0, 16) + b"d" * 16 for f in (magic, magic | 0x8, magic | 0x9, 0x41414141))
    s = PoolSpec("tc", Chained(first=0x7000, end=0x7000 + len(blob), size_field="size", size_includes_header=False,
                               align=16, round_up=True), hdr,
                 in_use=Magic("flags", used="root_flags", free="root_flags | 1", mask=~0xE))
    with pytest.raises(SpecError, match="in_use.free: 'root_flags | 1' is not a number"):
        resolve(s, MagicEv())  # an expression MagicEv does not know
    s = dataclasses.replace(s, in_use=Magic("flags", used="root_flags", free=magic | 1, mask=~0xE))
    r = walk_pool(BufferSource({0x7000: blob}), resolve(s, MagicEv()))
    assert [ch.state for ch in r.chunks] == ["in-use", "in-use", "free", "corrupt"]
    assert "under mask" in r.anomalies[0].message


def test_evaluator_without_a_debugger_names_the_field():
    with pytest.raises(SpecError, match="pool p: geometry.first: 'g_pool.slots': cannot evaluate"):
        resolve(spec(geometry=FixedSlots("g_pool.slots", 80, 4)), Evaluator())
