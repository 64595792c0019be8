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
