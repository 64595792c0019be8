# tests/test_glibc_version.py - gdbext.glibc.version: glibc release from an
# override, the __libc_version symbol or the banner in read-only memory.
from __future__ import annotations

from glibc_heapimage import _Source

from gdbext.errors import MemoryReadError
from gdbext.glibc.layouts import GlibcVersion
from gdbext.glibc.version import detect_version, parse_banner

BANNER = b"GNU C Library (Debian GLIBC 2.36-9+deb12u14) stable release version 2.36.\nCopyright (C) 2022"


def _src(segments, regions, symbols=None):
    return _Source(segments, regions, symbols=symbols or {})


def test_parse_banner():
    ver, text = parse_banner(b"xx\0" + BANNER)
    assert ver == GlibcVersion(2, 36)
    assert text.startswith("GNU C Library (Debian GLIBC 2.36-9+deb12u14)")
    assert parse_banner(b"GNU C Library (x) development release version 2.41.9000") [0] == (2, 41)
    assert parse_banner(b"nothing here") is None


def test_banner_in_libc_rodata():
    ro = bytearray(0x4000)
    ro[0x1234 : 0x1234 + len(BANNER)] = BANNER
    src = _src({0x7000: bytes(ro), 0x10000: b"\0" * 0x1000},
               {0x7000: ("r--", "/lib/x86_64-linux-gnu/libc.so.6"), 0x10000: ("rw-", "")})
    info = detect_version(src)
    assert info.version == (2, 36) and info.how == "banner" and info.address == 0x7000 + 0x1234
    assert "2.36" in str(info)


def test_banner_split_across_reads():
    size = (1 << 20) + 0x1000
    ro = bytearray(size)
    at = (1 << 20) - 20  # straddles the first 1 MiB read
    ro[at : at + len(BANNER)] = BANNER
    src = _src({0x400000: bytes(ro)}, {0x400000: ("r-x", "/usr/bin/static-prog")})
    info = detect_version(src)
    assert info.version == (2, 36) and info.address == 0x400000 + at


def test_symbol_beats_banner_and_override_beats_all():
    ro = bytearray(0x1000)
    ro[0x100 : 0x100 + len(BANNER)] = BANNER
    ro[0x800:0x805] = b"2.31\0"
    src = _src({0x7000: bytes(ro)}, {0x7000: ("r--", "libc.so.6")}, {"__libc_version": 0x7800})
    info = detect_version(src)
    assert (info.version, info.how, info.text) == ((2, 31), "symbol", "2.31")
    assert detect_version(src, "2.29").version == (2, 29)
    assert detect_version(src, "2.29").how == "override"


def test_unknown_and_bounded():
    ro = bytearray(0x3000)
    ro[0x2800 : 0x2800 + len(BANNER)] = BANNER
    src = _src({0x7000: bytes(ro)}, {0x7000: ("r--", "")})
    assert detect_version(src, max_scan=0x1000).version is None
    assert detect_version(src).version == (2, 36)
    empty = _src({0x7000: b"\0" * 0x100}, {0x7000: ("rw-", "")})
    info = detect_version(empty)
    assert info.version is None and info.how == "unknown" and "unknown" in str(info)


def test_unreadable_region_is_skipped():
    ro = bytearray(0x1000)
    ro[0x10 : 0x10 + len(BANNER)] = BANNER

    class Holey(_Source):
        def read_buffer(self, address, size):
            if address < 0x9000:
                raise MemoryReadError(address, size, "not dumped")
            return super().read_buffer(address, size)

    src = Holey({0x7000: b"\0" * 0x1000, 0x9000: bytes(ro)},
                {0x7000: ("r--", "libc.so.6"), 0x9000: ("r--", "libc.so.6")})
    assert detect_version(src).version == (2, 36)
