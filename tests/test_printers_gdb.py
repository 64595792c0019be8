"""The printers as a user sees them: real gdb, the sensor and pool fixture cores, facts from the programs."""
import re

import pytest

from conftest import Truth, binary, core, needs_gdb, spec
from gdbext.testing import GdbFailure, Program

pytestmark = needs_gdb

# struct sensor_status's bit ranges as the x86-64 SysV ABI lays out the C declaration in sensor.c.
STATUS_BITS = [("channel", 0, 4), ("unit", 4, 2), ("valid", 6, 1), ("calibrated", 7, 1),
               ("offset", 8, 6), ("mode", 14, 3), ("reserved", 17, 15)]


def expected_status(t: Truth, var: str) -> str:
    parts = []
    for name, pos, width in STATUS_BITS:
        label = f"{name} [{pos}]" if width == 1 else f"{name} [{pos}..{pos + width - 1}]"
        value = t[f"{var}.{name}"]
        if name == "unit":
            value = t[f"{var}.unit_name"]
        elif name == "mode":
            value = t[f"{var}.mode_name"]
            value = value if not value.isdigit() else f"<invalid {value}>"
        elif width == 1:
            value = "true" if value == "1" else "false"
        parts.append(f"{label} = {value}")
    return "{" + ", ".join(parts) + "}"


UNITS = {"0": "CELSIUS", "1": "FAHRENHEIT", "2": "KELVIN"}


def expected_word(t: Truth, var: str) -> str:
    g = lambda k: t[f"{var}.{k}"]  # noqa: E731
    return ("{" + f"temp = {int(g('temp')) / 10:.1f} C, unit = {UNITS.get(g('unit'), '<invalid ' + g('unit') + '>')}, "
            f"valid = {'true' if g('valid') == '1' else 'false'}, "
            f"overrange = {'true' if g('overrange') == '1' else 'false'}, channel = {int(g('channel'))}, "
            f"humidity = {int(g('humidity')) / 10:.1f} %, seq = {int(g('seq'), 0)}, crc = {int(g('crc'), 0)}" + "}")


@pytest.fixture(scope="module")
def sensor():
    return Truth("sensor")


def fixture(name: str, *specs: str, setup=()) -> Program:
    """The fixture's binary and core with the given spec files loaded."""
    return Program(binary(name), core(name), specs=[spec(s) for s in specs], setup=list(setup))


def test_bitfield_structs_match_the_program(sensor):
    got = fixture("sensor").show_all("g_status", "g_bad_status")
    assert got[0] == expected_status(sensor, "g_status")
    assert got[1] == expected_status(sensor, "g_bad_status")
    assert "mode [14..16] = <invalid 7>" in got[1]


def test_raw_view_parameter_shows_the_word(sensor):
    on = fixture("sensor", setup=["set gdbext show-raw on"]).show_all("g_status", "g_bad_status")
    off = fixture("sensor", setup=["set gdbext show-raw on", "set gdbext show-raw off"]).show_all("g_status")
    assert on[0] == f"raw {sensor['g_status_raw']} = " + expected_status(sensor, "g_status")
    assert on[1].startswith(f"raw {sensor['g_bad_status_raw']} = ")
    assert off[0] == expected_status(sensor, "g_status")


def test_packed_words_everywhere_gdb_prints_them(sensor):
    words = fixture("sensor", "sensor").show_all("g_word", "g_words", "g_frames[1].word", "g_words[2]")
    assert words[0] == expected_word(sensor, "g_word")
    assert words[1] == "{" + ", ".join(expected_word(sensor, f"g_words[{i}]") for i in range(3)) + "}"
    assert words[2] == expected_word(sensor, "g_frames[1].word")
    assert "unit = <invalid 3>" in words[3]  # every bit set: unit 3 is outside the enum
    raw = fixture("sensor", "sensor", setup=["set gdbext show-raw on"]).show_all("g_word")
    assert raw[0] == f"{sensor['g_word']} = " + expected_word(sensor, "g_word")


def test_locals_and_bt_full_are_decoded(sensor):
    out = "".join(fixture("sensor", "sensor").execute("bt full", "frame 1", "info locals"))
    w = "w = " + expected_word(sensor, "process_frame.w")
    st = "st = " + expected_status(sensor, "process_frame.st")
    assert out.count(w) == 2, out  # bt full and info locals
    assert out.count(st) == 2, out


def test_info_disable_enable_pretty_printer(sensor):
    listing, _, disabled, plain, _, shown, _, word = fixture("sensor", "sensor").execute(
        "info pretty-printer",
        "disable pretty-printer global gdbext;bitfield-structs",
        "info pretty-printer global gdbext",
        "print g_status",
        "enable pretty-printer global gdbext;bitfield-structs",
        "print g_status",
        "disable pretty-printer global gdbext",
        "print g_word",
    )
    assert re.search(r"\n  gdbext\n    bitfield-structs\n    packed:sensor_word_t\n", listing), listing
    assert "bitfield-structs [disabled]" in disabled
    assert plain.startswith("$1 = {channel = 5, unit = UNIT_FAHRENHEIT"), plain  # gdb's own view while disabled
    assert shown.strip() == "$2 = " + expected_status(sensor, "g_status")
    assert word.strip() == "$3 = " + str(int(sensor["g_word"], 16))


def test_unreadable_memory_never_raises(tmp_path):
    # gdb itself refuses to fetch an unreadable struct before any printer runs: one line, no traceback
    with pytest.raises(GdbFailure, match="Cannot access memory at address 0x10"):
        fixture("sensor", "sensor").show("*(struct sensor_status *)0x10")
    # memory a printer reads on its own (the pool's slots) shows as <unreadable at 0x...>
    moved = tmp_path / "moved.py"
    moved.write_text(open(spec("pool_overflow")).read().replace('first="&g_pool.slots[0]"', 'first=0x10'))
    got = Program(binary("pool_overflow"), core("pool_overflow"), specs=[str(moved)]).show("g_pool")
    assert got.startswith("pool g_pool: 16 slots x 80 B at 0x10, 0 in use, 0 free"), got
    assert "(walk stopped: slot 0: <unreadable at 0x10>)" in got


def test_pool_printer_matches_the_program():
    t = Truth("pool_overflow")
    out = fixture("pool_overflow", "pool_overflow", setup=["set print pretty on"]).execute("print g_pool")[0]
    head = re.search(r"\$1 = (pool g_pool: .*) = \{", out).group(1)
    assert f"{t['nslots']} slots x {t['slot_size']} B at {t['slots_base']}" in head
    src, victim = t.int("overflow_source_slot"), t.int("overflow_victim_slot")
    lines = dict(re.findall(r"\n  \[(\d+)\] = (.*?),?(?=\n)", out))
    for buf in ("session", "auth_header", "scratch", "request", "trace_header", "config", "response"):
        slot = t[f"buf.{buf}.slot"]
        if t[f"buf.{buf}.state"] != "live":
            continue
        line = lines[slot]
        assert line.startswith(f"in-use {t[f'buf.{buf}.addr']} req {t[f'buf.{buf}.req_size']}/48"), line
        assert f"from {t[f'buf.{buf}.alloc_function']} (fixtures/src/pool_overflow.c:{t[f'buf.{buf}.alloc_line']})" \
            in line, line
    assert "guard-overwritten" in lines[str(src)]
    guard = re.search(r"anomaly \d+ = guard-overwritten at (0x[0-9a-f]+): guard bytes 0\.\.7 of slot (\d+)", out)
    assert guard and int(guard.group(2)) == src
    # the free-list head now holds the overflowing text: reported as a link outside the pool
    outside = re.search(r"free-list head points to (0x[0-9a-f]+), outside the pool", out)
    assert outside and int(outside.group(1), 16) == t.int("overflow_victim_next_free")
    assert f"free 0x" in lines[str(victim + 1)] or lines[str(victim + 1)].startswith("in-use")


def test_pool_printer_on_bad_spec_is_one_line(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(open(spec("pool_overflow")).read().replace('"struct slot_hdr"', '"struct no_such_hdr"'))
    # `gdbext load` refuses it (tests/test_bad_inputs_gdb.py); declared from Python directly, as an
    # auto-load script may, the printer still says what is wrong in one line
    out = Program(binary("pool_overflow"), core("pool_overflow")).with_setup(
        f"python exec(open({str(bad)!r}).read())").show("g_pool")
    assert re.fullmatch(r"<pool g_pool: header: no type 'struct no_such_hdr'.*>", out), out


def test_mi_front_ends_can_expand_children(sensor, tmp_path):
    """What VS Code asks over MI: -var-create then -var-list-children, with real values for numbers and enums."""
    import subprocess

    from conftest import ROOT
    from gdbext.gdbrun import find_gdb, plain_core

    script = "\n".join(["-enable-pretty-printing", "-var-create st * g_status",
                        "-var-list-children --all-values st", "-var-create w * g_word",
                        "-var-list-children --all-values w", "-gdb-exit"]) + "\n"
    with plain_core(core("sensor")) as path:
        proc = subprocess.run([find_gdb(), "-nx", "-q", "--interpreter=mi", "-x", "gdbinit.example",
                               "-ex", f"gdbext load {spec('sensor')}", binary("sensor"), path],
                              input=script, capture_output=True, text=True, cwd=ROOT, timeout=60)
    out = proc.stdout
    st = re.findall(r'child=\{name="st\.([^"]+)",exp="[^"]+",numchild="(\d+)",value="([^"]*)",type="([^"]+)"\}', out)
    assert [(n, v) for n, _, v, _ in st] == [
        ("channel [0..3]", "5"), ("unit [4..5]", sensor["g_status.unit_name"]), ("valid [6]", "true"),
        ("calibrated [7]", "false"), ("offset [8..13]", "-3"), ("mode [14..16]", sensor["g_status.mode_name"]),
        ("reserved [17..31]", "0")], out
    assert all(nc == "0" for _, nc, _, _ in st)  # leaves, not expandable char arrays
    w = dict((n, v) for n, _, v, _ in re.findall(
        r'child=\{name="w\.([^"]+)",exp="[^"]+",numchild="(\d+)",value="([^"]*)",type="([^"]+)"\}', out))
    assert w["channel"] == str(int(sensor["g_word.channel"])) and w["valid"] == "true"
    assert w["seq"] == str(int(sensor["g_word.seq"], 16))
