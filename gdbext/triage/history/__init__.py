# gdbext/triage/history/__init__.py - the crash history: a database of every triaged core,
# bucketed by signature (SQLite by default, PostgreSQL to share it between runners).
"""Crash history for CI: is this crash new, or one the team already knows?

* :mod:`.store` -- :class:`CrashDB`: open (SQLite file or PostgreSQL URL),
  migrate (Alembic), record, read;
* :mod:`.schema` -- the tables; :mod:`.migrations` -- their revisions;
* :mod:`.ci` -- the CI context from the environment;
* :mod:`.policy` -- ``--fail-on`` and recording a run;
* :mod:`.views` -- ``gdbext crashes`` output.

Imported only by the command line (never inside gdb): it needs SQLAlchemy.
"""
from __future__ import annotations

from .ci import CiContext, CiProvider, detect_ci
from .policy import FailOn, describe, history_exit_code, record_reports
from .store import Bucket, BucketStatus, CrashDB, HistoryError, Occurrence, Recorded, database_url
from .views import HistoryFormat, parse_since, render_bucket, render_buckets

__all__ = [
    "CiContext",
    "CiProvider",
    "detect_ci",
    "FailOn",
    "describe",
    "history_exit_code",
    "record_reports",
    "Bucket",
    "BucketStatus",
    "CrashDB",
    "HistoryError",
    "Occurrence",
    "Recorded",
    "database_url",
    "HistoryFormat",
    "parse_since",
    "render_bucket",
    "render_buckets",
]
