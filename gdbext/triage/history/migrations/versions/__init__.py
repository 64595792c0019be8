# gdbext/triage/history/migrations/versions/__init__.py - one module per schema revision.
"""Schema revisions, oldest first by ``down_revision``."""
