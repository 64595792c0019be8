"""The bad-input matrix for the gdb commands: each bad input gives a one-line error naming the problem
or a partial report that says what was skipped; never a traceback, never a hang."""
import os
import shutil
import subprocess

import pytest

from conftest import Truth, binary, core, needs_gcc, needs_gdb, spec
from gdbext.gdbrun import has_traceback, plain_core, run_gdb

pytestmark = needs_gdb

#: Every heap command, run on each bad input (commands this build lacks are skipped by gdb's help probe).
COMMANDS = ["heapwalk --summary", "heapwalk --check", "heapwalk --limit 5", "poisonscan", "heapexplain 0x4b0000",
            "whopoints 0x4b0000"]


def run(binary_path, core_path, commands=COMMANDS, specs=(), timeout=60):
    present = [c for c in commands if c.split()[0] in available()]
    res = run_gdb(binary_path, None, commands=([f"core-file {core_path}"] if core_path else []) + present,
                  spec_files=specs, timeout=timeout)
    out = res.stdout + res.stderr
    assert not has_traceback(out), out
    assert "internal error" not in out, out
    return res, present


_AVAILABLE = []


def available():
    if not _AVAILABLE:
        res = run_gdb(None, None, commands=[f"help {c.split()[0]}" for c in COMMANDS])
        _AVAILABLE.append({c.split()[0] for c in COMMANDS if f'Undefined command: "{c.split()[0]}"' not in
                           res.stdout + res.stderr})
    return _AVAILABLE[0]


def command_errors(res):
    """Error lines our commands printed (gdb prefixes nothing; ours start with the command name)."""
    return [line for line in res.stderr.splitlines()
            if line.split(":")[0] in {c.split()[0] for c in COMMANDS}]


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """Plain copies of two fixture cores."""
    out = {}
    d = tmp_path_factory.mktemp("plain")
    for name in ("heap_overflow", "pool_overflow"):
        with plain_core(core(name)) as path:
            out[name] = str(d / f"{name}.core")
            shutil.copy(path, out[name])
    return out


def test_empty_core(tmp_path):
    empty = tmp_path / "empty.core"
    empty.write_bytes(b"")
    res, present = run(binary("heap_overflow"), str(empty))
    errors = command_errors(res)
    assert len(errors) == len(present)
    assert all("no process or core file" in e for e in errors if e.startswith("heapwalk")), errors


def test_random_bytes_core(tmp_path):
    junk = tmp_path / "junk.core"
    junk.write_bytes(os.urandom(200_000))
    res, present = run(binary("heap_overflow"), str(junk))
    assert len(command_errors(res)) == len(present)


@pytest.mark.parametrize("percent", [1, 50, 99])
def test_truncated_core(plain, tmp_path, percent):
    data = open(plain["heap_overflow"], "rb").read()
    cut = tmp_path / f"cut{percent}.core"
    cut.write_bytes(data[: len(data) * percent // 100])
    res, present = run(binary("heap_overflow"), str(cut))
    out = res.stdout + res.stderr
    # either a one-line error per command, or a report that says what it could not read
    for cmd in present:
        assert cmd.split()[0] in out or "heapwalk --check:" in out or "main_arena" in out, out


def test_core_of_another_program(plain):
    res, _ = run(binary("sensor"), plain["heap_overflow"], commands=["heapwalk --summary", "heapwalk --check"])
    out = res.stdout + res.stderr
    assert "heapwalk" in out or "main_arena" in out


@needs_gcc
def test_binary_without_debug_info_and_symbols(plain, tmp_path):
    stripped = tmp_path / "heap_overflow"
    subprocess.run(["strip", "-s", "-o", str(stripped), binary("heap_overflow")], check=True)
    t = Truth("heap_overflow")
    res, _ = run(str(stripped), plain["heap_overflow"], commands=["heapwalk --summary", "heapwalk --check"])
    # no symbols at all: main_arena is found by its byte pattern and the overflow is still named
    assert f'[glibc: "{t["abort_message"]}"]' in res.stdout, res.stdout + res.stderr


def test_missing_binary(plain):
    t = Truth("heap_overflow")
    res, _ = run(None, plain["heap_overflow"], commands=["heapwalk --check"])
    assert f'[glibc: "{t["abort_message"]}"]' in res.stdout, res.stdout + res.stderr


def test_missing_core(tmp_path):
    res, present = run(binary("heap_overflow"), str(tmp_path / "no-such.core"))
    assert "No such file" in res.stderr
    assert len(command_errors(res)) == len(present)


def test_binary_not_elf(plain, tmp_path):
    fake = tmp_path / "not-elf"
    fake.write_text("#!/bin/sh\necho hello\n")
    res, _ = run(str(fake), plain["heap_overflow"], commands=["heapwalk --summary"])
    assert "not in executable format" in res.stderr
    assert "main_arena" in res.stdout or command_errors(res)


@needs_gcc
def test_program_that_never_called_malloc(tmp_path):
    """Dynamically linked, so nothing mallocs before main (a static glibc's start-up does): an
    uninitialised main_arena is said plainly, not reported as 128 broken bins."""
    src = tmp_path / "nomalloc.c"
    src.write_text("#include <stdlib.h>\nint main(void) { abort(); }\n")
    exe = tmp_path / "nomalloc"
    subprocess.run(["gcc", "-g", "-o", str(exe), str(src)], check=True)
    core_path = tmp_path / "nomalloc.core"
    subprocess.run(["gdb", "-nx", "-batch", "-ex", "run", "-ex", f"generate-core-file {core_path}", str(exe)],
                   capture_output=True, timeout=60)
    res, present = run(str(exe), str(core_path), commands=["heapwalk --summary", "heapwalk --check", "heapwalk"])
    out = res.stdout + res.stderr
    assert "note: main_arena is not initialised: the program never called malloc" in out, out
    assert "heapwalk --check: 0 violations" in out
    assert "heapwalk: no chunk matches" in out


def test_unreadable_heap_segment(plain, tmp_path):
    """The heap's PT_LOAD marked as not dumped (p_filesz 0): said plainly, the rest still reported."""
    from elftools.elf.elffile import ELFFile

    t = Truth("heap_overflow")
    heap_addr = int(t["a_chunk"], 16)
    data = bytearray(open(plain["heap_overflow"], "rb").read())
    with open(plain["heap_overflow"], "rb") as fh:
        elf = ELFFile(fh)
        hdr = elf.header
        for i, seg in enumerate(elf.iter_segments()):
            if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= heap_addr < seg["p_vaddr"] + seg["p_memsz"]:
                at = hdr.e_phoff + i * hdr.e_phentsize + 32  # p_filesz in Elf64_Phdr
                data[at : at + 8] = (0).to_bytes(8, "little")
    broken = tmp_path / "noheap.core"
    broken.write_bytes(bytes(data))
    res, _ = run(binary("heap_overflow"), str(broken), commands=["heapwalk --summary", "heapwalk --check"])
    out = res.stdout + res.stderr
    assert "heapwalk" in out and ("unreadable" in out or "cannot read" in out or "not dumped" in out), out


def test_pool_spec_naming_nothing(tmp_path):
    bad_type = tmp_path / "bad_type.py"
    bad_type.write_text(open(spec("pool_overflow")).read().replace('"struct slot_hdr"', '"struct nope"'))
    bad_expr = tmp_path / "bad_expr.py"
    bad_expr.write_text(open(spec("pool_overflow")).read().replace('"g_pool.free_head"', '"g_nothing->head"'))
    for path, field, message in ((bad_type, "header", "no type 'struct nope'"),
                                 (bad_expr, "free_list.head", "g_nothing")):
        res, _ = run(binary("pool_overflow"), None, commands=["heapwalk --pools-only --pool g_pool"],
                     specs=[str(path)])
        res2 = run_gdb(binary("pool_overflow"), core("pool_overflow"), commands=[
            "heapwalk --pools-only --pool g_pool --summary", "print g_pool"], spec_files=[str(path)])
        for r in (res, res2):
            out = r.stdout + r.stderr
            assert not has_traceback(out)
            # refused when loaded: one line naming the spec field; the pool is not declared afterwards
            problems = [line for line in r.stderr.splitlines() if "pool g_pool:" in line]
            assert len(problems) == 1 and f"pool g_pool: {field}: " in problems[0] and message in problems[0], out
        errors = [line for line in res2.stderr.splitlines() if line.startswith("heapwalk")]
        assert errors == ["heapwalk: no pool named 'g_pool' (none declared)"], res2.stderr


def test_spec_file_that_raises(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("x = 1\nraise ValueError('my mistake')\n")
    res = run_gdb(binary("pool_overflow"), None, commands=[], spec_files=[str(broken)])
    assert not has_traceback(res.stdout + res.stderr)
    assert f"{broken}:2: ValueError: my mistake" in res.stderr
