"""Links between prompts and runs that derive from others, and run ratings.

An enhanced prompt (the prompt upsampler's rewrite of another prompt) keeps
its parent in prompts.parent_id and how it was made in prompts.origin. A run
whose input is another run's output (a 4K upscale) keeps its parent in
runs.parent_run_id. A parent's deletion leaves its children unlinked
(SET NULL) unless they are deleted with it. runs.rating is a user's 1-5
score of a run's output.

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
    """Add prompts.parent_id/origin and runs.parent_run_id/rating."""
    with op.batch_alter_table("prompts") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("origin", sa.JSON, nullable=True))
        batch.create_foreign_key(
            "fk_prompts_parent_id", "prompts", ["parent_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_prompts_parent_id", ["parent_id"])
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("parent_run_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("rating", sa.Integer, nullable=True))
        batch.create_foreign_key(
            "fk_runs_parent_run_id", "runs", ["parent_run_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_runs_parent_run_id", ["parent_run_id"])
        batch.create_index("ix_runs_rating", ["rating"])


def downgrade() -> None:
    """Drop the links and ratings."""
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_rating")
        batch.drop_index("ix_runs_parent_run_id")
        batch.drop_constraint("fk_runs_parent_run_id", type_="foreignkey")
        batch.drop_column("rating")
        batch.drop_column("parent_run_id")
    with op.batch_alter_table("prompts") as batch:
        batch.drop_index("ix_prompts_parent_id")
        batch.drop_constraint("fk_prompts_parent_id", type_="foreignkey")
        batch.drop_column("origin")
        batch.drop_column("parent_id")
