"""idempotency keys of inspect requests

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 15:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inspect_requests",
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("inspection_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["station_id"], ["stations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("station_id", "key"),
    )
    op.create_index(op.f("ix_inspect_requests_created_at"), "inspect_requests", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_inspect_requests_created_at"), table_name="inspect_requests")
    op.drop_table("inspect_requests")
