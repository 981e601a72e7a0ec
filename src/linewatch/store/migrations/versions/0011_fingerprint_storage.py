"""inspections.image_fingerprint stored without compression on PostgreSQL

A repeat fingerprint is 17 KB of greyscale pixel windows that pglz cannot shrink: PostgreSQL tried on every insert
and kept them as they were, a third of a millisecond of an inspection's insert (0.60 -> 0.31 ms measured). The
column's values move out of line uncompressed (EXTERNAL). Other databases have no such setting.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 00:00:00
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE inspections ALTER COLUMN image_fingerprint SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE inspections ALTER COLUMN image_fingerprint SET STORAGE EXTENDED")
