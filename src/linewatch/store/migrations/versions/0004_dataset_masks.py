"""ground-truth masks of dataset images; the reviewed defect type on inspections

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
    with op.batch_alter_table("inspections") as batch:
        batch.add_column(sa.Column("defect_type", sa.String(length=100), nullable=True))
        batch.create_index(batch.f("ix_inspections_defect_type"), ["defect_type"], unique=False)
    # inspections reviewed before: their latest review's type
    op.execute(
        "UPDATE inspections SET defect_type = (SELECT r.defect_type FROM reviews r WHERE r.inspection_id = "
        "inspections.id ORDER BY r.id DESC LIMIT 1) WHERE reviewed"
    )


def downgrade() -> None:
    with op.batch_alter_table("inspections") as batch:
        batch.drop_index(batch.f("ix_inspections_defect_type"))
        batch.drop_column("defect_type")
    with op.batch_alter_table("dataset_images") as batch:
        batch.drop_column("mask_sha256")
