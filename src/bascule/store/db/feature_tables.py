"""SQLAlchemy tables of the feature store's registry, on the metadata DB's ``Base``.

Definitions (entities, feature views, on-demand views, feature services) are versioned: every
change to an object's spec adds a row to ``feature_object_versions``; ``feature_objects`` holds
each object's latest version number. ``feature_watermarks`` records, per view and online store,
how far materialisation got, so incremental runs continue and interrupted runs resume.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKeyConstraint, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bascule.store.db.tables import Base

__all__ = ["FeatureObjectRow", "FeatureObjectVersionRow", "FeatureWatermarkRow"]


class FeatureObjectRow(Base):
    """One named definition and its latest version."""

    __tablename__ = "feature_objects"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(250), primary_key=True)
    latest_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class FeatureObjectVersionRow(Base):
    """One immutable version of a definition: its spec and the spec's sha256."""

    __tablename__ = "feature_object_versions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["kind", "name"],
            ["feature_objects.kind", "feature_objects.name"],
            ondelete="CASCADE",
        ),
    )

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(250), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(256))


class FeatureWatermarkRow(Base):
    """How far a view is materialised into one online store, and any run in progress."""

    __tablename__ = "feature_watermarks"

    view: Mapped[str] = mapped_column(String(250), primary_key=True)
    target: Mapped[str] = mapped_column(String(512), primary_key=True)
    view_version: Mapped[int] = mapped_column(Integer)
    materialized_until: Mapped[int | None] = mapped_column(BigInteger)
    pending_start: Mapped[int | None] = mapped_column(BigInteger)
    pending_end: Mapped[int | None] = mapped_column(BigInteger)
    cursor: Mapped[str | None] = mapped_column(Text)
    rows_written: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[int] = mapped_column(BigInteger)
