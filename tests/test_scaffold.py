"""gdbext scaffold: modules rendered from DWARF load as written and print, on every fixture's own structs."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Dict, List

import pytest

from conftest import CORES, ROOT, Truth, binary, core, needs_gdb
from gdbext.errors import GdbextError, SpecError
from gdbext.kit import KIT, Bool, Names, StructPrinter
from gdbext.scaffold import MemberInfo, TypeInfo, join_type_words, render_module, scaffold_binary
from gdbext.testing import GdbFailure, Program

FIXTURES = sorted(n for n in os.listdir(CORES) if os.path.isfile(os.path.join(CORES, n + ".truth")))


# -- rendering, no gdb -------------------------------------------------------------
STATUS = TypeInfo("struct status", 4, [
    MemberInfo("channel", "unsigned int", 0, 4, 4, "int"),
    MemberInfo("unit", "enum unit", 4, 2, 4, "enum", enum={0: "C", 1: "F", 2: "K"}),
    MemberInfo("valid", "unsigned int", 6, 1, 4, "int"),
    MemberInfo("perm", "enum perm", 7, 3, 4, "enum", enum={1: "R", 2: "W", 4: "X"}),
    MemberInfo("offset", "int", 10, 6, 4, "int", signed=True),
])
FRAME = TypeInfo("struct frame", 48, [
    MemberInfo("name", "const char *", 0, 0, 8, "pointer"),
    MemberInfo("status", "struct status", 64, 0, 4, "struct", nested="struct status"),
    MemberInfo(None, "union {...}", 96, 0, 4, "union", members=[
        MemberInfo("raw", "uint32_t", 96, 0, 4, "int", typedef="uint32_t"),
        MemberInfo("half", "uint16_t", 96, 0, 2, "int", typedef="uint16_t"),
    ]),
    MemberInfo("word", "sensor_word_t", 128, 0, 8, "int", typedef="sensor_word_t"),
    MemberInfo("timeout_ms", "uint32_t", 192, 0, 4, "int"),
    MemberInfo("label", "char [16]", 224, 0, 16, "array", count=16),
])


def _declared(text: str) -> Dict[str, StructPrinter]:
    """Run a rendered module and return what it declared (the registry is restored)."""
    saved = dict(KIT.structs)
    KIT.structs.clear()
    try:
        exec(compile(text, "<scaffold>", "exec"), {"__name__": "scaffold"})
        return dict(KIT.structs)
    finally:
        KIT.structs.clear()
        KIT.structs.update(saved)


def test_rendered_module_declares_every_member_with_its_place():
    text = render_module([FRAME, STATUS], binary="/bin/prog")
    declared = _declared(text)
    assert list(declared) == ["struct frame", "struct status"]
    status = declared["struct status"]
    assert list(status.fields) == ["channel", "unit", "valid", "perm", "offset"]
    assert status.fields["unit"] == Names({0: "C", 1: "F", 2: "K"})
    assert status.fields["valid"] == Bool()
    assert type(status.fields["perm"]).__name__ == "Flags"  # single-bit values past bit 1: a flag enum
    assert status.fields["channel"] is None and status.summary == "channel={channel} unit={unit} valid={valid}"
    assert "# +0 bits 0..3 (4 bits) unsigned int. TODO meaning?" in text
    assert "# +0 bits 10..15 (6 bits) int." in text and "# +0 bit 6 unsigned int." in text
    assert list(declared["struct frame"].fields) == ["name", "status", "raw", "half", "word", "timeout_ms", "label"]
    assert "# members of an anonymous union at +12:" in text
    assert "sensor_word_t. TODO packed bits? declare a PackedWord" in text
    assert "+24 uint32_t. TODO a unit? Unit(\"ms\")" in text and "TODO Text() shows it up to its NUL" in text
    assert "struct status: its own printer, below" in text and "/bin/prog" in text


def test_long_enums_are_split_and_still_load():
    names = {i: f"OPCODE_WITH_A_LONG_NAME_{i}" for i in range(8)}
    text = render_module([TypeInfo("struct insn", 4, [MemberInfo("op", "enum op", 0, 0, 4, "enum", enum=names)])])
    assert '        "op": Names({  # +0 enum op\n            0: "OPCODE_WITH_A_LONG_NAME_0",' in text
    assert _declared(text)["struct insn"].fields["op"] == Names(names)


def test_type_words_and_empty_scaffolds():
    assert join_type_words(["struct", "foo", "bar_t", "union", "u"]) == ["struct foo", "bar_t", "union u"]
    with pytest.raises(SpecError):
        join_type_words(["struct"])
    with pytest.raises(SpecError):
        render_module([])


# -- real gdb on the fixture binaries ---------------------------------------------
def _own_types(out: str, name: str) -> List[str]:
    """The struct and union types ``info types`` lists under the fixture's own source file."""
    section = out.split(f"File fixtures/src/{name}.c:\n", 1)
    if len(section) < 2:
        return []
    body = section[1].split("\n\n", 1)[0]
    return re.findall(r"^\d+:\s+((?:struct|union) \w+);$", body, re.M)


@pytest.fixture(scope="module")
def fixture_types() -> Dict[str, List[str]]:
    """Each fixture's own struct and union types, from ``info types`` in one gdb run over all binaries."""
    commands = []
    for name in FIXTURES:
        commands += [f"file {binary(name)}", f"echo @@{name}\\n", "info types"]
    out = Program(binary(FIXTURES[0])).execute(*commands)
    return {name: _own_types(out[3 * i + 2], name) for i, name in enumerate(FIXTURES)}


@needs_gdb
def test_fixture_types_are_found(fixture_types):
    assert fixture_types["sensor"] == ["struct sensor_frame", "struct sensor_status", "union sensor_status_raw"]
    assert set(fixture_types["pool_overflow"]) == {"struct pool", "struct slot", "struct slot_hdr"}
    assert sum(len(t) for t in fixture_types.values()) >= 12


@needs_gdb
@pytest.mark.parametrize("name", FIXTURES)
def test_scaffold_of_every_fixture_struct_loads_and_prints(name, fixture_types, tmp_path):
    types = fixture_types[name]
    if not types:
        pytest.skip(f"{name}.c declares no struct or union")
    module = tmp_path / f"{name}_printers.py"
    quoted = " ".join(f"'{t}'" for t in types)
    prog = Program(binary(name))
    out = prog.execute(f"gdbext scaffold {quoted} --output {module}", f"gdbext load {module}",
                       "info pretty-printer global gdbext", *[f"print {{{t}}} &main" for t in types])
    assert out[0].startswith(f"gdbext: wrote {module}: printers for {', '.join(types)}"), out[0]
    listing = out[2]
    for t, shown in zip(types, out[3:]):
        assert f"kit:{t.replace(' ', '_')}" in listing, listing
        assert re.match(r"\$\d+ = (\S.* = )?\{", shown), shown  # printed by the kit printer, whole
        assert "<no member" not in shown and "<unreadable" not in shown, shown


@needs_gdb
def test_scaffold_on_the_sensor_core_prints_the_programs_truth(tmp_path):
    """The CLI's scaffold of struct sensor_status, unedited, decodes the core as the program saw it."""
    module = tmp_path / "sensor_status.py"
    cli = subprocess.run([sys.executable, "-m", "gdbext", "scaffold", binary("sensor"), "--type",
                          "struct sensor_status", "--output", str(module)], capture_output=True, text=True, cwd=ROOT)
    assert cli.returncode == 0, cli.stderr
    text = module.read_text()
    for field, pos, width in [("channel", 0, 4), ("unit", 4, 2), ("offset", 8, 6), ("mode", 14, 3)]:
        assert re.search(rf'"{field}": .*# \+0 bits {pos}\.\.{pos + width - 1} \({width} bits\)', text), field
    t = Truth("sensor")
    got = Program(binary("sensor"), core("sensor"), specs=[str(module)]).show_all("g_status", "g_bad_status")

    def expected(var: str) -> str:
        mode = t[f"{var}.mode_name"]
        fields = [("channel", t[f"{var}.channel"]), ("unit", t[f"{var}.unit_name"]),
                  ("valid", "true" if t[f"{var}.valid"] == "1" else "false"),
                  ("calibrated", "true" if t[f"{var}.calibrated"] == "1" else "false"),
                  ("offset", t[f"{var}.offset"]), ("mode", mode if not mode.isdigit() else f"<invalid {mode}>"),
                  ("reserved", t[f"{var}.reserved"])]
        summary = " ".join(f"{k}={v}" for k, v in fields[:3])
        return f"{summary} = {{" + ", ".join(f"{k} = {v}" for k, v in fields) + "}"

    assert got == [expected("g_status"), expected("g_bad_status")]
    assert "mode = <invalid 7>" in got[1]


@needs_gdb
def test_scaffold_module_also_loads_with_source_and_nested_types_follow(tmp_path):
    module = tmp_path / "frame.py"
    prog = Program(binary("sensor"), core("sensor"))
    out = prog.execute(f"gdbext scaffold struct sensor_frame -o {module}", f"source {module}", "print g_frames[1]")
    assert "printers for struct sensor_frame, struct sensor_status" in out[0]
    assert out[2].startswith('$1 = name="probe-7" word=') and "status = channel=12 unit=UNIT_CELSIUS" in out[2], out[2]


@needs_gdb
def test_scaffold_errors_are_one_line(tmp_path):
    prog = Program(binary("sensor"))
    with pytest.raises(GdbFailure, match=r"gdbext scaffold: no type 'struct nope' in this program"):
        prog.execute("gdbext scaffold struct nope")
    with pytest.raises(GdbFailure, match=r"gdbext scaffold: int is int, not a struct or union"):
        prog.execute("gdbext scaffold int")
    existing = tmp_path / "mine.py"
    existing.write_text("# hand-edited\n")
    with pytest.raises(GdbFailure, match="exists; add --force to overwrite it"):
        prog.execute(f"gdbext scaffold struct sensor_status --output {existing}")
    assert existing.read_text() == "# hand-edited\n"
    cli = subprocess.run([sys.executable, "-m", "gdbext", "scaffold", binary("sensor"), "--type", "struct nope"],
                         capture_output=True, text=True, cwd=ROOT)
    assert cli.returncode == 2 and cli.stderr.strip() == (
        "gdbext: no type 'struct nope' in this program: No struct type named nope."), cli.stderr
    with pytest.raises(GdbextError, match="no such file"):
        scaffold_binary(str(tmp_path / "nothing"), ["struct x"])
