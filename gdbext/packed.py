"""Hand-packed words: a declarative bit layout for integers DWARF knows only as ``uint64_t``.

A team declares each field once (name, bit offset from the least significant
bit, width, signedness, enum or flag names, unit) and gets a decoder that
works on an integer or on raw bytes, composes inside construct structs, and
formats the way gdb shows enums and flag enums::

    SENSOR_WORD = PackedWord("sensor_word_t", [
        Field("temp", 0, 12, signed=True, scale=0.1, unit="C"),
        Field("unit", 12, 2, enum={0: "CELSIUS", 1: "FAHRENHEIT", 2: "KELVIN"}),
        Field("status", 14, 2, flags={1: "VALID", 2: "OVERRANGE"}),
        Field("seq", 32, 16),
    ])
    SENSOR_WORD.decode(0x1234).text()

``PackedWord`` is a construct ``Adapter`` over an integer of ``size`` bytes,
so ``SENSOR_WORD.parse(b"...")`` and ``SENSOR_WORD.build({...})`` work too.
Nothing here imports gdb.
"""
from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from typing import Dict, List, Mapping, Optional, Sequence, Union

import construct

from .errors import SpecError

__all__ = ["Field", "FieldValue", "DecodedWord", "PackedWord", "format_flags", "format_enum"]


@dataclass(frozen=True)
class Field:
    """One field of a packed word.

    :param name: field name as shown to the user
    :param offset: bit offset of the field's least significant bit (0 = LSB of the word)
    :param width: number of bits, 1..64
    :param signed: two's-complement field
    :param enum: value -> name; other values print as ``<invalid N>``
    :param flags: bit mask (within the field) -> name; printed as ``0x3 [A | B]``
    :param unit: unit appended to the (scaled) value, e.g. ``"C"``
    :param scale: multiply the raw value by this before showing it (e.g. 0.1)
    """

    name: str
    offset: int
    width: int
    signed: bool = False
    enum: Optional[Mapping[int, str]] = None
    flags: Optional[Mapping[int, str]] = None
    unit: Optional[str] = None
    scale: Optional[float] = None

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1

    def extract(self, word: int) -> int:
        """The field's value in ``word``, sign-extended when the field is signed."""
        raw = (word >> self.offset) & self.mask
        if self.signed and raw >> (self.width - 1):
            raw -= 1 << self.width
        return raw

    def insert(self, word: int, value: int) -> int:
        """``word`` with this field set to ``value`` (range-checked)."""
        low, high = (-(1 << (self.width - 1)), (1 << (self.width - 1)) - 1) if self.signed else (0, self.mask)
        if not low <= value <= high:
            raise SpecError(f"{self.name}: {value} does not fit in {self.width} {'signed ' if self.signed else ''}bits")
        return (word & ~(self.mask << self.offset)) | ((value & self.mask) << self.offset)

    @property
    def is_bool(self) -> bool:
        """A 1-bit unsigned field with no names: shown as true/false."""
        return self.width == 1 and not self.signed and not self.enum and not self.flags

    def format(self, value: int) -> str:
        """How the field's value reads to a person."""
        if self.enum is not None:
            return format_enum(value, self.enum)
        if self.flags is not None:
            return format_flags(value, self.flags)
        if self.is_bool:
            return "true" if value else "false"
        if self.scale is not None:
            shown = value * self.scale
            text = f"{shown:.{_decimals(self.scale)}f}"
        else:
            text = str(value)
        return f"{text} {self.unit}" if self.unit else text


def _decimals(scale: float) -> int:
    """Digits after the point that a scale such as 0.1 or 0.05 needs."""
    text = repr(scale)
    return len(text.split(".")[1]) if "." in text and "e" not in text else 3


def format_enum(value: int, names: Mapping[int, str]) -> str:
    """``NAME`` for a known value, ``<invalid N>`` otherwise."""
    name = names.get(value)
    return name if name is not None else f"<invalid {value}>"


def format_flags(value: int, names: Mapping[int, str]) -> str:
    """Flag set the way gdb prints a flag enum: ``0x5 [A | C]``, unknown bits as ``<unknown: 0x8>``."""
    if value == 0:
        return "0"
    parts = []
    rest = value
    for mask, name in sorted(names.items()):
        if mask and value & mask == mask:
            parts.append(name)
            rest &= ~mask
    if rest:
        parts.append(f"<unknown: {rest:#x}>")
    return f"{value:#x} [{' | '.join(parts)}]"


@dataclass(frozen=True)
class FieldValue:
    """A decoded field: the declaration, its value and how it reads."""

    field: Field
    value: int

    @property
    def text(self) -> str:
        return self.field.format(self.value)


@dataclass(frozen=True)
class DecodedWord:
    """A packed word split into its fields."""

    layout: "PackedWord"
    raw: int
    fields: List[FieldValue] = dc_field(default_factory=list)

    def __getitem__(self, name: str) -> int:
        for fv in self.fields:
            if fv.field.name == name:
                return fv.value
        raise KeyError(name)

    def text(self, raw: bool = False) -> str:
        """One line: ``{temp = -12.3 C, unit = KELVIN, ...}``, optionally after the raw word."""
        body = "{" + ", ".join(f"{fv.field.name} = {fv.text}" for fv in self.fields) + "}"
        if raw:
            return f"{self.raw:#0{2 + 2 * self.layout.size}x} {body}"
        return body


class PackedWord(construct.Adapter):
    """A declared bit layout over an unsigned integer of ``size`` bytes.

    :param name: name of the layout (usually the typedef it decodes)
    :param fields: the fields; they may leave gaps but must not overlap
    :param size: word size in bytes (1..8)
    :param byteorder: byte order of the word in memory
    """

    def __init__(
        self,
        name: str,
        fields: Sequence[Field],
        size: int = 8,
        byteorder: str = "little",
    ) -> None:
        if not 1 <= size <= 8:
            raise SpecError(f"packed word {name}: size {size} is not 1..8 bytes")
        super().__init__(construct.BytesInteger(size, signed=False, swapped=byteorder == "little"))
        self.name = name
        self.fields = list(fields)
        self.size = size
        self.byteorder = byteorder
        self._check()

    def _check(self) -> None:
        used = 0
        seen = set()
        for f in self.fields:
            if f.name in seen:
                raise SpecError(f"packed word {self.name}: field {f.name} declared twice")
            seen.add(f.name)
            if f.width < 1 or f.offset < 0 or f.offset + f.width > 8 * self.size:
                raise SpecError(
                    f"packed word {self.name}: field {f.name} bits {f.offset}..{f.offset + f.width - 1}"
                    f" do not fit a {8 * self.size}-bit word"
                )
            bits = f.mask << f.offset
            if used & bits:
                raise SpecError(f"packed word {self.name}: field {f.name} overlaps another field")
            used |= bits

    # -- decoding ---------------------------------------------------------
    def decode(self, word: Union[int, bytes]) -> DecodedWord:
        """Split ``word`` (an integer, or ``size`` bytes in the declared byte order)."""
        if isinstance(word, (bytes, bytearray, memoryview)):
            word = int.from_bytes(bytes(word)[: self.size], self.byteorder)
        word &= (1 << (8 * self.size)) - 1
        return DecodedWord(self, word, [FieldValue(f, f.extract(word)) for f in self.fields])

    def encode(self, values: Mapping[str, int]) -> int:
        """The word whose fields hold ``values`` (missing fields are 0)."""
        word = 0
        names = {f.name: f for f in self.fields}
        for key, value in values.items():
            if key not in names:
                raise SpecError(f"packed word {self.name}: no field named {key}")
            word = names[key].insert(word, int(value))
        return word

    # -- construct Adapter hooks -----------------------------------------
    def _decode(self, obj: int, context: object, path: object) -> construct.Container:
        return construct.Container({fv.field.name: fv.value for fv in self.decode(obj).fields})

    def _encode(self, obj: Mapping[str, int], context: object, path: object) -> int:
        return self.encode({k: v for k, v in dict(obj).items() if not k.startswith("_")})

    def describe(self) -> List[Dict[str, object]]:
        """The layout as plain data (for ``info`` output, docs and scaffolds)."""
        return [
            {"name": f.name, "offset": f.offset, "width": f.width, "signed": f.signed,
             "enum": dict(f.enum) if f.enum else None, "flags": dict(f.flags) if f.flags else None,
             "unit": f.unit, "scale": f.scale}
            for f in self.fields
        ]

    def __repr__(self) -> str:
        return f"PackedWord({self.name!r}, {len(self.fields)} fields, {self.size} bytes)"
