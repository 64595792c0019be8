# gdbext/triage/history/migrations/env.py - Alembic's entry point: migrate on the connection
# the caller passes (config.attributes["connection"]), inside the caller's transaction.
"""Alembic environment; only online migrations on a given connection are supported."""
from alembic import context

from gdbext.triage.history.schema import METADATA, VERSION_TABLE

_connection = context.config.attributes["connection"]
context.configure(connection=_connection, target_metadata=METADATA, version_table=VERSION_TABLE,
                  render_as_batch=_connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
