# gdbext/glibc/version.py - which glibc release built the image: override,
# __libc_version, or the "GNU C Library ... release version X.Y" banner.
"""Find the glibc release of a target.

Evidence, in order of trust:

1. an explicit override (a gdb parameter, a CLI flag);
2. the ``__libc_version`` symbol (a ``const char[]`` such as ``"2.36"``);
3. the banner ``GNU C Library (...) stable release version 2.36.`` that
   ``libc.so.6`` (and static binaries that link ``__libc_print_version``) keep
   in read-only data.  The search is bounded: read-only regions backed by a
   file whose name looks like libc first, then the other read-only regions,
   never more than :data:`MAX_BANNER_SCAN` bytes in all.

:func:`detect_version` returns a :class:`VersionInfo` saying which evidence
was used, or ``version=None`` when nothing was found (the caller then picks a
default and says so).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple, Union

from ..errors import MemoryReadError
from ..memory import MemorySource, Region
from .layouts import GlibcVersion

__all__ = ["VersionInfo", "detect_version", "parse_banner", "MAX_BANNER_SCAN", "BANNER_RE"]

#: at most this many bytes of the image are searched for the banner
MAX_BANNER_SCAN = 64 << 20
_CHUNK = 1 << 20  #: read size of the banner search
_OVERLAP = 256  #: bytes kept between reads so a banner split by a read is still found

BANNER_RE = re.compile(
    rb"GNU C Library \(([^)\n]{0,120})\) (?:stable |development )?release version (\d+)\.(\d+)"
)
_VERSION_RE = re.compile(rb"^(\d+)\.(\d+)")


@dataclass(frozen=True)
class VersionInfo:
    """A detected glibc release and the evidence for it."""

    version: Optional[GlibcVersion]
    how: str  #: "override", "symbol", "banner", "unknown"
    address: Optional[int] = None  #: where the symbol/banner was found
    text: str = ""  #: the banner or symbol text

    def __str__(self) -> str:
        if self.version is None:
            return "glibc version unknown"
        if self.how == "inferred" and self.text:
            return f"glibc {self.text.split(' (')[0]} (inferred from the heap's layout; {self.version} assumed)"
        where = f" at {self.address:#x}" if self.address is not None else ""
        return f"glibc {self.version} (from {self.how}{where})"


def parse_banner(data: bytes) -> Optional[Tuple[GlibcVersion, str]]:
    """The version and banner text in ``data``, or None."""
    m = BANNER_RE.search(data)
    if not m:
        return None
    end = data.find(b"\n", m.start())
    text = data[m.start() : end if end > 0 else m.end()].decode("ascii", "replace")
    return GlibcVersion(int(m.group(2)), int(m.group(3))), text


def _candidate_regions(regions: Iterable[Region]) -> List[Region]:
    ro = [r for r in regions if r.perms.startswith("r") and "w" not in r.perms]
    libc = [r for r in ro if "libc" in r.path.rsplit("/", 1)[-1]]
    rest = [r for r in ro if r not in libc]
    # file-backed before anonymous: the banner lives in a file's .rodata
    rest.sort(key=lambda r: (r.path == "", r.start))
    return libc + rest


def _scan_regions(source: MemorySource, budget: int) -> Optional[VersionInfo]:
    for region in _candidate_regions(source.regions()):
        addr = region.start
        while addr < region.end and budget > 0:
            size = min(_CHUNK, region.end - addr, budget)
            try:
                data = bytes(source.read_buffer(addr, size))
            except MemoryReadError:
                break  # not in the core (gdb does not dump clean file pages): next region
            budget -= size
            found = parse_banner(data)
            if found is not None:
                m = BANNER_RE.search(data)
                assert m is not None
                return VersionInfo(found[0], "banner", addr + m.start(), found[1])
            if addr + size >= region.end:
                break
            addr += max(size - _OVERLAP, 1)
        if budget <= 0:
            break
    return None


def detect_version(
    source: MemorySource,
    override: Union[None, str, Tuple[int, int], GlibcVersion] = None,
    max_scan: int = MAX_BANNER_SCAN,
) -> VersionInfo:
    """The glibc release of the image behind ``source``.

    :param override: a version to use without looking (``"2.36"``).
    :param max_scan: upper bound of bytes read while searching the banner.
    :raises SpecError: when ``override`` is not a version.
    """
    if override is not None:
        return VersionInfo(GlibcVersion.parse(override), "override")
    addr = source.symbol("__libc_version")
    if addr is not None:
        try:
            text = source.read_cstring(addr, 32)
        except MemoryReadError:
            text = b""
        m = _VERSION_RE.match(text)
        if m:
            return VersionInfo(
                GlibcVersion(int(m.group(1)), int(m.group(2))), "symbol", addr, text.decode("ascii", "replace")
            )
    found = _scan_regions(source, max_scan)
    if found is not None:
        return found
    return VersionInfo(None, "unknown")
