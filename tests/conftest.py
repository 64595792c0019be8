"""Shared test helpers: fixture paths, ground truth, and running the real gdb."""
from __future__ import annotations

import os
import shutil
from typing import Dict, List, Optional, Sequence, Tuple

import pytest

from gdbext.gdbrun import GdbResult, has_traceback, run_gdb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORES = os.path.join(ROOT, "fixtures", "cores")
SPECS = os.path.join(ROOT, "fixtures", "specs")
SRC = os.path.join(ROOT, "fixtures", "src")

needs_gdb = pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")


def binary(name: str) -> str:
    return os.path.join(CORES, name)


def core(name: str) -> str:
    return os.path.join(CORES, name + ".core.xz")


def spec(name: str) -> str:
    return os.path.join(SPECS, name + ".py")


class Truth:
    """A fixture's ground truth: the ``GT key value`` lines its program printed."""

    def __init__(self, name: str) -> None:
        self.pairs: List[Tuple[str, str]] = []
        with open(os.path.join(CORES, name + ".truth"), encoding="utf-8") as fh:
            for line in fh:
                parts = line.rstrip("\n").split(" ", 2)
                if len(parts) >= 2 and parts[0] == "GT":
                    self.pairs.append((parts[1], parts[2] if len(parts) > 2 else ""))
        self.last: Dict[str, str] = dict(self.pairs)

    def __getitem__(self, key: str) -> str:
        return self.last[key]

    def int(self, key: str) -> int:
        return int(self.last[key], 0)

    def all(self, key: str) -> List[str]:
        return [v for k, v in self.pairs if k == key]

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        return self.last.get(key, default)


def gdb_run(name: Optional[str], commands: Sequence[str], specs: Sequence[str] = (), with_core: bool = True,
            **kwargs) -> GdbResult:
    """Run gdb on fixture ``name`` (binary and core); fail on any Python traceback."""
    result = run_gdb(binary(name) if name else None, core(name) if name and with_core else None,
                     commands=commands, spec_files=specs, **kwargs)
    assert not has_traceback(result.output), result.output
    return result


@pytest.fixture(scope="module")
def open_core():
    """``open_core(name)``: the fixture's core as a :class:`CoreFile` (decompressed once per module)."""
    import contextlib

    from gdbext.corefile import CoreFile
    from gdbext.gdbrun import plain_core

    stack = contextlib.ExitStack()
    opened = {}

    def get(name: str) -> CoreFile:
        if name not in opened:
            if not os.path.exists(core(name)):
                pytest.skip(f"fixture core {name} missing")
            path = stack.enter_context(plain_core(core(name)))
            opened[name] = stack.enter_context(CoreFile(path, executable=binary(name)))
        return opened[name]

    with stack:
        yield get
