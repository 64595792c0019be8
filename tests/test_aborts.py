# tests/test_aborts.py - gdbext.aborts: __abort_msg read from the fixture
# cores (against their truth files) and from synthetic memory, message lookup
# (exact, prefix, truncated, assertions), and the table checked against the
# malloc strings of the glibc 2.36 linked into the fixture binaries.
from __future__ import annotations

import os
import re

import pytest
from conftest import Truth, binary

from gdbext.aborts import ABORTS, FINDING_KINDS, explain_abort, read_abort_message
from gdbext.memory import BufferSource


@pytest.fixture(scope="module")
def cores(open_core):
    return open_core


EXPECTED_KIND = {
    "heap_overflow": "heap-buffer-overflow",
    "double_free": "double-free",
    "binary_overflow": "heap-buffer-overflow",
    "tcache_uaf": "use-after-free",
}


@pytest.mark.parametrize("name", sorted(EXPECTED_KIND))
def test_abort_message_from_core(cores, name):
    gt = Truth(name)
    message = read_abort_message(cores(name))
    assert message == gt["abort_message"]
    info = explain_abort(message)
    assert info is not None and info.message == message
    assert info.kind == EXPECTED_KIND[name]


@pytest.mark.parametrize("name", ["threads", "pool_overflow", "uaf_perturb"])
def test_no_abort_message_in_core(cores, name):
    assert Truth(name).get("abort_message") is None
    assert read_abort_message(cores(name)) is None  # __abort_msg is NULL


def _abort_source(text: bytes, size=None, symbols=True, pointer=0x5000):
    size = len(text) + 5 if size is None else size
    msg = size.to_bytes(4, "little") + text + b"\0"
    segments = {0x1000: pointer.to_bytes(8, "little"), 0x5000: msg}
    return BufferSource(segments, symbols={"__abort_msg": 0x1000} if symbols else {})


def test_read_abort_message_synthetic():
    assert read_abort_message(_abort_source(b"free(): invalid pointer\n")) == "free(): invalid pointer"
    assert read_abort_message(_abort_source(b"no newline")) == "no newline"
    assert read_abort_message(_abort_source(b"x\n", symbols=False)) is None  # no symbol
    assert read_abort_message(_abort_source(b"x\n", pointer=0)) is None  # NULL
    assert read_abort_message(_abort_source(b"x\n", pointer=0x9000)) is None  # unreadable pointer
    assert read_abort_message(_abort_source(b"")) is None  # empty text
    long = _abort_source(b"A" * 10000 + b"\n", size=0xFFFFFFFF)  # garbage size: bounded by the limit
    assert read_abort_message(long) == "A" * 4096
    assert read_abort_message(_abort_source(b"abcdef\n", size=8)) == "abcd"  # size bounds the read
    assert read_abort_message(_abort_source(b"caf\xc3\xa9 \xff\n")) == "caf\u00e9 \ufffd"


def test_explain_exact_and_prefix():
    info = explain_abort("free(): invalid next size (normal)\n")
    assert info.function.startswith("_int_free") and info.kind == "heap-buffer-overflow"
    assert "after" in info.chunk
    # longer text starting with a known message: the longest known prefix wins
    assert explain_abort("malloc(): corrupted unsorted chunks 2 extra").message == "malloc(): corrupted unsorted chunks 2"
    assert explain_abort("malloc(): memory corruption (fast)").message == "malloc(): memory corruption (fast)"
    assert explain_abort("malloc(): memory corruption").message == "malloc(): memory corruption"
    # truncated text that only one message starts with
    assert explain_abort("free(): double free detec").message == "free(): double free detected in tcache 2"
    assert explain_abort("free(): inv") is None  # ambiguous
    assert explain_abort("*** double free or corruption (!prev) ***").kind == "double-free"
    assert explain_abort("hello") is None
    assert explain_abort("") is None and explain_abort(None) is None


def test_explain_assertions():
    old = explain_abort("prog: malloc.c:2617: sysmalloc: Assertion `(old_top == initial_top (av) && old_size == 0) "
                        "|| ((unsigned long) (old_size) >= MINSIZE && prev_inuse (old_top))' failed.")
    assert old is not None and old.source == "assert" and old.function == "sysmalloc (assert)"
    assert old.kind == "heap-buffer-overflow" and "top chunk" in old.chunk
    new = explain_abort("Fatal glibc error: malloc.c:4376 (_int_malloc): assertion failed: chunk_main_arena (bck->bk)")
    assert new is not None and new.kind == "metadata-corruption" and "chunk_main_arena" in new.invariant
    assert explain_abort("prog: foo.c:12: main: Assertion `x' failed.") is None  # not malloc's
    bare = explain_abort("sysmalloc: Assertion `(old_top == initial_top (av) && old_size == 0)' failed.")
    assert bare is not None and bare.function == "sysmalloc (assert)"  # quoted without file:line
    assert explain_abort("prog: arena.c:711: heap_trim: Assertion `p->size == (0 | 0x1)' failed.").source == "assert"


def test_messages_named_by_the_heap_checks_are_known():
    checks = pytest.importorskip("gdbext.glibc.checks")
    for check, message in checks.CHECK_IDS.items():
        if message:
            assert explain_abort(message) is not None, check


def test_table_is_consistent():
    assert len(ABORTS) >= 50
    for message, info in ABORTS.items():
        assert message == info.message and message == message.strip() and not message.endswith("\n")
        assert info.kind in FINDING_KINDS
        assert all(alt in FINDING_KINDS and alt != info.kind for alt in info.alternatives)
        assert info.function and info.chunk and info.invariant and info.usual_cause and info.versions
        assert explain_abort(message) is info
        assert info.lines()[0].startswith(f'glibc abort "{message}"')


#: malloc_printerr strings of glibc 2.36 (Debian's libc.so.6 and the static
#: glibc in the fixtures), by prefix.
_MALLOC_STRING = re.compile(
    rb"(?:malloc\(\)|free\(\)|realloc\(\)|munmap_chunk\(\)|mremap_chunk\(\)|malloc_consolidate\(\)|"
    rb"tcache_thread_shutdown\(\)|int_mallinfo\(\)|__malloc_info\(\)|corrupted |double free or corruption|"
    rb"invalid fastbin entry|break adjusted)[ -~]*?\0"
)


def test_every_malloc_string_of_the_fixture_glibc_is_known():
    path = binary("heap_overflow")
    if not os.path.exists(path):
        pytest.skip("fixture binary missing")
    with open(path, "rb") as fh:
        data = fh.read()
    found = {m.group(0)[:-1].decode() for m in _MALLOC_STRING.finditer(data)}
    messages = {s for s in found if s not in ("malloc(): ", "free(): ", "corrupted shared library")}
    assert "free(): invalid next size (normal)" in messages and len(messages) > 40
    unknown = sorted(m for m in messages if m not in ABORTS)
    assert unknown == []
    # and every message we date to 2.36 (not marked as absent from it) is in that glibc
    for message, info in ABORTS.items():
        if info.source == "malloc.c" and _covers_236(info.versions) and not info.versions.startswith("~"):
            assert message in messages, message


def _covers_236(versions: str) -> bool:
    m = re.match(r"~?(\d+)\.(\d+)(\+|-(\d+)\.(\d+))", versions)
    if m is None:
        return False
    lo = (int(m.group(1)), int(m.group(2)))
    hi = (99, 0) if m.group(3) == "+" else (int(m.group(4)), int(m.group(5)))
    return lo <= (2, 36) <= hi
