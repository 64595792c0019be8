"""Read-only: every gdbext command run on a live, attached process leaves its memory and registers as they were.

The target is a small program built here that sets up a glibc heap (tcache,
fastbin, unsorted chunks, a dangling pointer), a slot pool and bitfield
structs, then waits in pause().  Its writable memory is hashed from outside
(/proc/PID/mem) before gdb attaches and after it detaches, and from inside
gdb before and after the commands, together with the registers.  A control
run that writes one variable proves the check can fail.
"""
import hashlib
import os
import signal
import subprocess
import time

import pytest

from conftest import ROOT, needs_gcc, needs_gdb
from gdbext.gdbrun import bootstrap_command, find_gdb, has_traceback

pytestmark = [needs_gdb, needs_gcc]

PROGRAM = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
struct slot_hdr { uint32_t magic; uint32_t req_size; void *alloc_site; struct slot_hdr *next_free; };
struct slot { struct slot_hdr hdr; unsigned char payload[48]; unsigned char guard[8]; };
struct pool { uint32_t slot_size; uint32_t nslots; uint32_t in_use; struct slot_hdr *free_head; struct slot slots[4]; };
struct status { unsigned channel : 4; unsigned valid : 1; int offset : 6; };
struct pool g_pool;
struct status g_status = { 5, 1, -3 };
char *g_keep[32];
volatile int g_touch;
int main(void) {
    g_pool.slot_size = sizeof(struct slot); g_pool.nslots = 4;
    for (int i = 3; i >= 0; i--) {
        struct slot *s = &g_pool.slots[i];
        s->hdr.magic = 0xF4EEF4EE; memset(s->payload, 0xDD, 48); memset(s->guard, 0xFD, 8);
        s->hdr.next_free = g_pool.free_head; g_pool.free_head = &s->hdr;
    }
    for (int i = 0; i < 32; i++) g_keep[i] = malloc(24 + 40 * (i % 7));
    for (int i = 0; i < 32; i += 3) free(g_keep[i]);        /* dangling on purpose */
    char *big = malloc(3000); g_keep[31] = malloc(24); free(big);
    printf("READY %d\n", getpid()); fflush(stdout);
    for (;;) pause();
}
"""

SPEC = """
from gdbext.pools import FixedSlots, FreeList, Guard, Magic, PoolSpec
from gdbext.specs import pool
pool(PoolSpec(name="g_pool", root="g_pool",
              geometry=FixedSlots(first="&g_pool.slots[0]", slot_size="sizeof(struct slot)", count="g_pool.nslots"),
              header="struct slot_hdr", payload_size=48, in_use=Magic("magic", used=0xA110C8ED, free=0xF4EEF4EE),
              requested_size="req_size", alloc_site="alloc_site",
              free_list=FreeList(head="g_pool.free_head", link="next_free"), guard=Guard(72, 8, 0xFD)))
"""

#: Every command a user can run; ones not present in this build are skipped by the probe.
COMMANDS = [
    "print g_pool", "print g_status", "print g_keep", "bt full", "info locals",
    "heapwalk", "heapwalk --summary", "heapwalk --check", "heapwalk --json --limit 50",
    "heapwalk --pool g_pool --summary", "heapwalk --state free --json",
    "poisonscan", "poisonscan --preset glibc --json", "heapexplain &g_keep[3]", "heapexplain g_keep[3]",
    "whopoints g_keep[3]", "gdbext", "gdbext report --json /dev/null",
]

PROBE = """
import hashlib, gdb
def snapshot():
    inf = gdb.selected_inferior()
    h = hashlib.sha256()
    for line in open(f"/proc/{inf.pid}/maps"):
        parts = line.split()
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        if "w" in parts[1] and not (len(parts) > 5 and parts[5] in ("[vvar]", "[vsyscall]")):
            try:
                h.update(bytes(inf.read_memory(lo, hi - lo)))
            except gdb.MemoryError:
                h.update(b"unreadable %x" % lo)
    regs = gdb.execute("info registers", to_string=True)
    return h.hexdigest(), hashlib.sha256(regs.encode()).hexdigest()
BEFORE = snapshot()
"""


def settled_hash(pid: int) -> str:
    """The outside hash once the program sleeps in pause() (two equal readings in a row)."""
    last = None
    for _ in range(50):
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        current = outside_hash(pid)
        if state == "S" and current == last:
            return current
        last = current
        time.sleep(0.05)
    raise AssertionError("the target never settled in pause()")


def outside_hash(pid: int) -> str:
    """sha256 of the writable mappings read through /proc/PID/mem (no debugger involved)."""
    h = hashlib.sha256()
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if "w" in parts[1] and not (len(parts) > 5 and parts[5] in ("[vvar]", "[vsyscall]")):
                mem.seek(lo)
                h.update(mem.read(hi - lo))
    return h.hexdigest()


@pytest.fixture()
def live(tmp_path):
    src = tmp_path / "live.c"
    src.write_text(PROGRAM)
    exe = tmp_path / "live"
    subprocess.run(["gcc", "-g", "-O0", "-o", str(exe), str(src)], check=True)
    # rseq: the kernel writes the thread's CPU number into it at every reschedule; off, so that
    # every byte that changes is one somebody wrote.
    env = dict(os.environ, GLIBC_TUNABLES="glibc.pthread.rseq=0")
    proc = subprocess.Popen([str(exe)], stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    assert line.startswith("READY"), line
    (tmp_path / "spec.py").write_text(SPEC)
    (tmp_path / "probe.py").write_text(PROBE)
    yield proc, tmp_path
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def attach_and_run(proc, tmp_path, commands):
    after = ("python\nAFTER = snapshot()\nprint('MEMORY', 'same' if AFTER[0] == BEFORE[0] else 'CHANGED')\n"
             "print('REGISTERS', 'same' if AFTER[1] == BEFORE[1] else 'CHANGED')\nend")
    script = tmp_path / "after.gdb"
    script.write_text(after + "\n")
    argv = [find_gdb(), "-nx", "-batch", "-ex", "set pagination off", "-ex", bootstrap_command(),
            "-ex", f"gdbext load {tmp_path / 'spec.py'}", "-p", str(proc.pid), "-ex", f"source {tmp_path / 'probe.py'}"]
    for cmd in commands:
        argv += ["-ex", cmd]
    argv += ["-x", str(script)]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=ROOT)
    return res.stdout + res.stderr


def existing(commands, tmp_path, proc):
    """The commands this build has (a user command's first word must be known to gdb)."""
    out = subprocess.run([find_gdb(), "-nx", "-batch", "-ex", bootstrap_command()] +
                         sum((["-ex", f"help {c.split()[0]}"] for c in commands), []),
                         capture_output=True, text=True, timeout=60).stdout + ""
    known = {c.split()[0] for c in commands if f'Undefined command: "{c.split()[0]}"' not in out}
    return [c for c in commands if c.split()[0] in known]


def test_every_command_leaves_the_process_untouched(live):
    proc, tmp_path = live
    before = settled_hash(proc.pid)
    commands = existing(COMMANDS, tmp_path, proc)
    assert "heapwalk --check" in commands and "print g_pool" in commands
    out = attach_and_run(proc, tmp_path, commands)
    assert not has_traceback(out), out
    assert "MEMORY same" in out and "REGISTERS same" in out, out
    assert "heapwalk --check:" in out  # the commands really ran on the live heap
    time.sleep(0.2)
    assert outside_hash(proc.pid) == before


def test_the_check_can_fail(live):
    proc, tmp_path = live
    before = settled_hash(proc.pid)
    out = attach_and_run(proc, tmp_path, ["set var g_touch = 42"])
    assert "MEMORY CHANGED" in out, out
    assert outside_hash(proc.pid) != before
