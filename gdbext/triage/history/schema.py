# gdbext/triage/history/schema.py - the crash database's tables (SQLAlchemy Core), the
# one place their columns are named; the Alembic migrations create them.
"""Tables of the crash database.

* ``gdbext_runs`` -- one row per ``gdbext triage --db`` invocation, with its
  CI context;
* ``gdbext_buckets`` -- one row per crash signature: program, first and
  last seen (UTC), count, the runs that first and last saw it;
* ``gdbext_crashes`` -- one row per analysed core: its bucket and run, the
  core and binary names, build-id, signal, finding kinds and the JSON
  report itself.

Every name is prefixed ``gdbext_`` so the tables can share a PostgreSQL
database with others; Alembic's version table is :data:`VERSION_TABLE`.
"""
from __future__ import annotations

import sqlalchemy as sa

__all__ = ["METADATA", "RUNS", "BUCKETS", "CRASHES", "VERSION_TABLE", "MAX_SIGNATURE_COLUMN"]

#: Alembic's version table for this schema.
VERSION_TABLE = "gdbext_alembic_version"
#: Room for a signature (255 characters by construction) with a margin.
MAX_SIGNATURE_COLUMN = 512

METADATA = sa.MetaData()

RUNS = sa.Table(
    "gdbext_runs", METADATA,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("started", sa.DateTime(), nullable=False),
    sa.Column("ci_provider", sa.String(40)),
    sa.Column("ci_commit", sa.String(500)),
    sa.Column("ci_branch", sa.String(500)),
    sa.Column("ci_job", sa.String(500)),
    sa.Column("ci_url", sa.String(500)),
    sa.Column("gdbext_version", sa.String(40)),
)  # fmt: skip

BUCKETS = sa.Table(
    "gdbext_buckets", METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("signature", sa.String(MAX_SIGNATURE_COLUMN), nullable=False, unique=True),
    sa.Column("program", sa.String(100)),
    sa.Column("first_seen", sa.DateTime(), nullable=False),
    sa.Column("last_seen", sa.DateTime(), nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("first_run", sa.String(36), sa.ForeignKey("gdbext_runs.id"), nullable=False),
    sa.Column("last_run", sa.String(36), sa.ForeignKey("gdbext_runs.id"), nullable=False),
)  # fmt: skip

CRASHES = sa.Table(
    "gdbext_crashes", METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("bucket_id", sa.Integer, sa.ForeignKey("gdbext_buckets.id"), nullable=False, index=True),
    sa.Column("run_id", sa.String(36), sa.ForeignKey("gdbext_runs.id"), nullable=False, index=True),
    sa.Column("seen", sa.DateTime(), nullable=False),
    sa.Column("core", sa.Text),
    sa.Column("binary", sa.Text),
    sa.Column("build_id", sa.String(128)),
    sa.Column("program", sa.String(100)),
    sa.Column("signal", sa.String(40)),
    sa.Column("finding_kinds", sa.JSON, nullable=False),
    sa.Column("report", sa.JSON, nullable=False),
)  # fmt: skip
