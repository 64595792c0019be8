# tests/test_forensics_synthetic.py - gdbext.forensics detectors on synthetic
# glibc heaps (tests/glibc_heapimage.py) and a synthetic pool: every detector
# is made to fire once, with the exact chunk, source, offsets and sizes; clean
# heaps give nothing.  No gdb.
from __future__ import annotations

from typing import Dict, List, Optional

import construct as C
import pytest
from glibc_heapimage import HEAP_BASE, TCACHE_KEY, HeapImage, _Source

from gdbext.forensics import ForensicContext, find_all
from gdbext.forensics.chunks import ChunkIndex
from gdbext.forensics.continuity import binary_run, fill_run, find_run, text_run
from gdbext.forensics.model import ChunkView, Finding
from gdbext.glibc import HeapWalker, locate_heap
from gdbext.memory import BufferSource
from gdbext.pools import Evaluator, Fill, FixedSlots, FreeList, Guard, Magic, PoolSpec, resolve, walk_pool

PS = 8
CODE = 0x401000
PERTURB = 0xA5


# -- helpers (imported by the other forensics test modules) ---------------------------------
def snapshot(img: HeapImage, extra_symbols: Optional[Dict[str, int]] = None) -> _Source:
    """The image as a memory source, with the symbols the locator needs."""
    syms = {"main_arena": img.main_arena, "mp_": img.mp, "tcache_key": img.tcache_key_addr,
            "global_max_fast": img.global_max_fast_addr}
    syms.update(extra_symbols or {})
    return _Source({k: bytes(v) for k, v in img.segments.items()}, img.perms, symbols=syms)


def build(img: HeapImage, **kw) -> ForensicContext:
    """A forensic context over the image (lists written first)."""
    img.source()
    src = snapshot(img, kw.pop("symbols", None))
    return ForensicContext(src, locate_heap(src), **kw)


def only(findings: List[Finding], kind: str) -> Finding:
    got = [f for f in findings if f.kind == kind]
    assert len(got) == 1, [f.headline for f in findings]
    return got[0]


def user(chunk: int) -> int:
    return chunk + 2 * PS


def image(n: int = 6, size: int = 0x40) -> tuple:
    img = HeapImage("2.36")
    chunks = [img.main.malloc(size) for _ in range(n)]
    return img, chunks


# -- continuity -----------------------------------------------------------------------------
def test_text_run_crosses_and_takes_its_nul():
    data = b"\x00\x00abcdefgh|ijk\x00zz"
    run = text_run(data, 0x1000, 0x100b)
    assert (run.kind, run.start, run.end, run.past, run.nul_terminated) == ("text", 0x1002, 0x100f, 4, True)
    assert run.before() == b"abcdefgh|" and run.after() == b"ijk\x00"
    assert text_run(b"abcdefgh\x01", 0x1000, 0x1008) is None  # the run stops at the boundary
    assert text_run(b"\x00ab|cd", 0x1000, 0x1003) is None  # too short before the boundary
    off_by_one = text_run(b"abcdefgh\x00\x31", 0x1000, 0x1008)  # strcpy's NUL is the first byte past
    assert off_by_one is not None and off_by_one.past == 1


def test_binary_run_learns_a_counter_and_stops_where_it_breaks():
    words = [(seq << 16) | adc for seq, adc in enumerate([0x800, 0xab5, 0xd00, 0xe88, 0xf12, 0xe88, 0xd00, 0xab5,
                                                          0x800, 0x54b, 0x300, 0x178, 0xee])]
    data = b"".join(w.to_bytes(4, "little") for w in words) + b"nel-09\x00\x00"
    run = binary_run(data, 0x2000, 0x2000 + 40)
    assert run is not None and run.kind == "binary" and run.element_size == 4
    assert (run.start, run.end, run.past) == (0x2000, 0x2000 + 52, 12)
    assert any(f.kind == "counter" and f.offset == 2 and f.step == 1 for f in run.fields)
    # constants alone are no evidence
    assert binary_run(b"\x00" * 64, 0x2000, 0x2020) is None
    assert find_run(data, 0x2000, 0x2000 + 40).kind == "binary"


def test_fill_run():
    run = fill_run(b"\xee" * 20 + b"\x00", 0x3000, 0x3010)
    assert run is not None and (run.start, run.end, run.past) == (0x3000, 0x3014, 4)
    assert fill_run(b"\x00" * 20, 0x3000, 0x3010) is None


# -- clean heaps --------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["2.27", "2.31", "2.36"])
def test_clean_heap_gives_no_finding(version):
    img = HeapImage(version)
    m = img.main
    c = [m.malloc(s) for s in (0x30, 0x30, 0x30, 0x90, 0x30, 0x420, 0x30, 0x50, 0x30)]
    m.free(c[1], "tcache")
    m.free(c[2], "fast")
    m.free(c[3], "unsorted")
    m.free(c[5], "bin")
    img.add_arena()
    ctx = build(img, perturb_byte=None, candidate_pointers=[user(c[1]), user(c[3])])
    assert find_all(ctx) == []


def test_chunk_index_agrees_with_the_walker():
    img = HeapImage("2.36")
    m = img.main
    c = [m.malloc(s) for s in (0x30, 0x30, 0x90, 0x30, 0x420, 0x30)]
    m.free(c[1], "tcache")
    m.free(c[2], "unsorted")
    m.free(c[4], "bin")
    a2, _t = img.add_arena()
    d = [a2.malloc(0x40) for _ in range(3)]
    a2.free(d[1], "fast")
    img.put(c[3] + PS, b"garbage!")  # a corrupt stretch
    img.source()
    src = snapshot(img)
    heap = locate_heap(src)
    ctx = ForensicContext(src, heap)
    index = ChunkIndex(src, heap, ctx.check, [])
    walked = {ch.address: ch for ch in HeapWalker(heap, ctx.check.index).chunks(include_mmapped=False)}
    assert any(ch.state == "corrupt" for ch in walked.values())
    for addr, ch in walked.items():
        view = index.glibc_at(addr + 5)
        assert view is not None and view.address == addr and view.size == ch.size, hex(addr)
        assert (view.state, view.bin) == (ch.state, ch.bin), hex(addr)
    prev, nxt = index.neighbours(index.glibc_chunk(c[1]))
    assert prev.address == c[0] and nxt.address == c[2]


# -- overflows ----------------------------------------------------------------------------------
def test_text_overflow_into_the_next_header():
    img, c = image()
    text = (b"calibration log line; " * 4)[: 0x38 + 12] + b"\x00"
    img.put(user(c[2]), text)
    ctx = build(img)
    f = only(find_all(ctx), "heap-buffer-overflow")
    assert f.chunk.address == c[3] and f.source.address == c[2]
    assert f.address == user(c[2]) + 0x38 and f.bytes_past_end == 13
    cont = f.evidence["continuity"]
    assert cont["kind"] == "text" and cont["nul_terminated"] and cont["text_after_boundary"] == text[0x38:-1].decode()
    assert f.evidence["damaged"][0]["field"] == "size"
    assert "glibc records no requested size" in f.message and f.allocation_site is None
    assert "no allocation record" in f.evidence["allocation_record"]
    assert f.to_dict()["source"] == {"chunk": f.source.to_dict(), "bytes_past_end": 13,
                                        "referenced_by": []}


def test_off_by_one_nul_clears_prev_inuse():
    img, c = image(n=4, size=0x460)
    a, b = c[1], c[2]
    img.put(user(a), b"Q" * (0x460 - PS) + b"\x00")  # strcpy of a string exactly as long as the usable size
    ctx = build(img, abort_message="double free or corruption (!prev)")
    findings = find_all(ctx)
    assert [x.kind for x in findings] == ["heap-buffer-overflow"]  # no double free, no second corruption
    f = findings[0]
    assert f.chunk.address == b and f.source.address == a and f.source.state == "in-use"
    assert f.evidence["consequences"]  # the walk, misled by b's new size, found garbage inside b
    assert f.address == user(a) + 0x460 - PS and f.bytes_past_end == 1 and f.explains_crash
    assert "off by one" in f.evidence["continuity"]["note"] and "1 byte written" in f.message
    assert "(size)" in f.message  # the prev_size the checks question is the source's own data
    assert f.evidence["crash"]["violation"]["check"] == "chunk.prev_inuse.unlisted"


def test_binary_overflow_with_a_counter():
    img, c = image(size=0x30)
    words = [(seq << 16) | (0x300 + 7 * seq) for seq in range(16)]
    img.put(user(c[1]), b"".join(w.to_bytes(4, "little") for w in words))  # 64 bytes into a 40-byte region
    img.put(user(c[1]) + 64, b"zz")
    ctx = build(img)
    f = only(find_all(ctx), "heap-buffer-overflow")
    assert f.chunk.address == c[2] and f.source.address == c[1] and f.bytes_past_end == 24
    assert f.evidence["continuity"]["kind"] == "binary" and f.evidence["continuity"]["element_size"] == 4


def test_damage_without_continuity_is_metadata_corruption():
    img, c = image()
    img.w(c[3] + PS, 0x1234567890ABCDE3)
    ctx = build(img)
    f = only(find_all(ctx), "metadata-corruption")
    assert f.chunk.address == c[3] and f.source is None
    assert f.address == c[3] + PS and "previous_chunk" in f.evidence


# -- use after free -----------------------------------------------------------------------------
def test_perturb_fill_broken_in_a_fastbin_chunk():
    img, c = image(size=0x30)
    img.main.free(c[2], "fast")
    img.put(user(c[2]) + PS, bytes([PERTURB]) * (0x30 - 3 * PS))
    img.put(user(c[2]) + 0x28 - PS, b"tailtail")  # the unfilled last word: not a finding by itself
    ctx = build(img, perturb_byte=PERTURB)
    assert find_all(ctx) == []
    img.put(user(c[2]) + 16, (0x11223344).to_bytes(4, "little"))
    ctx = build(img, perturb_byte=PERTURB, field_at=lambda chunk, off: "refs" if off == 16 else None)
    f = only(find_all(ctx), "use-after-free")
    assert f.chunk.address == c[2] and f.address == user(c[2]) + 16
    got = [(w.offset, w.size, w.field, w.certain) for w in f.written_after_free]
    assert got == [(16, 4, "refs", True)]  # the unfilled last word is evidence, never a write after free
    assert f.evidence["unfilled_tail"]["bytes"] == b"tailtail".hex()
    assert "perturb byte 0xa5" in f.evidence["fill"]


def test_tcache_key_overwritten_in_the_bin():
    img, c = image(size=0x50)
    img.main.free(c[1], "tcache")
    img.source()
    img.put(user(c[1]) + PS + 2, b"ABCD")  # 4 bytes of the key
    src = snapshot(img)
    ctx = ForensicContext(src, locate_heap(src))
    f = only(find_all(ctx), "use-after-free")
    assert f.chunk.address == c[1] and f.chunk.state == "free"
    assert [(w.offset, w.size, w.field) for w in f.written_after_free] == [(PS + 2, 4, "key")]
    assert "the link ends the list" in f.evidence["next"]


def test_tcache_next_overwritten_in_the_bin():
    img, c = image(size=0x50)
    img.main.free(c[1], "tcache")
    img.main.free(c[3], "tcache")  # head; its next -> c[1]
    img.source()
    img.w(user(c[3]), 0x4141414141414141)
    src = snapshot(img)
    f = only(find_all(ForensicContext(src, locate_heap(src))), "use-after-free")
    assert f.chunk.address == c[3]
    assert [(w.offset, w.size, w.field) for w in f.written_after_free] == [(0, 8, "next")]


def test_bin_head_revealed_from_a_chunk_handed_out_again():
    img, c = image(size=0x50)
    img.main.free(c[1], "tcache")
    img.main.free(c[3], "tcache")
    img.source()
    garbage = 0x18BCFE5687B
    v = user(c[3])
    img.w(v, garbage)  # the write after free
    img.w(v + PS, 0)  # tcache_get: e->key = 0
    lay = img.L
    t = img.main_tcache
    idx = lay.csize2tidx(0x50)
    img.w(t + lay.tcache_perthread["entries"] + idx * PS, garbage ^ (v >> 12))
    img.w(t + lay.tcache_perthread["counts"] + idx * 2, 1, 2)
    src = snapshot(img)
    ctx = ForensicContext(src, locate_heap(src), abort_message="malloc(): unaligned tcache chunk detected")
    f = only(find_all(ctx), "use-after-free")
    assert f.chunk.address == c[3] and f.chunk.state == "in-use" and f.explains_crash
    assert [(w.offset, w.size) for w in f.written_after_free] == [(0, 8)]
    assert "handed out again" in f.message and "tcache_get cleared it" in f.evidence["key"]
    assert f.evidence["crash"]["message"] == "malloc(): unaligned tcache chunk detected"
    assert any(f"{c[1]:#x}" in o for o in f.evidence["orphaned"])


# -- frees ----------------------------------------------------------------------------------------
def test_double_free_from_candidates():
    img, c = image(size=0x30)
    img.main.free(c[1], "tcache")
    img.main.free(c[3], "tcache")
    msg = "free(): double free detected in tcache 2"
    ctx = build(img, abort_message=msg, candidate_pointers=[0x7FFFFFFFE000, user(c[3])])
    f = only(find_all(ctx), "double-free")
    assert f.chunk.address == c[3] and f.address == user(c[3]) and f.explains_crash
    assert f.evidence["freed_pointer"] == f"{user(c[3]):#x}" and f"{TCACHE_KEY:#x}" in f.evidence["why"]
    # two qualifying chunks and no candidate: named as unknown
    ctx = build(img, abort_message=msg)
    f = only(find_all(ctx), "double-free")
    assert f.chunk is None and f.address is None


def test_double_free_single_tcache_chunk_without_candidates():
    img, c = image(size=0x30)
    img.main.free(c[2], "tcache")
    ctx = build(img, abort_message="free(): double free detected in tcache 2")
    f = only(find_all(ctx), "double-free")
    assert f.chunk.address == c[2] and "only chunk" in f.evidence["found"]


def test_invalid_free_of_an_interior_pointer():
    img, c = image()
    ctx = build(img, abort_message="free(): invalid pointer", candidate_pointers=[user(c[2]) + 8])
    f = only(find_all(ctx), "invalid-free")
    assert f.chunk.address == c[2] and f.address == user(c[2]) + 8
    assert "8 bytes inside of" in f.message


# -- faults ---------------------------------------------------------------------------------------
def _code(img: HeapImage) -> int:
    """mov rax, [rax + 0x10]; mov eax, [rax] at CODE (function ``report``)."""
    img.region(CODE, 0x1000, "r-x", "/bin/prog")
    img.put(CODE, bytes.fromhex("488b4010" "8b00" "c3"))
    return CODE + 4


def test_poison_pointer_traced_to_the_freed_chunk():
    img, c = image(size=0x30)
    pc = _code(img)
    img.main.free(c[2], "fast")
    img.put(user(c[2]) + PS, bytes([PERTURB]) * (0x30 - 3 * PS))
    img.put(user(c[2]) + 0x28 - PS, (0x4045000000000000).to_bytes(8, "little"))
    poison = int.from_bytes(bytes([PERTURB]) * 8, "little")
    ctx = build(img, symbols={"report": CODE}, perturb_byte=PERTURB, pc=pc, signal=11, fault_address=poison,
                registers={"rax": poison, "rip": pc})
    f = only(find_all(ctx), "use-after-free")
    assert f.chunk.address == c[2] and f.address == user(c[2]) + 0x10 and f.explains_crash
    assert f.evidence["read"]["instruction"].endswith("mov rax, qword ptr [rax + 0x10]")
    assert f.written_after_free == []
    assert (f.evidence["unfilled_tail"]["offset"], f.evidence["unfilled_tail"]["size"]) == (0x20, 8)
    assert "READ after free" in f.message


def test_text_pointer_is_a_wild_pointer_with_where_it_is_stored():
    img, c = image()
    pc = _code(img)
    text = int.from_bytes(b"ndow=360", "little")
    img.w(user(c[4]) + 8, text)
    ctx = build(img, symbols={"report": CODE}, pc=pc, signal=11, fault_address=text + 0x10,
                registers={"rax": text, "rip": pc})
    f = only(find_all(ctx), "wild-pointer")
    assert f.address == text + 0x10 and f.chunk.address == c[4] and f.explains_crash
    assert f.evidence["looks_like"] == 'text "ndow=360"' and "non_canonical" in f.evidence
    assert f.evidence["stored_at"][0].startswith(f"{user(c[4]) + 8:#x}")


def test_sigsegv_on_null_is_no_heap_finding():
    img, c = image()
    pc = _code(img)
    ctx = build(img, symbols={"report": CODE}, pc=pc, signal=11, fault_address=0x10, registers={"rax": 0, "rip": pc})
    assert find_all(ctx) == []


# -- pools ----------------------------------------------------------------------------------------
POOL = 0x600000
HDR = C.Struct("magic" / C.Int32ul, "req_size" / C.Int32ul, "alloc_site" / C.Int64ul, "next_free" / C.Int64ul)
USED, FREE = 0xA110C8ED, 0xF4EEF4EE


def pool_memory(slots: int = 4) -> Dict[int, bytearray]:
    """``slots`` 80-byte slots (24-byte header, 48-byte payload, 8 guard bytes 0xfd), all free, chained."""
    mem = bytearray(80 * slots)
    for i in range(slots):
        base = 80 * i
        nxt = POOL + 80 * (i + 1) if i + 1 < slots else 0
        mem[base:base + 24] = HDR.build({"magic": FREE, "req_size": 0, "alloc_site": 0, "next_free": nxt})
        mem[base + 24:base + 72] = b"\xdd" * 48
        mem[base + 72:base + 80] = b"\xfd" * 8
    code = bytearray(0x100)
    code[0x10:0x15] = bytes.fromhex("e8ebffffff")  # call CODE+0x0 (the allocator)
    return {POOL: mem, CODE: code}


def pool_spec(head: int) -> PoolSpec:
    return PoolSpec(name="p", geometry=FixedSlots(first=POOL, slot_size=80, count=4), header=HDR, payload_size=48,
                    in_use=Magic("magic", used=USED, free=FREE), requested_size="req_size", alloc_site="alloc_site",
                    free_list=FreeList(head=head, link="next_free"), fill=Fill(free=0xDD, fresh=0xCD),
                    guard=Guard(offset=72, size=8, byte=0xFD))


def allocate(mem: Dict[int, bytearray], i: int, req: int) -> None:
    base = 80 * i
    mem[POOL][base:base + 16] = HDR.build({"magic": USED, "req_size": req, "alloc_site": CODE + 0x15,
                                           "next_free": 0})[:16]
    mem[POOL][base + 24:base + 72] = b"\xcd" * 48


def pool_context(mem: Dict[int, bytearray], head: int, **kw) -> ForensicContext:
    src = BufferSource({k: bytes(v) for k, v in mem.items()}, symbols={"pool_alloc": CODE, "make_buf": CODE + 0x8})
    report = walk_pool(src, resolve(pool_spec(head), Evaluator()))

    def symbolize(pc):
        if CODE + 0x8 <= pc < CODE + 0x20:
            return {"function": "make_buf", "file": "buf.c", "line": 12 if pc < CODE + 0x15 else 13}
        return None

    return ForensicContext(src, None, pools=[report], symbolize=symbolize, **kw)


def test_pool_overflow_into_the_next_slot_header_with_the_allocation_site():
    mem = pool_memory()
    allocate(mem, 0, 20)
    allocate(mem, 1, 16)
    text = b"GET /api/v1/sensors/calibration?channel=09&unit=kelvin&x=1"  # past slot 0's payload:
    mem[POOL][24:24 + len(text)] = text  # its 48 bytes, its 8 guard bytes and slot 1's magic
    ctx = pool_context(mem, head=POOL + 160)
    f = only(find_all(ctx), "heap-buffer-overflow")
    assert f.chunk.slot == 1 and f.source.slot == 0 and f.source.requested == 20
    assert len(text) > 56 and f.address == POOL + 24 + 20 and f.bytes_past_end == len(text) - 20
    assert "20-byte region" in f.message and "(requested)" in f.message
    site = f.allocation_site
    assert (site.function, site.file, site.line, site.pc) == ("make_buf", "buf.c", 12, CODE + 0x15)
    assert f"call at {CODE + 0x10:#x}" in site.how and "<pool_alloc>" in site.how
    assert "guard" in f.evidence and f.evidence["damaged"][0]["field"] == "magic"


def test_pool_guard_overwrite_alone():
    mem = pool_memory()
    allocate(mem, 2, 40)
    mem[POOL][160 + 24:160 + 24 + 50] = b"x" * 50  # 10 bytes past 40: 8 slack + 2 guard bytes
    ctx = pool_context(mem, head=POOL)
    f = only(find_all(ctx), "heap-buffer-overflow")
    assert f.chunk.slot == 2 and f.source.slot == 2 and f.bytes_past_end == 10
    assert f.evidence["continuity"]["kind"] == "text"


def test_pool_free_fill_broken():
    mem = pool_memory()
    mem[POOL][80 + 24 + 8:80 + 24 + 12] = b"\x01\x02\x03\x04"
    ctx = pool_context(mem, head=POOL)
    f = only(find_all(ctx), "use-after-free")
    assert f.chunk.slot == 1 and [(w.offset, w.size) for w in f.written_after_free] == [(8, 4)]
    assert f.address == POOL + 80 + 24 + 8


def test_clean_pool_gives_no_finding():
    mem = pool_memory()
    allocate(mem, 0, 48)
    mem[POOL][24:72] = b"y" * 48
    assert find_all(pool_context(mem, head=POOL + 80)) == []


# -- the model ---------------------------------------------------------------------------------
def test_finding_json_has_exactly_the_documented_keys():
    c = ChunkView(0x1000, 0x1010, 0x30, 0x28, "in-use", "main_arena")
    f = Finding("use-after-free", 0x1010, c, "m", evidence={"x": 1})
    d = f.to_dict()
    assert list(d) == ["kind", "address", "chunk", "source", "allocation_site", "referenced_by", "message",
                       "evidence", "written_after_free"]
    assert list(d["chunk"]) == ["address", "user_address", "size", "requested_size", "state", "heap"]
    assert d["address"] == "0x1010" and d["chunk"]["address"] == "0x1000" and d["source"] is None
    with pytest.raises(ValueError):
        Finding("nonsense", None, None, "")


def test_references_callback_fills_referenced_by():
    img, c = image()
    img.w(c[3] + PS, 0x1234567890ABCDE3)
    ctx = build(img, references=lambda chunk: [f"g_table[3] -> {chunk:#x}"])
    f = only(find_all(ctx), "metadata-corruption")
    assert f.referenced_by == [f"g_table[3] -> {c[3]:#x}"]
    assert HEAP_BASE <= f.chunk.address
