# tests/test_fuzz_pools.py - property-based fuzzing of the pool walker
# (gdbext.pools.walk_pool) over synthetic slot pools and chained pools: corrupt
# magics, free-list links (cycles, outside, misaligned, into in-use slots),
# guards, requested sizes and chained size fields; the walk is bounded, never
# raises, and reports each targeted corruption where it was made.
"""Fuzzing the pool walker.

A *slot pool* (:func:`slot_pool`) is drawn as a geometry (slot count and
size, guard or not) plus slot states and a free-list order; a *chained pool*
(:func:`chained_pool`) as a list of chunk sizes.  Both are built byte by byte
here, so every field's address is known.  A targeted corruption is
``kind + target + value`` (:class:`Corruption`) and names the anomaly
``walk_pool`` must report (kind, slot, address); random corruption (many bytes
anywhere in the pool and its head pointer) asserts the universal properties
only:

* ``walk_pool`` returns (it never raises, on any bytes) within
  :func:`read_budget` reads;
* chunk and free-list counts never exceed what the geometry allows, and every
  chunk's state is one of ``in-use``/``free``/``corrupt``.

``resolve`` is fuzzed too: random geometry numbers give a pool or a
:class:`~gdbext.errors.SpecError`, nothing else.
"""
from __future__ import annotations

import dataclasses
import os
import struct
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import construct as c
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gdbext.errors import GdbextError, SpecError
from gdbext.memory import BufferSource
from gdbext.pools import (Chained, Evaluator, FixedSlots, FlagBit, FreeList, Guard, Magic, PoolSpec, resolve,
                          walk_pool)

#: examples per test in CI; ``GDBEXT_FUZZ_EXAMPLES`` overrides every test's count
MAX_EXAMPLES = {"slots": 800, "chained": 300, "random": 500, "resolve": 200}


def fuzz_settings(name: str) -> settings:
    env = os.environ.get("GDBEXT_FUZZ_EXAMPLES")
    return settings(max_examples=int(env) if env else MAX_EXAMPLES[name],
                    derandomize=os.environ.get("GDBEXT_FUZZ_RANDOM") != "1", database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


HDR = c.Struct("magic" / c.Int32ul, "req_size" / c.Int32ul, "alloc_site" / c.Int64ul, "next_free" / c.Int64ul)
HSIZE = HDR.sizeof()
MAGIC_OFF, REQ_OFF, LINK_OFF = 0, 4, 16
USED, FREE = 0xA110C8ED, 0xF4EEF4EE
BASE = 0x10000  #: first slot
HEAD = 0x9000  #: where the free-list head pointer lives
GUARD_BYTE = 0xFD
UNMAPPED = 0x13370000

#: Pool reporting gaps known today (docs/robustness.md, "Known gaps and fixes"): while
#: listed, a free-list anomaly may leave out the slot that holds the bad link.
KNOWN_GAPS: frozenset = frozenset()
#: ...and while "pool-head-range" is listed, a head outside [0, 2**64) may raise OverflowError


class Ev(Evaluator):
    def eval_int(self, expr):
        return expr


def read_budget(chunks: int) -> int:
    """Reads one walk may make: a header, a guard and a free-list link per chunk, plus slack."""
    return 3 * chunks + 4


# -- slot pools -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlotPool:
    """A fixed-slot pool as built: geometry, states and free-list order (slot indexes, head first)."""

    count: int
    slot: int
    guard: bool
    states: str  #: "u"/"f" per slot
    order: Tuple[int, ...]  #: free slots in list order

    @property
    def payload(self) -> int:
        return self.slot - HSIZE - (8 if self.guard else 0)

    def addr(self, i: int) -> int:
        return BASE + i * self.slot

    def spec(self) -> PoolSpec:
        return PoolSpec(
            name="fuzz", geometry=FixedSlots(first=BASE, slot_size=self.slot, count=self.count), header=HDR,
            in_use=Magic("magic", USED, FREE), requested_size="req_size", alloc_site="alloc_site",
            free_list=FreeList(head=HEAD, link="next_free"),
            guard=Guard(self.slot - 8, 8, GUARD_BYTE) if self.guard else None, payload_size=self.payload)

    def image(self) -> bytearray:
        nxt = {a: b for a, b in zip(self.order, self.order[1:])}
        mem = bytearray()
        for i, s in enumerate(self.states):
            link = self.addr(nxt[i]) if i in nxt else 0
            mem += HDR.build(dict(magic=USED if s == "u" else FREE, req_size=min(10 * (i + 1), self.payload)
                                  if s == "u" else 0, alloc_site=0x401000 + i if s == "u" else 0,
                                  next_free=link if s == "f" else 0))
            mem += bytes([0xCD if s == "u" else 0xDD]) * self.payload + (bytes([GUARD_BYTE]) * 8 if self.guard else b"")
        return mem

    def head(self) -> int:
        return self.addr(self.order[0]) if self.order else 0


@st.composite
def slot_pools(draw) -> SlotPool:
    count = draw(st.integers(1, 16))
    guard = draw(st.booleans())
    slot = draw(st.sampled_from([32, 48, 64, 80, 128])) + (8 if guard else 0)
    states = "".join(draw(st.lists(st.sampled_from("uf"), min_size=count, max_size=count)))
    free = [i for i, s in enumerate(states) if s == "f"]
    order = tuple(draw(st.permutations(free)))
    return SlotPool(count, slot, guard, states, order)


def source(pool_bytes: bytes, head: int) -> BufferSource:
    return BufferSource({BASE: bytes(pool_bytes), HEAD: struct.pack("<Q", head)})


def walk(spec: PoolSpec, mem: BufferSource):
    resolved = resolve(spec, Ev())
    resolved = dataclasses.replace(resolved, free_head=mem.read_pointer(HEAD))  # as gdb evaluates the head
    mem.reads = 0
    report = walk_pool(mem, resolved)
    return report, mem.reads


def universal(report, reads: int, max_chunks: int) -> None:
    assert reads <= read_budget(max_chunks), reads
    assert len(report.chunks) <= max_chunks
    assert len(report.free_list) <= max_chunks
    assert all(ch.state in ("in-use", "free", "corrupt") for ch in report.chunks)
    for a in report.anomalies:
        assert a.kind and a.text()


# -- targeted corruption -------------------------------------------------------------------------


@dataclass(frozen=True)
class Want:
    """An anomaly of ``kind``; at slot ``chunk`` and/or ``address`` when given."""

    kind: str
    chunk: Optional[int] = None
    address: Optional[int] = None

    def matches(self, a) -> bool:
        return a.kind == self.kind and (self.chunk is None or a.chunk == self.chunk) \
            and (self.address is None or a.address == self.address)


@dataclass(frozen=True)
class Corruption:
    label: str
    writes: Tuple[Tuple[int, bytes], ...]
    wants: Tuple[Want, ...]
    gap: Optional[str] = None
    weak: Tuple[Want, ...] = ()


LINK_VALUES = ["cycle-self", "cycle-back", "outside", "unmapped", "misaligned", "in-use", "null"]


@st.composite
def slot_corruptions(draw, pool: SlotPool) -> Corruption:
    kinds = ["magic"]
    if pool.order:
        kinds += ["link", "head"]
    if pool.guard:
        kinds.append("guard")
    if "u" in pool.states:
        kinds.append("requested")
    k = draw(st.sampled_from(kinds))
    if k == "magic":
        i = draw(st.integers(0, pool.count - 1))
        value = draw(st.integers(0, 0xFFFFFFFF).filter(lambda v: v not in (USED, FREE)))
        at = pool.addr(i) + MAGIC_OFF
        return Corruption(f"magic of slot {i} = {value:#x}", ((at, struct.pack("<I", value)),),
                          (Want("bad-magic", i, at),))
    if k == "guard":
        i = draw(st.integers(0, pool.count - 1))
        lo = draw(st.integers(0, 7))
        hi = draw(st.integers(lo, 7))
        data = bytes(draw(st.lists(st.integers(0, 0xFE), min_size=hi - lo + 1, max_size=hi - lo + 1)))
        at = pool.addr(i) + pool.slot - 8 + lo
        # the first guard byte that actually changed
        first = next((j for j, b in enumerate(data) if b != GUARD_BYTE), None)
        return Corruption(f"guard bytes {lo}..{hi} of slot {i}", ((at, data),),
                          (Want("guard-overwritten", i, at + first),) if first is not None else ())
    if k == "requested":
        i = draw(st.sampled_from([j for j, s in enumerate(pool.states) if s == "u"]))
        value = draw(st.integers(pool.payload + 1, 0xFFFFFFFF))
        at = pool.addr(i) + REQ_OFF
        return Corruption(f"requested size of slot {i} = {value}", ((at, struct.pack("<I", value)),),
                          (Want("bad-requested-size", i, at),))
    # a free-list link (in a node, or the head itself)
    pos = draw(st.integers(0, len(pool.order) - 1)) if k == "link" else -1
    values = list(LINK_VALUES)
    inuse = [j for j, s in enumerate(pool.states) if s == "u"]
    if not inuse:
        values.remove("in-use")
    if k == "head":
        values.remove("cycle-self")
        values.remove("cycle-back")
    if k == "link" and pos == len(pool.order) - 1:
        values.remove("null")  # the tail's link is NULL already
    value = draw(st.sampled_from(values))
    to = {
        "cycle-self": lambda: pool.addr(pool.order[pos]),
        "cycle-back": lambda: pool.addr(pool.order[draw(st.integers(0, pos))]),
        "outside": lambda: pool.addr(pool.count) + draw(st.integers(0, 4)) * pool.slot,  # past the last slot
        "unmapped": lambda: UNMAPPED,
        "misaligned": lambda: pool.addr(draw(st.integers(0, pool.count - 1))) + draw(st.integers(1, pool.slot - 1)),
        "in-use": lambda: pool.addr(draw(st.sampled_from(inuse))),
        "null": lambda: 0,
    }[value]()
    if k == "head":
        at, holder = HEAD, None
    else:
        holder = pool.order[pos]
        at = pool.addr(holder) + LINK_OFF
    label = f"{'head' if k == 'head' else f'link of slot {holder} (list position {pos})'} -> {to:#x} ({value})"
    write = ((at, struct.pack("<Q", to)),)
    kind = {"cycle-self": "freelist-cycle", "cycle-back": "freelist-cycle", "outside": "freelist-outside",
            "unmapped": "freelist-outside", "misaligned": "freelist-misaligned"}.get(value)
    if kind is not None:
        # the anomaly's address is the bad pointer; strict: its slot is the one holding the bad link
        if holder is None:
            return Corruption(label, write, (Want(kind, None, to),))
        return Corruption(label, write, (Want(kind, holder, to),), gap="pool-link", weak=(Want(kind, None, to),))
    if value == "in-use":
        return Corruption(label, write, (Want("freelist-in-use", (to - BASE) // pool.slot),))
    # NULL: the rest of the list is cut off; its free slots are reported unlisted
    dropped = pool.order[pos + 1 :] if k == "link" else pool.order
    return Corruption(label, write, tuple(Want("free-not-listed", j) for j in dropped[:1]))


def check_reported(corr: Corruption, report) -> None:
    if not corr.wants or any(w.matches(a) for w in corr.wants for a in report.anomalies):
        return
    where = (f"{corr.label}: expected one of {corr.wants}; got "
             + "; ".join(f"{a.kind}@{a.chunk}:{a.address if a.address is None else hex(a.address)}"
                         for a in report.anomalies))
    assert corr.gap in KNOWN_GAPS, where
    assert any(w.matches(a) for w in corr.weak for a in report.anomalies), f"[known gap {corr.gap}] {where}"


def apply(image: bytearray, head: int, writes: Sequence[Tuple[int, bytes]]) -> BufferSource:
    for at, data in writes:
        if at == HEAD:
            head = int.from_bytes(data, "little")
        else:
            image[at - BASE : at - BASE + len(data)] = data
    return source(image, head)


@pytest.mark.parametrize("count", [1, 5, 16])
def test_clean_slot_pools(count):
    pool = SlotPool(count, 80, True, ("uf" * count)[:count], tuple(range(1, count, 2))[::-1])
    report, reads = walk(pool.spec(), source(pool.image(), pool.head()))
    assert report.anomalies == []
    assert [ch.state for ch in report.chunks] == ["in-use" if s == "u" else "free" for s in pool.states]
    assert report.free_list == [pool.addr(i) for i in pool.order]
    universal(report, reads, count)


@fuzz_settings("slots")
@given(data=st.data())
def test_slot_pool_corruption_is_reported(data):
    """One field broken on purpose: the walk is bounded, never raises, and the anomaly names it."""
    pool = data.draw(slot_pools(), label="pool")
    corr = data.draw(slot_corruptions(pool), label="corruption")
    mem = apply(pool.image(), pool.head(), corr.writes)
    report, reads = walk(pool.spec(), mem)
    universal(report, reads, pool.count)
    check_reported(corr, report)


# -- chained pools ---------------------------------------------------------------------------------

CHDR = c.Struct("size" / c.Int64ul, "flags" / c.Int64ul)
CBASE = 0x40000


@st.composite
def chained_pool(draw):
    align = draw(st.sampled_from([8, 16]))
    includes = draw(st.booleans())
    sizes = draw(st.lists(st.integers(1, 12).map(lambda n: n * 16), min_size=1, max_size=12))
    return align, includes, sizes


def chained_image(sizes: Sequence[int], includes: bool) -> Tuple[bytes, List[int]]:
    out = bytearray()
    starts = []
    for n, span in enumerate(sizes):
        starts.append(CBASE + len(out))
        field = span if includes else span - 16
        out += struct.pack("<QQ", field | (n & 1), n & 1) + bytes([0x41 + n % 26]) * (span - 16)
    return bytes(out), starts


def chained_spec(end: int, align: int, includes: bool) -> PoolSpec:
    return PoolSpec("chain", Chained(first=CBASE, end=end, size_field="size", size_includes_header=includes,
                                     size_mask=~7, align=align), CHDR, in_use=FlagBit("flags", 1))


@fuzz_settings("chained")
@given(shape=chained_pool(), data=st.data())
def test_chained_size_corruption_is_reported(shape, data):
    """A chained chunk's size field zero, misaligned, running past the end or huge: reported there, walk stops."""
    align, includes, sizes = shape
    blob, starts = chained_image(sizes, includes)
    end = CBASE + len(blob)
    k = data.draw(st.integers(0, len(sizes) - 1), label="chunk")
    value = data.draw(st.sampled_from(["zero", "misaligned", "past-end", "huge", "below-header", "all-ones"]),
                      label="value")
    hdr = 0 if includes else CHDR.sizeof()  # what the walker adds to the field
    field = {
        "zero": 0,
        "misaligned": sizes[k] - hdr + 8,  # 8 survives size_mask ~7; bad when align is 16
        "past-end": end - starts[k] - hdr + 16,
        "huge": 1 << 62,
        "below-header": 8,
        "all-ones": (1 << 64) - 1,
    }[value]
    span = (field & ~7) + hdr
    assume(span < CHDR.sizeof() or span % align or starts[k] + span > end)  # a size the walker must refuse
    buf = bytearray(blob)
    buf[starts[k] - CBASE : starts[k] - CBASE + 8] = struct.pack("<Q", field & ((1 << 64) - 1))
    mem = BufferSource({CBASE: bytes(buf)})
    report, reads = walk_chained(mem, end, align, includes)
    universal(report, reads, len(sizes))
    bad = [a for a in report.anomalies if a.kind == "bad-size"]
    assert bad and bad[0].chunk == k and bad[0].address == starts[k], (value, field, report.anomalies)
    assert len(report.chunks) == k + 1 and report.stopped


def walk_chained(mem: BufferSource, end: int, align: int, includes: bool):
    pool = resolve(chained_spec(end, align, includes), Ev())
    mem.reads = 0
    return walk_pool(mem, pool), mem.reads


@pytest.mark.parametrize("includes", [True, False])
def test_clean_chained_pool(includes):
    sizes = [32, 48, 16 * 12, 32]
    blob, starts = chained_image(sizes, includes)
    report, reads = walk_chained(BufferSource({CBASE: blob}), CBASE + len(blob), 16, includes)
    assert report.anomalies == [] and report.stopped is None
    assert [ch.address for ch in report.chunks] == starts
    assert [ch.state for ch in report.chunks] == ["in-use" if n & 1 else "free" for n in range(len(sizes))]


# -- random corruption ----------------------------------------------------------------------------------


@fuzz_settings("random")
@given(data=st.data())
def test_random_pool_bytes_never_break_the_walk(data):
    """Random bytes over a slot or chained pool (and its head): bounded, never raises, counts in range."""
    if data.draw(st.booleans(), label="chained"):
        align, includes, sizes = data.draw(chained_pool(), label="shape")
        blob, _ = chained_image(sizes, includes)
        buf = bytearray(blob)
        for _ in range(data.draw(st.integers(1, 16), label="n")):
            at = data.draw(st.integers(0, len(buf) - 1))
            chunk = data.draw(st.binary(min_size=1, max_size=8))
            buf[at : at + len(chunk)] = chunk
        buf = buf[: len(blob)]
        report, reads = walk_chained(BufferSource({CBASE: bytes(buf)}), CBASE + len(blob), align, includes)
        universal(report, reads, len(blob) // 16)
        return
    pool = data.draw(slot_pools(), label="pool")
    image = pool.image()
    head = data.draw(st.one_of(st.just(pool.head()), st.integers(0, (1 << 64) - 1),
                               st.integers(BASE - 64, BASE + len(image) + 64)), label="head")
    for _ in range(data.draw(st.integers(1, 24), label="n")):
        at = data.draw(st.integers(0, len(image) - 1))
        if data.draw(st.booleans()):  # a pointer into (or near) the pool
            value = data.draw(st.integers(BASE - 64, BASE + len(image) + 64)).to_bytes(8, "little")
        else:
            value = data.draw(st.binary(min_size=1, max_size=8))
        image[at : at + len(value)] = value
    image = image[: pool.count * pool.slot]
    report, reads = walk(pool.spec(), source(image, head))
    universal(report, reads, pool.count)


@fuzz_settings("resolve")
@given(first=st.integers(-(1 << 64), 1 << 64), slot=st.integers(-(1 << 20), 1 << 20),
       count=st.integers(-(1 << 32), 1 << 32), end=st.integers(-(1 << 64), 1 << 64), chained=st.booleans(),
       head=st.one_of(st.none(), st.integers(-(1 << 64), 1 << 72), st.integers(CBASE - 64, CBASE + 64)))
def test_resolve_gives_a_pool_or_a_spec_error(first, slot, count, end, chained, head):
    """Any geometry numbers (and free-list head): a resolved pool whose walk is bounded, or a SpecError."""
    geo = Chained(first=first, end=end, size_field="size") if chained else FixedSlots(first, slot, count)
    spec = PoolSpec("p", geo, CHDR if chained else HDR, in_use=FlagBit("flags", 1) if chained else Magic("magic", USED),
                    free_list=None if head is None else FreeList(head, "flags" if chained else "next_free"))
    try:
        pool = resolve(spec, Ev())
    except SpecError:
        return
    mem = BufferSource({CBASE: bytes(64)})
    try:
        report = walk_pool(mem, pool)  # walks of unmapped memory stop at the first unreadable header
    except OverflowError:
        assert "pool-head-range" in KNOWN_GAPS and not 0 <= head < 1 << 64, head
        return
    assert mem.reads <= 2 + (64 // 16) * 3
    assert len(report.chunks) <= 4


def test_pool_errors_are_gdbext_errors():
    assert issubclass(SpecError, GdbextError)


# -- the known gap, as a reproducer (a strict expected failure until fixed) -------------------------------


@pytest.mark.xfail("pool-link" in KNOWN_GAPS, strict=True,
                   reason="free-list anomalies do not name the slot holding the bad link")
def test_gap_freelist_anomaly_names_the_link_holder():
    pool = SlotPool(4, 80, True, "ffff", (0, 1, 2, 3))
    at = pool.addr(1) + LINK_OFF
    mem = apply(pool.image(), pool.head(), [(at, struct.pack("<Q", pool.addr(0)))])  # slot 1 -> slot 0: a cycle
    report, _ = walk(pool.spec(), mem)
    cycle = [a for a in report.anomalies if a.kind == "freelist-cycle"]
    back = pool.addr(0)
    assert cycle and (cycle[0].chunk, cycle[0].address, cycle[0].data) == (1, back, struct.pack("<Q", back))


@pytest.mark.xfail("pool-head-range" in KNOWN_GAPS, strict=True, raises=OverflowError,
                   reason="a free-list head outside [0, 2**64) raises OverflowError")
def test_gap_free_list_head_out_of_range():
    pool = SlotPool(2, 80, False, "ff", (0, 1))
    resolved = dataclasses.replace(resolve(pool.spec(), Ev()), free_head=-8)
    report = walk_pool(source(pool.image(), 0), resolved)
    assert [a.kind for a in report.anomalies] == ["freelist-outside"]
