"""Installing without a checkout: the wheel into a fresh venv, ``gdbext setup-gdb``, and a fresh gdb.

The wheel is built from a copy of the sources, installed with pip into a
new virtual environment made with gdb's own Python version when it is on
this machine, and ``gdbext setup-gdb`` of *that* environment edits the
gdbinit of a temporary HOME.  The oracle is gdb: a plain ``gdb -batch``
(reading that HOME's gdbinit) must list the gdbext printers -- the same
subprinters as gdb with the checkout's ``gdbinit.example`` -- and its
``gdbext`` module must come from the new environment.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, needs_gdb
from gdbext.gdbrun import find_gdb

pytestmark = needs_gdb

SOURCES = ("setup.py", "README.md", "gdbext", "printers", "commands")


def _run(argv, env=None, timeout=300):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)


def _gdb_python() -> str:
    """gdb's own Python interpreter when it can make venvs here, else the one running the tests."""
    out = _run([find_gdb(), "-nx", "-batch", "-ex",
                "python import sys, os; print('@@', os.path.join(sys.base_prefix, 'bin', "
                "'python%d.%d' % sys.version_info[:2]))"]).stdout
    exe = next((line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("@@ ")), "")
    if exe and os.path.isfile(exe) and _run([exe, "-c", "import ensurepip, venv"]).returncode == 0:
        return exe
    return sys.executable


def _printers(stdout: str):
    """The gdbext collection's subprinters in ``info pretty-printer`` output."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "gdbext")
    out = []
    for line in lines[start + 1:]:
        if not line.startswith("    "):
            break
        out.append(line.strip())
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with the built wheel installed: (venv dir, wheel path)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        path = os.path.join(ROOT, name)
        if os.path.isdir(path):
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy(path, src / name)
    built = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp / "dist", src])
    assert built.returncode == 0, built.stderr[-2000:]
    wheels = list((tmp / "dist").glob("gdbext-*.whl"))
    assert len(wheels) == 1
    venv = tmp / "venv"
    made = _run([_gdb_python(), "-m", "venv", venv])
    assert made.returncode == 0, made.stderr
    pip = _run([venv / "bin" / "python", "-m", "pip", "install", "-q", wheels[0]])
    assert pip.returncode == 0, pip.stderr[-2000:]
    return venv, wheels[0]


def _env(home):
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_CONFIG_HOME", "GDBEXT_HOME", "PYTHONPATH")}
    env["HOME"] = str(home)
    return env


def test_setup_gdb_makes_a_fresh_gdb_load_the_installed_wheel(installed, tmp_path):
    venv, _ = installed
    home = tmp_path / "home"
    home.mkdir()
    env = _env(home)
    gdbext = venv / "bin" / "gdbext"
    first = _run([gdbext, "setup-gdb"], env=env)
    assert first.returncode == 0, first.stderr
    gdbinit = home / ".config" / "gdb" / "gdbinit"
    assert gdbinit.is_file() and str(gdbinit) in first.stdout
    # gdb itself says it reads that file
    assert str(gdbinit) in _run([find_gdb(), "--help"], env=env).stdout
    written = gdbinit.read_text()
    assert len(written.splitlines()) == 2 and str(venv) in written

    again = _run([gdbext, "setup-gdb"], env=env)  # idempotent
    assert again.returncode == 0 and "already" in again.stdout and gdbinit.read_text() == written

    probe = "python import gdbext; print('@@from', gdbext.__file__)"
    fresh = _run([find_gdb(), "-batch", "-ex", "info pretty-printer", "-ex", probe], env=env)
    assert "Traceback" not in fresh.stderr, fresh.stderr
    checkout = _run([find_gdb(), "-nx", "-batch", "-x", os.path.join(ROOT, "gdbinit.example"),
                     "-ex", "info pretty-printer"], env=env)
    assert _printers(fresh.stdout) == _printers(checkout.stdout) and _printers(fresh.stdout)
    origin = next(line.split(" ", 1)[1] for line in fresh.stdout.splitlines() if line.startswith("@@from"))
    assert origin.startswith(str(venv)), origin
    # and the commands came with it
    assert "gdbext debug:  off" in _run([find_gdb(), "-batch", "-ex", "show gdbext"], env=env).stdout

    removed = _run([gdbext, "setup-gdb", "--remove"], env=env)
    assert removed.returncode == 0 and not gdbinit.exists()  # it only held our lines
    after = _run([find_gdb(), "-batch", "-ex", "info pretty-printer"], env=env)
    assert "gdbext" not in after.stdout


def test_an_existing_gdbinit_keeps_its_lines(installed, tmp_path):
    venv, _ = installed
    home = tmp_path / "home"
    home.mkdir()
    own = "set print pretty on\nset history save on\n"
    (home / ".gdbinit").write_text(own)
    env = _env(home)
    res = _run([venv / "bin" / "gdbext", "setup-gdb"], env=env)
    assert res.returncode == 0, res.stderr
    assert not (home / ".config" / "gdb" / "gdbinit").exists()  # it would hide ~/.gdbinit from gdb
    text = (home / ".gdbinit").read_text()
    assert text.startswith(own) and len(text.splitlines()) == 4
    shown = _run([find_gdb(), "-batch", "-ex", "show print pretty", "-ex", "info pretty-printer"], env=env)
    assert "on" in shown.stdout.splitlines()[0] and "gdbext" in shown.stdout
    assert _run([venv / "bin" / "gdbext", "setup-gdb", "--remove"], env=env).returncode == 0
    assert (home / ".gdbinit").read_text() == own


def test_a_python_gdb_cannot_use_is_refused_with_one_line(installed, tmp_path):
    """An environment without the dependencies: nothing written, exit 2, gdb's Python named."""
    venv, wheel = installed
    bare = tmp_path / "bare"
    assert _run([sys.executable, "-m", "venv", "--without-pip", bare]).returncode == 0
    target = _run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--target",
                   _site_packages(bare), wheel])
    assert target.returncode == 0, target.stderr[-2000:]
    home = tmp_path / "home"
    home.mkdir()
    res = _run([bare / "bin" / "python", "-m", "gdbext", "setup-gdb"], env=_env(home))
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and "gdb embeds Python" in res.stderr
    assert "nothing written" in res.stderr and not any(home.rglob("*gdbinit"))


def _site_packages(venv) -> str:
    out = _run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    return out.stdout.strip()


def test_pipx_install_then_setup_gdb(installed, tmp_path):
    """The other documented path: ``pipx install gdbext`` (here the built wheel), then its setup-gdb."""
    pipx = shutil.which("pipx")
    if pipx is None:
        pytest.skip("pipx is not installed (.ci/run installs Debian's pipx)")
    _, wheel = installed
    home = tmp_path / "home"
    home.mkdir()
    env = _env(home)
    env.update(PIPX_HOME=str(tmp_path / "pipx"), PIPX_BIN_DIR=str(tmp_path / "bin"))
    res = _run([pipx, "install", wheel], env=env)
    assert res.returncode == 0, res.stdout[-1000:] + res.stderr[-2000:]
    setup = _run([tmp_path / "bin" / "gdbext", "setup-gdb"], env=env)
    assert setup.returncode == 0, setup.stderr
    probe = "python import gdbext; print('@@from', gdbext.__file__)"
    fresh = _run([find_gdb(), "-batch", "-ex", "info pretty-printer", "-ex", probe], env=env)
    assert _printers(fresh.stdout), fresh.stdout + fresh.stderr
    origin = next(line.split(" ", 1)[1] for line in fresh.stdout.splitlines() if line.startswith("@@from"))
    assert origin.startswith(str(tmp_path / "pipx")), origin
