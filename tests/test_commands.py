"""Every command module defines exactly one command, with a docstring that gdb shows as its help."""
import json

from conftest import gdb_run, needs_gdb

pytestmark = needs_gdb

PROBE = """
import json
import gdbext.commands as c
rows = []
for m in c.command_modules():
    rows.append({"module": m.__name__, "commands": [
        {"name": k.command_name, "doc": k.__doc__ or ""} for k in c.command_classes(m)]})
print("PROBE " + json.dumps(rows))
"""


def test_one_command_per_module_with_help(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    out = gdb_run(None, [f"source {probe}"]).stdout
    rows = json.loads(out.split("PROBE ", 1)[1].splitlines()[0])
    assert rows, out
    names = []
    for row in rows:
        assert len(row["commands"]) == 1, row
        cmd = row["commands"][0]
        summary, _, rest = cmd["doc"].partition("\n\n")
        assert summary and "\n" not in summary.strip(), row
        assert "Usage:" in rest, row
        names.append(cmd["name"])
    helps = gdb_run(None, [f"help {name}" for name in names]).stdout
    for name in names:
        assert "Usage: " + name.split()[-1] in helps or f"Usage: {name}" in helps, (name, helps)


def test_bad_arguments_are_one_line_errors():
    res = gdb_run("pool_overflow", ["gdbext load", "gdbext load /no/such/spec.py", "gdbext scaffold"])
    errors = [line for line in res.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(errors) == 3, res.stderr
    assert "give the spec file" in errors[0]
    assert "/no/such/spec.py not found" in errors[1]
