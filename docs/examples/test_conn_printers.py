"""Tests of docs/examples/conn_printers.py, written with gdbext.testing (docs/printer-kit.md, "Testing").

Each test is one gdb run; each assertion one line.  tests/test_docs_examples.py
runs them, so the how-to's testing section cannot rot either.
"""
import os

from gdbext.testing import Program

HERE = os.path.dirname(os.path.abspath(__file__))
PRINTERS = os.path.join(HERE, "conn_printers.py")


def test_the_example_program(tmp_path):
    with open(os.path.join(HERE, "conn.c")) as fh:
        prog = Program.from_c(fh.read(), tmp_path, name="conn", stop="poll_events", specs=[PRINTERS])
    conn, conn_id = prog.show_all("*g_conns[0]", "g_conns[1]->id")
    assert conn.startswith('fd 7 OPEN "10.0.0.7" = {fd = 7, state = OPEN, flags = 0x3 [READ | WRITE], ')
    assert conn_id == "{slot = 1, generation = 51, shard = 3, kind = PEER}"


ODD_VALUES = r"""
#include <stdint.h>
typedef uint64_t conn_id_t;
struct conn {
    int fd; uint8_t state; unsigned flags; uint32_t timeout_ms; char peer[16];
    conn_id_t id; unsigned retries : 3; unsigned ipv6 : 1;
};
int main(void)
{
    struct conn c = { .fd = 3, .state = 9, .flags = 0x31, .peer = "no-NUL-at-end-16" };
    return c.fd;  /* MARK */
}
"""


def test_values_outside_the_declaration(tmp_path):
    prog = Program.from_c(ODD_VALUES, tmp_path, specs=[PRINTERS])
    assert prog.show("c") == (
        'fd 3 <invalid 9> "no-NUL-at-end-16" = {fd = 3, state = <invalid 9>, flags = 0x31 [READ | <unknown: 0x30>], '
        'timeout_ms = 0 ms, peer = "no-NUL-at-end-16", id = {slot = 0, generation = 0, shard = 0, kind = CLIENT}, '
        'retries = 0, ipv6 = false}')
