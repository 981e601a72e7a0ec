"""lines, machines, sensors; readings with minute, ten-minute and hour roll-ups; dead letters; machine models
(anomaly, remaining useful life, failure risk) and their predictions; alerts

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _rollup(name: str) -> None:
    op.create_table(
        name,
        sa.Column("sensor_id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("vsum", sa.Float(), nullable=False),
        sa.Column("vmin", sa.Float(), nullable=False),
        sa.Column("vmax", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("sensor_id", "bucket"),
        sqlite_with_rowid=False,
    )


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    # machines <-> machine_models refer to each other: SQLite takes the forward reference, PostgreSQL gets the
    # active model's key once both tables exist
    active_fk = (
        [
            sa.ForeignKeyConstraint(["active_model_id"], ["machine_models.id"], name="fk_machines_active_model"),
            sa.ForeignKeyConstraint(
                ["maintenance_model_id"], ["machine_models.id"], name="fk_machines_maintenance_model"
            ),
        ]
        if sqlite
        else []
    )
    op.create_table(
        "machines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("line_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("stations", sa.JSON(), nullable=False),
        sa.Column("active_model_id", sa.Integer(), nullable=True),
        sa.Column("maintenance_model_id", sa.Integer(), nullable=True),
        sa.Column("life_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("health", sa.Float(), nullable=True),
        sa.Column("health_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_reading_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["line_id"], ["lines.id"]),
        *active_fk,
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_index("ix_machines_line_id", "machines", ["line_id"])
    op.create_table(
        "sensors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("unit", sa.String(length=30), nullable=False),
        sa.Column("low", sa.Float(), nullable=True),
        sa.Column("high", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sensors_machine_id", "sensors", ["machine_id"])
    op.create_index("ux_sensors_machine_name", "sensors", ["machine_id", "name"], unique=True)
    op.create_table(
        "readings",
        sa.Column("sensor_id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("sensor_id", "ts"),
        sqlite_with_rowid=False,
    )
    _rollup("readings_1m")
    _rollup("readings_10m")
    _rollup("readings_1h")
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("topic", sa.String(length=300), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_dead_letters_created_at", "dead_letters", ["created_at"])
    op.create_table(
        "machine_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("method", sa.String(length=30), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("sensors", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("path", sa.String(length=500), nullable=True),
        sa.Column("source", sa.JSON(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_machine_models_machine_id", "machine_models", ["machine_id"])
    if not sqlite:
        op.create_foreign_key("fk_machines_active_model", "machines", "machine_models", ["active_model_id"], ["id"])
        op.create_foreign_key(
            "fk_machines_maintenance_model", "machines", "machine_models", ["maintenance_model_id"], ["id"]
        )
    op.create_table(
        "maintenance_predictions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("rul", sa.Float(), nullable=True),
        sa.Column("rul_low", sa.Float(), nullable=True),
        sa.Column("rul_high", sa.Float(), nullable=True),
        sa.Column("failure_probability", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["model_id"], ["machine_models.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_maintenance_predictions_machine_time", "maintenance_predictions", ["machine_id", "time"])
    op.create_table(
        "machine_activations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("activated_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["model_id"], ["machine_models.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["activated_by"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_machine_activations_machine_id", "machine_activations", ["machine_id"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("peak_score", sa.Float(), nullable=False),
        sa.Column("anomalous_readings", sa.Integer(), nullable=False),
        sa.Column("sensors", sa.JSON(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=True),
        sa.Column("acknowledged_by", sa.Integer(), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["model_id"], ["machine_models.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["acknowledged_by"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alerts_machine_time", "alerts", ["machine_id", "opened_at"])
    op.create_index("ix_alerts_status", "alerts", ["status"])
    op.create_table(
        "alert_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alert_comments_alert_id", "alert_comments", ["alert_id"])


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_machines_active_model", "machines", type_="foreignkey")
        op.drop_constraint("fk_machines_maintenance_model", "machines", type_="foreignkey")
    for table in (
        "maintenance_predictions",
        "alert_comments",
        "alerts",
        "machine_activations",
        "machine_models",
        "dead_letters",
        "readings_1h",
        "readings_10m",
        "readings_1m",
        "readings",
        "sensors",
        "machines",
        "lines",
    ):
        op.drop_table(table)
