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
    import numpy as np
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


def _entity_input(entity_df: Any) -> pd.DataFrame | pa.Table | str:
    """The entity rows as given: a DataFrame (with a fresh RangeIndex), an Arrow table, or SQL
    reading Parquet files in file-row order with a row number.

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
        return entity_df
    import pandas as pd

    if not isinstance(entity_df, pd.DataFrame):
        raise InvalidInputError.for_field(
            "entity_df",
            type(entity_df).__name__,
            "a pandas DataFrame, a pyarrow Table, or a Parquet path",
        )
    # Copy-on-write: a cheap snapshot; later edits of the caller's frame do not show here.
    return entity_df.reset_index(drop=True)


def _column_names(frame: pd.DataFrame | pa.Table) -> dict[str, Any]:
    """Column name (as text) → the frame's own label."""
    import pyarrow as pa

    labels = frame.column_names if isinstance(frame, pa.Table) else list(frame.columns)
    return {str(c): c for c in labels}


def _with_row_numbers(frame: pd.DataFrame | pa.Table, labels: Sequence[Any] | None) -> pa.Table:
    """``frame`` (only the columns ``labels``, when given) as Arrow, plus the row number."""
    import numpy as np
    import pyarrow as pa

    if isinstance(frame, pa.Table):
        table = frame if labels is None else frame.select(list(labels))
    else:
        part = frame if labels is None else frame[list(labels)]
        table = pa.Table.from_pandas(part, preserve_index=False)
    return table.append_column(_ROW, pa.array(np.arange(table.num_rows, dtype=np.int64)))


def _entity_order(table: pa.Table, rows: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Positions in ``table`` (the join's output, in DuckDB's order) of entity rows 0, 1, …

    Raises:
        IntegrityError: some entity row is missing or repeated (a bug; never silent).
    """
    import numpy as np

    numbers = table.column(_ROW).to_numpy()
    order = np.full(rows, -1, dtype=np.int64)
    order[numbers] = np.arange(len(numbers), dtype=np.int64)
    if len(numbers) != rows or (order < 0).any():
        raise IntegrityError(
            f"the point-in-time join did not return each of the {rows} entity rows once"
        )
    return order


class TrainingSet:
    """A point-in-time join waiting to run; see the module docstring.

    Entity rows given in memory stay in memory: only their join keys, timestamp and row
    number go through DuckDB, and the feature columns that come back are put in the rows'
    order by their row numbers (no sort). ``to_parquet`` sends every column through DuckDB
    and sorts there, so a result larger than memory streams to disk.
    """

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
        entity = _entity_input(entity_df)
        self._frame = None if isinstance(entity, str) else entity
        self._path_sql = entity if isinstance(entity, str) else None
        self._selection = selection
        self._ts = timestamp_column
        self._keys: pa.Table | None = None
        if self._frame is not None:
            labels = _column_names(self._frame)
            self._check_names(list(labels))
            needed = dict.fromkeys([timestamp_column, *selection.join_keys])
            self._keys = _with_row_numbers(self._frame, [labels[c] for c in needed])
            self.rows = self._keys.num_rows
        con = self._open(wide=self._frame is None)
        try:
            columns = {
                str(r[0]): str(r[1])
                for r in con.execute("DESCRIBE SELECT * FROM entity_rows").fetchall()
            }
            if self._frame is None:
                self._check_names([c for c in columns if c != _ROW])
                count_row = first_row(con.execute("SELECT count(*) FROM entity_rows").fetchall())
                self.rows = int(count_row[0]) if count_row else 0
            source_times = {
                offline.describe(p.view.source, con).get(p.view.source.timestamp_field)
                for p in selection.views
            }
        finally:
            con.close()
        ts_type = columns[timestamp_column]
        if not ts_type.startswith(_TIME_TYPES):
            raise InvalidInputError.for_field(
                f"entity column {timestamp_column!r}", ts_type, "timestamps (datetime64 or DATE)"
            )
        # Compare times as they are when every side has the same type; else all as UTC TIMESTAMP.
        self._cast_time = source_times != {ts_type}
        self.lineage = build_lineage(selection, lineage_parts[0], lineage_parts[1], self.rows)

    def _open(self, *, wide: bool) -> duckdb.DuckDBPyConnection:
        """A connection where ``entity_rows`` holds the entity rows and their row numbers:
        every column when ``wide``, else the join keys and the timestamp only."""
        con = self._offline.connect()
        if self._path_sql is not None:
            con.execute(f"CREATE TEMP VIEW entity_rows AS SELECT * FROM {self._path_sql}")
        elif wide and self._frame is not None:
            con.register("entity_rows", _with_row_numbers(self._frame, None))
        else:
            con.register("entity_rows", self._keys)
        return con

    def _check_names(self, columns: list[str]) -> None:
        sel = self._selection
        needed = [self._ts, *sel.join_keys, *sel.request]
        missing = [c for c in dict.fromkeys(needed) if c not in columns]
        have = ", ".join(repr(c) for c in columns)
        if missing:
            raise InvalidInputError(
                f"entity rows lack column(s) {', '.join(repr(m) for m in missing)} "
                f"(the timestamp column, the join keys of the views, and request fields); "
                f"they have: {have}",
                field="entity_df",
                missing=missing,
            )
        clash = [o for o in sel.outputs if o in columns]
        if clash:
            raise InvalidInputError(
                f"entity rows already have column(s) {clash}, which the features would replace; "
                "rename them or pass full_feature_names=True"
            )

    def _sql(self, *, wide: bool, ordered: bool) -> str:
        """The join. Its rows come in DuckDB's order with their row number, unless ``ordered``
        (entity order, no row number); they carry every entity column when ``wide``, else
        the row number and the features only."""
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
        ets = f"CAST({quote(self._ts)} AS TIMESTAMP)" if self._cast_time else quote(self._ts)
        if wide:
            entity = f"(SELECT *, {ets} AS {_ETS} FROM entity_rows) e"
            head = f"e.* EXCLUDE ({_ETS})"
        else:
            keys = "".join(f", {quote(k)}" for k in sel.join_keys)
            entity = f"(SELECT {_ROW}{keys}, {ets} AS {_ETS} FROM entity_rows) e"
            head = f"e.{_ROW}"
        sql = f"SELECT {', '.join([head, *selects])} FROM {entity} {' '.join(joins)}"
        return f"SELECT * EXCLUDE ({_ROW}) FROM ({sql}) ORDER BY {_ROW}" if ordered else sql

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

    def _joined(self) -> tuple[pa.Table, np.ndarray[Any, np.dtype[np.int64]]]:
        """The join's output in DuckDB's order, and where each entity row is in it."""
        wide = self._frame is None
        table = self._run(lambda con: arrow_table(con, self._sql(wide=wide, ordered=False)), wide)
        self._check_rows(table.num_rows)
        return table, _entity_order(table, self.rows)

    def _plain(self) -> bool:
        """Whether the join's columns are the result (no on-demand view, no hidden input)."""
        sel = self._selection
        return not sel.on_demand and all(o is not None for p in sel.views for o in p.outputs)

    def to_arrow(self) -> pa.Table:
        """Run the join; one row per entity row, in order.

        Raises:
            InvalidInputError: the sources or the entity rows cannot be read or joined.
            IntegrityError: the join returned another number of rows (a bug; never silent).
        """
        import pyarrow as pa

        if not self._plain():
            return pa.Table.from_pandas(self.to_df(), preserve_index=False)
        table, order = self._joined()
        joined = table.drop_columns([_ROW]).take(pa.array(order))
        if self._frame is None:
            return joined
        out = self._frame
        if not isinstance(out, pa.Table):
            out = pa.Table.from_pandas(out, preserve_index=False)
        for name in joined.column_names:
            out = out.append_column(name, joined.column(name))
        return out

    def to_df(self) -> pd.DataFrame:
        """Run the join and return a pandas DataFrame (see :meth:`to_arrow`).

        Raises:
            InvalidInputError: the sources or the entity rows cannot be read or joined.
            IntegrityError: the join returned another number of rows.
        """
        import pandas as pd
        import pyarrow as pa

        table, order = self._joined()
        # Column by column, each put in entity order as it becomes pandas (pandas' own take
        # keeps every dtype as Arrow's conversion made it).
        columns = {
            name: table.column(name).to_pandas().array.take(order)
            for name in table.column_names
            if name != _ROW
        }
        del table
        frame = pd.DataFrame(columns, index=pd.RangeIndex(self.rows), copy=False)
        if self._frame is not None:
            given = self._frame
            if isinstance(given, pa.Table):
                given = given.to_pandas()
            frame = pd.concat([given, frame], axis=1)
        return self._finish(frame)

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
        sql = self._sql(wide=True, ordered=True)
        if not self._selection.on_demand:
            row = self._run(
                lambda con: con.execute(f"COPY ({sql}) TO '{target}' (FORMAT parquet)").fetchall(),
                True,
            )
            n = int(row[0][0]) if row else 0
            self._check_rows(n)
            return n

        def stream(con: duckdb.DuckDBPyConnection) -> int:
            written = 0
            writer: pq.ParquetWriter | None = None
            try:
                for batch in arrow_reader(con, sql, batch_rows):
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

        n = self._run(stream, True)
        self._check_rows(n)
        return n

    def _run(self, fn: Callable[[duckdb.DuckDBPyConnection], _T], wide: bool) -> _T:
        import duckdb

        con = self._open(wide=wide)
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
