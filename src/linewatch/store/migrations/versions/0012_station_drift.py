"""station_drift: the drift watch's history, each change of a station's level

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 21:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "station_drift",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=True),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("previous_level", sa.String(length=10), nullable=True),
        sa.Column("recent", sa.Integer(), nullable=False),
        sa.Column("shift_auroc", sa.Float(), nullable=True),
        sa.Column("false_alarm_share", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["station_id"], ["stations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["model_id"], ["model_versions.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_station_drift_station", "station_drift", ["station_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_station_drift_station", table_name="station_drift")
    op.drop_table("station_drift")
