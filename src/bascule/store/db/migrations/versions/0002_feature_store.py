"""feature store: versioned definitions and materialisation watermarks

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feature_objects",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "name"),
    )
    op.create_table(
        "feature_object_versions",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["kind", "name"],
            ["feature_objects.kind", "feature_objects.name"],
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("kind", "name", "version"),
    )
    op.create_table(
        "feature_watermarks",
        sa.Column("view", sa.String(length=250), nullable=False),
        sa.Column("target", sa.String(length=512), nullable=False),
        sa.Column("view_version", sa.Integer(), nullable=False),
        sa.Column("materialized_until", sa.BigInteger(), nullable=True),
        sa.Column("pending_start", sa.BigInteger(), nullable=True),
        sa.Column("pending_end", sa.BigInteger(), nullable=True),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("rows_written", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("view", "target"),
    )


def downgrade() -> None:
    op.drop_table("feature_watermarks")
    op.drop_table("feature_object_versions")
    op.drop_table("feature_objects")
