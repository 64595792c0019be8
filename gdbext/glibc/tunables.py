# gdbext/glibc/tunables.py - the glibc tunables a process ran with, read from
# its GLIBC_TUNABLES environment variable in the image, and what they change
# in the heap model (tcache fill count, tcache size limit).
"""Tunables of the process behind a memory source.

``GLIBC_TUNABLES=glibc.malloc.tcache_count=16:glibc.malloc.tcache_max=4096``
changes what a heap looks like: how many chunks a tcache bin holds and, from
2.42, which sizes the (large) tcache bins take.  ``mp_`` holds the values in
effect and is read first; the environment is the evidence when ``mp_`` was not
found (a tuned ``mp_`` also defeats its pattern scan, which looks for the
defaults).

The environment is found through the ``__environ`` symbol (static binaries
and libc keep it), else from the auxiliary vector's ``AT_EXECFN`` (the
strings of ``envp`` sit just below it at the top of the initial stack).
Every read is bounded: at most :data:`MAX_ENV` pointers and
:data:`MAX_ENV_BYTES` bytes; nothing read is evaluated, only parsed as
``name=number`` pairs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional

from ..errors import MemoryReadError
from ..memory import MemorySource
from .layouts import Layout

__all__ = ["Tunables", "read_tunables", "parse_tunables", "malloc_params", "MAX_ENV", "MAX_ENV_BYTES"]

#: environment entries looked at through ``__environ``
MAX_ENV = 4096
#: bytes below ``AT_EXECFN`` searched for the variable
MAX_ENV_BYTES = 128 << 10
_VAR = b"GLIBC_TUNABLES="
_MAX_VALUE = 4096  #: longest GLIBC_TUNABLES value read


@dataclass(frozen=True)
class Tunables:
    """Tunables set for the process, and where they were read."""

    values: Mapping[str, int] = field(default_factory=dict)
    how: str = ""  #: "__environ", "AT_EXECFN" or "" (not found)
    address: Optional[int] = None  #: the variable's string
    text: str = ""  #: its value as found (printable ASCII only)

    def get(self, name: str) -> Optional[int]:
        return self.values.get(name)

    def __bool__(self) -> bool:
        return bool(self.values)


def parse_tunables(text: bytes) -> Dict[str, int]:
    """``name=value[:name=value...]`` with C ``strtoul`` bases; malformed pairs are skipped."""
    out: Dict[str, int] = {}
    for part in text.split(b":"):
        name, eq, value = part.partition(b"=")
        if not eq or not name.startswith(b"glibc.") or not name.replace(b".", b"").replace(b"_", b"").isalnum():
            continue
        v = value.strip().lower()
        try:
            if v.startswith(b"0x"):
                num = int(v[2:], 16)
            elif v.startswith(b"0") and len(v) > 1:
                num = int(v[1:], 8)
            else:
                num = int(v, 10)
        except ValueError:
            continue
        out[name.decode("ascii")] = num
    return out


def _printable(data: bytes) -> str:
    return "".join(chr(b) if 0x20 <= b < 0x7F else "?" for b in data)


def _found(src: MemorySource, addr: int, how: str) -> Optional[Tunables]:
    try:
        raw = src.read_cstring(addr, len(_VAR) + _MAX_VALUE)
    except MemoryReadError:
        return None
    if not raw.startswith(_VAR):
        return None
    value = raw[len(_VAR):]
    return Tunables(parse_tunables(value), how, addr, _printable(value))


def _from_environ(src: MemorySource) -> Optional[Tunables]:
    sym = src.symbol("__environ") or src.symbol("environ")
    if sym is None:
        return None
    ps = src.pointer_size
    try:
        envp = src.read_pointer(sym)
    except MemoryReadError:
        return None
    if not envp:
        return None
    for i in range(MAX_ENV):
        try:
            entry = src.read_pointer(envp + i * ps)
            if not entry:
                return Tunables(how="__environ")
            head = src.read(entry, len(_VAR))
        except MemoryReadError:
            return None
        if head == _VAR:
            return _found(src, entry, "__environ")
    return None


def _from_execfn(src: MemorySource) -> Optional[Tunables]:
    auxv = getattr(src, "auxv", None)
    if auxv is None:
        return None
    execfn = auxv().get("AT_EXECFN")
    if not execfn:
        return None
    lo = max(execfn - MAX_ENV_BYTES, 0)
    region = src.region_of(execfn)
    if region is not None:
        lo = max(lo, region.start)
    try:
        data = bytes(src.read_buffer(lo, execfn - lo))
    except MemoryReadError:
        return None
    pos = data.rfind(b"\0" + _VAR)
    if pos < 0:
        return None
    return _found(src, lo + pos + 1, "AT_EXECFN")


def read_tunables(src: MemorySource) -> Tunables:
    """The process's ``GLIBC_TUNABLES``, or an empty :class:`Tunables` when absent or unreadable."""
    for probe in (_from_environ, _from_execfn):
        found = probe(src)
        if found is not None and (found.values or found.how == "__environ"):
            return found
    return Tunables()


def malloc_params(layout: Layout, mp_values: Mapping[str, int], tunables: Tunables) -> Dict[str, int]:
    """``mp_``'s tcache values: from ``mp_`` when read, else from the tunables, else the release's defaults."""
    out: Dict[str, int] = {
        "tcache_count": layout.default_tcache_count,
        "tcache_max_bytes": layout.default_tcache_max_bytes,
        layout.mp_tcache_bins_field: layout.tcache_small_bins,
    }
    count = tunables.get("glibc.malloc.tcache_count")
    if count is not None and count <= 0xFFFF:
        out["tcache_count"] = count
    tmax = tunables.get("glibc.malloc.tcache_max")
    if tmax is not None and tmax < 1 << (8 * layout.pointer_size - 1):
        nb = layout.request2size(tmax)
        idx = layout.tcache_index(nb)
        if idx is not None:  # do_set_tcache_max ignores a value past the last bin
            if idx < layout.tcache_small_bins:
                out[layout.mp_tcache_bins_field] = idx + 1
            out["tcache_max_bytes"] = layout.default_tcache_max_bytes if not layout.facts.tcache_max_by_chunk_size \
                else nb + (1 if layout.facts.tcache_max_bytes_csize else 0)
    out.update({k: v for k, v in mp_values.items() if k in out})
    return out
