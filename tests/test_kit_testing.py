"""The printer kit (gdbext.kit and its printer) and the test helper (gdbext.testing), against real gdb."""
from __future__ import annotations

import textwrap

import pytest

from conftest import Truth, binary, core, spec
from gdbext.errors import SpecError
from gdbext.kit import KIT, Bool, Flags, Hex, Hidden, Names, Shown, StructPrinter, Text, Unit, c_string, split_path
from gdbext.testing import GdbFailure, Program, find_marker, require_tools


# -- declarations, no gdb --------------------------------------------------------------
def test_formats_read_like_gdb():
    assert Names({0: "IDLE", 2: "OPEN"}).format(2) == "OPEN"
    assert Names({0: "IDLE"}).format(7) == "<invalid 7>"
    assert Flags({1: "R", 2: "W", 4: "X"}).format(0x15) == "0x15 [R | X | <unknown: 0x10>]"
    assert Flags({1: "R"}).format(0) == "0"
    assert Unit("ms").format(1500) == "1500 ms"
    assert Unit("C", scale=0.1).format(-123) == "-12.3 C"
    assert Unit("%", scale=0.05).format(3) == "0.15 %"
    assert Unit("s").format(1.5) == "1.5 s"
    assert Hex().format(31) == "0x1f" and Hex(width=8).format(31) == "0x0000001f" and Hex().format(-2) == "-0x2"
    assert Bool().format(4) == "true" and Bool().format(0) == "false"
    assert Text().format('a"b\n\x01\xa5') == '"a\\"b\\n\\001\\245"' == c_string('a"b\n\x01\xa5')
    assert Hidden().hidden and Text().takes_text and not Names({}).takes_text


def test_summary_template_and_paths():
    spec = StructPrinter("struct conn", {"state": Names({1: "OPEN"}), "flags": Flags({1: "R"})},
                         summary="fd {fd} {state} {flags:#06x} {peer.addr[2]}")
    assert spec.placeholders() == ["fd", "state", "flags", "peer.addr[2]"]
    assert (spec.keyword, spec.tag, spec.name) == ("struct", "conn", "kit:struct_conn")
    values = {"fd": Shown("7", 7), "state": Shown("OPEN", 1), "flags": Shown("0x1 [R]", 1),
              "peer.addr[2]": Shown("10", 10)}
    assert spec.render_summary(values.__getitem__) == "fd 7 OPEN 0x0001 10"
    assert split_path("slots[2].hdr.magic") == ["slots", 2, "hdr", "magic"]
    assert StructPrinter("conn_t").keyword is None and StructPrinter("union u").tag == "u"


@pytest.mark.parametrize("bad", [
    dict(type_name=" "),
    dict(type_name="struct x", fields={"a": 3}),
    dict(type_name="struct x", children=False),
    dict(type_name="struct x", summary="{a"),
    dict(type_name="struct x", summary="{}"),
    dict(type_name="struct x", summary="{a..b}"),
    dict(type_name="struct x", summary="{[1]}"),
])
def test_bad_declarations_say_what_is_wrong(bad):
    with pytest.raises(SpecError):
        StructPrinter(**bad)


def test_registry_replaces_by_type_and_tells_listeners():
    saved = dict(KIT.structs)
    heard = []
    KIT.subscribe(lambda: heard.append(len(KIT.structs)))
    try:
        KIT.structs.clear()
        KIT.add(StructPrinter("struct  a"))
        KIT.add(StructPrinter("struct a", summary="x"))
        assert list(KIT.structs) == ["struct a"] and KIT.structs["struct a"].summary == "x"
        assert heard[-2:] == [1, 1]
    finally:
        KIT._listeners.pop()
        KIT.structs.clear()
        KIT.structs.update(saved)


def test_markers():
    assert find_marker("int a;\nint main(void) { return a; /* MARK */ }\n", "s.c") == "s.c:2"
    assert find_marker("void f(void) { gdbext_marker(); }", "s.c") == "gdbext_marker"
    assert find_marker("int main(void) { return 0; }", "s.c") is None
    with pytest.raises(pytest.skip.Exception):
        require_tools("no-such-tool-for-gdbext-tests")


# -- the kit printer in real gdb -----------------------------------------------------------
SNIPPET = r"""
#include <stdint.h>
#include <string.h>

enum color { RED, GREEN };
struct inner { int a; int b; };
struct conn {
    int fd;
    uint8_t state;
    unsigned flags;
    uint32_t timeout_ms;
    char peer[8];
    struct inner in;
    union { uint32_t raw; struct { uint16_t lo, hi; }; };
    int secret;
    struct conn *next;
    unsigned retries : 3;
    enum color color : 2;
    double load;
};
typedef struct { int x; int y; } point_t;
union reg { uint32_t word; uint8_t bytes[4]; };
struct tiny { int id; };

struct conn g_conns[2];
point_t g_point = { 3, 4 };
union reg g_reg = { .word = 0x01020304 };
struct tiny g_tinies[3] = { {1}, {2}, {3} };

int main(void)
{
    struct conn *c = &g_conns[0];
    c->fd = 7; c->state = 2; c->flags = 0x5; c->timeout_ms = 1500;
    memcpy(c->peer, "abcdefgh", 8);               /* no NUL: all 8 characters */
    c->in.a = 1; c->in.b = 2; c->raw = 0x00020001; c->secret = 42;
    c->retries = 5; c->color = GREEN; c->load = 0.25;
    c->next = &g_conns[1];
    g_conns[1].fd = 9; g_conns[1].state = 7;
    g_conns[1].next = (struct conn *)0x10;       /* a pointer to nowhere */
    gdbext_marker();
    return 0;
}
"""

PRINTERS = """
from gdbext.kit import Bool, Flags, Hex, Hidden, Names, Text, Unit, struct_printer

struct_printer("struct conn", fields={
    "state": Names({0: "IDLE", 2: "OPEN"}),
    "flags": Flags({0x1: "READ", 0x4: "TLS"}),
    "timeout_ms": Unit("ms"),
    "peer": Text(),
    "lo": Hex(width=4),
    "secret": Hidden(),
    "load": lambda v: f"{v * 100:.0f}%",
    "gone": None,
}, summary="fd {fd} {state} {peer} next={next.fd} in={in.b} {flags:#x}")
struct_printer("point_t", summary="({x}, {y})", children=False)
struct_printer("union reg", fields={"word": Hex(width=8)})
struct_printer("struct tiny", summary="#{id}", children=False)
"""


@pytest.fixture(scope="module")
def snippet(tmp_path_factory):
    work = tmp_path_factory.mktemp("kit")
    (work / "printers.py").write_text(PRINTERS)
    return Program.from_c(SNIPPET, work, specs=[str(work / "printers.py")])


def test_struct_printer_in_gdb(snippet):
    conn0, conn1, point, reg, tinies, local, alone = snippet.show_all(
        "g_conns[0]", "g_conns[1]", "g_point", "g_reg", "g_tinies", "*c", "c->state")
    assert conn0 == (
        'fd 7 OPEN "abcdefgh" next=9 in=2 0x5 = {fd = 7, state = OPEN, flags = 0x5 [READ | TLS], '
        'timeout_ms = 1500 ms, peer = "abcdefgh", in = {a = 1, b = 2}, raw = 131073, lo = 0x0001, hi = 2, '
        'next = 0x' + conn0.split("next = 0x")[1].split(",")[0] + ', retries = 5, color = GREEN, load = 25%, '
        'gone = <no member gone in struct conn>}')
    assert conn1.startswith('fd 9 <invalid 7> "" next=<unreadable at 0x10> in=0 0x0 = {fd = 9, state = <invalid 7>,')
    assert point == "(3, 4)"
    assert reg == "{word = 0x01020304, bytes = \"\\004\\003\\002\\001\"}"
    assert tinies == "{#1, #2, #3}"
    assert local == conn0  # through a pointer, in the caller's frame of gdbext_marker()
    assert alone == "2 '\\002'"  # a member alone is gdb's: printers belong to the struct


def test_struct_printer_is_a_named_subprinter(snippet):
    listing, _, plain, _, again = snippet.execute(
        "info pretty-printer global gdbext", "disable pretty-printer global gdbext;kit:struct_tiny",
        "print g_tinies[0]", "enable pretty-printer global gdbext;kit:struct_tiny", "print g_tinies[0]")
    assert "    kit:point_t\n    kit:struct_conn\n    kit:struct_tiny\n    kit:union_reg\n" in listing, listing
    assert plain == "$1 = {id = 1}\n" and again == "$2 = #1\n"


def test_declared_struct_wins_over_the_bitfield_printer_and_reloading_replaces(tmp_path):
    t = Truth("sensor")
    first, second = tmp_path / "a.py", tmp_path / "b.py"
    first.write_text('from gdbext.kit import struct_printer\nstruct_printer("struct sensor_status", '
                     'summary="ch {channel}", children=False)\n')
    second.write_text('from gdbext.kit import struct_printer\nstruct_printer("struct sensor_status", '
                      'summary="channel {channel} mode {mode}", children=False)\n')
    prog = Program(binary("sensor"), core("sensor"), specs=[str(first)])
    shown = prog.execute("print g_status", f"gdbext load {second}", "print g_frames[0].status", "frame 1",
                         "info locals")
    assert shown[0] == f"$1 = ch {t['g_status.channel']}\n"
    frame = "g_frames[0].status"
    assert shown[2] == f"$2 = channel {t[frame + '.channel']} mode {t[frame + '.mode_name']}\n"
    assert f"st = channel {t['process_frame.st.channel']} mode {t['process_frame.st.mode_name']}" in shown[4]


# -- gdbext.testing itself -------------------------------------------------------------------
def test_show_from_a_core_and_a_spec():
    t = Truth("sensor")
    prog = Program(binary("sensor"), core("sensor"), specs=[spec("sensor")])
    word, status = prog.show_all("g_word", "g_status.channel")
    assert word.startswith("{temp = -12.3 C, unit = KELVIN, valid = true")
    assert status == t["g_status.channel"]
    assert prog.with_setup("set print pretty on").show("g_word").startswith("{\n  temp = -12.3 C,\n")


def test_mark_comment_stops_before_the_line(tmp_path):
    prog = Program.from_c(textwrap.dedent("""
        int g_count;
        int main(void)
        {
            g_count = 1;
            g_count = 2;   /* MARK */
            return g_count;
        }
    """), tmp_path)
    assert prog.stop == "snippet.c:6" and prog.show("g_count") == "1"


def test_gdb_errors_fail_with_gdbs_own_words(snippet, tmp_path):
    with pytest.raises(GdbFailure, match=r'print nosuch: No symbol "nosuch" in current context\.'):
        snippet.show_all("g_point", "nosuch")
    with pytest.raises(GdbFailure, match=r"print \*\(struct conn \*\)0: Cannot access memory at address 0x0"):
        snippet.show("*(struct conn *)0")
    raising = tmp_path / "raising.py"
    raising.write_text('from gdbext.kit import struct_printer\n'
                       'struct_printer("struct tiny", fields={"id": lambda v: 1 // 0})\n')
    with pytest.raises(GdbFailure, match=r"(?s)print g_tinies\[0\]: a printer raised:.*ZeroDivisionError"):
        Program(snippet.binary, specs=[str(raising)]).show("g_tinies[0]")
    broken = tmp_path / "broken.py"
    broken.write_text("from gdbext.kit import struct_printer\nstruct_printer('struct tiny', fields={'id': 3})\n")
    with pytest.raises(GdbFailure, match=r"gdbext load .*broken\.py.*field id: 3 is not a format"):
        Program(snippet.binary, specs=[str(broken)]).show("1")
    with pytest.raises(GdbFailure, match=r'break no_such_function: Function "no_such_function" not defined\.'):
        Program(snippet.binary, stop="no_such_function").show("1")


def test_snippet_problems_are_reported(tmp_path):
    with pytest.raises(GdbFailure, match=r"(?s)gcc could not compile .*snippet\.c:2:.*error"):
        Program.from_c("int main(void) {\n  return nope; /* MARK */\n}\n", tmp_path)
    with pytest.raises(GdbFailure, match=r"no /\* MARK \*/ line and calls no gdbext_marker\(\)"):
        Program.from_c("int main(void) { return 0; }\n", tmp_path)
    with pytest.raises(GdbFailure, match="the program ended without stopping there"):
        Program.from_c("void later(void) {}\nint main(void) { return 0; }\n", tmp_path, stop="later").show("1")
