"""Hostile crash bundles (issue #10, items 1, 2, 9, 14, 15, 16): no code from the bundle runs, no file name
becomes a gdb option, unexpected errors are exit 2 in one line, cancellation stops gdb and cleans up, --output is
replaced atomically, --jobs and gdb's memory are bounded.

Every payload, if it ran, creates a file in a "pwned" folder; the tests fail when that folder is not empty.  The
oracle for "analysed" is the fixture's own story: the double_free core has a double free (exit 1).
"""
import json
import lzma
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import CORES, ROOT, needs_gcc, needs_gdb
from gdbext import gdbrun
from gdbext.gdbrun import find_gdb, has_traceback, plain_core

pytestmark = needs_gdb

GDBINIT = os.path.join(ROOT, "gdbinit.example")


def _venv_site():
    return [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and os.path.isdir(p)]


@pytest.fixture(scope="module")
def plain_double_free(tmp_path_factory):
    """The double_free core, decompressed once."""
    folder = tmp_path_factory.mktemp("plain")
    with plain_core(os.path.join(CORES, "double_free.core.xz")) as path:
        shutil.copyfile(path, folder / "double_free.core")
    return str(folder / "double_free.core")


def _payload(pwned, tag):
    """Python that leaves a file named ``tag`` in ``pwned`` if it ever runs."""
    return f"open({os.path.join(str(pwned), tag)!r}, 'w').close()\n"


@pytest.fixture
def bundle(tmp_path, plain_double_free):
    """A crash bundle with a payload in every place gdb or a loader might take code from.

    bundle/: prog, prog.core, prog-gdb.py, gdbext/ (a fake package), .gdbinit
    cwd/:    gdbext/ (a fake package), .gdbinit, prog-gdb.py
    """
    pwned = tmp_path / "pwned"
    pwned.mkdir()
    b = tmp_path / "bundle"
    cwd = tmp_path / "cwd"
    for d, where in ((b, "bundle"), (cwd, "cwd")):
        (d / "gdbext").mkdir(parents=True)
        (d / "gdbext" / "__init__.py").write_text(_payload(pwned, f"{where}-package") + "def register():\n    pass\n")
        (d / ".gdbinit").write_text(f"python {_payload(pwned, where + '-gdbinit')}")
    shutil.copy(os.path.join(CORES, "double_free"), b / "prog")
    shutil.copyfile(plain_double_free, b / "prog.core")
    (b / "prog-gdb.py").write_text(_payload(pwned, "bundle-gdb.py"))
    return {"pwned": pwned, "dir": b, "cwd": cwd, "prog": str(b / "prog"), "core": str(b / "prog.core"),
            "tmp": tmp_path}


def _gdb(args, cwd, env=None, nx=True):
    full = dict(os.environ, **(env or {}))
    proc = subprocess.run([find_gdb()] + (["-nx"] if nx else []) + ["-batch", "-q"] + args, cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    return proc.stdout + proc.stderr


def _loaded_ours(out):
    return "gdbext-from " + os.path.join(ROOT, "gdbext", "__init__.py") in out


_WHERE = ["-ex", "python import gdbext; print('gdbext-from', gdbext.__file__)"]


@pytest.mark.parametrize("way", ["-x", "source", "home-gdbinit", "import"])
def test_loading_takes_no_code_from_the_bundle_or_cwd(bundle, way):
    cwd, env = str(bundle["cwd"]), {"GDBEXT_HOME": ""}
    files = [bundle["prog"], bundle["core"]]
    if way == "-x":
        out = _gdb(["-x", GDBINIT] + _WHERE + files, cwd, env)
    elif way == "source":
        out = _gdb(["-ex", f"source {GDBINIT}"] + _WHERE + files, cwd, env)
    elif way == "home-gdbinit":  # the README's third way: the lines copied into ~/.gdbinit, GDBEXT_HOME set
        home = bundle["tmp"] / "home"
        home.mkdir()
        shutil.copy(GDBINIT, home / ".gdbinit")
        out = _gdb(_WHERE + files, cwd, {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
                                         "GDBEXT_HOME": ROOT}, nx=False)
    else:  # a pip install into gdb's Python: PYTHONPATH stands for it
        out = _gdb(["-ex", "python import gdbext; gdbext.register()"] + _WHERE + files, cwd,
                   {"PYTHONPATH": os.pathsep.join([ROOT] + _venv_site())})
    assert sorted(os.listdir(bundle["pwned"])) == [], out
    assert _loaded_ours(out), out


def test_gdbinit_still_finds_its_own_checkout_from_anywhere(tmp_path):
    """The sourced file's own folder is found without /proc guessing: from another cwd, no GDBEXT_HOME."""
    out = _gdb(["-x", GDBINIT] + _WHERE, str(tmp_path), {"GDBEXT_HOME": ""})
    assert _loaded_ours(out), out


def _permissive_gdb(tmp_path):
    """A gdb whose compiled-in auto-load safe-path is "/" (``--with-auto-load-safe-path=/``), as some builds
    ship: only settings passed explicitly keep auto-loading off."""
    wrapper = tmp_path / "permissive-gdb"
    wrapper.write_text(f"#!/bin/sh\nexec {find_gdb()} -iex 'set auto-load safe-path /' \"$@\"\n")
    wrapper.chmod(0o755)
    return str(wrapper)


def _triage(args, cwd=ROOT, env=None, timeout=300, **kw):
    full = dict(os.environ, **(env or {}))
    full["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in full.get("PYTHONPATH", "").split(os.pathsep) if p])
    return subprocess.run([sys.executable, "-P", "-m", "gdbext", "triage", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=timeout, **kw)


@needs_gcc
def test_triage_autoloads_nothing_even_from_a_permissive_gdb(bundle, tmp_path):
    # a program whose .debug_gdb_scripts section holds an inline Python script
    src = tmp_path / "scripted.c"
    src.write_text(textwrap.dedent(f"""\
        #include <stdlib.h>
        __asm__(".pushsection \\".debug_gdb_scripts\\", \\"MS\\", @progbits, 1\\n"
                ".byte 4\\n.ascii \\"payload\\\\n\\"\\n"
                ".ascii \\"open('{bundle['pwned']}/debug_gdb_scripts', 'w').close()\\\\n\\"\\n"
                ".byte 0\\n.popsection\\n");
        int main(void) {{ char *p = malloc(32); free(p); free(p); return 0; }}
        """))
    prog = bundle["dir"] / "scripted"
    subprocess.run(["gcc", "-g", "-O0", "-o", str(prog), str(src)], check=True)
    (bundle["dir"] / "scripted-gdb.py").write_text(_payload(bundle["pwned"], "scripted-gdb.py"))
    core = str(bundle["dir"] / "scripted.core")
    subprocess.run([find_gdb(), "-nx", "-batch", "-ex", "run", "-ex", f"generate-core-file {core}", str(prog)],
                   capture_output=True, cwd=str(tmp_path), timeout=120)
    env = {"GDB": _permissive_gdb(tmp_path)}
    for binary, corefile in ((str(prog), core), (bundle["prog"], bundle["core"])):
        res = _triage([binary, corefile, "--format", "json"], cwd=str(bundle["dir"]), env=env)
        assert res.returncode in (0, 1), res.stderr
    assert sorted(os.listdir(bundle["pwned"])) == [], "auto-loaded from the bundle"
    assert "double-free" in res.stdout


HOSTILE_NAMES = ["-q", "--eval-command=shell touch pwned-eval", "--core=elsewhere", "-ex=shell touch pwned-ex",
                 "with space", "quote'\"s", "new\nline", "x; shell touch pwned-semi", "$(touch pwned-subst)`id`"]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=[repr(n) for n in HOSTILE_NAMES])
def test_file_names_reach_gdb_only_as_files(tmp_path, plain_double_free, name):
    shutil.copy(os.path.join(CORES, "double_free"), tmp_path / name)
    shutil.copyfile(plain_double_free, tmp_path / (name + ".core"))
    res = _triage(["--format", "json", "--", name, name + ".core"], cwd=str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == sorted([name, name + ".core"]), res.stderr  # no "pwned-*" file
    assert res.returncode == 1, res.stderr
    kinds = [f["kind"] for f in json.loads(res.stdout)["findings"]]
    assert "double-free" in kinds


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e308", "0", "-5", "ten"])
def test_bad_timeout_is_exit_2_in_one_line(value):
    res = _triage([os.path.join(CORES, "double_free"), os.path.join(CORES, "double_free.core.xz"),
                   "--timeout", value])
    assert res.returncode == 2, res.stderr
    assert len(res.stderr.splitlines()) == 1 and "timeout" in res.stderr, res.stderr
    assert not has_traceback(res.stderr)


def test_an_unexpected_error_is_exit_2_in_one_line(monkeypatch, capsys):
    from gdbext import cli
    from gdbext.triage import runner

    def boom(*args, **kwargs):
        raise MemoryError("simulated")

    monkeypatch.setattr(runner, "triage_core", boom)
    argv = ["triage", os.path.join(CORES, "double_free"), os.path.join(CORES, "double_free.core.xz")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "MemoryError" in err and not has_traceback(err), err
    assert cli.main(["--debug"] + argv) == 2
    assert has_traceback(capsys.readouterr().err)


def _sleepers(tag):
    """Processes whose command line holds ``tag``."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    if tag.encode() in fh.read():
                        found.append(int(pid))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_cancel_kills_gdb_removes_temp_files_and_writes_nothing(tmp_path, sig, code):
    """The gdb run hangs (a real gdb running ``shell sleep``); the signal must end it and all it started."""
    tag = f"{313 + sig}.{os.getpid() % 1000}"
    wrapper = tmp_path / "slow-gdb"
    wrapper.write_text(f"#!/bin/sh\nexec {find_gdb()} -iex 'shell sleep {tag}' \"$@\"\n")
    wrapper.chmod(0o755)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    folder = tmp_path / "cores"
    folder.mkdir()
    for name in ("double_free", "sensor"):
        shutil.copy(os.path.join(CORES, name), folder / name)  # copies: --dir follows no link out of the folder
        shutil.copy(os.path.join(CORES, name + ".core.xz"), folder / (name + ".core.xz"))
    out = tmp_path / "report.json"
    env = dict(os.environ, GDB=str(wrapper), TMPDIR=str(tmp), PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "gdbext", "triage", "--dir", str(folder), "--jobs", "2",
                             "--output", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _sleepers(tag) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _sleepers(tag), "gdb never started"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.3)
    left = _sleepers(tag)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert proc.returncode == code, err
    assert left == [], "gdb's children outlived the CLI"
    assert os.listdir(tmp) == [], "temporary files left behind"
    assert not out.exists()
    assert len(err.splitlines()) == 1 and not has_traceback(err), err


def test_output_is_replaced_atomically(tmp_path, plain_double_free):
    """A write that fails part-way (file size limit) leaves the earlier report whole."""
    folder = tmp_path / "cores"
    folder.mkdir()
    shutil.copy(os.path.join(CORES, "double_free"), folder / "double_free")
    shutil.copyfile(plain_double_free, folder / "double_free.core")
    shutil.copy(os.path.join(CORES, "double_free"), folder / "again")
    shutil.copyfile(plain_double_free, folder / "again.core")
    out = tmp_path / "report.json"
    out.write_text('{"earlier": "report"}\n')

    def small_files():  # gdb's own report (about 6 KB) fits; the two-core batch document does not
        resource.setrlimit(resource.RLIMIT_FSIZE, (9000, 9000))

    res = _triage(["--dir", str(folder), "--format", "json", "--output", str(out)], preexec_fn=small_files)
    assert res.returncode == 2, res.stderr
    assert json.loads(out.read_text()) == {"earlier": "report"}
    assert sorted(os.listdir(tmp_path)) == ["cores", "report.json"], "temporary file left behind"
    res = _triage(["--dir", str(folder), "--format", "json", "--output", str(out)])
    assert res.returncode == 1 and len(json.loads(out.read_text())["reports"]) == 2, res.stderr


def test_jobs_are_capped_at_the_cpu_count(tmp_path):
    cpus = len(os.sched_getaffinity(0))
    res = _triage(["--dir", str(tmp_path), "--jobs", str(cpus + 62)])
    assert f"using {cpus}" in res.stderr, res.stderr
    for bad in ("0", "-3"):
        res = _triage(["--dir", str(tmp_path), "--jobs", bad])
        assert res.returncode == 2 and len(res.stderr.splitlines()) == 1 and "jobs" in res.stderr, res.stderr


def test_gdb_runs_under_a_memory_limit():
    probe = ["python import resource; print('AS-limit', resource.getrlimit(resource.RLIMIT_AS)[0])"]
    res = gdbrun.run_gdb(None, None, commands=probe, load_gdbext=False)
    assert f"AS-limit {gdbrun.DEFAULT_MEMORY_MIB << 20}" in res.stdout, res.output
    res = gdbrun.run_gdb(None, None, commands=probe, load_gdbext=False, memory_mib=3000)
    assert f"AS-limit {3000 << 20}" in res.stdout, res.output


def test_a_tiny_memory_budget_is_exit_2_in_one_line():
    res = _triage([os.path.join(CORES, "double_free"), os.path.join(CORES, "double_free.core.xz"),
                   "--max-memory", "40"])
    assert res.returncode == 2 and len(res.stderr.splitlines()) == 1 and not has_traceback(res.stderr), res.stderr


def test_cancel_during_decompression_leaves_no_partial_core(tmp_path, plain_double_free):
    """SIGTERM while a large .xz core is being decompressed (or, if that was quick, while gdb hangs)."""
    big = tmp_path / "big.core.xz"
    with open(plain_double_free, "rb") as fh:
        head = fh.read(1 << 16)
    with lzma.open(big, "wb", preset=0) as out:
        out.write(head)
        zeros = bytes(1 << 20)
        for _ in range(256):
            out.write(zeros)
    wrapper = tmp_path / "slow-gdb"
    tag = f"317.{os.getpid() % 1000}"
    wrapper.write_text(f"#!/bin/sh\nexec {find_gdb()} -iex 'shell sleep {tag}' \"$@\"\n")
    wrapper.chmod(0o755)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, GDB=str(wrapper), TMPDIR=str(tmp), PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-P", "-m", "gdbext", "triage", os.path.join(CORES, "double_free"),
                             str(big)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not os.listdir(tmp) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert os.listdir(tmp), "decompression never started"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    for pid in _sleepers(tag):
        os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 143, err
    assert os.listdir(tmp) == [], "a partial decompressed core was left behind"


def test_a_text_file_posing_as_the_program_is_not_taken_for_gdbinit(tmp_path):
    """gdbinit.example recognises itself by its text; a bundle's non-ELF 'program' holding that text is not
    kept open by gdb, so its folder is never a candidate."""
    pwned = tmp_path / "pwned"
    pwned.mkdir()
    (tmp_path / "gdbext").mkdir()
    (tmp_path / "gdbext" / "__init__.py").write_text(_payload(pwned, "package") + "def register():\n    pass\n")
    with open(GDBINIT, encoding="utf-8") as fh:
        (tmp_path / "prog").write_text(fh.read())
    out = _gdb(["-x", GDBINIT] + _WHERE + [str(tmp_path / "prog")], str(tmp_path), {"GDBEXT_HOME": ""})
    assert os.listdir(pwned) == [] and _loaded_ours(out), out


def test_gdbext_gdb_autoloads_nothing_unless_asked(bundle, tmp_path):
    env = dict(os.environ, GDB=_permissive_gdb(tmp_path), PYTHONPATH=ROOT)
    cmd = [sys.executable, "-P", "-m", "gdbext", "gdb", bundle["prog"], bundle["core"], "-ex", "info auto-load"]
    proc = subprocess.run(cmd, cwd=str(bundle["cwd"]), env=env, capture_output=True, text=True, timeout=120)
    assert os.listdir(bundle["pwned"]) == [], proc.stdout + proc.stderr
    proc = subprocess.run(cmd + ["--auto-load"], cwd=str(bundle["cwd"]), env=env, capture_output=True, text=True,
                          timeout=120)
    assert os.listdir(bundle["pwned"]) == ["bundle-gdb.py"], proc.stdout + proc.stderr  # the control: it bites
