# tests/test_forensics_cores.py - gdbext.forensics on the fixture cores without
# gdb (core file + ELF symbols + a stack scan for candidate pointers): every
# fact is checked against the fixture's truth file; clean heaps give nothing.
from __future__ import annotations


import construct as C
import pytest
from conftest import Truth

from gdbext.corefile import CoreFile
from gdbext.forensics import find_all
from gdbext.forensics.address import explain_address
from gdbext.forensics.corectx import context_from_core
from gdbext.forensics.scan import poisonscan
from gdbext.poison import glibc_perturb_preset, parse_user_pattern, pool_preset
from gdbext.pools import Evaluator, Fill, FixedSlots, FreeList, Guard, Magic, PoolSpec, resolve, walk_pool

HDR = C.Struct("magic" / C.Int32ul, "req_size" / C.Int32ul, "alloc_site" / C.Int64ul, "next_free" / C.Int64ul)


def pool_report(c: CoreFile, t: Truth):
    """fixtures/specs/pool_overflow.py with its expressions evaluated from the truth file (no gdb here)."""
    g = t.int("g_pool")
    spec = PoolSpec(
        name="g_pool", root=g, header=HDR, payload_size=t.int("slot_payload"),
        geometry=FixedSlots(first=t.int("slots_base"), slot_size=t.int("slot_size"), count=t.int("nslots")),
        in_use=Magic("magic", used=t.int("magic_used"), free=t.int("magic_free")), requested_size="req_size",
        alloc_site="alloc_site", free_list=FreeList(head=c.read_pointer(g + 16), link="next_free"),
        fill=Fill(free=0xDD, fresh=0xCD), guard=Guard(offset=72, size=t.int("slot_guard"), byte=0xFD))
    return walk_pool(c, resolve(spec, Evaluator()))


@pytest.fixture(scope="module")
def forensics(open_core):
    cache = {}

    def get(name):
        if name not in cache:
            c = open_core(name)
            t = Truth(name)
            pools = [pool_report(c, t)] if name == "pool_overflow" else []
            ctx = context_from_core(c, pools=pools)
            cache[name] = (ctx, find_all(ctx), t)
        return cache[name]

    return get


def single(findings, kind):
    assert [f.kind for f in findings] == [kind], [f.headline for f in findings]
    return findings[0]


@pytest.mark.parametrize("name", ["sensor", "threads", "glibc/heapmix-bullseye", "glibc/heapmix-bookworm",
                                  "glibc/heapmix-trixie", "glibc/heapmix-sid", "glibc/threads-sid"])
def test_clean_heaps_give_no_finding(forensics, name):
    _ctx, findings, _t = forensics(name)
    assert findings == [], [f.headline for f in findings]


@pytest.mark.parametrize("name", ["heap_overflow", "glibc/heap_overflow-sid"])
def test_heap_overflow(forensics, name):
    ctx, findings, t = forensics(name)
    f = single(findings, "heap-buffer-overflow")
    assert f.explains_crash
    assert f.chunk.address == t.int("b_chunk") and f.source.address == t.int("a_chunk")
    assert f.source.user_address == t.int("overflow_source_addr") and f.source.usable == t.int("a_usable_size")
    assert f.address == t.int("a_addr") + t.int("a_usable_size")
    assert f.bytes_past_end == t.int("overflow_past_usable")
    cont = f.evidence["continuity"]
    assert cont["kind"] == "text" and int(cont["end"], 16) == t.int("overflow_end_addr")
    assert int(cont["start"], 16) == t.int("a_addr") and cont["nul_terminated"]
    assert cont["text_after_boundary"].startswith(t["b_size_field_after_text"])
    damaged = f.evidence["damaged"][0]
    assert damaged["field"] == "size" and int(damaged["value"], 16) == t.int("b_size_field_after")
    assert f.evidence["crash"]["message"] == t["abort_message"]
    # glibc records no site: it is inferred from the program's calls, and the
    # program's own truth (the line of its malloc call) is among the candidates
    site = f.allocation_site
    assert site.inferred and "no allocation record" in f.evidence["allocation_record"]
    assert (t["a_alloc_function"], t.int("a_alloc_line")) in [(c["function"], c["line"]) for c in site.candidates[:3]]
    assert "1112-byte region" in f.message and "glibc records no requested size" in f.message


def test_binary_overflow(forensics):
    ctx, findings, t = forensics("binary_overflow")
    f = single(findings, "heap-buffer-overflow")
    assert f.explains_crash and f.evidence["crash"]["message"] == t["abort_message"]
    assert f.chunk.address == t.int("victim_chunk") and f.source.address == t.int("source_chunk")
    assert f.source.user_address == t.int("overflow_source_addr")
    assert f.bytes_past_end == t.int("overflow_past_request")
    cont = f.evidence["continuity"]
    assert cont["kind"] == "binary" and cont["element_size"] == t.int("overflow_element_size")
    assert cont["bytes_past_boundary_hex"] == t["overflow_past_request_hex"]
    assert int(cont["end"], 16) == t.int("overflow_end_addr")
    assert int(f.evidence["damaged"][0]["value"], 16) == t.int("victim_size_field_after")


def test_pool_overflow(forensics):
    ctx, findings, t = forensics("pool_overflow")
    f = single(findings, "heap-buffer-overflow")
    assert f.explains_crash
    slot = t.int("slot_size")
    assert f.source.slot == t.int("overflow_source_slot") and f.chunk.slot == t.int("overflow_victim_slot")
    assert f.chunk.address == t.int("overflow_victim_hdr_addr")
    assert f.source.user_address == t.int("overflow_source_addr")
    assert f.source.requested == t.int("overflow_source_req_size")
    start = t.int("overflow_source_addr") + t.int("overflow_source_req_size")
    assert f.address == start
    # the run is broken where slot 4 was handed out again: a lower bound that reaches next_free
    assert f.evidence["bytes_past_end_is_lower_bound"]
    assert f.chunk.address + 24 - start <= f.bytes_past_end <= t.int("overflow_end_addr") - start
    site = f.allocation_site
    assert site.function == t["buf.request.alloc_function"] and site.line == t.int("buf.request.alloc_line")
    assert site.pc == t.int("buf.request.alloc_site") and site.file.endswith("pool_overflow.c")
    cont = f.evidence["continuity"]
    assert cont["text_before_boundary"].startswith(t["overflow_text"])
    assert t["overflow_text_full"].startswith(cont["text_before_boundary"] + cont["text_after_boundary"])
    assert t["overflow_guard_text"] in f.evidence["guard"]
    damaged = f.evidence["damaged"][0]
    assert damaged["field"] == "next_free" and damaged["looks_like"] == f'text "{t["overflow_victim_next_free_text"]}"'
    assert int(damaged["value"], 16) == t.int("overflow_victim_next_free") == t.int("crash_fault_addr_value")
    assert "ndow=360" in f.evidence["fault"]
    assert slot == 80


@pytest.mark.parametrize("name", ["tcache_uaf", "glibc/tcache_uaf-sid"])
def test_tcache_uaf(forensics, name):
    ctx, findings, t = forensics(name)
    f = single(findings, "use-after-free")
    assert f.explains_crash and f.evidence["crash"]["message"] == t["abort_message"]
    assert f.chunk.address == t.int("victim_chunk") and f.chunk.state == "in-use"  # handed out again
    assert f.address == t.int("victim_addr") + t.int("uaf_write_offset")
    (w,) = f.written_after_free
    assert w.offset == t.int("uaf_write_offset") and w.certain
    # the next link survives (8 bytes); glibc zeroed the key when it handed the chunk out again
    assert w.size == 8 <= t.int("uaf_write_size")
    assert t.int("victim_key_at_crash") == 0 and "tcache_get cleared it" in f.evidence["key"]
    assert int(f.evidence["bin_head"]["value"], 16) == t.int("corrupt_tcache_head")
    assert f"{t.int('uaf_next_value'):#x}" in f.evidence["revealed_from"]
    stored = ctx.mem.read_pointer(t.int("victim_addr"))
    assert stored == t.int("uaf_next_value") == t.int("victim_next_at_crash")
    assert t["uaf_write_hex"].startswith(stored.to_bytes(8, "little").hex())


def test_uaf_perturb(forensics):
    ctx, findings, t = forensics("uaf_perturb")
    assert ctx.perturb_byte == t.int("perturb_byte")
    f = single(findings, "use-after-free")
    assert f.explains_crash and f.chunk.address == t.int("victim_chunk") and f.chunk.bin == "fastbin[1]"
    assert [(w.offset, w.size) for w in f.written_after_free] == [(t.int("uaf_write_offset"), t.int("uaf_write_size"))]
    assert not f.written_after_free[0].certain  # those bytes are the next chunk's prev_size: free() did not fill them
    assert ctx.mem.read_pointer(t.int("uaf_write_addr")) == t.int("uaf_write_value")
    assert f.address == t.int("victim_addr") + t.int("uaf_read_offset")
    assert f"{t.int('uaf_read_pointer'):#x}" in f.evidence["fault"]


def test_explain_crash_alone(forensics):
    from gdbext.forensics import explain_crash

    ctx, _findings, t = forensics("binary_overflow")
    f = explain_crash(ctx)
    assert f is not None and f.kind == "heap-buffer-overflow" and f.chunk.address == t.int("victim_chunk")
    assert f.evidence["crash"]["checked"].startswith("the chunk being freed")
    assert f.evidence["crash"]["violation"]["check"] == "chunk.size.bounds"
    ctx, _findings, _t = forensics("sensor")
    assert explain_crash(ctx) is None


@pytest.mark.parametrize("name", ["double_free", "glibc/double_free-sid"])
def test_double_free(forensics, name):
    ctx, findings, t = forensics(name)
    f = single(findings, "double-free")
    assert f.explains_crash and f.chunk.address == t.int("p_chunk") and f.address == t.int("p_addr")
    assert f.chunk.bin == "tcache[1]" and f.evidence["crash"]["message"] == t["abort_message"]
    assert f"{t.int('p_tcache_key'):#x}" in f.evidence["why"]


def test_explain_address_on_gt_addresses(forensics):
    ctx, findings, t = forensics("heap_overflow")
    rep = explain_address(ctx, t.int("b_chunk") + 8, findings)
    assert rep.chunk.address == t.int("b_chunk") and rep.header_field == "size"
    assert rep.neighbours["previous"].address == t.int("a_chunk")
    assert any(d["what"] == "chunk.size.alignment" for d in rep.damage) and rep.findings == findings
    rep = explain_address(ctx, t.int("guard_addr"), findings)
    assert rep.chunk.address == t.int("guard_chunk") and rep.chunk.state == "in-use"
    assert rep.location.startswith(f"{t.int('guard_addr'):#x} is 0 bytes inside of")
    ctx, findings, t = forensics("pool_overflow")
    rep = explain_address(ctx, t.int("buf.config.addr") + 3, findings)
    assert rep.chunk.slot == t.int("buf.config.slot") and rep.allocation_site.function == t["buf.config.alloc_function"]
    assert rep.allocation_site.line == t.int("buf.config.alloc_line") and not rep.findings
    assert "3 bytes inside of the 16-byte region" in rep.location


def test_poisonscan_on_cores(forensics):
    ctx, _f, t = forensics("uaf_perturb")
    rep = poisonscan(ctx.mem, ctx.heap, ctx.pools, [glibc_perturb_preset(ctx.perturb_byte)], context=ctx)
    victim = [h for h in rep.hits if h.chunk is not None and h.chunk.address == t.int("victim_chunk")]
    assert [(h.address - t.int("victim_addr"), h.verdict) for h in victim] == [(8, "expected")]
    assert victim[0].size == t.int("perturbed_len") - 8
    assert any(s.word.kind == "poison" and s.value == t.int("uaf_read_pointer") for s in rep.suspects)
    ctx, _f, t = forensics("pool_overflow")
    spec = ctx.pools[0].pool.spec
    rep = poisonscan(ctx.mem, ctx.heap, ctx.pools, [pool_preset(spec.fill, spec.guard),
                                                    parse_user_pattern('"ndow=360"')], "pool:g_pool", context=ctx)
    user = [h for h in rep.hits if h.pattern.source == "user"]
    assert [h.address for h in user] == [t.int("overflow_victim_hdr_addr") + 16]
    assert user[0].chunk.slot == t.int("overflow_victim_slot")
    freed = [h for h in rep.hits if h.pattern.state == "freed"]
    assert {h.chunk.slot for h in freed} == {2} | set(range(6, 16))
    assert all(h.verdict == "expected" for h in freed)
    assert [o.chunk.slot for o in rep.overruns] == [t.int("overflow_source_slot")]
    assert rep.overruns[0].before.startswith(t["overflow_text"])
    assert [f.chunk.slot for f in rep.overflows] == [t.int("overflow_victim_slot")]
