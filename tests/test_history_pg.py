"""Crash history on a real PostgreSQL server: a throw-away cluster (Debian's postgresql package) on a
Unix socket in a temporary directory, several writer processes at once, and `gdbext triage --db URL`."""
import json
import os

import pytest

from conftest import CORES, needs_gdb
from history_support import PgCluster, concurrent_writers, gdbext, pg_bindir
from gdbext.elfsyms import file_build_id
from gdbext.triage.history import CrashDB

pytestmark = pytest.mark.skipif(pg_bindir() is None, reason="PostgreSQL is not installed (.ci/run installs "
                                "Debian's postgresql package)")


@pytest.fixture(scope="module")
def cluster():
    pg = PgCluster()
    yield pg
    pg.stop()


def test_concurrent_writers_on_postgresql(cluster):
    url = cluster.createdb("writers")
    writers, per = 4, 9
    results = concurrent_writers(url, writers, per)  # the first writers race to create the schema too
    with CrashDB(url, create=False) as store:
        buckets = {b.signature: b for b in store.buckets()}
    assert sorted(buckets) == [f"prog: SIGSEGV | f{i} | main" for i in range(3)]
    assert all(b.count == writers * per // 3 for b in buckets.values())
    for sig in buckets:
        new_runs = [i for i, res in enumerate(results) if any(s == sig and st == "new" for s, st, _ in res)]
        assert len(new_runs) == 1
    counts = sorted(c for res in results for s, _, c in res if s == "prog: SIGSEGV | f1 | main")
    assert counts == list(range(1, writers * per // 3 + 1))


@needs_gdb
def test_triage_into_postgresql_and_list(cluster):
    url = cluster.createdb("triage")
    binary, core = os.path.join(CORES, "sensor"), os.path.join(CORES, "sensor.core.xz")
    code, out, err = gdbext("triage", binary, core, "--db", url, "--fail-on", "new", "--format", "json")
    assert code == 1 and err.startswith("gdbext: new crash: sensor: SIGSEGV | "), err
    sig = json.loads(out)["crash"]["signature"]
    code, _, err = gdbext("triage", binary, core, "--db", url.replace("postgresql://", "postgres://"),
                          "--fail-on", "new")
    assert code == 0 and "known crash (2 times" in err
    code, out, _ = gdbext("crashes", "--db", url, "--format", "json")
    buckets = json.loads(out)["buckets"]
    assert [(b["signature"], b["count"], b["status"]) for b in buckets] == [(sig, 2, "known")]
    assert buckets[0]["latest"]["build_id"] == file_build_id(binary)
    code, _, err = gdbext("crashes", "--db", f"postgresql://gdbext:secret@/absent?host={cluster.dir}&port=1")
    assert code == 2 and "secret" not in err and len(err.splitlines()) == 1
