"""ground-truth masks of dataset images

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 16:35:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dataset_images") as batch:
        batch.add_column(sa.Column("mask_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dataset_images") as batch:
        batch.drop_column("mask_sha256")
