"""each inspection keeps its photo's brightness, for the drift watch's comparison of what the photos look like

The mean luminance (0 to 1) of the model's input (``linewatch.vision.appearance``); null for inspections stored
before it was kept, which the watch then leaves out of that comparison alone.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 22:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inspections") as batch:
        batch.add_column(sa.Column("brightness", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inspections") as batch:
        batch.drop_column("brightness")
