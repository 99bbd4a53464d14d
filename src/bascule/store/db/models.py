"""ModelRepository: registered models, immutable versions, aliases and the audit log.

Version numbers and alias moves are serialised per model: the model's row is locked
(``SELECT … FOR UPDATE`` on PostgreSQL; SQLite write transactions already hold the
database lock from ``BEGIN IMMEDIATE``), so two writers queue and both are audited.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from bascule.core.errors import (
    AliasNotFoundError,
    ModelNotFoundError,
    VersionNotFoundError,
)
from bascule.core.records import ModelEvent, ModelVersion, RegisteredModel
from bascule.store.db.engine import Database
from bascule.store.db.tables import (
    ModelAliasRow,
    ModelEventRow,
    ModelVersionRow,
    RegisteredModelRow,
)

__all__ = ["ModelRepository"]


class ModelRepository:
    """All SQL of the model registry."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- helpers --------------------------------------------------------------------------------

    def _names(self, conn: Connection) -> list[str]:
        return list(
            conn.execute(
                select(RegisteredModelRow.name).order_by(RegisteredModelRow.name)
            ).scalars()
        )

    def _lock_model(self, conn: Connection, name: str) -> Any:
        q = select(RegisteredModelRow).where(RegisteredModelRow.name == name)
        if not self._db.is_sqlite:
            q = q.with_for_update()
        return conn.execute(q).first()

    def _require_model(self, conn: Connection, name: str, *, lock: bool = False) -> Any:
        row = (
            self._lock_model(conn, name)
            if lock
            else conn.execute(
                select(RegisteredModelRow).where(RegisteredModelRow.name == name)
            ).first()
        )
        if row is None:
            raise ModelNotFoundError(name, available=self._names(conn))
        return row

    def _versions(self, conn: Connection, name: str) -> list[int]:
        return list(
            conn.execute(
                select(ModelVersionRow.version)
                .where(ModelVersionRow.name == name)
                .order_by(ModelVersionRow.version)
            ).scalars()
        )

    def _aliases(self, conn: Connection, name: str) -> dict[str, int]:
        return dict(
            conn.execute(
                select(ModelAliasRow.alias, ModelAliasRow.version)
                .where(ModelAliasRow.name == name)
                .order_by(ModelAliasRow.alias)
            ).all()
        )

    def _event(self, conn: Connection, **values: Any) -> int:
        values.setdefault("details", {})
        return int(
            conn.execute(
                insert(ModelEventRow).values(**values).returning(ModelEventRow.id)
            ).scalar_one()
        )

    @staticmethod
    def _to_version(row: Any, aliases: dict[str, int]) -> ModelVersion:
        return ModelVersion(
            name=row.name,
            version=row.version,
            digest=row.digest,
            flavor=row.flavor,
            task=row.task,
            signature=dict(row.signature),
            created_at=row.created_at,
            created_by=row.created_by,
            run_id=row.run_id,
            dataset_digest=row.dataset_digest,
            git_commit=row.git_commit,
            profile_digest=row.profile_digest,
            sample_digest=row.sample_digest,
            metrics=dict(row.metrics),
            tags=dict(row.tags),
            description=row.description,
            aliases=sorted(a for a, v in aliases.items() if v == row.version),
        )

    # -- writes ---------------------------------------------------------------------------------

    def add_version(
        self, *, name: str, now: int, actor: str, reason: str, fields: dict[str, Any]
    ) -> ModelVersion:
        """Create the model if new, then the next version and its audit event, in one transaction.

        ``fields`` holds the ModelVersionRow columns other than name, version and times.
        """
        with self._db.transaction() as conn:
            row = self._lock_model(conn, name)
            if row is None:
                conn.execute(
                    insert(RegisteredModelRow).values(
                        name=name, created_at=now, description="", latest_version=0
                    )
                )
                row = self._lock_model(conn, name)
            version = int(row.latest_version) + 1
            conn.execute(
                update(RegisteredModelRow)
                .where(RegisteredModelRow.name == name)
                .values(latest_version=version)
            )
            conn.execute(
                insert(ModelVersionRow).values(
                    name=name, version=version, created_at=now, created_by=actor, **fields
                )
            )
            self._event(
                conn,
                name=name,
                kind="registered",
                version=version,
                alias=None,
                previous_version=None,
                actor=actor,
                reason=reason,
                at=now,
                details={"digest": fields.get("digest"), "run_id": fields.get("run_id")},
            )
            created = conn.execute(
                select(ModelVersionRow).where(
                    ModelVersionRow.name == name, ModelVersionRow.version == version
                )
            ).one()
            return self._to_version(created, {})

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        now: int,
        actor: str,
        reason: str,
        details: dict[str, Any] | None = None,
    ) -> ModelEvent:
        """Point ``alias`` at ``version`` atomically and audit the move (from → to).

        Raises:
            ModelNotFoundError, VersionNotFoundError.
        """
        with self._db.transaction() as conn:
            self._require_model(conn, name, lock=True)
            versions = self._versions(conn, name)
            if version not in versions:
                raise VersionNotFoundError(version, available=versions, model=name)
            previous = self._aliases(conn, name).get(alias)
            if previous is None:
                conn.execute(
                    insert(ModelAliasRow).values(
                        name=name, alias=alias, version=version, updated_at=now
                    )
                )
            else:
                conn.execute(
                    update(ModelAliasRow)
                    .where(ModelAliasRow.name == name, ModelAliasRow.alias == alias)
                    .values(version=version, updated_at=now)
                )
            event_id = self._event(
                conn,
                name=name,
                kind="alias_set",
                version=version,
                alias=alias,
                previous_version=previous,
                actor=actor,
                reason=reason,
                at=now,
                details=details or {},
            )
        return ModelEvent(
            event_id, name, "alias_set", version, alias, previous, actor, reason, now, details or {}
        )

    def delete_alias(
        self, name: str, alias: str, *, now: int, actor: str, reason: str
    ) -> ModelEvent:
        """Remove an alias and audit it.

        Raises:
            ModelNotFoundError, AliasNotFoundError.
        """
        with self._db.transaction() as conn:
            self._require_model(conn, name, lock=True)
            aliases = self._aliases(conn, name)
            if alias not in aliases:
                raise AliasNotFoundError(alias, available=list(aliases), model=name)
            conn.execute(
                delete(ModelAliasRow).where(
                    ModelAliasRow.name == name, ModelAliasRow.alias == alias
                )
            )
            previous = aliases[alias]
            event_id = self._event(
                conn,
                name=name,
                kind="alias_deleted",
                version=None,
                alias=alias,
                previous_version=previous,
                actor=actor,
                reason=reason,
                at=now,
            )
        return ModelEvent(
            event_id, name, "alias_deleted", None, alias, previous, actor, reason, now
        )

    def record_event(
        self,
        name: str,
        kind: str,
        *,
        now: int,
        actor: str,
        reason: str,
        version: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> ModelEvent:
        """Append a free-form audit event (gate decisions, rollbacks) to a model's history.

        Raises:
            ModelNotFoundError.
        """
        with self._db.transaction() as conn:
            self._require_model(conn, name)
            event_id = self._event(
                conn,
                name=name,
                kind=kind,
                version=version,
                alias=None,
                previous_version=None,
                actor=actor,
                reason=reason,
                at=now,
                details=details or {},
            )
        return ModelEvent(
            event_id, name, kind, version, None, None, actor, reason, now, details or {}
        )

    # -- reads ----------------------------------------------------------------------------------

    def list_models(self) -> list[RegisteredModel]:
        with self._db.transaction(write=False) as conn:
            rows = conn.execute(select(RegisteredModelRow).order_by(RegisteredModelRow.name)).all()
            aliases: dict[str, dict[str, int]] = {}
            for r in conn.execute(select(ModelAliasRow).order_by(ModelAliasRow.alias)).all():
                aliases.setdefault(r.name, {})[r.alias] = r.version
        return [
            RegisteredModel(
                r.name, r.created_at, r.description, r.latest_version, aliases.get(r.name, {})
            )
            for r in rows
        ]

    def get_model(self, name: str) -> RegisteredModel:
        """Raises: ModelNotFoundError."""
        with self._db.transaction(write=False) as conn:
            r = self._require_model(conn, name)
            return RegisteredModel(
                r.name, r.created_at, r.description, r.latest_version, self._aliases(conn, name)
            )

    def get_version(self, name: str, version: int) -> ModelVersion:
        """Raises: ModelNotFoundError, VersionNotFoundError."""
        with self._db.transaction(write=False) as conn:
            self._require_model(conn, name)
            row = conn.execute(
                select(ModelVersionRow).where(
                    ModelVersionRow.name == name, ModelVersionRow.version == version
                )
            ).first()
            if row is None:
                raise VersionNotFoundError(
                    version, available=self._versions(conn, name), model=name
                )
            return self._to_version(row, self._aliases(conn, name))

    def alias_version(self, name: str, alias: str) -> int:
        """The version an alias points at. Raises: ModelNotFoundError, AliasNotFoundError."""
        with self._db.transaction(write=False) as conn:
            self._require_model(conn, name)
            aliases = self._aliases(conn, name)
            if alias not in aliases:
                raise AliasNotFoundError(alias, available=list(aliases), model=name)
            return aliases[alias]

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Raises: ModelNotFoundError."""
        with self._db.transaction(write=False) as conn:
            self._require_model(conn, name)
            aliases = self._aliases(conn, name)
            rows = conn.execute(
                select(ModelVersionRow)
                .where(ModelVersionRow.name == name)
                .order_by(ModelVersionRow.version)
            ).all()
            return [self._to_version(r, aliases) for r in rows]

    def history(self, name: str) -> list[ModelEvent]:
        """Every audit event of a model, oldest first. Raises: ModelNotFoundError."""
        with self._db.transaction(write=False) as conn:
            self._require_model(conn, name)
            rows = conn.execute(
                select(ModelEventRow).where(ModelEventRow.name == name).order_by(ModelEventRow.id)
            ).all()
        return [
            ModelEvent(
                r.id,
                r.name,
                r.kind,
                r.version,
                r.alias,
                r.previous_version,
                r.actor,
                r.reason,
                r.at,
                dict(r.details),
            )
            for r in rows
        ]
