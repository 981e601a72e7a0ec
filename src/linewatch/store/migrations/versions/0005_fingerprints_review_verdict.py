"""image fingerprints for repeat detection; the latest review's verdict on inspections

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inspections") as batch:
        batch.add_column(sa.Column("image_fingerprint", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("review_verdict", sa.String(length=20), nullable=True))
    # inspections reviewed before: their latest review's verdict
    op.execute(
        "UPDATE inspections SET review_verdict = (SELECT r.verdict FROM reviews r WHERE r.inspection_id = "
        "inspections.id ORDER BY r.id DESC LIMIT 1) WHERE reviewed"
    )


def downgrade() -> None:
    with op.batch_alter_table("inspections") as batch:
        batch.drop_column("review_verdict")
        batch.drop_column("image_fingerprint")
