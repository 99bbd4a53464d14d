"""Experiment queries of the run repository (split out to keep each module one noun)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from bascule.core.errors import ConflictError, ExperimentNotFoundError
from bascule.core.records import Experiment
from bascule.store.db._sql import upsert
from bascule.store.db.engine import Database
from bascule.store.db.tables import ExperimentRow, ExperimentTagRow

__all__ = ["ExperimentQueries"]


class ExperimentQueries:
    """All SQL for experiments and their tags; mixed into ``RunRepository``."""

    _db: Database

    # -- experiments ----------------------------------------------------------------------------

    def create_experiment(
        self,
        name: str,
        *,
        now: int,
        artifact_location: str = "",
        tags: dict[str, str] | None = None,
    ) -> Experiment:
        """Insert an experiment.

        Raises:
            ConflictError: an experiment with that name exists.
        """
        try:
            with self._db.transaction() as conn:
                exp_id = conn.execute(
                    insert(ExperimentRow)
                    .values(
                        name=name,
                        artifact_location=artifact_location,
                        lifecycle_stage="active",
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(ExperimentRow.id)
                ).scalar_one()
                if tags:
                    conn.execute(
                        insert(ExperimentTagRow),
                        [{"experiment_id": exp_id, "key": k, "value": v} for k, v in tags.items()],
                    )
        except SAIntegrityError:
            raise ConflictError(
                f"experiment {name!r} already exists; choose another name or use it", name=name
            ) from None
        return self.get_experiment(exp_id)

    def _experiment(self, conn: Connection, row: ExperimentRow | Any) -> Experiment:
        tags = dict(
            conn.execute(
                select(ExperimentTagRow.key, ExperimentTagRow.value).where(
                    ExperimentTagRow.experiment_id == row.id
                )
            ).all()
        )
        return Experiment(
            id=row.id,
            name=row.name,
            created_at=row.created_at,
            lifecycle_stage=row.lifecycle_stage,
            artifact_location=row.artifact_location,
            tags=tags,
        )

    def get_experiment(self, experiment_id: int) -> Experiment:
        """Raises: ExperimentNotFoundError."""
        with self._db.transaction(write=False) as conn:
            row = conn.execute(
                select(ExperimentRow).where(ExperimentRow.id == experiment_id)
            ).first()
            if row is None:
                raise ExperimentNotFoundError(experiment_id, available=self._names(conn))
            return self._experiment(conn, row)

    def find_experiment(self, name: str) -> Experiment | None:
        """The experiment with that name, or None."""
        with self._db.transaction(write=False) as conn:
            row = conn.execute(select(ExperimentRow).where(ExperimentRow.name == name)).first()
            return None if row is None else self._experiment(conn, row)

    def experiment_ids(self, names: list[str]) -> dict[str, int]:
        """The ids of the experiments with these names (absent names are left out)."""
        with self._db.transaction(write=False) as conn:
            rows = conn.execute(
                select(ExperimentRow.name, ExperimentRow.id).where(ExperimentRow.name.in_(names))
            ).all()
        return {str(name): int(exp_id) for name, exp_id in rows}

    def experiment_names(self) -> list[str]:
        with self._db.transaction(write=False) as conn:
            return self._names(conn)

    def _names(self, conn: Connection) -> list[str]:
        return list(conn.execute(select(ExperimentRow.name).order_by(ExperimentRow.id)).scalars())

    def list_experiments(self, *, include_deleted: bool = False) -> list[Experiment]:
        with self._db.transaction(write=False) as conn:
            q = select(ExperimentRow).order_by(ExperimentRow.id)
            if not include_deleted:
                q = q.where(ExperimentRow.lifecycle_stage == "active")
            return [self._experiment(conn, r) for r in conn.execute(q).all()]

    def update_experiment(
        self, experiment_id: int, *, now: int, name: str | None = None, stage: str | None = None
    ) -> None:
        """Rename, delete or restore an experiment.

        Raises:
            ExperimentNotFoundError, ConflictError.
        """
        values: dict[str, Any] = {"updated_at": now}
        if name is not None:
            values["name"] = name
        if stage is not None:
            values["lifecycle_stage"] = stage
        try:
            with self._db.transaction() as conn:
                n = conn.execute(
                    update(ExperimentRow).where(ExperimentRow.id == experiment_id).values(**values)
                ).rowcount
                if n == 0:
                    raise ExperimentNotFoundError(experiment_id, available=self._names(conn))
        except SAIntegrityError:
            raise ConflictError(f"experiment {name!r} already exists", name=name) from None

    def set_experiment_tag(self, experiment_id: int, key: str, value: str) -> None:
        with self._db.transaction() as conn:
            upsert(
                conn,
                ExperimentTagRow,
                {"experiment_id": experiment_id, "key": key},
                {"value": value},
            )
