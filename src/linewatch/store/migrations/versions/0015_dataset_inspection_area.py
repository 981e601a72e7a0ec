"""a dataset may carry an inspection area: the mask of the part of its photos a model trained on it inspects

``area_sha256``: the mask's PNG in the blob store (white = inspected, black = ignored); ``area_inspected``: the share
of each photo it inspects. Both null: the whole photo, as before.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 23:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("area_sha256", sa.String(64), nullable=True))
        batch.add_column(sa.Column("area_inspected", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("area_inspected")
        batch.drop_column("area_sha256")
