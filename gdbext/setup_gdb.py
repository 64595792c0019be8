"""``gdbext setup-gdb``: make the gdb of this machine load gdbext from the environment it is installed in.

gdb embeds its own Python (on Debian ``/usr/bin/python3``), which does not
see virtual environments or pipx's, and PEP 668 forbids ``pip install``
into the system Python.  So gdbext is installed into a venv (or with pipx),
and this writes two lines into the user's gdbinit: a comment saying who
wrote them, and one ``python`` line that adds the environment's
site-packages to gdb's Python (``site.addsitedir``, so ``.pth`` files of
editable installs work too) and registers gdbext.

* The gdbinit is the one gdb reads: ``$XDG_CONFIG_HOME/gdb/gdbinit``,
  ``~/.config/gdb/gdbinit`` or ``~/.gdbinit``, the first that exists
  (creating ``~/.config/gdb/gdbinit`` when none does would hide an
  existing ``~/.gdbinit``, so one is created only when there is none).
* Before writing, gdb itself is asked (``gdb -nx -batch``) whether its
  Python can import gdbext and its dependencies from that directory; if
  not, nothing is written and the message names gdb's Python and this
  one's, and what to do.
* Idempotent: the lines are recognised by their marker and replaced in
  place (another environment) or left alone (the same one).
* ``--remove`` deletes exactly those lines.
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from typing import List, Optional, Sequence

from .errors import GdbextError
from .gdbrun import find_gdb

__all__ = ["MARKER", "SetupResult", "gdbinit_path", "hook_lines", "install", "remove", "gdb_python", "site_dirs",
           "user_init_files"]

#: Ends the ``python`` line (a Python comment there), so the line can be found again.
MARKER = "# gdbext setup-gdb"
_COMMENT = "# gdbext: loaded from a Python environment by `gdbext setup-gdb` (undo: gdbext setup-gdb --remove)"

#: Seconds gdb may take for the import check.
GDB_TIMEOUT = 60.0


@dataclass
class SetupResult:
    """What setup did: the file, whether it changed, and what to tell the user."""

    gdbinit: str
    changed: bool
    message: str


def site_dirs() -> List[str]:
    """The directories of this environment that gdb's Python must see (purelib, then platlib if different)."""
    paths = sysconfig.get_paths()
    out = []
    for key in ("purelib", "platlib"):
        path = os.path.abspath(paths[key])
        if path not in out:
            out.append(path)
    return out


def _check_path(path: str) -> str:
    if not path.isprintable():
        raise GdbextError(f"cannot write a gdbinit line for the directory {path!r}: it has control characters")
    return path


def hook_lines(dirs: Sequence[str]) -> List[str]:
    """The two lines for the gdbinit: who wrote them, and the ``python`` line that loads gdbext."""
    adds = "; ".join(f"site.addsitedir({_check_path(d)!r})" for d in dirs)
    return [_COMMENT, f"python import site; {adds}; import gdbext; gdbext.register()  {MARKER}"]


def gdbinit_path(home: Optional[str] = None, environ: Optional[dict] = None) -> str:
    """The user gdbinit gdb reads (gdb 11+): ``$XDG_CONFIG_HOME/gdb/gdbinit`` (default ``~/.config``), else
    ``~/.gdbinit``; the first that exists, the first when none does."""
    env = os.environ if environ is None else environ
    home = home or env.get("HOME") or os.path.expanduser("~")
    config = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    candidates = [os.path.join(config, "gdb", "gdbinit"), os.path.join(home, ".gdbinit")]
    for path in candidates:
        if os.path.isfile(path):
            return path
    return candidates[0]


def _read(path: str) -> List[str]:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            return fh.read().splitlines()
    except FileNotFoundError:
        return []
    except OSError as err:
        raise GdbextError(f"cannot read {path}: {err.strerror}") from None


def _write(path: str, lines: List[str]) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".gdbext-tmp"
    try:
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write("".join(line + "\n" for line in lines))
        os.replace(tmp, path)
    except OSError as err:
        raise GdbextError(f"cannot write {path}: {err.strerror}") from None


def _without_hook(lines: List[str]) -> List[str]:
    return [line for line in lines if line != _COMMENT and not line.rstrip().endswith(MARKER)]


def gdb_python(gdb: Optional[str] = None, dirs: Sequence[str] = ()) -> dict:
    """Ask gdb's embedded Python for its version and executable and whether it imports gdbext from ``dirs``.

    :returns: ``{"version": "3.11.2", "executable": ..., "error": None or the import error}``.
    :raises GdbextError: gdb cannot be run, or has no Python.
    """
    # gdb's sys.executable is often a name that does not exist (/usr/bin/python): name the real interpreter
    probe = ("import os, site, sys; [site.addsitedir(d) for d in %r]; print('@@version', sys.version.split()[0])\n"
             "names = [os.path.join(sys.base_prefix, 'bin', 'python%%d.%%d' %% sys.version_info[:2]), "
             "os.path.join(sys.base_prefix, 'bin', 'python3'), sys.executable]\n"
             "print('@@executable', next((n for n in names if os.path.isfile(n)), sys.executable))\n"
             "try:\n"
             "    import elftools, construct, capstone, gdbext; print('@@ok', gdbext.__version__, gdbext.__file__)\n"
             "except Exception as err:\n"
             "    print('@@error', type(err).__name__, err)\n") % (list(dirs),)
    argv = [gdb or find_gdb(), "-nx", "-batch", "-ex", "python\n" + probe + "end"]
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                              timeout=GDB_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise GdbextError(f"cannot run gdb to check its Python: {err}") from None
    facts = {}
    for line in proc.stdout.splitlines():
        if line.startswith("@@"):
            key, _, value = line[2:].partition(" ")
            facts[key] = value
    if "version" not in facts:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise GdbextError(f"gdb ({argv[0]}) has no working Python: {tail}")
    return {"version": facts["version"], "executable": facts.get("executable", "?"),
            "error": facts.get("error") if "ok" not in facts else None, "loaded": facts.get("ok")}


def _mismatch_advice(info: dict) -> str:
    ours = ".".join(map(str, sys.version_info[:2]))
    theirs = ".".join(info["version"].split(".")[:2])
    where = f"gdb embeds Python {info['version']} ({info['executable']}); this environment is Python {ours}"
    if ours != theirs:
        return (f"{where}: build the environment with gdb's Python ({info['executable']} -m venv DIR, "
                f"or pipx install --python {info['executable']} gdbext) and run its gdbext setup-gdb")
    return f"{where}: check that gdbext's dependencies are installed in {sys.prefix}"


def install(gdbinit: Optional[str] = None, gdb: Optional[str] = None, check: bool = True) -> SetupResult:
    """Write (or refresh) the gdbext lines in the user's gdbinit; with ``check``, only if gdb's Python can load them."""
    path = gdbinit or gdbinit_path()
    dirs = site_dirs()
    wanted = hook_lines(dirs)
    if check:
        info = gdb_python(gdb, dirs)
        if info["error"]:
            raise GdbextError(f"gdb's Python cannot import gdbext from {dirs[0]} ({info['error']}); "
                              f"{_mismatch_advice(info)}; nothing written")
    lines = _read(path)
    if all(line in lines for line in wanted) and len(lines) - len(_without_hook(lines)) == len(wanted):
        return SetupResult(path, False, f"gdbext setup-gdb: {path} already loads gdbext from {dirs[0]}")
    kept = _without_hook(lines)
    replaced = len(kept) != len(lines)
    _write(path, kept + wanted)
    verb = "updated" if replaced else "added"
    message = f"gdbext setup-gdb: {verb} 2 lines in {path}: gdb loads gdbext from {dirs[0]}"
    if check and path not in user_init_files(gdb):
        message += f" (but gdb --help does not list {path} among the files it reads: check HOME and XDG_CONFIG_HOME)"
    return SetupResult(path, True, message)


def user_init_files(gdb: Optional[str] = None) -> List[str]:
    """The user-specific init files gdb says it reads at startup (``gdb --help``)."""
    try:
        proc = subprocess.run([gdb or find_gdb(), "--help"], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, errors="replace", timeout=GDB_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise GdbextError(f"cannot run gdb --help: {err}") from None
    prefix = "* user-specific init file:"
    return [line.strip()[len(prefix):].strip() for line in proc.stdout.splitlines() if line.strip().startswith(prefix)]


def remove(gdbinit: Optional[str] = None) -> SetupResult:
    """Delete the gdbext lines from the user's gdbinit (nothing else)."""
    path = gdbinit or gdbinit_path()
    lines = _read(path)
    kept = _without_hook(lines)
    if len(kept) == len(lines):
        return SetupResult(path, False, f"gdbext setup-gdb: {path} has no gdbext lines")
    if any(line.strip() for line in kept):
        _write(path, kept)
    else:  # nothing else in it: an empty ~/.config/gdb/gdbinit would hide a later ~/.gdbinit from gdb
        try:
            os.remove(path)
        except OSError as err:
            raise GdbextError(f"cannot remove {path}: {err.strerror}") from None
    return SetupResult(path, True, f"gdbext setup-gdb: removed {len(lines) - len(kept)} lines from {path}")
