"""heatmaps drawn on first view: each analysis result keeps its top class's class-activation map

The 7x7 map (a few hundred bytes of JSON; None: the model gives none) is what the analysis stores; the
overlay PNG is drawn from it and the stored image when somebody first opens the heatmap, then kept
sealed under ``heatmap_blob_key`` (migration 0008). Results stored before this migration keep the PNG
they already have.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 18:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("analysis_result", schema=None) as batch_op:
        batch_op.add_column(sa.Column("class_map", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("analysis_result", schema=None) as batch_op:
        batch_op.drop_column("class_map")
