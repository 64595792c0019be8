"""Property-based fuzzing of the Tree and Nodes geometries (talloc-like trees, APR-like node rings).

Random bytes around a root or head: the walk ends, raises nothing, visits each header once, reads
a bounded amount, and lists chunks in address order; derandomized like tests/test_fuzz_pools.py.
"""
import os
import struct

import construct as c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gdbext.memory import BufferSource
from gdbext.pools import Evaluator, FlagBit, Magic, Nodes, PoolSpec, Tree, resolve, walk_pool

BASE = 0x40000
SIZE = 512
TREE_HDR = c.Struct("flags" / c.Int32ul, c.Padding(4), "next" / c.Int64ul, "child" / c.Int64ul,
                    "name" / c.Int64ul, "size" / c.Int64ul)
NODE_HDR = c.Struct("next" / c.Int64ul, "ref" / c.Int64ul, "first_avail" / c.Int64ul, "endp" / c.Int64ul)


def _settings(n: int) -> settings:
    env = os.environ.get("GDBEXT_FUZZ_EXAMPLES")
    return settings(max_examples=int(env) if env else n, derandomize=os.environ.get("GDBEXT_FUZZ_RANDOM") != "1",
                    database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.data_too_large])


class Ev(Evaluator):
    def eval_int(self, expr):
        return expr


class Counting(BufferSource):
    reads = 0

    def read(self, address, size):
        self.reads += 1
        return super().read(address, size)


def _pointers(draw, n):
    """Words that are mostly pointers into the region (some aligned to 8), else anything."""
    inside = st.integers(0, SIZE // 8 - 1).map(lambda i: BASE + 8 * i)
    return draw(st.lists(st.one_of(inside, inside, st.just(0), st.integers(0, 2**64 - 1)), min_size=n, max_size=n))


@_settings(150)
@given(st.data())
def test_tree_walk_is_bounded_and_visits_each_header_once(data):
    words = _pointers(data.draw, SIZE // 8)
    mem = Counting({BASE: b"".join(struct.pack("<Q", w) for w in words)})
    root = data.draw(st.integers(0, SIZE // 8 - 1)) * 8 + BASE
    magic = data.draw(st.sampled_from([Magic("flags", used=words[0] & 0xFFFFFFF0, mask=~0xE), FlagBit("flags", 1)]))
    spec = PoolSpec("t", Tree(root=root, child="child", sibling="next", size_field="size"), TREE_HDR,
                    in_use=magic, label="name")
    report = walk_pool(mem, resolve(spec, Ev()))
    addrs = [ch.address for ch in report.chunks]
    assert addrs == sorted(addrs) and len(set(addrs)) == len(addrs)
    assert all(BASE <= a < BASE + SIZE for a in addrs)
    assert mem.reads <= 4 * len(addrs) + 2 * len(report.anomalies) + 8
    assert {ch.state for ch in report.chunks} <= {"in-use", "free", "corrupt"}


@_settings(150)
@given(st.data())
def test_node_ring_walk_is_bounded(data):
    words = _pointers(data.draw, SIZE // 8)
    mem = Counting({BASE: b"".join(struct.pack("<Q", w) for w in words)})
    head = data.draw(st.integers(0, SIZE // 8 - 4)) * 8 + BASE
    spec = PoolSpec("n", Nodes(head=head, next="next", used_end="first_avail", end="endp",
                               ring=data.draw(st.booleans())), NODE_HDR)
    report = walk_pool(mem, resolve(spec, Ev()))
    addrs = [ch.address for ch in report.chunks]
    assert addrs == sorted(addrs) and len(set(addrs)) == len(addrs)
    assert mem.reads <= 4 * len(addrs) + 8
    for ch in report.chunks:
        assert ch.state in ("in-use", "corrupt")
        assert ch.requested_size is None or 0 <= ch.requested_size <= ch.usable_size
