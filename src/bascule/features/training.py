"""Training sets: point-in-time-correct joins of entity rows with feature values, and lineage.

``TrainingSet`` is lazy like Feast's ``RetrievalJob``: nothing runs until ``to_df``,
``to_arrow`` or ``to_parquet``; each call runs the join afresh. Its ``lineage`` names every
feature view version, definition fingerprint and data fingerprint that went in, so a model
version registered from it can name its features (``lineage.tags()``, ``lineage.digest``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bascule.core.errors import IntegrityError, InvalidInputError
from bascule.features.catalog import OnDemandPart, Selection
from bascule.features.offline import (
    DuckDBOfflineStore,
    arrow_reader,
    arrow_table,
    first_row,
    quote,
)
from bascule.features.transform import run_on_demand_frame

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa

__all__ = ["FeatureLineage", "OnDemandLineage", "TrainingSet", "ViewLineage"]

_T = TypeVar("_T")
_ROW = "__bascule_row"
_ETS = "__bascule_ets"
_TIME_TYPES = ("DATE", "TIMESTAMP")


@dataclass(frozen=True)
class ViewLineage:
    """One feature view as it went into a training set."""

    name: str
    version: int
    fingerprint: str
    data_fingerprint: str
    source: str
    features: tuple[str, ...]


@dataclass(frozen=True)
class OnDemandLineage:
    """One on-demand view as it went into a training set."""

    name: str
    version: int
    fingerprint: str
    function: str
    code_hash: str


@dataclass(frozen=True)
class FeatureLineage:
    """What a training set is made of; ``digest`` is a sha256 over all of it."""

    refs: tuple[str, ...]
    views: tuple[ViewLineage, ...]
    on_demand: tuple[OnDemandLineage, ...]
    entity_rows: int
    digest: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for ``run.log_dict`` or a registry tag)."""
        return asdict(self)

    def tags(self) -> dict[str, str]:
        """Short tags for a run or a model version: the refs, view versions and the digest."""
        versions = [f"{v.name}@v{v.version}" for v in self.views]
        versions += [f"{o.name}@v{o.version}" for o in self.on_demand]
        return {
            "features.refs": ",".join(self.refs),
            "features.views": ",".join(versions),
            "features.digest": self.digest,
        }


def build_lineage(
    selection: Selection,
    parts_lineage: Sequence[ViewLineage],
    od: Sequence[OnDemandLineage],
    rows: int,
) -> FeatureLineage:
    """Assemble a :class:`FeatureLineage` and its digest."""
    body = {
        "refs": list(selection.refs),
        "views": [asdict(v) for v in parts_lineage],
        "on_demand": [asdict(o) for o in od],
        "entity_rows": rows,
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return FeatureLineage(selection.refs, tuple(parts_lineage), tuple(od), rows, digest)


def _entity_table(entity_df: Any) -> pa.Table | str:
    """An Arrow table with a row number, or SQL reading Parquet files in file-row order.

    Raises:
        InvalidInputError: not a DataFrame, an Arrow table, or a Parquet path.
    """
    import pyarrow as pa

    if isinstance(entity_df, str | Path):
        path = str(entity_df).replace("'", "''")
        return (
            f"(SELECT * EXCLUDE (filename, file_row_number), row_number() OVER "
            f"(ORDER BY filename, file_row_number) - 1 AS {_ROW} FROM read_parquet('{path}', "
            "filename = true, file_row_number = true))"
        )
    if isinstance(entity_df, pa.Table):
        table = entity_df
    else:
        import pandas as pd

        if not isinstance(entity_df, pd.DataFrame):
            raise InvalidInputError.for_field(
                "entity_df",
                type(entity_df).__name__,
                "a pandas DataFrame, a pyarrow Table, or a Parquet path",
            )
        table = pa.Table.from_pandas(entity_df, preserve_index=False)
    import numpy as np

    return table.append_column(_ROW, pa.array(np.arange(table.num_rows, dtype=np.int64)))


class TrainingSet:
    """A point-in-time join waiting to run; see the module docstring."""

    def __init__(
        self,
        offline: DuckDBOfflineStore,
        entity_df: Any,
        selection: Selection,
        *,
        timestamp_column: str,
        lineage_parts: tuple[Sequence[ViewLineage], Sequence[OnDemandLineage]],
    ) -> None:
        self._offline = offline
        self._entity = _entity_table(entity_df)
        self._selection = selection
        self._ts = timestamp_column
        con = self._open()
        try:
            columns = {
                str(r[0]): str(r[1])
                for r in con.execute("DESCRIBE SELECT * FROM entity_rows").fetchall()
            }
            count_row = first_row(con.execute("SELECT count(*) FROM entity_rows").fetchall())
            source_times = {
                offline.describe(p.view.source, con).get(p.view.source.timestamp_field)
                for p in selection.views
            }
        finally:
            con.close()
        # Compare times as they are when every side has the same type; else all as UTC TIMESTAMP.
        self._cast_time = source_times != {columns.get(timestamp_column)}
        self._check_columns(columns)
        self._columns = [c for c in columns if c != _ROW]
        self.rows = int(count_row[0]) if count_row else 0
        self.lineage = build_lineage(selection, lineage_parts[0], lineage_parts[1], self.rows)
        self._sql = self._build_sql()

    def _open(self) -> duckdb.DuckDBPyConnection:
        con = self._offline.connect()
        if isinstance(self._entity, str):
            con.execute(f"CREATE VIEW entity_rows AS SELECT * FROM {self._entity}")
        else:
            con.register("entity_rows", self._entity)
        return con

    def _check_columns(self, columns: dict[str, str]) -> None:
        sel = self._selection
        needed = [self._ts, *sel.join_keys, *sel.request]
        missing = [c for c in dict.fromkeys(needed) if c not in columns]
        have = ", ".join(repr(c) for c in columns if c != _ROW)
        if missing:
            raise InvalidInputError(
                f"entity rows lack column(s) {', '.join(repr(m) for m in missing)} "
                f"(the timestamp column, the join keys of the views, and request fields); "
                f"they have: {have}",
                field="entity_df",
                missing=missing,
            )
        ts_type = columns[self._ts]
        if not ts_type.startswith(_TIME_TYPES):
            raise InvalidInputError.for_field(
                f"entity column {self._ts!r}", ts_type, "timestamps (datetime64 or DATE)"
            )
        clash = [o for o in sel.outputs if o in columns]
        if clash:
            raise InvalidInputError(
                f"entity rows already have column(s) {clash}, which the features would replace; "
                "rename them or pass full_feature_names=True"
            )

    def _build_sql(self) -> str:
        sel = self._selection
        selects: list[str] = []
        joins: list[str] = []
        for i, part in enumerate(sel.views):
            alias = f"v{i}"
            inner = self._offline.view_sql(
                part.view, part.join_keys, part.features, cast_time=self._cast_time
            )
            on = " AND ".join(f"e.{quote(k)} = {alias}.{quote(k)}" for k in part.join_keys)
            joins.append(f"ASOF LEFT JOIN ({inner}) {alias} ON {on} AND e.{_ETS} >= {alias}.__ts")
            ttl = part.view.ttl
            for f, out in zip(part.features, part.outputs, strict=True):
                value = f"{alias}.{quote(f.name)}"
                if ttl is not None:
                    micros = int(ttl.total_seconds() * 1_000_000)
                    value = (
                        f"CASE WHEN {alias}.__ts >= e.{_ETS} - to_microseconds({micros}::BIGINT) "
                        f"THEN {value} END"
                    )
                name = out if out is not None else _hidden(part.view.name, f.name)
                selects.append(f"{value} AS {quote(name)}")
        body = ", ".join(["e.* EXCLUDE (" + _ETS + ")", *selects])
        ets = f"CAST({quote(self._ts)} AS TIMESTAMP)" if self._cast_time else quote(self._ts)
        entity = f"(SELECT *, {ets} AS {_ETS} FROM entity_rows) e"
        return (
            f"SELECT * EXCLUDE ({_ROW}) FROM (SELECT {body} FROM {entity} {' '.join(joins)}) "
            f"ORDER BY {_ROW}"
        )

    # -- results ----------------------------------------------------------------------------------

    def _finish(self, frame: pd.DataFrame) -> pd.DataFrame:
        for part in self._selection.on_demand:
            frame = _apply_on_demand(frame, part, self._selection)
        hidden = [c for c in frame.columns if str(c).startswith("__bascule_in__")]
        return frame.drop(columns=hidden) if hidden else frame

    def _check_rows(self, n: int) -> None:
        if n != self.rows:
            raise IntegrityError(
                f"the point-in-time join returned {n} rows for {self.rows} entity rows"
            )

    def to_arrow(self) -> pa.Table:
        """Run the join; one row per entity row, in order.

        Raises:
            InvalidInputError: the sources or the entity rows cannot be read or joined.
            IntegrityError: the join returned another number of rows (a bug; never silent).
        """
        import pyarrow as pa

        table = self._run(lambda con: arrow_table(con, self._sql))
        self._check_rows(table.num_rows)
        if not self._selection.on_demand and not any(
            o is None for p in self._selection.views for o in p.outputs
        ):
            return table
        return pa.Table.from_pandas(self._finish(table.to_pandas()), preserve_index=False)

    def to_df(self) -> pd.DataFrame:
        """Run the join and return a pandas DataFrame (see :meth:`to_arrow`).

        Raises:
            InvalidInputError: the sources or the entity rows cannot be read or joined.
            IntegrityError: the join returned another number of rows.
        """
        table = self._run(lambda con: arrow_table(con, self._sql))
        self._check_rows(table.num_rows)
        return self._finish(table.to_pandas())

    def to_parquet(self, path: str | Path, *, batch_rows: int = 200_000) -> int:
        """Run the join straight into a Parquet file, streaming (memory stays bounded).

        Returns:
            The number of rows written.

        Raises:
            InvalidInputError: the sources or the entity rows cannot be read or joined.
            IntegrityError: the join returned another number of rows.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        target = str(Path(path)).replace("'", "''")
        if not self._selection.on_demand:
            row = self._run(
                lambda con: con.execute(
                    f"COPY ({self._sql}) TO '{target}' (FORMAT parquet)"
                ).fetchall()
            )
            n = int(row[0][0]) if row else 0
            self._check_rows(n)
            return n

        def stream(con: duckdb.DuckDBPyConnection) -> int:
            written = 0
            writer: pq.ParquetWriter | None = None
            try:
                for batch in arrow_reader(con, self._sql, batch_rows):
                    frame = self._finish(batch.to_pandas())
                    out = pa.Table.from_pandas(frame, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(str(path), out.schema)
                    writer.write_table(out)
                    written += out.num_rows
            finally:
                if writer is not None:
                    writer.close()
            return written

        n = self._run(stream)
        self._check_rows(n)
        return n

    def _run(self, fn: Callable[[duckdb.DuckDBPyConnection], _T]) -> _T:
        import duckdb

        con = self._open()
        try:
            return fn(con)
        except duckdb.Error as exc:
            raise InvalidInputError(f"the point-in-time join failed: {exc}") from exc
        finally:
            con.close()


def _hidden(view: str, feature: str) -> str:
    return f"__bascule_in__{view}__{feature}"


def _apply_on_demand(frame: pd.DataFrame, part: OnDemandPart, sel: Selection) -> pd.DataFrame:
    """Run one on-demand view on the joined rows and add its outputs as columns."""
    where: dict[tuple[str, str], str] = {}
    for vp in sel.views:
        for f, out in zip(vp.features, vp.outputs, strict=True):
            where[(vp.view.name, f.name)] = (
                out if out is not None else _hidden(vp.view.name, f.name)
            )
    inputs = frame[[where[i] for i in part.inputs] + list(part.request)]
    inputs.columns = [f for _, f in part.inputs] + list(part.request)
    result = run_on_demand_frame(part, inputs)
    for field, out in zip(part.features, part.outputs, strict=True):
        frame[out] = result[field.name].to_numpy()
    return frame
