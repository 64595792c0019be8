# gdbext/triage/__init__.py - batch post-processing of core dumps in CI: the
# report schema and data model, crash signatures, pairing, the runner, formats.
"""``gdbext triage``: core dumps in, reports out.

* :mod:`.report` -- the versioned JSON schema (``gdbext.triage/1``) and the
  :class:`~.report.Finding` data model the finders of :mod:`gdbext.analysis`
  produce;
* :mod:`.signature` -- crash signatures (Socorro/apport normalisation);
* :mod:`.pairing` -- which binary a core belongs to, checked without gdb;
* :mod:`.runner` -- ``gdb -batch`` with ``gdbext report --json`` per core,
  in parallel, grouped by signature;
* :mod:`.formats` -- text, markdown, SARIF 2.1.0 and JSON renderers.

Everything here imports without gdb; the gdb side is ``commands/report.py``.
"""
from __future__ import annotations

from .formats import FORMATS, render
from .report import BATCH_SCHEMA, FINDING_KINDS, SCHEMA, Finding, Findings, validate_batch, validate_report
from .runner import TriageResult, batch_document, batch_exit_code, triage_core, triage_directory
from .signature import crash_signature, normalize_function

__all__ = [
    "FORMATS",
    "render",
    "SCHEMA",
    "BATCH_SCHEMA",
    "FINDING_KINDS",
    "Finding",
    "Findings",
    "validate_report",
    "validate_batch",
    "TriageResult",
    "triage_core",
    "triage_directory",
    "batch_document",
    "batch_exit_code",
    "crash_signature",
    "normalize_function",
]
