# gdbext/forensics/typed.py - what a referrer's DWARF type says about a chunk's
# contents: the size of its elements and their fields, for reading the bytes
# past a buffer's end as further elements of the same type.
"""Typed chunk contents.

The ``field_at`` callback of the context (a typed referrer: ``g_samples``
of type ``struct sample *``) names each byte of a chunk: ``id``,
``value+2``, and past the first element ``[1].id``.  From those names
:func:`element_layout` recovers the element size (the first offset named
``[1]...``) and the element's fields (offset and width), which
:func:`~gdbext.forensics.continuity.typed_run` uses to learn the structure
of the elements before a boundary field by field.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

from .context import ForensicContext
from .model import ChunkView
from .uaf import field_extent

__all__ = ["element_layout", "MAX_ELEMENT"]

#: Largest element size probed (bytes).
MAX_ELEMENT = 512


def element_layout(ctx: ForensicContext, chunk: ChunkView) -> Optional[Tuple[int, List[Tuple[str, int, int]]]]:
    """(element size, [(field, offset, width)]) of the typed array a chunk holds; None when untyped."""
    if ctx.field_name(chunk.address, 0) is None:
        return None
    size = None
    for off in range(1, min(chunk.usable, MAX_ELEMENT)):
        name = ctx.field_name(chunk.address, off)
        if name is not None and name.startswith("[1]"):
            size = off
            break
    if size is None:
        return None
    fields: List[Tuple[str, int, int]] = []
    off = 0
    while off < size:
        ext = field_extent(ctx, chunk, off)
        if ext is None:
            off += 1
            continue
        name, start, width = ext
        fields.append((name, start, width))
        off = max(start + width, off + 1)
    return size, fields
