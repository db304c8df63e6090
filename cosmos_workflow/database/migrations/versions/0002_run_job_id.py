"""Runs remember their job (model invocation): job_id, indexed.

`cosmos logs` and `cosmos kill` find a running run's log and its container
or process through it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add runs.job_id and its index."""
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("job_id", sa.String(32), nullable=True))
        batch.create_index("ix_runs_job_id", ["job_id"])


def downgrade() -> None:
    """Drop runs.job_id."""
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_job_id")
        batch.drop_column("job_id")
