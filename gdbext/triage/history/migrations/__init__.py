# gdbext/triage/history/migrations/__init__.py - the Alembic environment of the crash database.
"""Alembic migrations of the crash database (run by :func:`..store.CrashDB.migrate`, not by hand)."""
