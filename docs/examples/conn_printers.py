"""gdbext printers for docs/examples/conn.c, the example of docs/printer-kit.md.

Load with `gdbext load docs/examples/conn_printers.py`, or copy it next to the
program as `conn-gdb.py` for gdb to auto-load it.  Three declarations, each
its own section of the how-to: a struct, a hand-packed word, a pool.
"""
# -- a struct -----------------------------------------------------------------
from gdbext.kit import Bool, Flags, Names, Text, Unit, struct_printer

struct_printer(
    "struct conn",
    fields={
        "state": Names({0: "IDLE", 1: "HANDSHAKE", 2: "OPEN", 3: "CLOSING"}),
        "flags": Flags({0x1: "READ", 0x2: "WRITE", 0x4: "TLS", 0x8: "KEEPALIVE"}),
        "timeout_ms": Unit("ms"),
        "peer": Text(),
        "ipv6": Bool(),
    },
    summary="fd {fd} {state} {peer}",
)

# -- a hand-packed word -------------------------------------------------------
from gdbext.packed import Field, PackedWord
from gdbext.specs import packed_word

packed_word(PackedWord("conn_id_t", [
    Field("slot", 0, 16),
    Field("generation", 16, 32),
    Field("shard", 48, 8),
    Field("kind", 56, 8, enum={0: "CLIENT", 1: "PEER", 2: "ADMIN"}),
]), typedef="conn_id_t")

# -- a pool -------------------------------------------------------------------
from gdbext.pools import FixedSlots, FreeList, Guard, Magic, PoolSpec
from gdbext.specs import pool

pool(PoolSpec(
    name="g_pool",
    root="g_pool",
    geometry=FixedSlots(first="&g_pool.slots[0]", slot_size="sizeof(struct slot)", count="g_pool.nslots"),
    header="struct slot_hdr",
    payload_size=48,
    in_use=Magic("magic", used=0xC0FFEE01, free=0xF4EEF4EE),
    requested_size="size",
    alloc_site="site",
    free_list=FreeList(head="g_pool.free_head", link="next_free"),
    guard=Guard(offset=72, size=8, byte=0xFD),
))
