"""Unit tests of packed-word layouts (no gdb): decode, encode, size, formatting, errors."""
import construct
import pytest
from hypothesis import given, settings, strategies as st

from gdbext.errors import SpecError
from gdbext.packed import Field, PackedWord, format_enum, format_flags

WORD = PackedWord("sensor_word_t", [
    Field("temp", 0, 12, signed=True, scale=0.1, unit="C"),
    Field("unit", 12, 2, enum={0: "CELSIUS", 1: "FAHRENHEIT", 2: "KELVIN"}),
    Field("valid", 14, 1),
    Field("overrange", 15, 1),
    Field("channel", 16, 4),
    Field("humidity", 20, 12, scale=0.1, unit="%"),
    Field("seq", 32, 16),
    Field("crc", 48, 16),
])

# The value sensor.c packs for g_word: temp -123, KELVIN, VALID, channel 9, humidity 456, seq 0xBEEF, crc 0x1234.
G_WORD = (0x1234 << 48) | (0xBEEF << 32) | (456 << 20) | (9 << 16) | (1 << 14) | (2 << 12) | (-123 & 0xFFF)


def test_decode_signed_scaled_enum_and_flags():
    d = WORD.decode(G_WORD)
    assert d["temp"] == -123
    assert d["unit"] == 2
    assert d["seq"] == 0xBEEF and d["crc"] == 0x1234
    assert d.text() == ("{temp = -12.3 C, unit = KELVIN, valid = true, overrange = false, channel = 9, "
                        "humidity = 45.6 %, seq = 48879, crc = 4660}")


def test_full_64_bit_word():
    d = WORD.decode(0xFFFFFFFFFFFFFFFF)
    assert d["temp"] == -1
    assert d["crc"] == 0xFFFF
    assert "unit = <invalid 3>" in d.text()
    assert d.text(raw=True).startswith("0xffffffffffffffff {")


def test_construct_roundtrip_parse_build_sizeof():
    data = G_WORD.to_bytes(8, "little")
    parsed = WORD.parse(data)
    assert parsed.temp == -123 and parsed.unit == 2
    assert WORD.build(parsed) == data
    assert WORD.sizeof() == 8
    # composes inside a construct Struct like any other field
    frame = construct.Struct("seq" / construct.Int32ul, "word" / WORD)
    assert frame.parse(b"\x07\0\0\0" + data).word.channel == 9


def test_big_endian_and_small_words():
    w16 = PackedWord("w16", [Field("lo", 0, 4), Field("hi", 12, 4)], size=2, byteorder="big")
    assert w16.decode(b"\xa0\x05")["hi"] == 0xA
    assert w16.decode(b"\xa0\x05")["lo"] == 5


@settings(max_examples=300, derandomize=True)
@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_encode_inverts_decode(word):
    d = WORD.decode(word)
    values = {fv.field.name: fv.value for fv in d.fields}
    used = 0
    for f in WORD.fields:
        used |= f.mask << f.offset
    assert WORD.encode(values) == word & used


def test_formatting_helpers():
    assert format_enum(7, {0: "OFF"}) == "<invalid 7>"
    assert format_flags(0x5, {1: "A", 4: "C"}) == "0x5 [A | C]"
    assert format_flags(0x9, {1: "A"}) == "0x9 [A | <unknown: 0x8>]"
    assert format_flags(0, {1: "A"}) == "0"


@pytest.mark.parametrize("fields, message", [
    ([Field("a", 0, 4), Field("b", 3, 2)], "overlaps"),
    ([Field("a", 60, 8)], "do not fit"),
    ([Field("a", 0, 4), Field("a", 4, 4)], "declared twice"),
    ([Field("a", 0, 0)], "do not fit"),
])
def test_bad_layouts_are_refused(fields, message):
    with pytest.raises(SpecError, match=message):
        PackedWord("bad", fields)


def test_encode_range_checks():
    with pytest.raises(SpecError, match="does not fit"):
        WORD.encode({"temp": 5000})
    with pytest.raises(SpecError, match="no field"):
        WORD.encode({"nope": 1})


def test_flag_field():
    status = PackedWord("st", [Field("flags", 0, 4, flags={1: "VALID", 2: "OVERRANGE"})], size=1)
    assert status.decode(3).text() == "{flags = 0x3 [VALID | OVERRANGE]}"
    assert status.decode(8).text() == "{flags = 0x8 [<unknown: 0x8>]}"
