"""A family of pools from one descriptor table (lwIP memp style), on synthetic memory (no gdb).

The table, slots and free lists are built here, so the expected states are known by construction.
"""
import struct

import construct as c

from gdbext.memory import BufferSource
from gdbext.pools import Evaluator, resolve, validate, walk_pool
from gdbext.pools.presets import pools_from_table

# struct memp_desc without stats/desc: u16 size, u16 num, (pad), u8 *base, struct memp **tab
DESC = struct.Struct("<HH4xQQ")
TABLE, HEADS = 0x1000, 0x2000
POOLS = [(0x3000, 32, 4, [1, 3]), (0x4000, 64, 3, [2, 0])]  # base, size, num, free slots in list order


def _memory():
    blobs = {TABLE: b"".join(DESC.pack(size, num, base, HEADS + 8 * i) for i, (base, size, num, _f) in
                             enumerate(POOLS))}
    heads = b""
    for base, size, num, free in POOLS:
        slots = bytearray(b"U" * size * num)  # in-use payloads are the program's bytes
        for a, b in zip(free, free[1:] + [None]):
            slots[a * size : a * size + 8] = struct.pack("<Q", base + b * size if b is not None else 0)
        blobs[base] = bytes(slots)
        heads += struct.pack("<Q", base + free[0] * size)
    blobs[HEADS] = heads
    return BufferSource(blobs)


class TableEv(Evaluator):
    """Evaluates the few expression shapes the family uses, as gdb would, from the memory image."""

    def __init__(self, mem):
        self.mem = mem

    def eval_int(self, expr):
        if isinstance(expr, int):
            return expr
        for i in range(len(POOLS)):
            entry = f"(memp_pools)[{i}]"
            size, num, base, tab = DESC.unpack(self.mem.read(TABLE + DESC.size * i, DESC.size))
            values = {f"{entry}->base": base, f"{entry}->size": size, f"{entry}->num": num,
                      f"*{entry}->tab": self.mem.read_pointer(tab)}
            if expr in values:
                return values[expr]
        return super().eval_int(expr)


def test_each_table_entry_is_a_pool_with_its_own_free_list():
    mem = _memory()
    specs = pools_from_table("memp", "memp_pools", len(POOLS), first="{entry}->base", slot_size="{entry}->size",
                             slots="{entry}->num", free_head="*{entry}->tab",
                             header=c.Struct("next" / c.Int64ul), names=["UDP_PCB", "TCP_PCB"])
    assert [s.name for s in specs] == ["memp[UDP_PCB]", "memp[TCP_PCB]"]
    ev = TableEv(mem)
    for spec, (base, size, num, free) in zip(specs, POOLS):
        assert validate(spec, ev, mem).problems == []
        report = walk_pool(mem, resolve(spec, ev))
        assert [ch.address for ch in report.chunks] == [base + i * size for i in range(num)]
        assert [ch.state for ch in report.chunks] == ["free" if i in free else "in-use" for i in range(num)]
        assert report.free_list == [base + i * size for i in free] and report.anomalies == []
