# gdbext/forensics/evidence.py - small builders of evidence entries shared by
# the detectors: annotated hexdumps, a field's bytes as value/text/poison,
# size classes and the ASan-style location of an address in a chunk.
"""Evidence helpers.

Each helper returns JSON-ready values (strings, ints, lists, dicts) so a
:class:`~gdbext.forensics.model.Finding` can be serialised as is.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from ..poison import classify_word
from ..textutil import Mark, hexdump, printable_text
from .chunks import ChunkIndex
from .context import ForensicContext
from .model import ChunkView

__all__ = ["dump", "field_bytes", "size_class", "location", "NO_RECORD", "word_note"]

#: The note every glibc finding carries about allocation history.
NO_RECORD = ("no allocation record exists for glibc chunks: glibc keeps no allocation or free stack, "
             "so the site is not known from the core")

#: Bytes shown around a hexdump's marks, at most.
_CONTEXT = 32
#: Rows of a hexdump, at most.
_MAX_ROWS = 24


def dump(index: ChunkIndex, start: int, end: int, marks: Sequence[Mark] = ()) -> List[str]:
    """An annotated hexdump of ``[start, end)`` (16-byte rows, at most :data:`_MAX_ROWS` rows)."""
    start -= start % 16
    end = max(end, start + 16)
    end += (-end) % 16
    if end - start > 16 * _MAX_ROWS:
        end = start + 16 * _MAX_ROWS
    data = index.read(start, end - start)
    return hexdump(data, start, list(marks)) if data else []


def word_note(ctx: ForensicContext, raw: bytes) -> Optional[str]:
    """"text ..." or "poison (...)" for a pointer-sized value, or None."""
    if len(raw) != ctx.pointer_size:
        text = printable_text(raw, threshold=1.0, min_len=4)
        return f'text "{text}"' if text else None
    value = int.from_bytes(raw, ctx.order)
    word = classify_word(value, ctx.pointer_size, ctx.order, perturb_byte=ctx.perturb_byte)
    return word.describe() if word is not None else None


def field_bytes(ctx: ForensicContext, name: Optional[str], address: Optional[int], raw: bytes,
                **extra: Any) -> Dict[str, Any]:
    """A broken field: its name, address, bytes, value and what the value looks like."""
    out: Dict[str, Any] = {"field": name, "address": f"{address:#x}" if address is not None else None,
                           "bytes": raw.hex()}
    if raw and len(raw) <= 8:
        out["value"] = f"{int.from_bytes(raw, ctx.order):#x}"
    note = word_note(ctx, raw) if raw else None
    if note:
        out["looks_like"] = note
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def size_class(ctx: ForensicContext, chunk: ChunkView) -> Optional[str]:
    """``chunk size 0x30 serves requests of 25..40 bytes`` for glibc chunks."""
    if ctx.heap is None or chunk.is_pool or chunk.state in ("corrupt", "top"):
        return None
    lay = ctx.heap.layout
    ssz = lay.size_sz
    if chunk.state == "mmapped":
        return f"mmapped chunk of {chunk.size:#x} bytes (requests above the mmap threshold)"
    hi = chunk.size - ssz
    lo = max(hi - lay.malloc_alignment + 1, 0) if chunk.size > lay.minsize else 0
    return f"chunk size {chunk.size:#x} serves requests of {lo}..{hi} bytes"


def location(address: int, chunk: ChunkView, index: Optional[ChunkIndex] = None) -> str:
    """Where ``address`` lies relative to the chunk's region, in ASan's words.

    ``0x4aa450 is 8 bytes after the 40-byte region [0x4aa420, 0x4aa448) of g_pool slot 3``.
    """
    start, end = chunk.user_address, chunk.region_end
    size = chunk.region_size
    what = "requested" if chunk.requested is not None else "usable"
    region = f"the {size}-byte region [{start:#x}, {end:#x}) ({what}) of {chunk.label}"
    if address < start:
        field = index.field_name(chunk, address) if index is not None else None
        where = f", in its header field {field}" if field else ", in its header"
        return f"{address:#x} is {start - address} bytes before {region}{where}"
    if address < end:
        return f"{address:#x} is {address - start} bytes inside of {region}"
    tail = ""
    if address < chunk.end:
        tail = " (still inside the chunk: its slack or guard bytes)" if chunk.is_pool or chunk.requested else ""
    return f"{address:#x} is {address - end} bytes after {region}{tail}"
