# gdbext/triage/history/store.py - the crash database: opening it (SQLite file or PostgreSQL
# URL), migrating it with Alembic under a lock, recording reports and reading buckets back.
"""The crash database behind ``gdbext triage --db`` and ``gdbext crashes``.

Concurrent writers are safe by construction:

* on SQLite every write transaction starts with ``BEGIN IMMEDIATE`` (the
  database's write lock is taken before anything is read) and waits up to
  :data:`BUSY_TIMEOUT` seconds for it;
* on PostgreSQL a new bucket is an ``INSERT ... ON CONFLICT DO NOTHING``
  followed by ``SELECT ... FOR UPDATE`` of the bucket row, so two runners
  recording the same signature serialise on that row, and migrations hold a
  transaction-scoped advisory lock.

Each core is recorded in its own transaction.  A bucket is *new* for the
run that created it (``first_run``): every core of that run with that
signature is new, later runs see it as known.
"""
from __future__ import annotations

import enum
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url

from ... import __version__
from ...errors import GdbextError
from .ci import CiContext
from .schema import BUCKETS, CRASHES, RUNS, VERSION_TABLE

__all__ = [
    "HistoryError",
    "BucketStatus",
    "Recorded",
    "Occurrence",
    "Bucket",
    "CrashDB",
    "database_url",
    "utcnow",
    "BUSY_TIMEOUT",
]

#: Seconds a SQLite writer waits for another's lock.
BUSY_TIMEOUT = 60.0
#: Seconds to wait for a PostgreSQL server to answer a connection.
CONNECT_TIMEOUT = 15
#: Occurrences ``crashes show`` lists (newest first).
SHOW_OCCURRENCES = 20
#: Key of the PostgreSQL advisory lock that serialises migrations ("gdbext" in ASCII).
_MIGRATION_LOCK = 0x676462657874
_MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")


class HistoryError(GdbextError):
    """The crash database cannot be opened, migrated, written or read."""


class BucketStatus(enum.Enum):
    """``new``: seen only by the run that first saw it; ``known``: seen again by a later run."""

    NEW = "new"
    KNOWN = "known"


@dataclass(frozen=True)
class Recorded:
    """What recording one report found: its bucket and whether this run created it."""

    signature: str
    bucket_id: int
    status: BucketStatus
    count: int
    first_seen: datetime


@dataclass
class Occurrence:
    """One recorded core, with the CI context of the run that recorded it."""

    id: int
    seen: datetime
    core: Optional[str]
    binary: Optional[str]
    build_id: Optional[str]
    signal: Optional[str]
    finding_kinds: List[str]
    ci: Dict[str, Optional[str]]
    report: Optional[Dict[str, Any]] = None


@dataclass
class Bucket:
    """One signature's history."""

    id: int
    signature: str
    program: Optional[str]
    first_seen: datetime
    last_seen: datetime
    count: int
    status: BucketStatus
    latest: Optional[Occurrence] = None
    occurrences: List[Occurrence] = field(default_factory=list)


def utcnow() -> datetime:
    """Now in UTC, without tzinfo (how the database stores times)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def database_url(spec: str) -> URL:
    """The SQLAlchemy URL of ``--db SPEC``: a PostgreSQL or SQLite URL, else a SQLite file path.

    The path is never parsed as a URL, so any file name is a file name.
    """
    if "://" not in spec:
        return URL.create("sqlite", database=os.path.abspath(spec))
    try:
        url = make_url(spec)
    except sa.exc.ArgumentError:
        raise HistoryError("--db: not a database URL (postgresql://USER@HOST/DB, sqlite:///PATH or a file path)") \
            from None
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return url
    raise HistoryError(f"--db: unsupported database {backend!r} (PostgreSQL or SQLite)")


def _one_line(err: BaseException) -> str:
    orig = getattr(err, "orig", None)
    text = str(orig if orig is not None else err).strip()
    return (text.splitlines() or [type(err).__name__])[0]


class CrashDB:
    """An open crash database.

    :param spec: ``--db``: a file path (SQLite) or a ``postgresql://`` / ``sqlite://`` URL.
    :param create: create (and migrate) the database if needed; False to only read an existing one.
    """

    def __init__(self, spec: str, create: bool = True) -> None:
        self.url = database_url(spec)
        self.where = self.url.render_as_string(hide_password=True)
        if self.is_sqlite:
            self.where = self.url.database or ":memory:"
            if not create and not (self.url.database and os.path.isfile(self.url.database)):
                raise HistoryError(f"no crash database at {self.where}")
        self.engine = self._engine()
        try:
            if create:
                self.migrate()
            else:
                self._check_revision()
        except BaseException:
            self.engine.dispose()
            raise

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    def _engine(self) -> Engine:
        try:
            if self.is_sqlite:
                engine = sa.create_engine(self.url, connect_args={"timeout": BUSY_TIMEOUT}, poolclass=sa.NullPool)
                sa.event.listen(engine, "connect", _sqlite_connect)
                sa.event.listen(engine, "begin", _sqlite_begin)
                return engine
            return sa.create_engine(self.url, connect_args={"connect_timeout": CONNECT_TIMEOUT},
                                    poolclass=sa.NullPool)
        except ImportError as err:
            raise HistoryError(f"{self.where}: the database driver is missing ({err.name}); for PostgreSQL: "
                               "pip install 'gdbext[postgresql]'") from None

    def _error(self, err: BaseException) -> HistoryError:
        return HistoryError(f"crash database {self.where}: {_one_line(err)}")

    def _write(self) -> "_Txn":
        return _Txn(self, read=False)

    def _read(self) -> "_Txn":
        return _Txn(self, read=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "CrashDB":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ----------------------------------------------------------------------

    def _alembic_config(self, conn: Connection) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", _MIGRATIONS)
        cfg.attributes["connection"] = conn
        return cfg

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest revision, one migrator at a time."""
        from alembic import command
        from alembic.util import CommandError

        with self._write() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            try:
                command.upgrade(self._alembic_config(conn), "head")
            except CommandError as err:  # e.g. a revision of a newer gdbext
                raise HistoryError(f"crash database {self.where}: {_one_line(err)} (written by a newer gdbext?)") \
                    from None

    def _check_revision(self) -> None:
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        with self._read() as conn:
            current = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
            head = ScriptDirectory.from_config(self._alembic_config(conn)).get_current_head()
        if current is None:
            raise HistoryError(f"{self.where} is not a gdbext crash database")
        if current != head:
            raise HistoryError(f"crash database {self.where} has schema {current}, this gdbext reads {head}; "
                               "'gdbext triage --db' upgrades an older one")

    # -- writing ---------------------------------------------------------------------

    def start_run(self, ci: CiContext) -> str:
        """Record a triage run (its CI context) and return its id."""
        run_id = str(uuid.uuid4())
        with self._write() as conn:
            conn.execute(RUNS.insert().values(
                id=run_id, started=utcnow(), ci_provider=ci.provider, ci_commit=ci.commit, ci_branch=ci.branch,
                ci_job=ci.job, ci_url=ci.url, gdbext_version=__version__))
        return run_id

    def record(self, run_id: str, report: Dict[str, Any]) -> Recorded:
        """Record one analysed core's report in its signature's bucket."""
        crash = report.get("crash") or {}
        signature = str(crash.get("signature") or "crash")
        program = crash.get("program")
        now = utcnow()
        kinds = [str(f.get("kind")) for f in report.get("findings") or []]
        with self._write() as conn:
            insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(BUCKETS)
            conn.execute(insert.values(signature=signature, program=program, first_seen=now, last_seen=now, count=0,
                                       first_run=run_id, last_run=run_id)
                         .on_conflict_do_nothing(index_elements=["signature"]))
            row = conn.execute(sa.select(BUCKETS).where(BUCKETS.c.signature == signature).with_for_update()).one()
            conn.execute(BUCKETS.update().where(BUCKETS.c.id == row.id)
                         .values(count=BUCKETS.c["count"] + 1, last_seen=now, last_run=run_id))
            conn.execute(CRASHES.insert().values(
                bucket_id=row.id, run_id=run_id, seen=now, core=report.get("core"), binary=report.get("binary"),
                build_id=report.get("build_id"), program=program, signal=crash.get("signal"), finding_kinds=kinds,
                report=report))
        status = BucketStatus.NEW if row.first_run == run_id else BucketStatus.KNOWN
        return Recorded(signature, row.id, status, row._mapping["count"] + 1, row.first_seen)

    # -- reading ---------------------------------------------------------------------

    def buckets(self, since: Optional[datetime] = None, with_reports: bool = False) -> List[Bucket]:
        """Every bucket last seen at or after ``since``, most recently seen first, with its latest core."""
        latest = sa.select(CRASHES.c.bucket_id, sa.func.max(CRASHES.c.id).label("crash_id")) \
            .group_by(CRASHES.c.bucket_id).subquery()
        query = sa.select(BUCKETS, latest.c.crash_id).join(latest, latest.c.bucket_id == BUCKETS.c.id) \
            .order_by(BUCKETS.c.last_seen.desc(), BUCKETS.c.id.desc())
        if since is not None:
            query = query.where(BUCKETS.c.last_seen >= since)
        with self._read() as conn:
            rows = conn.execute(query).all()
            occ = self._occurrences(conn, CRASHES.c.id.in_([r.crash_id for r in rows]), with_reports)
        by_id = {o.id: o for o in occ}
        return [self._bucket(r, by_id.get(r.crash_id)) for r in rows]

    def bucket(self, key: str, with_reports: bool = True) -> Bucket:
        """One bucket by signature, unique signature prefix or id, with its latest occurrences."""
        with self._read() as conn:
            rows = conn.execute(sa.select(BUCKETS).where(BUCKETS.c.signature == key)).all()
            if not rows:
                rows = conn.execute(sa.select(BUCKETS).where(BUCKETS.c.signature.startswith(key, autoescape=True))
                                    .limit(2)).all()
            if not rows and key.isdigit():
                rows = conn.execute(sa.select(BUCKETS).where(BUCKETS.c.id == int(key))).all()
            if not rows:
                raise HistoryError(f"no crash with signature {key!r} in {self.where}")
            if len(rows) > 1:
                raise HistoryError(f"{key!r} starts several signatures in {self.where}: give more of it")
            row = rows[0]
            occ = self._occurrences(conn, CRASHES.c.bucket_id == row.id, with_reports, limit=SHOW_OCCURRENCES)
        bucket = self._bucket(row, occ[0] if occ else None)
        bucket.occurrences = occ
        return bucket

    @staticmethod
    def _bucket(row: Any, latest: Optional[Occurrence]) -> Bucket:
        status = BucketStatus.NEW if row.first_run == row.last_run else BucketStatus.KNOWN
        return Bucket(row.id, row.signature, row.program, row.first_seen, row.last_seen, row._mapping["count"], status,
                      latest)

    @staticmethod
    def _occurrences(conn: Connection, where: Any, with_reports: bool, limit: Optional[int] = None
                     ) -> List[Occurrence]:
        cols = [CRASHES.c.id, CRASHES.c.seen, CRASHES.c.core, CRASHES.c.binary, CRASHES.c.build_id,
                CRASHES.c.signal, CRASHES.c.finding_kinds, RUNS.c.ci_provider, RUNS.c.ci_commit, RUNS.c.ci_branch,
                RUNS.c.ci_job, RUNS.c.ci_url]
        if with_reports:
            cols.append(CRASHES.c.report)
        query = sa.select(*cols).join(RUNS, RUNS.c.id == CRASHES.c.run_id).where(where).order_by(CRASHES.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        out = []
        for r in conn.execute(query):
            ci = {"provider": r.ci_provider, "commit": r.ci_commit, "branch": r.ci_branch, "job": r.ci_job,
                  "url": r.ci_url}
            out.append(Occurrence(r.id, r.seen, r.core, r.binary, r.build_id, r.signal, list(r.finding_kinds or []),
                                  ci, r.report if with_reports else None))
        return out


class _Txn:
    """``with db._write() as conn``: one transaction, database errors as :class:`HistoryError`."""

    def __init__(self, db: CrashDB, read: bool) -> None:
        self.db, self.read = db, read

    def __enter__(self) -> Connection:
        try:
            self._conn = self.db.engine.connect().execution_options(gdbext_read=self.read)
            self._txn = self._conn.begin()
        except sa.exc.SQLAlchemyError as err:
            raise self.db._error(err) from None
        return self._conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None and not self.read:
                self._txn.commit()
            else:
                self._txn.rollback()
        except sa.exc.SQLAlchemyError as err:
            if exc_type is None:
                raise self.db._error(err) from None
        finally:
            self._conn.close()
        if isinstance(exc, sa.exc.SQLAlchemyError):
            raise self.db._error(exc) from None


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # transactions are begun by _sqlite_begin, not by the driver
    dbapi_conn.execute("PRAGMA foreign_keys = ON")


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("gdbext_read") else "BEGIN IMMEDIATE")
