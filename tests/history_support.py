"""Helpers shared by the crash-history tests: the real CLI, concurrent writer processes, and a
throw-away PostgreSQL cluster (initdb/pg_ctl from Debian's postgresql package) on a Unix socket."""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

from conftest import ROOT
from gdbext.gdbrun import has_traceback

#: CI variables cleared for every run, so the machine's own environment never leaks into a test.
CI_MARKERS = ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "CIRCLECI", "BUILDKITE", "TF_BUILD", "TRAVIS",
              "BITBUCKET_BUILD_NUMBER", "DRONE", "GDBEXT_DB")

WRITER = r"""
import json, sys
from gdbext.triage.history import record_reports
db, program, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
reports = []
for i in range(n):
    sig = f"{program}: SIGSEGV | f{i % 3} | main"
    reports.append({"core": f"{program}-{i}.core", "crash": {"signature": sig, "program": program,
                    "signal": "SIGSEGV"}, "findings": [], "build_id": None, "binary": program})
print(json.dumps([[r.signature, r.status.value, r.count] for r in record_reports(db, reports)]))
"""


def clean_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CI_MARKERS}
    env.update(extra)
    return env


def gdbext(*args: str, env: Optional[Dict[str, str]] = None, timeout: float = 300) -> Tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "gdbext", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env or clean_env())
    assert not has_traceback(proc.stdout + proc.stderr), proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


def concurrent_writers(db: str, writers: int, per_writer: int) -> List[List[list]]:
    """``writers`` processes, started together, each recording ``per_writer`` reports (3 signatures)."""
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, db, "prog", str(per_writer)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
             for _ in range(writers)]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr
        out.append(json.loads(stdout))
    return out


def pg_bindir() -> Optional[str]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(found[-1]) if found else None


class PgCluster:
    """A PostgreSQL server in a temporary directory, listening on a Unix socket only.

    As root it runs as the ``postgres`` system user (the server refuses root).
    """

    PORT = 54329

    def __init__(self) -> None:
        bindir = pg_bindir()
        assert bindir is not None
        self.bindir = bindir
        self.dir = tempfile.mkdtemp(prefix="gdbext-pg-")
        self.data = os.path.join(self.dir, "data")
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
            os.chmod(self.dir, 0o755)
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "gdbext", "--no-sync")
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w", "-t", "60", "-o",
                  f"-k {self.dir} -c listen_addresses='' -p {self.PORT} -c fsync=off", "start")
        self.url = f"postgresql://gdbext@/postgres?host={self.dir}&port={self.PORT}"

    def _run(self, tool: str, *args: str) -> None:
        cmd: Sequence[str] = [os.path.join(self.bindir, tool), *args]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.dir)
        assert proc.returncode == 0, f"{tool}: {proc.stdout}{proc.stderr}"

    def createdb(self, name: str) -> str:
        self._run("createdb", "-h", self.dir, "-p", str(self.PORT), "-U", "gdbext", name)
        return f"postgresql://gdbext@/{name}?host={self.dir}&port={self.PORT}"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
