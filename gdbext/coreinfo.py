"""``gdbext info CORE``: what a core file holds, read without gdb.

Threads with their signal and registers' pc/sp, the fault address, the
mappings (and which ones the core really contains), build-ids, the
symbolized crash pc when the binary is at hand, and what the reader found
wrong with the core (segments cut or dropped for damaged headers, notes
capped).
"""
from __future__ import annotations

from typing import Optional, TextIO

from .corefile import CoreFile
from .crash import signal_name
from .gdbrun import plain_core

__all__ = ["print_core_info"]


def print_core_info(core: str, binary: Optional[str], out: TextIO) -> None:
    """Write a human summary of ``core`` to ``out``."""
    with plain_core(core) as path, CoreFile(path, executable=binary) as cf:
        exe = cf.executable_path()
        out.write(f"core: {core}\nexecutable: {exe or 'unknown'}\n")
        build_id = cf.executable_build_id()
        if build_id:
            out.write(f"build-id: {build_id}\n")
        threads = cf.threads()
        info = cf.siginfo()
        if info is not None:
            fault = f" at {info.addr:#x}" if info.addr is not None else ""
            out.write(f"signal: {signal_name(info.signo)}{fault} (si_code {info.code})\n")
        for n, thread in enumerate(threads, 1):
            pc = thread.pc
            where = ""
            if pc is not None:
                sym = cf.symbolize(pc)
                line = cf.line_for(pc)
                where = f" in {sym[0]}+{sym[1]:#x}" if sym else ""
                where += f" at {line[0]}:{line[1]}" if line else ""
            pc_text = f"{pc:#x}" if pc is not None else "?"
            sp_text = f"{thread.sp:#x}" if thread.sp is not None else "?"
            out.write(f"thread {n} (LWP {thread.tid}): pc {pc_text}{where} sp {sp_text}\n")
        out.write("mappings:\n")
        for r in cf.regions():
            dumped = "in core" if cf.in_core(r.start) else "not dumped"
            out.write(f"  {r.start:#018x}-{r.end:#018x} {r.perms} {r.size:>10} {dumped:<10} {r.path}\n")
        for obj, bid in sorted(cf.build_ids().items()):
            out.write(f"build-id {bid} {obj}\n")
        for problem in cf.problems:  # damaged segments, capped notes, files that do not match
            out.write(f"problem: {problem}\n")
