# gdbext/decompress.py - compressed core files (xz, zstd, lz4, gzip) turned
# into a plain temporary copy, streamed, under a size cap, refused early when
# the stream does not start like an ELF core.
"""Compressed cores: which compression a file uses, and a bounded, streaming decompression.

>>> with plain_core("core.prog.1234.zst") as path:   # doctest: +SKIP
...     CoreFile(path)

The compression is recognised by the file's magic bytes (the name does not
matter); :data:`COMPRESSED_SUFFIXES` is what the ``--dir`` naming rule
accepts.  Decompression streams 1 MiB at a time into a temporary file, checks
the first bytes are an ELF core header before writing anything, and stops
with :class:`~gdbext.errors.CoreFileError` once more than ``max_size`` bytes
come out (default :data:`DEFAULT_MAX_CORE_SIZE`): a few MB of xz can expand to
tens of GB.  Libraries: :mod:`lzma` and :mod:`gzip` of the standard library,
``zstandard`` and ``lz4`` from PyPI.
"""
from __future__ import annotations

import contextlib
import enum
import gzip
import lzma
import os
import re
import tempfile
import zlib
from typing import BinaryIO, Callable, Iterator, Tuple

from .errors import CoreFileError, GdbextError

__all__ = [
    "Compression",
    "COMPRESSED_SUFFIXES",
    "DEFAULT_MAX_CORE_SIZE",
    "compression_of",
    "parse_size",
    "decompress_to",
    "plain_core",
]

#: The default cap on a decompressed core: 16 GiB (``--max-core-size`` raises it).
DEFAULT_MAX_CORE_SIZE = 16 << 30

_CHUNK = 1 << 20


class Compression(enum.Enum):
    """How a core file is compressed."""

    NONE = "none"
    XZ = "xz"
    ZSTD = "zstd"
    LZ4 = "lz4"
    GZIP = "gzip"


#: File name suffixes of compressed cores, for the ``--dir`` naming rule.
COMPRESSED_SUFFIXES: Tuple[str, ...] = (".xz", ".zst", ".lz4", ".gz")

_MAGIC: Tuple[Tuple[bytes, Compression], ...] = (
    (b"\xfd7zXZ\x00", Compression.XZ),
    (b"\x28\xb5\x2f\xfd", Compression.ZSTD),
    (b"\x04\x22\x4d\x18", Compression.LZ4),  # the LZ4 frame format (lz4 tool, systemd)
    (b"\x1f\x8b", Compression.GZIP),
)


def compression_of(path: str) -> Compression:
    """The compression of the regular file ``path``, from its magic bytes.

    :raises CoreFileError: missing, unreadable or not a regular file.
    """
    from .elfsyms import open_file  # local: the CLI imports this module; pyelftools loads on use

    with open_file(path) as fh:
        head = fh.read(8)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return Compression.NONE


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes of ``"512M"``, ``"16G"``, ``"1.5GiB"``, ``"4096"`` (binary units).

    :raises ValueError: not a size.
    """
    m = _SIZE.match(text)
    if m is None:
        raise ValueError(f"not a size: {text!r} (use e.g. 512M, 16G)")
    scale = 1 << (10 * " kmgt".index(m.group(2).lower() or " "))
    value = int(float(m.group(1)) * scale)
    if value <= 0:
        raise ValueError(f"not a positive size: {text!r}")
    return value


def _opener(kind: Compression) -> Callable[[BinaryIO], BinaryIO]:
    if kind is Compression.XZ:
        return lambda fh: lzma.open(fh)  # type: ignore[return-value]
    if kind is Compression.GZIP:
        return lambda fh: gzip.open(fh)  # type: ignore[return-value]
    if kind is Compression.ZSTD:
        import zstandard

        return lambda fh: zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True)
    if kind is Compression.LZ4:
        import lz4.frame

        return lambda fh: lz4.frame.open(fh)  # type: ignore[no-any-return]
    raise ValueError(kind)


def _errors() -> Tuple[type, ...]:
    """What a corrupt stream raises in each library (plus a short read and I/O errors)."""
    errs: Tuple[type, ...] = (lzma.LZMAError, zlib.error, gzip.BadGzipFile, EOFError, OSError)
    with contextlib.suppress(ImportError):
        import zstandard

        errs += (zstandard.ZstdError,)
    # lz4.frame raises RuntimeError for a damaged frame.
    return errs + (RuntimeError,)


def _check_header(head: bytes, label: str, kind: Compression) -> None:
    what = f"{label} ({kind.value}-compressed)"
    if len(head) < 18 or head[:4] != b"\x7fELF" or head[5] not in (1, 2):
        raise CoreFileError(f"{what} does not hold an ELF file; nothing decompressed")
    e_type = int.from_bytes(head[16:18], "little" if head[5] == 1 else "big")
    if e_type != 4:
        raise CoreFileError(f"{what} holds an ELF file that is not a core (type {e_type}); nothing decompressed")


def decompress_to(
    path: str, out: BinaryIO, max_size: int = DEFAULT_MAX_CORE_SIZE, should_stop: Callable[[], bool] = lambda: False
) -> Compression:
    """Stream the decompressed ``path`` into ``out``; the compression used.

    :param path: a compressed core file.
    :param out: where the plain bytes go (a file open for writing).
    :param max_size: stop past this many plain bytes.
    :param should_stop: asked before each 1 MiB block; True stops with
        :class:`~gdbext.errors.GdbextError` ("cancelled").
    :raises CoreFileError: not a regular file, not compressed, a damaged
        stream, contents that are not an ELF core, or more than ``max_size``.
    """
    kind = compression_of(path)
    if kind is Compression.NONE:
        raise CoreFileError(f"{path}: not compressed with xz, zstd, lz4 or gzip")
    errors = _errors()
    total = 0
    from .elfsyms import open_file  # local, as above

    with open_file(path) as raw:
        try:
            with _opener(kind)(raw) as src:
                head = src.read(64)
                _check_header(head, path, kind)
                out.write(head)
                total = len(head)
                while True:
                    if should_stop():
                        raise GdbextError("cancelled")
                    block = src.read(_CHUNK)
                    if not block:
                        break
                    total += len(block)
                    if total > max_size:
                        raise CoreFileError(
                            f"{path}: decompresses to more than {_human(max_size)} (the --max-core-size cap);"
                            " stopped"
                        )
                    out.write(block)
        except errors as err:
            raise CoreFileError(f"cannot decompress {path}: {err}") from None
    return kind


def _human(size: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size} bytes"


@contextlib.contextmanager
def plain_core(
    path: str, max_size: int = DEFAULT_MAX_CORE_SIZE, should_stop: Callable[[], bool] = lambda: False
) -> Iterator[str]:
    """``path`` itself when it is not compressed, else a decompressed temporary copy (removed on exit,
    whatever happens, a cancellation or a signal included).

    :raises CoreFileError: missing or not a regular file, or as :func:`decompress_to`.
    """
    if compression_of(path) is Compression.NONE:
        yield path
        return
    fd, tmp = tempfile.mkstemp(prefix="gdbext-core-")
    try:
        with os.fdopen(fd, "wb") as out:
            decompress_to(path, out, max_size, should_stop)
        yield tmp
    finally:
        os.unlink(tmp)

