"""the background watchers store each finding once, however many service processes run them

A drift change names the change it follows (``follows_id``, 0 for a station's first), unique per station; a
maintenance prediction is unique per machine, model, cycle end and cycle. Predictions that two processes stored
twice before this are kept once (the first).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 00:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("station_drift") as batch:
        batch.add_column(sa.Column("follows_id", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE station_drift SET follows_id = COALESCE((SELECT MAX(d.id) FROM station_drift d "
        "WHERE d.station_id = station_drift.station_id AND d.id < station_drift.id), 0)"
    )
    with op.batch_alter_table("station_drift") as batch:
        batch.alter_column("follows_id", server_default=None)
    op.create_index("ux_station_drift_follows", "station_drift", ["station_id", "follows_id"], unique=True)

    op.execute(
        "DELETE FROM maintenance_predictions WHERE model_id IS NOT NULL AND id NOT IN ("
        "SELECT MIN(p.id) FROM maintenance_predictions p WHERE p.model_id IS NOT NULL "
        "GROUP BY p.machine_id, p.model_id, p.time, p.cycle)"
    )
    op.create_index(
        "ux_maintenance_predictions_cycle",
        "maintenance_predictions",
        ["machine_id", "model_id", "time", "cycle"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("ux_maintenance_predictions_cycle", table_name="maintenance_predictions")
    op.drop_index("ux_station_drift_follows", table_name="station_drift")
    with op.batch_alter_table("station_drift") as batch:
        batch.drop_column("follows_id")
