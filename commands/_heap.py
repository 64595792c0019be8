"""What the heap commands share: the gdb settings that override heap location, and locating the heap.

``set gdbext glibc-version 2.31``, ``set gdbext main-arena EXPR``,
``set gdbext mp EXPR``, ``set gdbext sbrk-base EXPR`` and
``set gdbext tcache EXPR[,EXPR...]`` impose what the model would otherwise
find (from debug info, ELF symbols, or by heuristic).  Each thread's TLS
``tcache`` pointer is asked of gdb when it can evaluate thread-local
variables; otherwise the model's own heuristic finds the tcaches, helped by
each thread's thread pointer (``fs_base``).  The threads' stack pointers tell
the mmapped-chunk scan which mappings are thread stacks.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import gdb  # type: ignore[import-not-found]

from gdbext.errors import GdbextError
from gdbext.gdbmem import GdbInferiorSource
from gdbext.glibc import GlibcHeap, HeapNotFoundError, Overrides, ThreadRegs, locate_heap
from gdbext.specs import REGISTRY

from ._base import parse_address

__all__ = ["HEAP_SETTINGS", "locate", "overrides_from_settings", "thread_tcaches"]

#: (kind, name, help) rows that _settings turns into gdb Parameters.
HEAP_SETTINGS = [
    ("text", "glibc-version", "The glibc release to assume (e.g. 2.31); empty: read it from the image."),
    ("text", "main-arena", "Address (expression) of main_arena; empty: from symbols or by heuristic."),
    ("text", "mp", "Address (expression) of mp_ (struct malloc_par); empty: from symbols or by heuristic."),
    ("text", "sbrk-base", "Start of the main heap (expression); empty: mp_.sbrk_base."),
    ("text", "tcache", "Comma-separated addresses of tcache_perthread_structs; empty: TLS or heuristic."),
]


def _setting(name: str) -> str:
    try:
        return str(gdb.parameter(f"gdbext {name}") or "").strip()
    except (gdb.error, RuntimeError):
        return ""


#: registers that hold the TLS thread pointer (x86-64; other targets: none read, no TLS search)
_THREAD_POINTER_REGS = ("fs_base",)


def _register(frame, names: Sequence[str]) -> Optional[int]:
    for name in names:
        try:
            return int(frame.read_register(name)) & 0xFFFFFFFFFFFFFFFF
        except (gdb.error, ValueError):
            continue
    return None


def thread_state() -> Tuple[List[int], List[ThreadRegs]]:
    """Each thread's TLS ``tcache`` pointer where gdb can evaluate it (libc debug info),
    and each thread's thread and stack pointers (never switches threads for good)."""
    found: List[int] = []
    regs: List[ThreadRegs] = []
    inferior = gdb.selected_inferior()
    try:
        original = gdb.selected_thread()
    except gdb.error:
        return found, regs
    try:
        for thread in inferior.threads():
            try:
                thread.switch()
                frame = gdb.newest_frame()
            except gdb.error:
                continue
            regs.append(ThreadRegs(thread.ptid[1], _register(frame, _THREAD_POINTER_REGS),
                                   _register(frame, ("sp",))))
            try:
                value = int(gdb.parse_and_eval("(unsigned long)tcache"))
            except gdb.error:
                continue
            if value and value not in found:
                found.append(value)
    finally:
        if original is not None and original.is_valid():
            original.switch()
    return found, regs


def thread_tcaches() -> List[int]:
    """Each thread's TLS ``tcache`` pointer, where gdb can evaluate it."""
    return thread_state()[0]


def overrides_from_settings() -> Overrides:
    """The model's overrides from ``set gdbext ...``, plus the TLS tcaches gdb can see."""
    kwargs: Dict[str, object] = {}
    version = _setting("glibc-version")
    if version:
        kwargs["version"] = version
    for setting, key in (("main-arena", "main_arena"), ("mp", "mp"), ("sbrk-base", "sbrk_base")):
        text = _setting(setting)
        if text:
            kwargs[key] = parse_address(text)
    tcache = _setting("tcache")
    if tcache:
        kwargs["tcaches"] = [parse_address(part) for part in tcache.split(",") if part.strip()]
    tls, regs = thread_state()
    if tls and not tcache:
        kwargs["tcaches"] = tls
    kwargs["threads"] = regs
    return Overrides(**kwargs)  # type: ignore[arg-type]


def locate(mem: Optional[GdbInferiorSource] = None) -> GlibcHeap:
    """The glibc heap of the selected inferior; a one-line GdbextError when there is none."""
    mem = mem or GdbInferiorSource()
    try:
        return locate_heap(mem, overrides_from_settings())
    except HeapNotFoundError as err:
        raise GdbextError(f"no glibc heap found: {err}") from None

