"""Starter printer modules written from DWARF: ``gdbext scaffold``.

The gdb command (``commands/scaffold.py``) reads a struct's layout from gdb's
types into the plain records below (:class:`TypeInfo`, :class:`MemberInfo`);
:func:`render_module` turns them into a :mod:`gdbext.kit` declaration per
struct: every member in order with its offset (bit range and width for
bitfields) and C type in a comment, enums as :class:`~gdbext.kit.Names`,
1-bit fields as :class:`~gdbext.kit.Bool`, nested structs declared after
their container, and ``TODO`` comments where a person must add meaning
(flag names, units).  The module loads as written.

:func:`scaffold_binary` is the command line's way in: it runs gdb in batch
on a binary to read its DWARF.  Nothing here imports gdb.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from .errors import GdbextError, SpecError
from .gdbrun import quote_arg, run_gdb

__all__ = ["MemberInfo", "TypeInfo", "render_module", "scaffold_binary", "join_type_words", "KINDS"]

#: The member kinds the gdb side reports.
KINDS = ("int", "bool", "char", "enum", "float", "pointer", "array", "struct", "union", "other")

#: Integer typedefs that say nothing about packed fields (no packed-word hint for these).
_PLAIN_TYPEDEFS = frozenset(
    [f"{u}int{n}_t" for u in ("", "u") for n in (8, 16, 32, 64)]
    + ["size_t", "ssize_t", "off_t", "off64_t", "pid_t", "uid_t", "gid_t", "time_t", "intptr_t", "uintptr_t",
       "ptrdiff_t", "socklen_t", "mode_t", "dev_t", "ino_t", "clock_t", "suseconds_t", "useconds_t", "bool",
       "_Bool", "wchar_t", "char16_t", "char32_t"]
)

#: Member-name hints: words in a name -> the suggestion written in its TODO comment.
_HINTS = (
    (("flag", "flags", "mask", "opts", "options", "caps", "perm", "perms"), "flag names? Flags({...})"),
    (("magic", "crc", "hash", "addr", "address", "cookie", "checksum", "sig", "signature"), "Hex()?"),
    (("state", "status", "kind", "type", "mode", "op", "cmd", "code"), "value names? Names({...})"),
    (("ms", "msec", "msecs"), 'a unit? Unit("ms")'),
    (("us", "usec", "usecs"), 'a unit? Unit("us")'),
    (("ns", "nsec", "nsecs"), 'a unit? Unit("ns")'),
    (("sec", "secs", "seconds"), 'a unit? Unit("s")'),
    (("hz", "rate", "freq"), 'a unit? Unit("Hz")'),
    (("timeout", "delay", "interval", "time", "timestamp", "seen", "deadline"), "a unit? Unit(...)"),
    (("size", "len", "length", "bytes", "capacity", "cap"), 'a unit? Unit("B")'),
)
_DEFAULT_HINT = "meaning?"

#: Comments line up after entries up to this long; longer entries keep theirs two spaces on.
_ALIGN = 36

#: Entries longer than this are split over lines (long enums).
_WIDTH = 100

_SUMMARY_MEMBERS = 3


@dataclass
class MemberInfo:
    """One member of a struct as DWARF describes it.

    :param name: member name (None for an anonymous struct/union member)
    :param ctype: the C type as gdb spells it (``enum sensor_unit``, ``char [48]``)
    :param bitpos: offset from the start of the struct in bits
    :param bitsize: width in bits for a bitfield, else 0
    :param size: size in bytes of the member's type
    :param kind: one of :data:`KINDS`
    :param signed: a signed integer type
    :param enum: value -> enumerator for enum members
    :param nested: the named struct/union type this member holds (directly or as an array)
    :param members: the members of an anonymous struct/union member, listed in place
    :param typedef: the integer typedef name the member is declared with (a packed word, maybe)
    :param count: the element count of an array member
    """

    name: Optional[str]
    ctype: str
    bitpos: int
    bitsize: int = 0
    size: int = 0
    kind: str = "other"
    signed: bool = False
    enum: Optional[Dict[int, str]] = None
    nested: Optional[str] = None
    members: Optional[List["MemberInfo"]] = None
    typedef: Optional[str] = None
    count: Optional[int] = None

    @property
    def where(self) -> str:
        """``+8`` for a byte offset; ``+40 bits 0..2`` (or ``bit 3``) for a bitfield.

        A bitfield's bits count from the least significant bit of the unit of its
        declared type (an ``unsigned int`` at ``+40``) that holds it.
        """
        if not self.bitsize:
            return f"+{self.bitpos // 8}"
        unit = self.size if self.size in (1, 2, 4, 8) else 1
        base = self.bitpos // (8 * unit) * unit
        low = self.bitpos - 8 * base
        if low + self.bitsize > 8 * unit:  # straddles units (packed structs): count from the struct start
            base, low = 0, self.bitpos
        bits = f"bit {low}" if self.bitsize == 1 else f"bits {low}..{low + self.bitsize - 1}"
        return f"+{base} {bits}"


@dataclass
class TypeInfo:
    """A struct or union: its name as declared (``struct slot``), size in bytes, members in order."""

    name: str
    size: int
    members: List[MemberInfo] = field(default_factory=list)


def join_type_words(words: Sequence[str]) -> List[str]:
    """Type names from command words, re-joining an unquoted keyword: ``struct foo bar_t`` -> 2 names."""
    out: List[str] = []
    pending: Optional[str] = None
    for word in words:
        if pending is not None:
            out.append(f"{pending} {word}")
            pending = None
        elif word in ("struct", "union", "enum", "class"):
            pending = word
        else:
            out.append(word)
    if pending is not None:
        raise SpecError(f"'{pending}' needs a name after it")
    return out


def _q(text: str) -> str:
    """A Python string literal (double quotes, as the project writes them)."""
    return json.dumps(text)


def _names_literal(names: Dict[int, str], hexa: bool) -> str:
    items = [f"{v:#x}: {_q(n)}" if hexa else f"{v}: {_q(n)}" for v, n in sorted(names.items())]
    return "{" + ", ".join(items) + "}"


def _is_flag_enum(names: Dict[int, str]) -> bool:
    """Single-bit values reaching past bit 1 (``{0, 1, 2}`` counts as a plain enum)."""
    values = [v for v in names if v]
    return len(values) > 1 and all(v > 0 and v & (v - 1) == 0 for v in values) and max(values) >= 4


def _hint(name: str) -> str:
    words = [w for w in name.lower().replace("-", "_").split("_") if w]
    for keys, hint in _HINTS:
        if any(w in keys for w in words):
            return hint
    return _DEFAULT_HINT


def _entry(m: MemberInfo) -> Tuple[str, str]:
    """(format expression, comment) for one member."""
    where = f"{m.where} ({m.bitsize} bits)" if m.bitsize > 1 else m.where
    about = f"{where} {m.ctype}"
    if m.kind == "enum" and m.enum:
        if _is_flag_enum(m.enum):
            return f"Flags({_names_literal(m.enum, True)})", about
        return f"Names({_names_literal(m.enum, False)})", about
    if m.kind == "bool" or (m.bitsize == 1 and not m.signed and m.kind in ("int", "char")):
        return "Bool()", f"{about}. TODO a flag? name its meaning"
    if m.kind in ("int", "char"):
        if m.typedef and m.typedef not in _PLAIN_TYPEDEFS and not m.bitsize:
            return "None", f"{about}. TODO packed bits? declare a PackedWord (docs/specs.md)"
        return "None", f"{about}. TODO {_hint(m.name or '')}"
    if m.kind == "float":
        return "None", f"{about}. TODO a unit? Unit(...)"
    if _is_text(m) and m.kind == "array":
        return "None", f"{about}. TODO Text() shows it up to its NUL"
    if m.nested and m.kind in ("struct", "union", "array"):
        return "None", f"{about}: its own printer, below"
    return "None", about


def _field_lines(members: Sequence[MemberInfo], indent: str) -> List[Tuple[Optional[str], str]]:
    """(code, comment) rows of the ``fields={...}`` body, anonymous members flattened."""
    rows: List[Tuple[Optional[str], str]] = []
    for m in members:
        if m.name is None:
            kind = m.kind if m.kind in ("struct", "union") else "member"
            rows.append((None, f"{indent}# members of an anonymous {kind} at {m.where}:"))
            rows.extend(_field_lines(m.members or [], indent))
            continue
        expr, comment = _entry(m)
        code = f"{indent}{_q(m.name)}: {expr},"
        if len(code) > _WIDTH and m.enum and expr.endswith("})"):  # a long enum: one name a line
            hexa = expr.startswith("Flags")
            rows.append((f"{indent}{_q(m.name)}: {expr.split('(')[0]}({{", f"# {comment}"))
            for value, name in sorted(m.enum.items()):
                key = f"{value:#x}" if hexa else str(value)
                rows.append((None, f"{indent}    {key}: {_q(name)},"))
            rows.append((None, f"{indent}}}),"))
            continue
        rows.append((code, f"# {comment}"))
    return rows


def _flat(members: Sequence[MemberInfo]) -> List[MemberInfo]:
    out: List[MemberInfo] = []
    for m in members:
        out.extend(_flat(m.members or []) if m.name is None else [m])
    return out


def _is_text(m: MemberInfo) -> bool:
    """A C string: a ``char *`` or a ``char`` array."""
    return m.kind in ("pointer", "array") and m.ctype.replace("const ", "").startswith(("char *", "char ["))


def _summary(info: TypeInfo) -> Optional[str]:
    """A first summary: the first few scalar members as ``name={name}``."""
    picked = [m.name for m in _flat(info.members) if m.name and (
        m.kind in ("int", "bool", "char", "enum", "float") or _is_text(m))][:_SUMMARY_MEMBERS]
    if not picked:
        return None
    return " ".join(f"{n}={{{n}}}" for n in picked)


def _declaration(info: TypeInfo) -> List[str]:
    lines = ["struct_printer(", f"    {_q(info.name)},  # {info.size} bytes", "    fields={"]
    rows = _field_lines(info.members, " " * 8)
    width = max([len(code) for code, _ in rows if code is not None and len(code) <= _ALIGN] + [0])
    for code, comment in rows:
        lines.append(comment if code is None else f"{code.ljust(width)}  {comment}")
    lines.append("    },")
    summary = _summary(info)
    if summary is not None:
        lines.append(f"    summary={_q(summary)},  # TODO the one line you want to read first")
    lines.append(")")
    return lines


def render_module(types: Sequence[TypeInfo], binary: Optional[str] = None) -> str:
    """A Python module declaring a kit printer for each of ``types`` (in the order given).

    :param types: the structs to declare; nested ones usually follow their container
    :param binary: the program the layouts were read from (named in the header)
    :raises SpecError: when ``types`` is empty
    """
    if not types:
        raise SpecError("nothing to scaffold: give at least one struct or union type")
    names = ", ".join(t.name for t in types)
    head = [
        f'"""gdbext printers for {names}.',
        "",
        f"A scaffold written by `gdbext scaffold` from the DWARF of {binary or 'the program'}.",
        "Load it in gdb with `gdbext load FILE` or `source FILE` (gdbext loaded first),",
        "or name it PROGRAM-gdb.py next to the program to have gdb auto-load it",
        "(docs/printer-kit.md).  Every member is listed with its place in the struct;",
        "None prints it as gdb does.  Where a TODO asks, give numbers their meaning:",
        'Names({0: "IDLE", 1: "OPEN"}), Flags({0x1: "READ", 0x2: "WRITE"}), Unit("ms"),',
        'Unit("C", scale=0.1), Hex(), Bool(), Text(), Hidden() or any function of the number;',
        "then trim the summary to what you want to read first.",
        '"""',
        "from gdbext.kit import Bool, Flags, Hex, Hidden, Names, Text, Unit, struct_printer  # noqa: F401",
        "",
    ]
    body: List[str] = []
    for info in types:
        body.append("")
        body.extend(_declaration(info))
    return "\n".join(head + body) + "\n"


def scaffold_binary(binary: str, types: Sequence[str], timeout: float = 120.0, pool: Optional[str] = None) -> str:
    """The scaffold module for ``types`` in ``binary``, read by running gdb in batch on it.

    :param binary: a program (or shared library, or separate debug file) with DWARF
    :param types: type names: ``"struct foo"``, ``"union u"``, a typedef name
    :param pool: a pool variable to propose a spec for (``--pool``)
    :raises GdbextError: when the binary is missing or gdb cannot find a type
    """
    if not os.path.isfile(binary):
        raise GdbextError(f"{binary}: no such file")
    if not types and not pool:
        raise SpecError("give at least one --type (or --pool VAR)")
    fd, out = tempfile.mkstemp(prefix="gdbext-scaffold-", suffix=".py")
    os.close(fd)
    try:
        command = "gdbext scaffold " + " ".join(quote_arg(t) for t in types) + " --force --output " + quote_arg(out)
        if pool:
            command += " --pool " + quote_arg(pool)
        result = run_gdb(binary, commands=[command], timeout=timeout)
        with open(out, encoding="utf-8") as fh:
            text = fh.read()
    finally:
        os.unlink(out)
    if not text:
        prefix = "gdbext scaffold: "
        errors = [line[len(prefix):] for line in result.stderr.splitlines() if line.startswith(prefix)]
        raise GdbextError(errors[-1] if errors else f"gdb wrote no scaffold: {result.output.strip()[-300:]}")
    return text
