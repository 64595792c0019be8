"""gdbext.analysis without gdb: the pool finder on a synthetic pool, the fallback finders, the report dict."""
import struct

import construct as c
import pytest

from gdbext.analysis import (FALLBACK_FINDERS, AnalysisContext, CrashFacts, PoolWalk, abort_finder, analyze,
                             fault_finder, pool_finder)
from gdbext.errors import MemoryReadError
from gdbext.memory import BufferSource
from gdbext.pools import Evaluator, Fill, FixedSlots, FreeList, Guard, Magic, PoolSpec, resolve, walk_pool
from gdbext.triage.report import SCHEMA, Finding, Findings, Frame, validate_report

HDR = c.Struct("magic" / c.Int32ul, "req_size" / c.Int32ul, "alloc_site" / c.Int64ul, "next_free" / c.Int64ul)
USED, FREE = 0xA110C8ED, 0xF4EEF4EE
BASE, SLOT, N, HEAD = 0x10000, 80, 6, 0x9000
CODE = 0x401000

SPEC = PoolSpec(
    name="p", geometry=FixedSlots(first=BASE, slot_size=SLOT, count=N), header=HDR,
    in_use=Magic("magic", USED, FREE), requested_size="req_size", alloc_site="alloc_site",
    free_list=FreeList(head=HEAD, link="next_free"), guard=Guard(72, 8, 0xFD), payload_size=48,
    fill=Fill(free=0xDD, fresh=0xCD))
TEXT = b"GET /api/v1/sensors/calibration?channel=12&mode=full&verbose=1 HTTP/1.1 Host: gw.example"


class _Source(BufferSource):
    """Pool memory (rw-) and a code page (r-x)."""

    def region_of(self, address):
        region = super().region_of(address)
        if region is not None and region.start == CODE:
            return region.__class__(region.start, region.end, "r-x")
        return region


class Ev(Evaluator):
    def eval_int(self, expr):
        return expr


def build(states, links, head, writes=()):
    """Slots ``states`` ('u'/'f'), free list ``links`` {slot: next}, head slot; ``writes`` (offset, bytes)."""
    mem = bytearray()
    for i, s in enumerate(states):
        nxt = links.get(i)
        hdr = HDR.build(dict(magic=USED if s == "u" else FREE, req_size=20 if s == "u" else 0,
                             alloc_site=CODE + 0x10 * (i + 1), next_free=BASE + nxt * SLOT if nxt is not None else 0))
        mem += hdr + bytes([0xCD if s == "u" else 0xDD]) * 48 + b"\xfd" * 8
    for off, data in writes:
        mem[off:off + len(data)] = data
    head_ptr = BASE + head * SLOT if head is not None else 0
    return _Source({BASE: bytes(mem), HEAD: struct.pack("<Q", head_ptr), CODE: b"\x90" * 0x100})


def walked(mem):
    pool = resolve(SPEC, Ev())
    pool = pool.__class__(**{**pool.__dict__, "free_head": mem.read_pointer(HEAD)})
    return PoolWalk("p", walk_pool(mem, pool))


def locate(pc):
    return {"function": f"alloc_{pc - CODE:#x}", "file": "src/prog.c", "line": 100 + (pc - CODE)}


def context(mem, pools=(), **crash):
    frames = [Frame("pool_alloc", "src/prog.c", 96, 0x401770), Frame("main", "src/prog.c", 300, 0x401900)]
    return AnalysisContext(CrashFacts(frames=frames, **crash), memory=mem, pools=list(pools), locate=locate,
                           glibc=False)


def overflow_memory():
    # slot 1 (in use, 20 of 48 bytes requested) overruns from its user address through slot 2's header
    user1 = BASE + SLOT + 24
    return build("uufuff", {2: 4, 4: 5, 5: None}, 2, writes=[(user1 - BASE, TEXT[:48 + 8 + 24])])


def test_guard_overwrite_is_a_heap_buffer_overflow_with_source_victim_and_site():
    mem = overflow_memory()
    ctx = context(mem, [walked(mem)], signal="SIGSEGV", signo=11)
    found = list(pool_finder(ctx))
    assert [f.kind for f in found] == ["heap-buffer-overflow"]
    f = found[0]
    user1, req_end = BASE + SLOT + 24, BASE + SLOT + 24 + 20
    assert f.address == req_end  # the slack after the request no longer holds the fresh fill
    assert f.chunk.index == 2 and f.chunk.address == BASE + 2 * SLOT  # the damaged slot
    assert f.source.chunk.index == 1 and f.source.chunk.user_address == user1
    assert f.source.chunk.requested_size == 20
    assert f.source.bytes_past_end == (BASE + 2 * SLOT + 24) - req_end  # through slot 2's whole header
    # the allocation site is slot 1's recorded return address, symbolized at pc-1
    assert f.allocation_site.pc == CODE + 0x20
    assert f.allocation_site.function == "alloc_0x1f" and f.allocation_site.line == 100 + 0x1f
    assert f.message == (f"heap-buffer-overflow on {req_end:#x}: 60 bytes after the 20-byte region "
                         f"[{user1:#x}, {req_end:#x}) allocated by alloc_0x1f (prog.c:131)")
    labels = [label for _, _, label in f.evidence.memory[0].marks]
    assert "slot 1 guard overwritten" in labels and "slot 2 magic overwritten" in labels
    assert "slot 2 next_free overwritten" in labels
    # the victim's bad magic and the free list leading to the text are explained, not separate findings
    assert any("the value the overflow wrote" in n for n in f.evidence.notes)


def test_overflow_into_a_free_payload_is_followed():
    user1 = BASE + SLOT + 24
    data = TEXT[:48 + 8] + HDR.build(dict(magic=FREE, req_size=0, alloc_site=0, next_free=BASE + 4 * SLOT)) + b"XYZ!"
    mem = build("uufuff", {2: 4, 4: 5, 5: None}, 2, writes=[(user1 - BASE, data)])
    ctx = context(mem, [walked(mem)])
    f = next(iter(pool_finder(ctx)))
    # the header was rewritten with plausible values: only the free payload shows the damage went on
    assert f.chunk.index == 2
    assert f.source.bytes_past_end == (BASE + 2 * SLOT + 24 + 4) - (user1 + 20)


def test_overflow_stopping_in_the_guard_names_the_source_itself():
    user1 = BASE + SLOT + 24
    mem = build("uufuff", {2: 4, 4: 5, 5: None}, 2, writes=[(user1 - BASE, TEXT[:48 + 3])])
    f = next(iter(pool_finder(context(mem, [walked(mem)]))))
    assert f.chunk.index == 1 and f.source.bytes_past_end == 48 + 3 - 20


def test_unexplained_pool_anomaly_is_metadata_corruption():
    mem = build("uufuff", {2: 4, 4: 2}, 2)  # the free list loops
    found = list(pool_finder(context(mem, [walked(mem)])))
    assert [f.kind for f in found] == ["metadata-corruption"]
    assert "loops" in found[0].message


def test_clean_pool_and_failed_walk_give_nothing():
    mem = build("uufuff", {2: 4, 4: 5, 5: None}, 2)
    ctx = context(mem, [walked(mem), PoolWalk("q", error="no g_q in this program")])
    assert list(pool_finder(ctx)) == []
    rep = analyze(ctx)
    assert rep["findings"] == [] and "pool q: no g_q in this program" in rep["errors"]
    assert rep["heap"]["pools"][0]["in_use"] == 3 and rep["heap"]["pools"][1]["error"]


def test_abort_finder_uses_the_glibc_message():
    ctx = context(None, signal="SIGABRT", signo=6, abort_message="free(): double free detected in tcache 2")
    found = list(abort_finder(ctx))
    assert [f.kind for f in found] == ["double-free"]
    assert "double free detected in tcache 2" in found[0].message
    assert list(abort_finder(context(None, signal="SIGABRT", signo=6, abort_message="my own assertion"))) == []
    assert list(abort_finder(context(None, signal="SIGABRT", signo=6))) == []


@pytest.mark.parametrize("base, fault, kind", [
    (0xA5A5A5A5A5A5A5A5, 0xA5A5A5A5A5A5A5A5, "poison"),
    (0x3036333D776F646E, 0x3036333D776F647E, "wild-pointer"),  # text used as a pointer
    (0x0000800000000000, 0x0000800000000008, "wild-pointer"),  # non-canonical
    (None, 0, None),  # NULL: not heap evidence
    (None, 0x7FFFF7A00000, None),  # a plain unmapped address
])
def test_fault_finder(base, fault, kind):
    access = {"base_value": f"{base:#x}"} if base is not None else None
    ctx = context(None, signal="SIGSEGV", signo=11, fault_address=fault, access=access)
    ctx.perturb_byte = 0xA5
    found = list(fault_finder(ctx))
    assert [f.kind for f in found] == ([kind] if kind else [])


def test_fallbacks_run_only_when_the_finders_found_nothing():
    mem = overflow_memory()
    ctx = context(mem, [walked(mem)], signal="SIGSEGV", signo=11, fault_address=0xA5A5A5A5A5A5A5A5)
    rep = analyze(ctx)
    assert [f["kind"] for f in rep["findings"]] == ["heap-buffer-overflow"]
    ctx = context(mem, [], signal="SIGSEGV", signo=11, fault_address=0xA5A5A5A5A5A5A5A5)
    rep = analyze(ctx)
    assert [f["kind"] for f in rep["findings"]] == ["poison"]


def test_report_dict_follows_the_schema_and_has_the_signature():
    mem = overflow_memory()
    rep = analyze(context(mem, [walked(mem)], signal="SIGSEGV", signo=11, pc=0x401770))
    assert validate_report(rep) == []
    assert rep["schema"] == SCHEMA
    assert rep["crash"]["signature"] == "heap-buffer-overflow | pool_alloc | main"
    assert rep["crash"]["location"]["function"] == "pool_alloc"
    f = rep["findings"][0]
    assert f["address"].startswith("0x") and f["chunk"]["address"].startswith("0x")
    assert f["source"]["bytes_past_end"] == 60 and f["written_after_free"] == []
    assert f["evidence"]["memory"][0]["bytes"]


def test_a_finder_error_is_recorded_and_the_others_go_on():
    def broken(ctx):
        raise MemoryReadError(0x1234, 8)
        yield  # pragma: no cover

    def one(ctx):
        yield Finding("invalid-free", "invalid-free on 0x10", address=0x10)

    ctx = context(None, signal="SIGSEGV", signo=11)
    rep = analyze(ctx, finders=[broken, one], fallback_finders=FALLBACK_FINDERS)
    assert [f["kind"] for f in rep["findings"]] == ["invalid-free"]
    assert any(e.startswith("broken: cannot read 8 bytes at 0x1234") for e in rep["errors"])


def test_findings_are_kept_once_and_kinds_are_checked():
    a = Finding("double-free", "x", address=0x10)
    fs = Findings([a, Finding("double-free", "again", address=0x10), Finding("use-after-free", "y", address=0x10)])
    assert len(fs) == 2 and [f.message for f in fs] == ["x", "y"]
    with pytest.raises(ValueError):
        Finding("stack-overflow", "z")


def test_validate_report_names_what_is_wrong():
    rep = analyze(context(None, signal="SIGSEGV", signo=11))
    assert validate_report(rep) == []
    rep["crash"]["pc"] = 4198256
    rep["findings"] = [{"kind": "bogus"}]
    problems = validate_report(rep)
    assert any("crash.pc" in p for p in problems) and any("findings[0]" in p for p in problems)
    assert validate_report([]) == ["report: not an object"]


class OtherFinding:
    """A finding of another model with the same JSON form (as gdbext.forensics.model.Finding)."""

    def __init__(self, kind, address, chunk_address):
        self.kind, self.address = kind, address
        self.chunk = type("Chunk", (), {"address": chunk_address})()

    def to_dict(self):
        return {"kind": self.kind, "address": f"{self.address:#x}",
                "chunk": {"address": f"{self.chunk.address:#x}", "user_address": f"{self.chunk.address + 16:#x}",
                          "size": 48, "requested_size": None, "state": "free", "heap": "main_arena"},
                "source": None, "allocation_site": None, "referenced_by": ["g_table[3]"], "message": "uaf",
                "evidence": {"hexdump": ["  0x00001000: 00 01", "[..] = first byte"], "field": {"name": "next"}},
                "written_after_free": [{"offset": 32, "size": 8, "field": "value", "certain": True}]}


def test_findings_of_another_model_fit_the_report():
    from gdbext.triage.formats import render_text

    def other(ctx):
        yield OtherFinding("use-after-free", 0x1010, 0x1000)
        yield OtherFinding("use-after-free", 0x1010, 0x1000)  # the same finding twice: kept once

    rep = analyze(context(None, signal="SIGSEGV", signo=11), finders=[other])
    assert validate_report(rep) == [] and len(rep["findings"]) == 1
    assert rep["crash"]["signature"] == "use-after-free | pool_alloc | main"
    text = render_text(rep)
    assert "    - hexdump:\n        0x00001000: 00 01" in text
    assert "written after free: +32 8 bytes (value)" in text and "referenced by: g_table[3]" in text
