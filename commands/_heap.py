"""What the heap commands share: the gdb settings that override heap location, and locating the heap.

``set gdbext glibc-version 2.31``, ``set gdbext main-arena EXPR``,
``set gdbext mp EXPR``, ``set gdbext sbrk-base EXPR`` and
``set gdbext tcache EXPR[,EXPR...]`` impose what the model would otherwise
find (from debug info, ELF symbols, or by heuristic).  Each thread's TLS
``tcache`` pointer is asked of gdb when it can evaluate thread-local
variables; otherwise the model's own heuristic finds the tcaches.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import gdb  # type: ignore[import-not-found]

from gdbext.errors import GdbextError
from gdbext.gdbmem import GdbInferiorSource
from gdbext.glibc import GlibcHeap, HeapNotFoundError, Overrides, locate_heap

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


def thread_tcaches() -> List[int]:
    """Each thread's TLS ``tcache`` pointer, where gdb can evaluate it (never switches for good)."""
    found: List[int] = []
    inferior = gdb.selected_inferior()
    try:
        original = gdb.selected_thread()
    except gdb.error:
        return found
    try:
        for thread in inferior.threads():
            try:
                thread.switch()
                value = int(gdb.parse_and_eval("(unsigned long)tcache"))
            except gdb.error:
                continue
            if value and value not in found:
                found.append(value)
    finally:
        if original is not None and original.is_valid():
            original.switch()
    return found


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
    else:
        tls = thread_tcaches()
        if tls:
            kwargs["tcaches"] = tls
    return Overrides(**kwargs)  # type: ignore[arg-type]


def locate(mem: Optional[GdbInferiorSource] = None) -> GlibcHeap:
    """The glibc heap of the selected inferior; a one-line GdbextError when there is none."""
    mem = mem or GdbInferiorSource()
    try:
        return locate_heap(mem, overrides_from_settings())
    except HeapNotFoundError as err:
        raise GdbextError(f"no glibc heap found: {err}") from None

