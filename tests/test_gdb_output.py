"""What a user sees at the gdb prompt: ``show gdbext``, output within ``width``, gdb's paging and styling.

Real gdb; the oracles are gdb's own: its list of ``show gdbext``
subcommands (``help show gdbext``) and its ``gdb.parameter`` values, its
``width`` setting, its pager prompt, and its ``style`` settings.
"""
from __future__ import annotations

import ast
import re

from conftest import gdb_run, needs_gdb

pytestmark = needs_gdb


def _settings_from_help(text: str):
    return re.findall(r"^show gdbext (\S+) -- ", text, re.M)


def test_show_gdbext_lists_every_setting_with_its_value():
    cmds = ["help show gdbext", "echo @@show1\\n", "show gdbext",
            "set gdbext show-raw on", "set gdbext mp 0x10", "set gdbext glibc-version 2.31",
            "echo @@show2\\n", "show gdbext", "echo @@params\\n"]
    first = gdb_run("pool_overflow", cmds[:1], with_core=False).stdout
    names = _settings_from_help(first)
    assert len(names) >= 7 and "show-raw" in names and "mp" in names
    probe = "python [print('@', n, repr(gdb.parameter('gdbext ' + n))) for n in %r]" % (names,)
    out = gdb_run("pool_overflow", cmds + [probe], with_core=False).stdout
    before = out.split("@@show1\n")[1].split("@@show2")[0].splitlines()
    after = out.split("@@show2\n")[1].split("@@params")[0].splitlines()
    values = dict(line.split(" ", 2)[1:] for line in out.splitlines() if line.startswith("@ "))
    assert [line.split(":")[0] for line in before] == [f"gdbext {n}" for n in sorted(names)]
    assert [line.split(":")[0] for line in after] == [f"gdbext {n}" for n in sorted(names)]
    for line in after:
        name, shown = line[len("gdbext "):].split(":  ", 1)
        value = ast.literal_eval(values[name])
        if isinstance(value, bool):
            assert shown == ("on" if value else "off"), line
        else:
            assert shown == (f'"{value}"' if value else "unset"), line
    assert 'gdbext mp:  "0x10"' in after and "gdbext show-raw:  on" in after
    assert "gdbext show-raw:  off" in before


WIDE_COMMANDS = ["heapwalk --check", "heapwalk --summary", "heapexplain", "heapexplain 0x4b0b38",
                 "poisonscan", "whopoints 0x4b06e0", "gdbext report"]


def _blocks(out: str, n: int):
    return [out.split(f"@@{i}\n", 1)[1].split(f"@@{i + 1}\n", 1)[0] for i in range(n)]


def _run_at(width: int, commands):
    cmds = [f"set width {width}"]
    for i, c in enumerate(commands):
        cmds += [f"echo @@{i}\\n", c]
    cmds.append(f"echo @@{len(commands)}\\n")
    out = re.sub(r"gdbext-core-\w+", "CORE", gdb_run("heap_overflow", cmds).stdout)  # the temporary core's name
    return _blocks(out, len(commands))


def test_output_fits_gdbs_width_and_loses_nothing():
    """At `set width 80` every line fits; wrapping only moves words (the unlimited output has the same words)."""
    wide = _run_at(0, WIDE_COMMANDS + ["heapwalk"])
    narrow = _run_at(80, WIDE_COMMANDS + ["heapwalk"])
    assert max(len(line) for block in wide for line in block.splitlines()) > 100  # the test has teeth
    for cmd, w, n in zip(WIDE_COMMANDS, wide, narrow):
        assert all(len(line) < 80 for line in n.splitlines()), (cmd, n)
        assert w.split() == n.split(), cmd
    # the chunk listing keeps one line per chunk, shortening the byte preview instead of wrapping
    w_rows, n_rows = wide[-1].splitlines(), narrow[-1].splitlines()
    assert all(len(line) < 80 for line in n_rows)
    unparsed = [i for i, line in enumerate(n_rows) if "unparsed" in line]
    assert unparsed  # the corrupt heap's unparsed range: prose, wrapped like the rest
    assert " ".join(n_rows[unparsed[0]:]).split() == " ".join(w_rows[unparsed[0]:]).split()
    w_rows, n_rows = w_rows[:unparsed[0]], n_rows[:unparsed[0]]
    assert len(w_rows) == len(n_rows) > 5
    for w, n in zip(w_rows, n_rows):
        assert n.split()[:6] == w.split()[:6]
        shown = n.split("|")[0].split()[6:]
        assert 1 <= len(shown) and w.split()[6:6 + len(shown)] == shown


# -- a terminal: styling and paging ------------------------------------------------------------

class _Terminal:
    """gdb on a pseudo-terminal, as a user runs it (styling and the pager only work on a terminal)."""

    def __init__(self, argv):
        import os
        import subprocess

        self.master, slave = os.openpty()
        env = dict(os.environ, TERM="xterm", COLUMNS="200", LINES="50")
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True, env=env)
        os.close(slave)
        self.buffer = ""

    def expect(self, text: str, timeout: float = 60.0) -> str:
        """Read until ``text`` appears; return everything read up to and including it."""
        import os
        import select
        import time

        deadline = time.monotonic() + timeout
        while text not in self.buffer:
            left = deadline - time.monotonic()
            ready = select.select([self.master], [], [], max(0.0, left))[0] if left > 0 else []
            if not ready:
                raise AssertionError(f"gdb did not print {text!r}; got {self.buffer[-2000:]!r}")
            try:
                data = os.read(self.master, 65536)
            except OSError:
                data = b""
            if not data:
                raise AssertionError(f"gdb ended before {text!r}; got {self.buffer[-2000:]!r}")
            self.buffer += data.decode(errors="replace")
        head, _, self.buffer = self.buffer.partition(text)
        return head + text

    def send(self, line: str) -> None:
        import os

        os.write(self.master, (line + "\n").encode())

    def close(self) -> None:
        import os

        try:
            self.proc.kill()
        finally:
            self.proc.wait()
            os.close(self.master)


def _terminal_gdb(name: str, core_path: str):
    from conftest import binary
    from gdbext.gdbrun import bootstrap_command, find_gdb

    return _Terminal([find_gdb(), "-nx", "-q", "-iex", "set confirm off", "-ex", bootstrap_command(),
                      binary(name), core_path])


def _command(term: _Terminal, line: str) -> str:
    """Run one command at the prompt; its output (after the echoed line) up to the next prompt."""
    term.send(line)
    term.expect(line[-10:])  # the terminal's echo of what was typed
    return term.expect("(gdb) ")


def test_colour_follows_gdbs_styles_and_set_style_enabled_off(tmp_path):
    from conftest import core
    from gdbext.gdbrun import plain_core

    with plain_core(core("heap_overflow")) as path:
        term = _terminal_gdb("heap_overflow", path)
        try:
            term.expect("(gdb) ")
            for setting in ("set style enabled on", "set style address foreground green",
                            "set style highlight foreground magenta"):
                _command(term, setting)
            printed = _command(term, "print &main_arena")  # gdb's own styling of an address: the oracle
            styled = _command(term, "heapwalk --check")
            _command(term, "set style enabled off")
            plain = _command(term, "heapwalk --check")
            term.send("quit")
        finally:
            term.close()
    gdb_address = re.search(r"(\x1b\[[0-9;]*m)0x[0-9a-f]+(\x1b\[m)", printed)
    assert gdb_address, printed
    start, reset = gdb_address.groups()
    assert start == "\x1b[32m"  # green, as set
    addresses = re.findall(r"0x[0-9a-f]{6,}", plain)
    assert addresses and "\x1b[32m" not in plain and "\x1b[35m" not in plain
    for addr in set(addresses):
        assert f"{start}{addr}{reset}" in styled  # every address in gdb's address style
    assert "\x1b[35merror:\x1b[m" in styled  # severities in gdb's highlight style


def test_long_output_goes_through_gdbs_pager(tmp_path):
    from conftest import core
    from gdbext.gdbrun import plain_core

    with plain_core(core("heap_overflow")) as path:
        term = _terminal_gdb("heap_overflow", path)
        try:
            term.expect("(gdb) ")
            _command(term, "set height 8")
            _command(term, "set width 100")
            term.send("heapwalk")
            term.expect("heapwalk")
            page = term.expect("--Type <RET> for more")
            term.send("q")
            after = term.expect("(gdb) ")
            alive = _command(term, "echo alive\\n")
            term.send("quit")
        finally:
            term.close()
    page = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", page)  # the terminal is styled: gdb's default there
    rows = [line for line in page.splitlines() if line.strip().startswith("0x")]
    assert 3 <= len(rows) <= 8  # one page of chunk rows, then gdb's own prompt
    assert all(len(line.rstrip("\r")) < 100 for line in rows)
    assert "Quit" in after and "Traceback" not in after and "internal error" not in after
    assert "alive" in alive
