"""GPU leases: which runner's job holds a GPU of a machine, across runners.

Two runners on one machine, or two whose pools reach one host, see the same
GPUs. Before a runner starts a job on a GPU it takes the GPU's lease (one
row per machine and GPU index, so of two runners one gets it); it gives the
lease back when the job ends. A lease whose runner stopped or whose
heartbeat is older than the runner timeout is free again.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the gpu_leases table."""
    op.create_table(
        "gpu_leases",
        sa.Column("machine", sa.String(300), primary_key=True),
        sa.Column("gpu", sa.Integer, primary_key=True),
        sa.Column("runner_id", sa.String(32), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("leased_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_gpu_leases_runner_id", "gpu_leases", ["runner_id"])


def downgrade() -> None:
    """Drop the gpu_leases table."""
    op.drop_index("ix_gpu_leases_runner_id", table_name="gpu_leases")
    op.drop_table("gpu_leases")
