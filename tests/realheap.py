"""Real programs' heaps with glibc as the oracle: start, stop, core, ask glibc, ask gdbext.

A target program prints ``READY`` once its heap is built and then sleeps in
``pause()`` (a quiet point: no thread touches the heap).  The harness then

1. writes a core (``generate-core-file``) from one gdb run;
2. reads glibc's own numbers from a second gdb run that calls ``mallinfo2()``
   and ``malloc_info(0, stderr)`` in the stopped process (the harness calls
   into its own test program; gdbext itself never does), with a hash of the
   heap's mappings taken through /proc/PID/mem before and after, which must
   be equal (the calls did not change the heap);
3. runs gdbext live and on the core, with and without libc debug info, and
   rebuilds every ``mallinfo2`` field and every ``malloc_info`` line from
   gdbext's JSON alone (:func:`expected_from_gdbext`).

Accounting (glibc 2.36, ``int_mallinfo`` and ``__malloc_info``): chunks in a
tcache count as in use (glibc does not look into tcaches); ``ordblks`` counts
each arena's top chunk plus the chunks of the regular bins; ``fordblks`` is
top plus regular bins plus fastbins; ``arena`` is every arena's
``system_mem``; a ``malloc_info`` bin line's ``from``/``to``/``total`` use the
raw size words of regular-bin chunks (flag bits included) and, for fastbins,
``size - (MALLOC_ALIGNMENT - 1)`` .. ``size``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from gdbext.gdbrun import bootstrap_command, find_gdb, has_traceback

__all__ = ["Target", "GlibcNumbers", "glibc_numbers", "GdbextRun", "gdbext_json", "expected_from_gdbext",
           "MALLINFO_FIELDS"]

MALLINFO_FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "uordblks", "fordblks", "fsmblks")
NO_DEBUG = "set debug-file-directory /nonexistent"
_ALIGN = 16


class Target:
    """A running program stopped at its quiet point (``pause()`` after ``READY``)."""

    def __init__(self, argv: Sequence[str], workdir: str, name: str, timeout: float = 60.0,
                 env: Optional[Dict[str, str]] = None) -> None:
        self.workdir = workdir
        self.name = name
        self.errpath = os.path.join(workdir, name + ".stderr")
        self._err = open(self.errpath, "wb")
        self.proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=self._err, stdin=subprocess.DEVNULL,
                                     text=True, cwd=workdir, env=dict(os.environ, **(env or {})))
        self.truth: Dict[str, str] = {}
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"{name} ended before READY: {self.stderr()}")
            if line.startswith("GT "):
                parts = line.split()
                self.truth[parts[1]] = parts[2] if len(parts) > 2 else ""
            if line.startswith("READY"):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} not READY within {timeout} s")
        self._settle()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        with open(self.errpath, "rb") as fh:
            return fh.read().decode(errors="replace")

    def _settle(self) -> None:
        """Wait until every thread sleeps (the program reached pause())."""
        for _ in range(200):
            states = []
            for tid in os.listdir(f"/proc/{self.pid}/task"):
                try:
                    with open(f"/proc/{self.pid}/task/{tid}/stat") as fh:
                        states.append(fh.read().rsplit(")", 1)[1].split()[0])
                except FileNotFoundError:  # a thread that just exited
                    states.append("gone")
            if all(s == "S" for s in states):
                return
            time.sleep(0.05)
        raise AssertionError(f"{self.name} never settled")

    def heap_hash(self) -> str:
        """sha256 of [heap] and the writable anonymous mappings (not a library's .bss, which
        the calls' stdio locks touch, nor a thread's stack), read through /proc/PID/mem."""
        h = hashlib.sha256()
        sps = self._stack_pointers()
        with open(f"/proc/{self.pid}/maps") as maps:
            rows = []
            for line in maps:
                parts = line.split()
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                rows.append((lo, hi, parts[1], parts[5] if len(parts) > 5 else ""))
        files = {lo for lo, _, _, path in rows if path.startswith("/")} | {hi for _, hi, _, path in rows
                                                                           if path.startswith("/")}
        with open(f"/proc/{self.pid}/mem", "rb", buffering=0) as mem:
            for lo, hi, perms, path in rows:
                bss = path == "" and (lo in files or hi in files)  # a library's .bss (maybe merged)
                stack = any(lo <= sp < hi for sp in sps)
                if "w" in perms and path in ("", "[heap]") and not bss and not stack:
                    try:
                        mem.seek(lo)
                        h.update(mem.read(hi - lo))
                    except OSError:
                        h.update(b"unreadable %x" % lo)
        return h.hexdigest()

    def _stack_pointers(self) -> List[int]:
        """Each sleeping thread's stack pointer (/proc/PID/task/TID/syscall)."""
        out = []
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            try:
                with open(f"/proc/{self.pid}/task/{tid}/syscall") as fh:
                    fields = fh.read().split()
            except OSError:
                continue
            if len(fields) >= 3 and fields[-2].startswith("0x"):
                out.append(int(fields[-2], 16))
        return out

    def gcore(self, path: str) -> None:
        res = subprocess.run([find_gdb(), "-nx", "-batch", "-p", str(self.pid), "-ex", f"generate-core-file {path}"],
                             capture_output=True, text=True, timeout=300)
        assert os.path.exists(path), res.stdout + res.stderr

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._err.close()


@dataclass
class GlibcNumbers:
    """What glibc says about its heap: ``mallinfo2()`` and each ``<heap>`` of ``malloc_info``."""

    mallinfo: Dict[str, int]
    heaps: List[List[Tuple[str, int, int, int, int]]] = field(default_factory=list)  #: (tag, from, to, total, count)
    xml: str = ""
    #: chunks in all live threads' tcaches: the sum of each TLS ``tcache``'s counts, from gdb with libc
    #: debug info (for gdbext's JSON: the tcache chunks of every arena)
    tcache_chunks: int = 0
    tcaches: int = 0  #: live threads with a tcache


def glibc_numbers(target: Target) -> GlibcNumbers:
    """Call mallinfo2() and malloc_info(0, stderr) in the stopped target (a gdb run of the harness's own)."""
    before = target.heap_hash()
    offset = os.path.getsize(target.errpath)
    res = subprocess.run([find_gdb(), "-nx", "-batch", "-p", str(target.pid), "-ex", "set print pretty off",
                          "-ex", "print mallinfo2()", "-ex", "call (int)malloc_info(0, stderr)",
                          "-ex", "thread apply all -q print/x tcache ? tcache->counts : 0"],
                         capture_output=True, text=True, timeout=120)
    after = target.heap_hash()
    assert before == after, "calling mallinfo2/malloc_info changed the heap"
    m = re.search(r"\$1 = \{(.*?)\}", res.stdout)
    assert m, "print mallinfo2() needs libc's debug info (Debian: libc6-dbg)\n" + res.stdout + res.stderr
    info = {k: int(v) for k, v in re.findall(r"(\w+) = (\d+)", m.group(1))}
    with open(target.errpath, "rb") as fh:
        fh.seek(offset)
        xml = fh.read().decode(errors="replace")
    assert "</malloc>" in xml, xml
    heaps: List[List[Tuple[str, int, int, int, int]]] = []
    for block in re.findall(r'<heap nr="\d+">(.*?)</heap>', xml, re.S):
        rows = [(tag, int(a), int(b), int(c), int(d)) for tag, a, b, c, d in re.findall(
            r'<(size|unsorted) from="(\d+)" to="(\d+)" total="(\d+)" count="(\d+)"/>', block)]
        heaps.append(rows)
    tcaches = tcache_chunks = 0
    for counts in re.findall(r"^\$\d+ = (\{0x[^}]*\}|0x0)$", res.stdout, re.M):
        if counts != "0x0":
            tcaches += 1
            for item in counts.strip("{}").split(","):
                value, _, repeat = item.strip().partition(" <repeats ")
                tcache_chunks += int(value, 16) * (int(repeat.split()[0]) if repeat else 1)
    return GlibcNumbers(info, heaps, xml, tcache_chunks, tcaches)


class GdbextRun:
    """One gdb run with gdbext (live on ``pid`` or on ``binary`` + ``core``), started at once;
    :meth:`documents` waits and returns one JSON document per command."""

    def __init__(self, commands: Sequence[str], *, pid: Optional[int] = None, binary: Optional[str] = None,
                 core: Optional[str] = None, debug: bool = True) -> None:
        argv = [find_gdb(), "-nx", "-batch"]
        if not debug:
            argv += ["-iex", NO_DEBUG]
        argv += ["-ex", "set pagination off", "-ex", "set width 0", "-ex", bootstrap_command()]
        for i, cmd in enumerate(commands):
            argv += ["-ex", f"echo @@DOC {i}\\n", "-ex", cmd]
        argv += ["-ex", "echo @@END\\n"]
        if pid is not None:
            argv += ["-p", str(pid)]
        else:
            argv += [binary or "", "--core=" + (core or "")]
        self.commands = list(commands)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     stdin=subprocess.DEVNULL)

    def documents(self, timeout: float = 300.0) -> List[object]:
        out, err = self.proc.communicate(timeout=timeout)
        assert not has_traceback(out + err), out + err
        docs: List[object] = []
        parts = re.split(r"^@@DOC \d+\n", out.split("@@END")[0], flags=re.M)[1:]
        for part in parts:
            start = part.find("{")
            docs.append(json.loads(part[start:]) if start >= 0 else part)
        assert len(docs) == len(self.commands), out + err
        return docs


def gdbext_json(commands: Sequence[str], **kwargs) -> Tuple[List[object], str]:
    """Run gdb with gdbext and wait: one JSON document per command (see :class:`GdbextRun`)."""
    return GdbextRun(commands, **kwargs).documents(), ""


def expected_from_gdbext(summary: dict, listing: dict, nfastbins: int = 10) -> GlibcNumbers:
    """glibc's mallinfo2 and malloc_info bin lines, rebuilt from gdbext's summary and listing JSON."""
    info = dict.fromkeys(MALLINFO_FIELDS, 0)
    arenas = summary["arenas"]
    main = next(a["arena"] for a in arenas if a["label"] == "main_arena")
    per: Dict[int, Dict[str, List[int]]] = {a["arena"]: {} for a in arenas}
    for row in listing["chunks"]:
        if row.get("state") != "free" or not row.get("bin") or row["bin"].startswith("tcache"):
            continue
        raw = row["size"] | (row.get("flags", 0) if not row["bin"].startswith("fastbin") else 0)
        heap = main if row["heap"] == "main_arena" else int(row["heap"].split("@")[1], 16)
        per[heap].setdefault(row["bin"], []).append(raw)
    heaps = []
    for a in arenas:
        bins = per[a["arena"]]
        fast_n = a["free"]["fastbin"]["count"]
        fast_b = a["free"]["fastbin"]["bytes"]
        regular_n = a["free"]["bins"]["count"]
        regular_b = a["free"]["bins"]["bytes"]
        top_b = a["states"]["top"]["bytes"]
        info["arena"] += a["system_bytes"]
        info["ordblks"] += regular_n + 1
        info["smblks"] += fast_n
        info["fsmblks"] += fast_b
        avail = top_b + regular_b + fast_b
        info["fordblks"] += avail
        info["uordblks"] += a["system_bytes"] - avail
        rows: List[Tuple[str, int, int, int, int]] = []
        for i in range(nfastbins):
            sizes = bins.get(f"fastbin[{i}]")
            if sizes:
                rows.append(("size", sizes[0] - (_ALIGN - 1), sizes[0], sizes[0] * len(sizes), len(sizes)))
        ordered = sorted((int(k.split("[")[1].rstrip("]")), k) for k in bins if k.startswith(("small[", "large[")))
        for _, k in ordered:
            sizes = bins[k]
            rows.append(("size", min(sizes), max(sizes), sum(sizes), len(sizes)))
        if bins.get("unsorted"):
            sizes = bins["unsorted"]
            rows.append(("unsorted", min(sizes), max(sizes), sum(sizes), len(sizes)))
        heaps.append(rows)
    info["hblks"] = len(summary["mmapped"])
    info["hblkhd"] = sum(m["size"] for m in summary["mmapped"])
    tcache_chunks = sum(a["free"]["tcache"]["count"] for a in arenas)
    return GlibcNumbers(info, heaps, tcache_chunks=tcache_chunks)
