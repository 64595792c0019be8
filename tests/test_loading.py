"""Loading gdbext into gdb's own Python: from the checkout, twice, without a dependency, and pip-installed."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT, needs_gdb
from gdbext.gdbrun import find_gdb, has_traceback

pytestmark = needs_gdb


def gdb(args, cwd, env=None, timeout=60):
    full = dict(os.environ, **(env or {}))
    proc = subprocess.run([find_gdb(), "-nx", "-batch", "-q"] + args, cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    assert not has_traceback(out), out
    return out


def registered(out):
    return "\n  gdbext\n    bitfield-structs\n" in out


def test_gdbinit_from_the_checkout():
    out = gdb(["-x", "gdbinit.example", "-ex", "info pretty-printer", "-ex", "help gdbext load",
               "-ex", "show gdbext show-raw"], cwd=ROOT)
    assert registered(out), out
    assert "Load a gdbext spec file" in out
    assert "off" in out.splitlines()[-1]


def test_gdbinit_sourced_by_path_from_elsewhere(tmp_path):
    out = gdb(["-ex", f"source {os.path.join(ROOT, 'gdbinit.example')}", "-ex", "info pretty-printer"],
              cwd=str(tmp_path), env={"GDBEXT_HOME": ""})
    assert registered(out), out


def test_loading_twice_is_harmless():
    out = gdb(["-x", "gdbinit.example", "-x", "gdbinit.example", "-ex", "info pretty-printer"], cwd=ROOT)
    assert out.count("  gdbext\n") == 1, out
    assert "error" not in out.lower(), out


def test_missing_dependency_is_one_line(tmp_path):
    shadow = tmp_path / "capstone"
    shadow.mkdir()
    (shadow / "__init__.py").write_text('raise ImportError("simulated missing capstone")\n')
    out = gdb(["-x", "gdbinit.example", "-ex", "info pretty-printer"], cwd=ROOT, env={"PYTHONPATH": str(tmp_path)})
    lines = [line for line in out.splitlines() if line.startswith("gdbext")]
    assert len(lines) == 1 and lines[0].startswith("gdbext: not loaded:") and "capstone" in lines[0], out
    assert "make venv" in lines[0]
    assert not registered(out)


def test_pip_installed_layout(tmp_path):
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                           "--disable-pip-version-check", "--target", str(target), ROOT],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.skip(f"pip cannot build here: {proc.stderr.strip().splitlines()[-1:]}")
    top = sorted(p.name for p in target.iterdir() if not p.name.endswith((".dist-info", ".egg-info")))
    assert "printers" not in top and "commands" not in top, top
    assert (target / "gdbext" / "printers" / "__init__.py").is_file()
    assert (target / "gdbext" / "commands" / "load.py").is_file()
    deps = [p for p in sys.path if p.endswith("site-packages")]
    out = gdb(["-ex", "python import gdbext, gdbext.printers; gdbext.register(); print(gdbext.printers.__file__)",
               "-ex", "info pretty-printer"], cwd=str(tmp_path),
              env={"PYTHONPATH": os.pathsep.join([str(target)] + deps)})
    assert registered(out), out
    assert str(target / "gdbext" / "printers" / "__init__.py") in out
