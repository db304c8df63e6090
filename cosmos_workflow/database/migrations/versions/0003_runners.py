"""Runners: who executes a run, and whether that process is still alive.

Runs also keep their place in their job's program (job_position): a runner
that re-attaches to a job maps its outputs back by it.

Several runners may share one database. Each registers itself (host name,
process id) and beats a heartbeat; a running run remembers its runner, so
the next runner knows which runs were left behind by one that died and can
re-attach to their jobs or start them again.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the runners table and runs.runner_id."""
    op.create_table(
        "runners",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
    )
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("runner_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("job_position", sa.Integer, nullable=True))
        batch.create_index("ix_runs_runner_id", ["runner_id"])


def downgrade() -> None:
    """Drop runs.runner_id and the runners table."""
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_runner_id")
        batch.drop_column("job_position")
        batch.drop_column("runner_id")
    op.drop_table("runners")
