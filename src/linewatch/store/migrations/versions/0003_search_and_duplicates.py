"""search vectors of inspections; duplicate flags

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 15:55:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inspection_vectors",
        sa.Column("inspection_id", sa.Integer(), nullable=False),
        sa.Column("space", sa.String(length=200), nullable=False),
        sa.Column("image", sa.LargeBinary(), nullable=False),
        sa.Column("defects", sa.LargeBinary(), nullable=False),
        sa.Column("defect_dim", sa.Integer(), nullable=False),
        sa.Column("from_regions", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["inspection_id"], ["inspections.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("inspection_id"),
    )
    op.create_index(op.f("ix_inspection_vectors_space"), "inspection_vectors", ["space"], unique=False)
    with op.batch_alter_table("inspections") as batch:
        batch.add_column(sa.Column("duplicate_of", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("duplicate_kind", sa.String(length=10), nullable=True))
        batch.create_index(batch.f("ix_inspections_duplicate_of"), ["duplicate_of"], unique=False)
        batch.create_foreign_key(
            "fk_inspections_duplicate_of", "inspections", ["duplicate_of"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("inspections") as batch:
        batch.drop_constraint("fk_inspections_duplicate_of", type_="foreignkey")
        batch.drop_index(batch.f("ix_inspections_duplicate_of"))
        batch.drop_column("duplicate_kind")
        batch.drop_column("duplicate_of")
    op.drop_index(op.f("ix_inspection_vectors_space"), table_name="inspection_vectors")
    op.drop_table("inspection_vectors")
