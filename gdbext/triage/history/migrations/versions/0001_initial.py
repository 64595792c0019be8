# gdbext/triage/history/migrations/versions/0001_initial.py - runs, buckets, crashes.
"""The first schema: runs, buckets (one per signature) and crashes (one per core).

Revision ID: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gdbext_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("started", sa.DateTime(), nullable=False),
        sa.Column("ci_provider", sa.String(40)),
        sa.Column("ci_commit", sa.String(500)),
        sa.Column("ci_branch", sa.String(500)),
        sa.Column("ci_job", sa.String(500)),
        sa.Column("ci_url", sa.String(500)),
        sa.Column("gdbext_version", sa.String(40)),
    )
    op.create_table(
        "gdbext_buckets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("signature", sa.String(512), nullable=False, unique=True),
        sa.Column("program", sa.String(100)),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("first_run", sa.String(36), sa.ForeignKey("gdbext_runs.id"), nullable=False),
        sa.Column("last_run", sa.String(36), sa.ForeignKey("gdbext_runs.id"), nullable=False),
    )
    op.create_table(
        "gdbext_crashes",
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
    )


def downgrade() -> None:
    op.drop_table("gdbext_crashes")
    op.drop_table("gdbext_buckets")
    op.drop_table("gdbext_runs")
