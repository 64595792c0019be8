"""Starter spec declarations written from DWARF: packed words and pools (``gdbext scaffold``).

* A typedef of an integer (``typedef uint64_t sensor_word_t``) gets a
  :class:`~gdbext.packed.PackedWord` skeleton.  When the binary carries macro
  information (``-g3``), the fields are proposed from macro families
  ``PREFIX_NAME_SHIFT`` with ``PREFIX_NAME_MASK`` or ``PREFIX_NAME_BITS``
  (:func:`propose_fields`).
* A pool variable gets a :class:`~gdbext.pools.PoolSpec` proposal from its
  type (:class:`PoolShape`, filled in by the gdb command): the slot array,
  the header struct, a pointer field to the header's own type as the
  free-list link, a magic-looking integer field.

The gdb side reads the facts; this module only decides and renders, and
never imports gdb.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = ["MacroField", "propose_fields", "render_packed", "PoolShape", "render_pool", "parse_macro_int"]

_INT = re.compile(r"^\(?\s*(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)\s*(?:[uU]?[lL]{0,2}|[lL]{1,2}[uU])\s*\)?$")


def parse_macro_int(text: str) -> Optional[int]:
    """An integer literal macro body (``0xFFFULL``, ``(12)``, ``7u``); None for anything else."""
    m = _INT.match(text.strip())
    if m is None:
        return None
    lit = m.group(1)
    return int(lit, 16) if lit[:2] in ("0x", "0X") else int(lit, 8) if lit.startswith("0") and lit != "0" else int(lit)


@dataclass(frozen=True)
class MacroField:
    """A field proposed from a macro family: ``PREFIX_NAME_SHIFT`` with ``_MASK`` or ``_BITS``."""

    name: str
    offset: int
    width: int
    source: str  #: the macros it comes from


def _width(mask: int, shift: int) -> Optional[int]:
    if mask <= 0:
        return None
    if mask & ((1 << shift) - 1) == 0 and mask >> shift:
        mask >>= shift  # the mask is given in place
    if mask & (mask + 1):
        return None  # not contiguous from bit 0
    return mask.bit_length()


def propose_fields(macros: Dict[str, str], bits: int, typedef: str = "") -> Tuple[List[MacroField], List[str]]:
    """Fields from the macro family that best fits a ``bits``-bit word; (fields, other prefixes seen).

    A family is every ``P_X_SHIFT`` sharing the prefix ``P`` (up to the first underscore) that has a
    ``P_X_MASK`` or ``P_X_BITS``.  The family whose prefix matches the typedef's initials wins
    (``SW`` for ``sensor_word_t``), else the largest; fields that overlap or leave the word are dropped.
    """
    families: Dict[str, List[MacroField]] = {}
    for name, body in macros.items():
        if not name.endswith("_SHIFT") or "_" not in name[:-6]:
            continue
        stem = name[:-6]
        shift = parse_macro_int(body)
        if shift is None:
            continue
        width = None
        source = name
        if f"{stem}_BITS" in macros:
            width = parse_macro_int(macros[f"{stem}_BITS"])
            source += f" / {stem}_BITS"
        elif f"{stem}_MASK" in macros:
            mask = parse_macro_int(macros[f"{stem}_MASK"])
            width = _width(mask, shift) if mask is not None else None
            source += f" / {stem}_MASK"
        if not width or shift + width > bits:
            continue
        prefix, _, fname = stem.partition("_")
        families.setdefault(prefix, []).append(MacroField(fname.lower(), shift, width, source))
    if not families:
        return [], []
    initials = "".join(w[0] for w in typedef.lower().split("_")[:-1] if w) if typedef.endswith("_t") else ""
    best = max(families, key=lambda p: (p.lower() == initials, len(families[p]), p))
    chosen: List[MacroField] = []
    used = 0
    for f in sorted(families[best], key=lambda f: (f.offset, f.width)):
        mask = ((1 << f.width) - 1) << f.offset
        if mask & used:
            continue
        used |= mask
        chosen.append(f)
    return chosen, sorted(p for p in families if p != best)


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_packed(typedef: str, size: int, fields: Sequence[MacroField], others: Sequence[str] = (),
                  binary: Optional[str] = None, with_macros: bool = True) -> str:
    """A spec module declaring a :class:`~gdbext.packed.PackedWord` for ``typedef``; loads as written."""
    bits = 8 * size
    head = [
        f'"""gdbext packed word for {typedef} ({bits} bits).',
        "",
        f"A scaffold written by `gdbext scaffold` from the DWARF of {binary or 'the program'}.",
    ]
    if fields:
        head.append("Fields proposed from the program's *_SHIFT / *_MASK / *_BITS macros; give them meaning:")
    elif with_macros:
        head.append("No *_SHIFT macro family fits this word: declare its fields by hand.")
    else:
        head.append("The binary has no macro information (build with -g3 to have fields proposed).")
    head += [
        'signed=True, scale=0.1, unit="C", enum={0: "IDLE"}, flags={0x1: "READY"}.',
        "Load it with `gdbext load FILE` (docs/specs.md).",
        '"""',
        "from gdbext.packed import Field, PackedWord",
        "from gdbext.specs import packed_word",
        "",
        f"packed_word(PackedWord({_q(typedef)}, [",
    ]
    body = []
    for f in fields:
        code = f"    Field({_q(f.name)}, {f.offset}, {f.width}),"
        body.append(f"{code.ljust(40)}  # bits {f.offset}..{f.offset + f.width - 1}: {f.source}; TODO meaning?")
    if not fields:
        body.append(f"    Field(\"value\", 0, {bits}),  # TODO split into the word's real fields")
    tail = [f"], size={size}), typedef={_q(typedef)})"]
    if others:
        tail.append(f"# other macro families in the program: {', '.join(others)}")
    return "\n".join(head + body + tail) + "\n"


@dataclass
class PoolShape:
    """What the gdb command found in a pool variable's type.

    :param var: the variable's name
    :param slots: the member holding the slot array (``slots``), and its element count
    :param slot_type: the array element's type name
    :param header: the header type name (a struct first in the slot, else the slot type itself)
    :param header_member: the slot member holding the header (None: the slot is the header)
    :param payload_offset: where the slot's bytes after the header start (None: after the header)
    :param header_fields: the header's fields: (name, C type, size, is a pointer to the header/slot type)
    :param head_member: a member of the pool pointing to the header/slot type (the free-list head)
    :param count_member: an integer member that looks like the slot count
    """

    var: str
    slots: str
    count: int
    slot_type: str
    header: str
    header_member: Optional[str] = None
    payload_offset: Optional[int] = None
    header_fields: List[Tuple[str, str, int, bool]] = field(default_factory=list)
    head_member: Optional[str] = None
    count_member: Optional[str] = None
    payload_size: Optional[int] = None  #: the payload member's size, when more members follow it (a guard)
    after_payload: Optional[str] = None  #: the member after the payload


_MAGIC = re.compile(r"magic|cookie|canary|tag|sig", re.I)
_REQ = re.compile(r"req|size|len", re.I)
_SITE = re.compile(r"site|caller|ret|pc|owner", re.I)


def render_pool(shape: PoolShape, binary: Optional[str] = None) -> str:
    """A spec module proposing a :class:`~gdbext.pools.PoolSpec` for ``shape``; TODOs where a person decides."""
    link = next((n for n, _t, _s, self_ptr in shape.header_fields if self_ptr), None)
    magic = next((n for n, _t, s, p in shape.header_fields if not p and s == 4 and _MAGIC.search(n)), None)
    req = next((n for n, _t, s, p in shape.header_fields if not p and s in (2, 4, 8) and n != magic
                and _REQ.search(n)), None)
    site = next((n for n, t, s, p in shape.header_fields if "*" in t and not p and _SITE.search(n)), None)
    v = shape.var
    count = f"{v}.{shape.count_member}" if shape.count_member else str(shape.count)
    lines = [
        f'"""gdbext pool spec for {v}: a proposal read from the DWARF of {binary or "the program"}.',
        "",
        "Check each line against the allocator's code, fill the TODOs, then",
        "`gdbext check-spec FILE` (or `gdbext check-spec FILE BINARY CORE` on the command line).",
        '"""',
        "from gdbext.pools import FixedSlots, FreeList, InFreeList, Magic, PoolSpec  # noqa: F401",
        "from gdbext.specs import pool",
        "",
        "pool(PoolSpec(",
        f"    name={_q(v)},",
        f"    root={_q(v)},",
        f"    geometry=FixedSlots(first={_q(f'&{v}.{shape.slots}[0]')}, slot_size={_q(f'sizeof({shape.slot_type})')},",
        f"                        count={_q(count) if shape.count_member else count}),"
        + ("" if shape.count_member else f"  # {shape.count} slots in the array"),
        f"    header={_q(shape.header)},",
    ]
    if shape.header_member is not None and shape.payload_offset is not None:
        lines.append(f"    payload_offset={shape.payload_offset},  # the slot's bytes after {shape.header_member}")
    if shape.payload_size is not None:
        lines.append(f"    payload_size={shape.payload_size},  # then {shape.after_payload}: TODO guard=Guard(...)?")
    if magic:
        lines.append(f"    in_use=Magic({_q(magic)}, used=0x0, free=0x0),  # TODO the allocator's two magic values")
    elif link:
        lines.append("    in_use=InFreeList(),  # no magic-looking field: free means on the free list")
    if req:
        lines.append(f"    requested_size={_q(req)},  # TODO the size the caller asked for?")
    if site:
        lines.append(f"    alloc_site={_q(site)},  # TODO a return address recorded at allocation?")
    if link and shape.head_member:
        lines.append(f"    free_list=FreeList(head={_q(f'{v}.{shape.head_member}')}, link={_q(link)}),")
    elif link:
        lines.append(f"    # TODO free_list=FreeList(head=\"...\", link={_q(link)}),  (no head pointer found in {v})")
    lines.append("))")
    return "\n".join(lines) + "\n"
