"""class-activation heatmaps: the blob key of each analysis result's overlay PNG (None: no heatmap)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 15:40:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("analysis_result", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("heatmap_blob_key", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("analysis_result", schema=None) as batch_op:
        batch_op.drop_column("heatmap_blob_key")
