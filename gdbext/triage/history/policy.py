# gdbext/triage/history/policy.py - `gdbext triage --db/--fail-on`: record a run's reports
# and turn new/known signatures into the exit code a pipeline acts on.
"""Recording a triage run and the ``--fail-on`` exit code.

``--fail-on`` (an :class:`FailOn`) replaces the findings-based exit code of
an analysed run:

* ``new`` -- 1 when a core's signature was not in the database before this
  run, else 0 (needs ``--db``);
* ``any`` -- 1 when any core was analysed (every core is a crash), else 0;
* ``none`` -- 0.

A core that could not be analysed still makes the exit code 2 whatever
``--fail-on`` says: "unsure" never passes as "clean".
"""
from __future__ import annotations

import enum
import os
from typing import Any, Dict, List, Optional, Sequence, TextIO

from ...errors import GdbextError
from .ci import CiContext, detect_ci
from .store import BucketStatus, CrashDB, Recorded

__all__ = ["FailOn", "record_reports", "history_exit_code", "describe", "apply_history", "default_db", "DEFAULT_DB"]

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
#: The SQLite file ``gdbext crashes`` reads when neither ``--db`` nor ``$GDBEXT_DB`` names one.
DEFAULT_DB = "gdbext-crashes.db"


class FailOn(enum.Enum):
    """What makes ``gdbext triage`` exit 1."""

    NEW = "new"
    ANY = "any"
    NONE = "none"


def record_reports(db_spec: str, reports: Sequence[Dict[str, Any]], ci: Optional[CiContext] = None
                   ) -> List[Recorded]:
    """Record ``reports`` as one run in the database ``db_spec`` (created if needed)."""
    with CrashDB(db_spec) as db:
        run_id = db.start_run(detect_ci() if ci is None else ci)
        return [db.record(run_id, rep) for rep in reports]


def history_exit_code(fail_on: FailOn, recorded: Optional[Sequence[Recorded]], analysed: int, worst: int) -> int:
    """The exit code for ``--fail-on``.

    :param recorded: what recording found (None without ``--db``).
    :param analysed: how many cores were analysed.
    :param worst: the findings-based exit code of the run (2 when a core was not analysed).
    """
    if worst == EXIT_ERROR:
        return EXIT_ERROR
    if fail_on is FailOn.NEW:
        if recorded is None:
            raise GdbextError("--fail-on new needs --db (a crash database to compare with)")
        return EXIT_FAIL if any(r.status is BucketStatus.NEW for r in recorded) else EXIT_OK
    if fail_on is FailOn.ANY:
        return EXIT_FAIL if analysed else EXIT_OK
    return EXIT_OK


def describe(recorded: Sequence[Recorded], out: TextIO) -> None:
    """One line per signature recorded: new, or known with its count and first sighting."""
    seen: Dict[str, Recorded] = {}
    for rec in recorded:
        seen[rec.signature] = rec  # the last one holds the run's final count
    for sig, rec in seen.items():
        text = sig.encode("unicode_escape").decode("ascii")
        if rec.status is BucketStatus.NEW:
            out.write(f"gdbext: new crash: {text}\n")
        else:
            out.write(f"gdbext: known crash ({rec.count} times since {rec.first_seen:%Y-%m-%d %H:%M} UTC): {text}\n")


def apply_history(db_spec: Optional[str], fail_on: Optional[str], reports: Sequence[Dict[str, Any]], worst: int,
                  err: TextIO) -> int:
    """``gdbext triage --db/--fail-on``: record the run's reports, say which signatures are new, and
    return the exit code (``worst``, the findings-based one, when ``fail_on`` is None)."""
    recorded = None
    if db_spec is not None:
        recorded = record_reports(db_spec, reports)
        describe(recorded, err)
    if fail_on is None:
        return worst
    return history_exit_code(FailOn(fail_on), recorded, len(reports), worst)


def default_db() -> str:
    """``gdbext crashes``' database when ``--db`` is not given: ``$GDBEXT_DB``, else ``gdbext-crashes.db``."""
    return os.environ.get("GDBEXT_DB") or DEFAULT_DB
