"""The crash signature survives a rebuild: the same bug, other addresses, the same signature.

Two fixtures are rebuilt here with an extra compile flag (-fstack-protector-all)
and a padding function and data array linked in front of them, so every code
and data address moves; each rebuilt program is run under gdb to its crash,
its core triaged, and the signature compared with the shipped fixture's.
"""
import json
import os
import subprocess
import sys

import pytest

from conftest import CORES, ROOT, SPECS, SRC, needs_gcc, needs_gdb
from gdbext.gdbrun import find_gdb, has_traceback

pytestmark = [needs_gdb, needs_gcc]

PAD = r"""
/* linked first: moves every address of the program after it */
char g_pad_data[4096] = {1};
__attribute__((noinline, used)) int pad_function(int x)
{
    volatile int a[64];
    for (int i = 0; i < 64; i++)
        a[i] = x * i;
    return a[x & 63];
}
"""


def triage_json(binary, core, *extra):
    proc = subprocess.run([sys.executable, "-m", "gdbext", "triage", binary, core, "--format", "json", *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert not has_traceback(proc.stdout + proc.stderr), proc.stderr
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def rebuild_and_crash(name, tmp_path):
    pad = tmp_path / "pad.c"
    pad.write_text(PAD)
    binary = tmp_path / name
    subprocess.run(["gcc", "-g", "-O0", "-static", "-pthread", "-fno-omit-frame-pointer", "-fstack-protector-all",
                    "-Wall", f"-fdebug-prefix-map={ROOT}=.", "-o", str(binary), str(pad),
                    os.path.relpath(os.path.join(SRC, name + ".c"), ROOT)], cwd=ROOT, check=True,
                   capture_output=True)
    core = tmp_path / (name + ".core")
    subprocess.run([find_gdb(), "-nx", "-batch", "-ex", "set pagination off", "-ex", "set startup-with-shell off",
                    "-ex", "unset environment", "-ex", "run", "-ex", f"generate-core-file {core}",
                    "--args", str(binary)], cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True,
                   timeout=120)
    if not core.exists():
        pytest.skip("gdb could not run the rebuilt program to write a core (ptrace not permitted?)")
    return str(binary), str(core)


@pytest.mark.parametrize("name, spec", [("pool_overflow", "pool_overflow.py"), ("double_free", None)])
def test_signature_is_stable_across_rebuilds(tmp_path, name, spec):
    extra = ["--pools", os.path.join(SPECS, spec)] if spec else []
    shipped = triage_json(os.path.join(CORES, name), os.path.join(CORES, name + ".core.xz"), *extra)
    binary, core = rebuild_and_crash(name, tmp_path)
    rebuilt = triage_json(binary, core, *extra)
    assert rebuilt["build_id"] != shipped["build_id"]
    # the addresses really moved
    assert [f["pc"] for f in rebuilt["crash"]["frames"]] != [f["pc"] for f in shipped["crash"]["frames"]]
    if rebuilt["findings"] and rebuilt["findings"][0]["address"]:
        assert rebuilt["findings"][0]["address"] != shipped["findings"][0]["address"]
    assert rebuilt["crash"]["signature"] == shipped["crash"]["signature"]
    assert [f["kind"] for f in rebuilt["findings"]] == [f["kind"] for f in shipped["findings"]]
