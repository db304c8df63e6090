"""Links between prompts and runs that derive from others, and run ratings.

An enhanced prompt (the prompt upsampler's rewrite of another prompt) keeps
its parent in prompts.parent_id and how it was made in prompts.origin. A run
whose input is another run's output (a 4K upscale) keeps its parent in
runs.parent_run_id. A parent's deletion leaves its children unlinked
(SET NULL) unless they are deleted with it. prompts.origin_run_id names the
run a derived prompt was made by (enhancement) or for (an upscale's input).
runs.rating is a user's 1-5 score of a run's output. sweep_runs.stage says
why a run belongs to a sweep: one of its points (main), or a run of one of
its stages (enhance, upscale).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add prompts.parent_id/origin/origin_run_id, runs.parent_run_id/rating, sweep_runs.stage."""
    with op.batch_alter_table("prompts") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("origin", sa.JSON, nullable=True))
        batch.add_column(sa.Column("origin_run_id", sa.String(32), nullable=True))
        batch.create_foreign_key(
            "fk_prompts_parent_id", "prompts", ["parent_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_prompts_parent_id", ["parent_id"])
        batch.create_index("ix_prompts_origin_run_id", ["origin_run_id"])
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("parent_run_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("rating", sa.Integer, nullable=True))
        batch.create_foreign_key(
            "fk_runs_parent_run_id", "runs", ["parent_run_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_runs_parent_run_id", ["parent_run_id"])
        batch.create_index("ix_runs_rating", ["rating"])
    with op.batch_alter_table("sweep_runs") as batch:
        batch.add_column(sa.Column("stage", sa.String(16), nullable=False, server_default="main"))


def downgrade() -> None:
    """Drop the links, ratings and stages (a stage's runs leave their sweeps)."""
    op.execute("DELETE FROM sweep_runs WHERE stage <> 'main'")
    with op.batch_alter_table("sweep_runs") as batch:
        batch.drop_column("stage")
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_rating")
        batch.drop_index("ix_runs_parent_run_id")
        batch.drop_constraint("fk_runs_parent_run_id", type_="foreignkey")
        batch.drop_column("rating")
        batch.drop_column("parent_run_id")
    with op.batch_alter_table("prompts") as batch:
        batch.drop_index("ix_prompts_origin_run_id")
        batch.drop_index("ix_prompts_parent_id")
        batch.drop_constraint("fk_prompts_parent_id", type_="foreignkey")
        batch.drop_column("origin_run_id")
        batch.drop_column("origin")
        batch.drop_column("parent_id")
