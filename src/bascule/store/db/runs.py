"""RunRepository: experiments, runs, params, metrics, tags, artifacts and data sets in the
metadata DB (the searches' statements are built in :mod:`bascule.store.db._run_statements`)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from bascule.core.errors import ConflictError, ExperimentNotFoundError, RunNotFoundError
from bascule.core.records import DatasetInput, Metric, Run, RunArtifact
from bascule.core.search import Filter, OrderBy
from bascule.store.db._run_statements import (
    CHILDREN_POSTGRES,
    CHILDREN_SQLITE,
    RUN_COLUMNS,
    search_statement,
)
from bascule.store.db._sql import upsert
from bascule.store.db.engine import Database
from bascule.store.db.experiments import ExperimentQueries
from bascule.store.db.tables import (
    DatasetInputRow,
    ExperimentRow,
    LatestMetricRow,
    MetricRow,
    ParamRow,
    RunArtifactRow,
    RunRow,
    RunTagRow,
)

__all__ = ["RunRepository"]


class RunRepository(ExperimentQueries):
    """Experiments and runs in the metadata DB; every write is one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- runs -----------------------------------------------------------------------------------

    def create_run(
        self,
        *,
        run_id: str,
        experiment_id: int,
        name: str,
        user: str,
        start_time: int,
        parent_run_id: str | None,
        tags: dict[str, str],
    ) -> None:
        """Raises: ExperimentNotFoundError, RunNotFoundError (the parent)."""
        with self._db.transaction() as conn:
            if (
                conn.execute(
                    select(ExperimentRow.id).where(ExperimentRow.id == experiment_id)
                ).first()
                is None
            ):
                raise ExperimentNotFoundError(experiment_id, available=self._names(conn))
            if parent_run_id is not None and not self._exists(conn, parent_run_id):
                raise RunNotFoundError(parent_run_id, role="parent run")
            conn.execute(
                insert(RunRow).values(
                    id=run_id,
                    experiment_id=experiment_id,
                    name=name,
                    status="RUNNING",
                    start_time=start_time,
                    end_time=None,
                    parent_run_id=parent_run_id,
                    user=user,
                    lifecycle_stage="active",
                )
            )
            if tags:
                conn.execute(
                    insert(RunTagRow),
                    [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()],
                )

    def _exists(self, conn: Connection, run_id: str) -> bool:
        return conn.execute(select(RunRow.id).where(RunRow.id == run_id)).first() is not None

    def _require(self, conn: Connection, run_id: str) -> None:
        if not self._exists(conn, run_id):
            raise RunNotFoundError(run_id)

    def update_run(
        self,
        run_id: str,
        *,
        status: str | None = None,
        end_time: int | None = None,
        name: str | None = None,
        lifecycle_stage: str | None = None,
    ) -> None:
        """Raises: RunNotFoundError."""
        values: dict[str, Any] = {}
        if status is not None:
            values["status"] = status
        if end_time is not None:
            values["end_time"] = end_time
        if name is not None:
            values["name"] = name
        if lifecycle_stage is not None:
            values["lifecycle_stage"] = lifecycle_stage
        with self._db.transaction() as conn:
            self._require(conn, run_id)
            if values:
                conn.execute(update(RunRow).where(RunRow.id == run_id).values(**values))

    def log_batch(
        self,
        run_id: str,
        *,
        metrics: Sequence[Metric] = (),
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        """Write metrics, params and tags of one run in one transaction (all or nothing).

        Raises:
            RunNotFoundError: no such run.
            ConflictError: a param is already logged with a different value.
        """
        with self._db.transaction() as conn:
            self._require(conn, run_id)
            if params:
                existing = dict(
                    conn.execute(
                        select(ParamRow.key, ParamRow.value).where(
                            ParamRow.run_id == run_id, ParamRow.key.in_(list(params))
                        )
                    ).all()
                )
                for key, value in params.items():
                    if key in existing and existing[key] != value:
                        raise ConflictError(
                            f"param {key!r} of run {run_id} is already {existing[key]!r}; "
                            f"cannot change it to {value!r} (params are immutable)",
                            key=key,
                        )
                new = [
                    {"run_id": run_id, "key": k, "value": v}
                    for k, v in params.items()
                    if k not in existing
                ]
                if new:
                    conn.execute(insert(ParamRow), new)
            if tags:
                for key, value in tags.items():
                    upsert(conn, RunTagRow, {"run_id": run_id, "key": key}, {"value": value})
            if metrics:
                conn.execute(
                    insert(MetricRow),
                    [
                        {
                            "run_id": run_id,
                            "key": m.key,
                            "value": _to_db(m.value),
                            "step": m.step,
                            "timestamp": m.timestamp,
                        }
                        for m in metrics
                    ],
                )
                self._update_latest(conn, run_id, metrics)

    def _update_latest(self, conn: Connection, run_id: str, metrics: Iterable[Metric]) -> None:
        newest: dict[str, Metric] = {}
        for m in metrics:
            cur = newest.get(m.key)
            if cur is None or (m.step, m.timestamp) >= (cur.step, cur.timestamp):
                newest[m.key] = m
        stored = {
            r.key: (r.step, r.timestamp)
            for r in conn.execute(
                select(LatestMetricRow.key, LatestMetricRow.step, LatestMetricRow.timestamp).where(
                    LatestMetricRow.run_id == run_id, LatestMetricRow.key.in_(list(newest))
                )
            ).all()
        }
        inserts = []
        for key, m in newest.items():
            if key not in stored:
                inserts.append(
                    {
                        "run_id": run_id,
                        "key": key,
                        "value": _to_db(m.value),
                        "step": m.step,
                        "timestamp": m.timestamp,
                    }
                )
            elif (m.step, m.timestamp) >= stored[key]:
                conn.execute(
                    update(LatestMetricRow)
                    .where(LatestMetricRow.run_id == run_id, LatestMetricRow.key == key)
                    .values(value=_to_db(m.value), step=m.step, timestamp=m.timestamp)
                )
        if inserts:
            conn.execute(insert(LatestMetricRow), inserts)

    def delete_tag(self, run_id: str, key: str) -> None:
        with self._db.transaction() as conn:
            self._require(conn, run_id)
            conn.execute(delete(RunTagRow).where(RunTagRow.run_id == run_id, RunTagRow.key == key))

    def add_artifact(self, run_id: str, artifact: RunArtifact) -> None:
        with self._db.transaction() as conn:
            self._require(conn, run_id)
            upsert(
                conn,
                RunArtifactRow,
                {"run_id": run_id, "path": artifact.path},
                {"digest": artifact.digest, "size": artifact.size},
            )

    def add_dataset(self, run_id: str, dataset: DatasetInput) -> None:
        with self._db.transaction() as conn:
            self._require(conn, run_id)
            conn.execute(
                insert(DatasetInputRow).values(
                    run_id=run_id,
                    name=dataset.name,
                    digest=dataset.digest,
                    num_rows=dataset.num_rows,
                    schema=dataset.schema,
                    source=dataset.source,
                    context=dataset.context,
                )
            )

    # -- reads ----------------------------------------------------------------------------------

    def get_run(self, run_id: str) -> Run:
        """Raises: RunNotFoundError."""
        with self._db.transaction(write=False) as conn:
            row = conn.execute(select(*RUN_COLUMNS).where(RunRow.id == run_id)).first()
            if row is None:
                raise RunNotFoundError(run_id)
            return self._hydrate(conn, [row])[0]

    def metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every value logged for a metric, by step then time. Raises: RunNotFoundError."""
        with self._db.transaction(write=False) as conn:
            self._require(conn, run_id)
            rows = conn.execute(
                select(MetricRow.key, MetricRow.value, MetricRow.step, MetricRow.timestamp)
                .where(MetricRow.run_id == run_id, MetricRow.key == key)
                .order_by(MetricRow.step, MetricRow.timestamp, MetricRow.id)
            ).all()
        return [Metric(r.key, _from_db(r.value), r.step, r.timestamp) for r in rows]

    def search_runs(
        self,
        *,
        experiment_ids: Sequence[int] | None,
        filters: Sequence[Filter] = (),
        order_by: Sequence[OrderBy] = (),
        max_results: int = 1000,
        offset: int = 0,
        include_deleted: bool = False,
    ) -> list[Run]:
        """Runs matching every filter, ordered, one page (``max_results`` from ``offset``).

        The statement depends only on the query's shape (which kinds, operators and
        orderings); keys and values are bound parameters, so repeated searches reuse one
        built statement.
        """
        shape = (
            experiment_ids is not None,
            include_deleted,
            tuple((f.kind, f.key if f.kind == "attribute" else "", f.op) for f in filters),
            tuple((o.kind, o.key if o.kind == "attribute" else "", o.ascending) for o in order_by),
        )
        params: dict[str, Any] = {"limit": max_results, "offset": offset}
        if experiment_ids is not None:
            params["experiment_ids"] = list(experiment_ids)
        for i, f in enumerate(filters):
            params[f"f{i}_value"] = f.value
            if f.kind != "attribute":
                params[f"f{i}_key"] = f.key
        for i, o in enumerate(order_by):
            if o.kind != "attribute":
                params[f"o{i}_key"] = o.key
        q = search_statement(*shape)
        with self._db.transaction(write=False) as conn:
            rows = conn.execute(q, params).all()
            return self._hydrate(conn, rows)

    def _children(self, conn: Connection, ids: list[str]) -> Any:
        """Every child row of the runs ``ids`` in one statement, built once per dialect."""
        if self._db.is_sqlite:
            return conn.execute(CHILDREN_SQLITE, {"run_ids": json.dumps(ids)}).all()
        return conn.execute(CHILDREN_POSTGRES, {"run_ids": ids}).all()

    def count_runs(self, experiment_id: int) -> int:
        with self._db.transaction(write=False) as conn:
            return int(
                conn.execute(
                    select(func.count()).where(RunRow.experiment_id == experiment_id)
                ).scalar_one()
            )

    def _hydrate(self, conn: Connection, rows: Sequence[Any]) -> list[Run]:
        """Attach params, tags, latest metrics, artifacts and data sets to run rows.

        The run ids go to the database as one parameter (a JSON array on SQLite, an array
        on PostgreSQL), so each child table is one cached statement whatever the page size.
        """
        if not rows:
            return []
        ids = [r[0] for r in rows]
        params: dict[str, dict[str, str]] = {i: {} for i in ids}
        tags: dict[str, dict[str, str]] = {i: {} for i in ids}
        metrics: dict[str, dict[str, Metric]] = {i: {} for i in ids}
        artifacts: dict[str, list[RunArtifact]] = {i: [] for i in ids}
        datasets: dict[str, list[tuple[int, DatasetInput]]] = {i: [] for i in ids}
        for kind, run_id, key, text, num, n1, n2, extra in self._children(conn, ids):
            if kind == "m":
                metrics[run_id][key] = Metric(key, _from_db(num), n1, n2)
            elif kind == "p":
                params[run_id][key] = text
            elif kind == "t":
                tags[run_id][key] = text
            elif kind == "a":
                artifacts[run_id].append(RunArtifact(key, text, n1))
            else:
                meta = json.loads(extra)
                schema = meta["schema"]
                datasets[run_id].append(
                    (
                        n2,
                        DatasetInput(
                            key,
                            text,
                            n1,
                            json.loads(schema) if isinstance(schema, str) else schema,
                            meta["source"],
                            meta["context"],
                        ),
                    )
                )
        out = []
        # Positional unpacking: Row attribute access costs more than building the Run.
        for run_id, exp_id, name, status, start, end, parent, user, stage in rows:
            arts = artifacts[run_id]
            out.append(
                Run(
                    run_id,
                    exp_id,
                    name,
                    status,
                    start,
                    end,
                    parent,
                    user,
                    stage,
                    params[run_id],
                    metrics[run_id],
                    tags[run_id],
                    sorted(arts, key=_by_path) if len(arts) > 1 else arts,
                    [ds for _, ds in sorted(datasets[run_id], key=_first)],
                )
            )
        return out


def _first(item: tuple[int, DatasetInput]) -> int:
    return item[0]


def _by_path(artifact: RunArtifact) -> str:
    return artifact.path


def _to_db(value: float) -> float | None:
    return None if math.isnan(value) else value


def _from_db(value: float | None) -> float:
    return math.nan if value is None else value
