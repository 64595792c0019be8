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
