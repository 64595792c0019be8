"""Crash history on SQLite: `gdbext triage --db/--fail-on` and `gdbext crashes` through the real CLI and
gdb on the shipped fixture cores (checked against their ground truth), concurrent writer processes,
the CI context, and the Alembic migrations against the tables they must create."""
import json
import os
import shutil

import pytest
import sqlalchemy as sa

from conftest import CORES, Truth, needs_gdb
from history_support import clean_env, concurrent_writers, gdbext
from gdbext.cli import main
from gdbext.errors import GdbextError
from gdbext.triage.history import BucketStatus, CrashDB, FailOn, Recorded, detect_ci, history_exit_code, parse_since
from gdbext.triage.history.schema import METADATA, VERSION_TABLE
from gdbext.triage.history.store import HistoryError, database_url, utcnow


def fixture(name):
    return os.path.join(CORES, name), os.path.join(CORES, name + ".core.xz")


@needs_gdb
def test_new_then_known_across_runs_and_fail_on(tmp_path):
    db = str(tmp_path / "crashes.db")
    truth = Truth("double_free")
    # run 1 (GitLab CI): the signature is new, so --fail-on new fails the job
    env = clean_env(GITLAB_CI="true", CI_COMMIT_SHA="c0ffee1", CI_COMMIT_REF_NAME="feature/x",
                    CI_JOB_URL="https://gitlab.example/p/-/jobs/41", CI_JOB_NAME="triage")
    code, out, err = gdbext("triage", *fixture("double_free"), "--db", db, "--fail-on", "new", "--format", "json",
                            env=env)
    assert code == 1, err
    sig = json.loads(out)["crash"]["signature"]
    assert sig.startswith(f"double_free: double-free | {truth['crash_function']}")
    assert err == f"gdbext: new crash: {sig}\n"
    # run 2: the same crash is known; --fail-on new passes, --fail-on any still fails
    code, _, err = gdbext("triage", *fixture("double_free"), "--db", db, "--fail-on", "new")
    assert code == 0 and err.startswith("gdbext: known crash (2 times since ") and err.endswith(sig + "\n")
    code, _, _ = gdbext("triage", *fixture("double_free"), "--db", db, "--fail-on", "any")
    assert code == 1
    # the list: one bucket, three cores, known, with the latest core and the first run's CI context kept
    code, out, err = gdbext("crashes", "--db", db, "--format", "json")
    assert code == 0, err
    buckets = json.loads(out)["buckets"]
    assert [(b["signature"], b["count"], b["status"]) for b in buckets] == [(sig, 3, "known")]
    assert buckets[0]["latest"]["core"].endswith("double_free.core.xz")
    assert buckets[0]["latest"]["finding_kinds"] == ["double-free"]
    code, out, _ = gdbext("crashes", "show", "double_free:", "--db", db, "--format", "json")
    occ = json.loads(out)["bucket"]["occurrences"]
    assert len(occ) == 3 and occ[-1]["ci"] == {"provider": "gitlab-ci", "commit": "c0ffee1", "branch": "feature/x",
                                               "job": "triage", "url": "https://gitlab.example/p/-/jobs/41"}
    assert occ[0]["report"]["crash"]["signature"] == sig and occ[0]["report"]["schema"] == "gdbext.triage/1"
    code, out, _ = gdbext("crashes", "show", sig, "--db", db)
    assert code == 0 and f"signature:  {sig}\nstatus:     known, 3 time(s)" in out
    assert truth["abort_message"] in out  # the latest report, rendered
    code, out, _ = gdbext("crashes", "--db", db, "--format", "markdown")
    assert "| known | 3 | `double_free: double-free \\| " in out


@needs_gdb
def test_directory_run_records_every_core_and_fails_only_on_new(tmp_path):
    folder = tmp_path / "cores"
    folder.mkdir()
    for name in ("sensor", "threads"):
        for path in fixture(name):
            shutil.copy(path, folder / os.path.basename(path))  # --dir does not follow links out of it
    db = str(tmp_path / "h.db")
    code, out, err = gdbext("triage", "--dir", str(folder), "--db", db, "--fail-on", "new", "--format", "json")
    assert code == 1, err
    sigs = sorted(g["signature"] for g in json.loads(out)["groups"])
    assert sorted(line.split("new crash: ", 1)[1] for line in err.splitlines()) == sigs
    assert [s.split(":", 1)[0] for s in sigs] == ["sensor", "threads"]  # two programs, two buckets
    code, _, err = gdbext("triage", "--dir", str(folder), "--db", db, "--fail-on", "new")
    assert code == 0 and err.count("known crash (2 times") == 2
    code, out, _ = gdbext("crashes", "--db", db, "--since", "1h")
    assert out.startswith("2 signature(s)\n")
    code, out, _ = gdbext("crashes", "--db", db, "--since", "2000-01-01T00:00:00+00:00", "--format", "json")
    assert len(json.loads(out)["buckets"]) == 2


def _main(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_fail_on_and_bad_databases_are_one_line_errors(tmp_path, capsys):
    code, _, err = _main(capsys, "crashes", "--db", str(tmp_path / "absent.db"))
    assert code == 2 and err == f"gdbext: no crash database at {tmp_path / 'absent.db'}\n"
    assert not (tmp_path / "absent.db").exists()
    not_db = tmp_path / "text.db"
    not_db.write_text("hello, not sqlite\n" * 100)
    code, _, err = _main(capsys, "crashes", "--db", str(not_db))
    assert code == 2 and err.startswith("gdbext: crash database ") and len(err.splitlines()) == 1
    code, _, err = _main(capsys, "crashes", "--db", "mysql://u@h/d")
    assert code == 2 and "unsupported database 'mysql'" in err
    code, _, err = _main(capsys, "crashes", "--db", str(not_db), "--since", "soon")
    assert code == 2
    empty = sa.create_engine(database_url(str(tmp_path / "other.db")))
    with empty.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x)")
    empty.dispose()
    code, _, err = _main(capsys, "crashes", "--db", str(tmp_path / "other.db"))
    assert code == 2 and err.endswith("is not a gdbext crash database\n")
    # --fail-on: 2 (not analysed) always wins; new needs a database
    rec = [Recorded("s", 1, BucketStatus.KNOWN, 2, utcnow())]
    assert history_exit_code(FailOn.NEW, rec, 1, 1) == 0
    assert history_exit_code(FailOn.NEW, rec + [Recorded("t", 2, BucketStatus.NEW, 1, utcnow())], 2, 0) == 1
    assert history_exit_code(FailOn.ANY, rec, 1, 0) == 1 and history_exit_code(FailOn.ANY, [], 0, 0) == 0
    assert history_exit_code(FailOn.NONE, rec, 1, 1) == 0
    assert all(history_exit_code(f, rec, 1, 2) == 2 for f in FailOn)
    with pytest.raises(GdbextError, match="--fail-on new needs --db"):
        history_exit_code(FailOn.NEW, None, 1, 1)


def test_concurrent_writers_on_sqlite(tmp_path):
    db = str(tmp_path / "shared.db")
    writers, per = 4, 9
    results = concurrent_writers(db, writers, per)  # all start on a database that does not exist yet
    with CrashDB(db, create=False) as store:
        buckets = {b.signature: b for b in store.buckets()}
    assert sorted(buckets) == [f"prog: SIGSEGV | f{i} | main" for i in range(3)]
    assert all(b.count == writers * per // 3 for b in buckets.values())
    for sig in buckets:  # exactly one run created each bucket: only its cores are "new"
        new_runs = [i for i, res in enumerate(results) if any(s == sig and st == "new" for s, st, _ in res)]
        assert len(new_runs) == 1
    counts = sorted(c for res in results for s, _, c in res if s == "prog: SIGSEGV | f0 | main")
    assert counts == list(range(1, writers * per // 3 + 1))  # every increment was seen exactly once


def test_migrations_create_exactly_the_declared_tables(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    db = str(tmp_path / "m.db")
    CrashDB(db).close()
    CrashDB(db).close()  # a second open finds the schema current and changes nothing
    engine = sa.create_engine(database_url(db))
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(ctx, METADATA) == []
        assert ctx.get_current_revision() == "0001"
    engine.dispose()


def test_hostile_signatures_are_escaped_in_text(tmp_path):
    db = str(tmp_path / "h.db")
    from gdbext.triage.history import CiContext, record_reports

    record_reports(db, [{"core": "x\x1b[2J.core", "crash": {"signature": "p: SIGSEGV | evil\x1b]0;t\x07"}}],
                   ci=CiContext())
    code, out, _ = gdbext("crashes", "--db", db)
    assert code == 0 and "\x1b" not in out and "\x07" not in out and "evil\\x1b]0;t\\x07" in out


def test_ci_detection_and_since():
    gh = detect_ci({"GITHUB_ACTIONS": "true", "GITHUB_SHA": "abc", "GITHUB_REF_NAME": "main", "GITHUB_JOB": "t",
                    "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "9"})
    assert gh.to_dict() == {"provider": "github-actions", "commit": "abc", "branch": "main", "job": "t",
                            "url": "https://github.com/o/r/actions/runs/9"}
    jk = detect_ci({"JENKINS_URL": "https://j/", "GIT_COMMIT": "d", "BRANCH_NAME": "b", "BUILD_URL": "https://j/1/"})
    assert (jk.provider, jk.commit, jk.branch, jk.url) == ("jenkins", "d", "b", "https://j/1/")
    assert detect_ci({"GITHUB_ACTIONS": "true"}).url is None  # no half-filled URL
    assert detect_ci({}).provider is None and detect_ci({"CI": "false"}).provider is None
    now = utcnow()
    assert (now - parse_since("2h", now)).total_seconds() == 7200
    assert parse_since("2026-01-02T03:00:00+01:00").hour == 2
    with pytest.raises(HistoryError):
        parse_since("yesterday")
