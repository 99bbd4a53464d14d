"""FeatureRepository: all SQL of the feature store's registry and materialisation watermarks.

``apply`` writes every changed definition in one transaction (serialised across writers: SQLite's
``BEGIN IMMEDIATE``, a PostgreSQL advisory lock), so a registry never holds half of an apply.
Removing a definition is a version too: a *tombstone* (fingerprint :data:`REMOVED`, empty spec)
that keeps the history and says who removed it and when; applying the name again creates it
anew at the next version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, and_, delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bascule.store.db.engine import Database
from bascule.store.db.feature_tables import (
    FeatureObjectRow,
    FeatureObjectVersionRow,
    FeatureWatermarkRow,
)

__all__ = ["REMOVED", "AppliedChange", "FeatureDefinition", "FeatureRepository", "Watermark"]

_APPLY_LOCK_ID = 0x6261_7366  # "basf": advisory lock key for PostgreSQL

REMOVED = "removed"
"""The fingerprint of a tombstone version: the definition was removed (never a sha256)."""


@dataclass(frozen=True)
class FeatureDefinition:
    """One stored version of a definition (an entity, view, on-demand view or service)."""

    kind: str
    name: str
    version: int
    spec: dict[str, Any]
    fingerprint: str
    created_at: int
    created_by: str

    @property
    def removed(self) -> bool:
        """This version is a tombstone: the definition was removed."""
        return self.fingerprint == REMOVED


@dataclass(frozen=True)
class AppliedChange:
    """What ``apply`` did to one definition."""

    kind: str
    name: str
    version: int
    status: Literal["created", "updated", "unchanged", "removed"]
    fingerprint: str


@dataclass(frozen=True)
class Watermark:
    """Materialisation progress of one view into one online store (times in ms)."""

    view: str
    target: str
    view_version: int
    materialized_until: int | None
    pending_start: int | None
    pending_end: int | None
    cursor: str | None
    rows_written: int
    updated_at: int


def _definition(row: Any) -> FeatureDefinition:
    return FeatureDefinition(
        kind=row.kind,
        name=row.name,
        version=row.version,
        spec=dict(row.spec),
        fingerprint=row.fingerprint,
        created_at=row.created_at,
        created_by=row.created_by,
    )


class FeatureRepository:
    """Versioned feature definitions and watermarks in the metadata DB."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def apply(
        self,
        items: Sequence[tuple[str, str, dict[str, Any], str]],
        *,
        now: int,
        actor: str,
        remove: Sequence[tuple[str, str]] = (),
    ) -> list[AppliedChange]:
        """Store ``(kind, name, spec, fingerprint)`` items; a changed fingerprint adds a version.
        Each ``(kind, name)`` in ``remove`` gets a tombstone version (and a removed view loses
        its watermarks), in the same transaction.

        Raises:
            StorageError: the database failed; nothing was written.
        """
        out: list[AppliedChange] = []
        with self._db.transaction() as conn:
            if not self._db.is_sqlite:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _APPLY_LOCK_ID})
            for kind, name, spec, fingerprint in items:
                out.append(self._apply_one(conn, kind, name, spec, fingerprint, now, actor))
            for kind, name in remove:
                change = self._remove_one(conn, kind, name, now, actor)
                if change is not None:
                    out.append(change)
        return out

    def _remove_one(
        self, conn: Connection, kind: str, name: str, now: int, actor: str
    ) -> AppliedChange | None:
        latest = _latest_version(conn, kind, name)
        if latest is None or latest[1] == REMOVED:
            return None
        version = latest[0] + 1
        _append_version(conn, kind, name, version, {}, REMOVED, now, actor)
        if kind == "view":
            conn.execute(delete(FeatureWatermarkRow).where(FeatureWatermarkRow.view == name))
        return AppliedChange(kind, name, version, "removed", REMOVED)

    def _apply_one(
        self,
        conn: Connection,
        kind: str,
        name: str,
        spec: dict[str, Any],
        fingerprint: str,
        now: int,
        actor: str,
    ) -> AppliedChange:
        latest = _latest_version(conn, kind, name)
        status: Literal["created", "updated"]
        if latest is None:
            conn.execute(
                insert(FeatureObjectRow).values(
                    kind=kind, name=name, latest_version=0, created_at=now, updated_at=now
                )
            )
            version, status = 1, "created"
        else:
            if latest[1] == fingerprint:
                return AppliedChange(kind, name, latest[0], "unchanged", fingerprint)
            version = latest[0] + 1
            status = "created" if latest[1] == REMOVED else "updated"
        _append_version(conn, kind, name, version, spec, fingerprint, now, actor)
        return AppliedChange(kind, name, version, status, fingerprint)

    def latest(self, kind: str | None = None, *, removed: bool = False) -> list[FeatureDefinition]:
        """The latest version of every definition in force (of one kind), sorted by kind and
        name; with ``removed``, the tombstones of the removed ones instead.

        Raises:
            StorageError: the database failed.
        """
        v = FeatureObjectVersionRow
        o = FeatureObjectRow
        q = select(v).join(
            o, and_(o.kind == v.kind, o.name == v.name, o.latest_version == v.version)
        )
        q = q.where(v.fingerprint == REMOVED if removed else v.fingerprint != REMOVED)
        if kind is not None:
            q = q.where(v.kind == kind)
        with self._db.transaction(write=False) as conn:
            rows = conn.execute(q.order_by(v.kind, v.name)).all()
        return [_definition(r) for r in rows]

    def versions(self, kind: str, name: str) -> list[FeatureDefinition]:
        """Every version of one definition, oldest first, tombstones included (empty when it
        never existed).

        Raises:
            StorageError: the database failed.
        """
        v = FeatureObjectVersionRow
        q = select(v).where(v.kind == kind, v.name == name).order_by(v.version)
        with self._db.transaction(write=False) as conn:
            return [_definition(r) for r in conn.execute(q).all()]

    def revision(self) -> tuple[int, int]:
        """A value that changes whenever an apply changes anything (for caches).

        Raises:
            StorageError: the database failed.
        """
        o = FeatureObjectRow
        q = select(func.count(), func.coalesce(func.sum(o.latest_version), 0))
        with self._db.transaction(write=False) as conn:
            count, total = conn.execute(q).one()
        return int(count), int(total)

    def watermark(self, view: str, target: str) -> Watermark | None:
        """Materialisation progress of ``view`` into ``target``, if any.

        Raises:
            StorageError: the database failed.
        """
        w = FeatureWatermarkRow
        with self._db.transaction(write=False) as conn:
            row = conn.execute(select(w).where(w.view == view, w.target == target)).first()
        if row is None:
            return None
        return Watermark(
            view=row.view,
            target=row.target,
            view_version=row.view_version,
            materialized_until=row.materialized_until,
            pending_start=row.pending_start,
            pending_end=row.pending_end,
            cursor=row.cursor,
            rows_written=row.rows_written,
            updated_at=row.updated_at,
        )

    def save_watermark(self, mark: Watermark) -> None:
        """Insert or replace the watermark of ``(mark.view, mark.target)``.

        Raises:
            StorageError: the database failed.
        """
        values = {
            "view": mark.view,
            "target": mark.target,
            "view_version": mark.view_version,
            "materialized_until": mark.materialized_until,
            "pending_start": mark.pending_start,
            "pending_end": mark.pending_end,
            "cursor": mark.cursor,
            "rows_written": mark.rows_written,
            "updated_at": mark.updated_at,
        }
        make = sqlite_insert if self._db.is_sqlite else pg_insert
        stmt = make(FeatureWatermarkRow).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["view", "target"],
            set_={k: stmt.excluded[k] for k in values if k not in ("view", "target")},
        )
        with self._db.transaction() as conn:
            conn.execute(stmt)


def _latest_version(conn: Connection, kind: str, name: str) -> tuple[int, str] | None:
    """``(latest version, its fingerprint)`` of a definition, or None if it never existed."""
    row = conn.execute(
        select(FeatureObjectVersionRow.version, FeatureObjectVersionRow.fingerprint)
        .join(
            FeatureObjectRow,
            (FeatureObjectRow.kind == FeatureObjectVersionRow.kind)
            & (FeatureObjectRow.name == FeatureObjectVersionRow.name)
            & (FeatureObjectRow.latest_version == FeatureObjectVersionRow.version),
        )
        .where(FeatureObjectRow.kind == kind, FeatureObjectRow.name == name)
    ).first()
    return None if row is None else (int(row[0]), str(row[1]))


def _append_version(
    conn: Connection,
    kind: str,
    name: str,
    version: int,
    spec: dict[str, Any],
    fingerprint: str,
    now: int,
    actor: str,
) -> None:
    """Record ``version`` of a definition (a removal is a version with fingerprint
    ``REMOVED``) and make it the latest."""
    conn.execute(
        update(FeatureObjectRow)
        .where(FeatureObjectRow.kind == kind, FeatureObjectRow.name == name)
        .values(latest_version=version, updated_at=now)
    )
    conn.execute(
        insert(FeatureObjectVersionRow).values(
            kind=kind,
            name=name,
            version=version,
            spec=spec,
            fingerprint=fingerprint,
            created_at=now,
            created_by=actor,
        )
    )
