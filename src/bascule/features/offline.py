"""The offline store: DuckDB over Parquet files or SQL queries.

Point-in-time joins are ``ASOF LEFT JOIN``: for each entity row, the latest source row of the
same entity at or before the row's timestamp, then nulled when older than the view's TTL.
A left join never drops an entity row; rows keep their order (a hidden row number) and
duplicates. DuckDB spills to ``temp_dir`` past ``memory_limit``, so data larger than memory
streams through (:meth:`TrainingSet.to_parquet` never holds the result in memory).

Timestamps are compared in UTC: zone-aware values are converted, naive values are taken as UTC.
"""

from __future__ import annotations

import glob
import hashlib
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bascule.core.errors import InvalidInputError, StorageError
from bascule.features.views import FeatureView, Field, FileSource, SqlSource

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = ["DuckDBOfflineStore", "LatestRows", "arrow_reader", "arrow_table", "first_row", "quote"]

_CAST = {
    "bool": "BOOLEAN",
    "float32": "FLOAT",
    "float64": "DOUBLE",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "string": "VARCHAR",
}
_SMALL_INT = {"TINYINT", "SMALLINT", "UTINYINT", "USMALLINT"}
_COMPATIBLE = {
    "bool": {"BOOLEAN"},
    "float32": {"FLOAT"},
    "float64": {"FLOAT", "DOUBLE"},
    "int32": _SMALL_INT | {"INTEGER"},
    "int64": _SMALL_INT | {"INTEGER", "UINTEGER", "BIGINT"},
    "string": {"VARCHAR"},
}
_KEY_TYPES = _COMPATIBLE["int64"] | {"VARCHAR"}
_TIME_TYPES = {
    "DATE",
    "TIMESTAMP",
    "TIMESTAMP_S",
    "TIMESTAMP_MS",
    "TIMESTAMP_NS",
    "TIMESTAMP WITH TIME ZONE",
}


def quote(name: str) -> str:
    """A SQL identifier, double-quoted."""
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def arrow_reader(con: duckdb.DuckDBPyConnection, sql: str, batch_rows: int) -> pa.RecordBatchReader:
    """Stream a query's result as Arrow record batches, without an extra copy."""
    rel = con.sql(sql)
    method = getattr(rel, "to_arrow_reader", None) or rel.fetch_arrow_reader
    reader: pa.RecordBatchReader = method(batch_rows)
    return reader


def arrow_table(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """A query's whole result as an Arrow table, without an extra copy."""
    rel = con.sql(sql)
    method = getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table
    table: pa.Table = method()
    return table


def first_row(rows: list[Any]) -> Any:
    """The first row of a fully fetched result, or None."""
    return rows[0] if rows else None


def _compatible(dtype: str, sql_type: str) -> bool:
    if dtype == "float64" and sql_type.startswith("DECIMAL"):
        return True
    return sql_type in _COMPATIBLE[dtype]


@dataclass
class LatestRows:
    """The latest row per entity in a time window, ready to stream in key order."""

    total: int
    batches: Iterator[pa.RecordBatch]


class DuckDBOfflineStore:
    """Reads feature sources and runs point-in-time joins and latest-value queries."""

    def __init__(
        self,
        *,
        memory_limit: str | None = None,
        temp_dir: Path | None = None,
        threads: int | None = None,
    ) -> None:
        self._memory_limit = memory_limit
        self._temp_dir = temp_dir
        self._threads = threads
        self._db: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A new connection (cursor) to this store's in-memory DuckDB database.

        The database starts once, with the memory and spill settings (starting one costs
        tens of milliseconds); each operation gets its own cursor, so threads never share one,
        and its temporary tables and registered frames are its own.

        Raises:
            StorageError: DuckDB cannot start (a bad memory limit or spill folder).
        """
        with self._lock:
            if self._db is None:
                self._db = self._start()
            return self._db.cursor()

    def close(self) -> None:
        """Shut the DuckDB database down (a later operation starts it again)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _start(self) -> duckdb.DuckDBPyConnection:
        import duckdb

        config: dict[str, Any] = {}
        if self._memory_limit:
            config["memory_limit"] = self._memory_limit
        if self._temp_dir is not None:
            self._temp_dir.mkdir(parents=True, exist_ok=True)
            config["temp_directory"] = str(self._temp_dir)
        if self._threads:
            config["threads"] = self._threads
        try:
            return duckdb.connect(":memory:", config=config)
        except duckdb.Error as exc:
            raise StorageError(f"DuckDB cannot start with {config}: {exc}") from exc

    # -- sources ----------------------------------------------------------------------------------

    @staticmethod
    def files(source: FileSource) -> list[str]:
        """The Parquet files a file source names, sorted.

        Raises:
            InvalidInputError: nothing matches.
        """
        path = os.path.expanduser(source.path)
        pattern = os.path.join(path, "**", "*.parquet") if os.path.isdir(path) else path
        found = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        if not found:
            raise InvalidInputError.for_field(
                "source path",
                source.path,
                "a Parquet file, a folder of them, or a glob matching some",
            )
        return found

    def relation(self, source: FileSource | SqlSource) -> str:
        """SQL that reads the source, usable in a FROM clause.

        Raises:
            InvalidInputError: a file source that matches no file.
        """
        if isinstance(source, SqlSource):
            return f"({source.query})"
        files = ", ".join(_literal(f) for f in self.files(source))
        return f"read_parquet([{files}], union_by_name = true)"

    def describe(
        self, source: FileSource | SqlSource, con: duckdb.DuckDBPyConnection | None = None
    ) -> dict[str, str]:
        """Column name → DuckDB type of the source.

        Raises:
            InvalidInputError: the files cannot be read or the query fails.
        """
        import duckdb

        own = con is None
        conn = self.connect() if con is None else con
        try:
            rows = conn.execute(f"DESCRIBE SELECT * FROM {self.relation(source)}").fetchall()
        except duckdb.Error as exc:
            raise InvalidInputError(f"feature source cannot be read: {exc}") from exc
        finally:
            if own:
                conn.close()
        return {str(r[0]): str(r[1]) for r in rows}

    def check_view(self, view: FeatureView, join_keys: Sequence[str]) -> list[str]:
        """Problems between a view's definition and its source's columns (empty when fine)."""
        try:
            columns = self.describe(view.source)
        except InvalidInputError as exc:
            return [f"feature view {view.name!r}: {exc.message}"]
        problems: list[str] = []
        have = ", ".join(f"{c} {t}" for c, t in columns.items())

        def lacks(what: str, name: str) -> None:
            problems.append(
                f"feature view {view.name!r}: {what} {name!r} is not a column of the source; "
                f"it has: {have}"
            )

        declared = {f.name: f.dtype for f in view.schema_fields}
        for key in join_keys:
            sql_type = columns.get(key)
            if sql_type is None:
                lacks("join key", key)
            elif sql_type not in _KEY_TYPES:
                problems.append(
                    f"feature view {view.name!r}: join key {key!r} is {sql_type} in the source; "
                    "expected an integer or VARCHAR column"
                )
            elif key in declared and not _compatible(declared[key], sql_type):
                problems.append(
                    f"feature view {view.name!r}: join key {key!r} is {sql_type} in the source "
                    f"but declared {declared[key]}"
                )
        src = view.source
        for col in (src.timestamp_field, src.created_timestamp_column):
            if col is None:
                continue
            sql_type = columns.get(col)
            if sql_type is None:
                lacks("timestamp column", col)
            elif sql_type not in _TIME_TYPES:
                problems.append(
                    f"feature view {view.name!r}: timestamp column {col!r} is {sql_type} in the "
                    "source; expected TIMESTAMP, TIMESTAMPTZ or DATE"
                )
        for f in view.fields(join_keys):
            sql_type = columns.get(f.name)
            if sql_type is None:
                lacks("feature", f.name)
            elif not _compatible(f.dtype, sql_type):
                problems.append(
                    f"feature view {view.name!r}: feature {f.name!r} is declared {f.dtype} but "
                    f"the source column is {sql_type}"
                )
        return problems

    def data_fingerprint(self, source: FileSource | SqlSource) -> str:
        """A sha256 of what the source reads: each file's path, size and modification time;
        for a query, its text plus its row count and time range.

        Raises:
            InvalidInputError: the source cannot be read.
        """
        import duckdb

        h = hashlib.sha256()
        if isinstance(source, FileSource):
            for path in self.files(source):
                st = os.stat(path)
                h.update(f"{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            return h.hexdigest()
        ts = quote(source.timestamp_field)
        con = self.connect()
        try:
            row = con.execute(
                f"SELECT count(*), min({ts}), max({ts}) FROM {self.relation(source)}"
            ).fetchall()[0]
        except duckdb.Error as exc:
            raise InvalidInputError(f"feature source query failed: {exc}") from exc
        finally:
            con.close()
        h.update(f"{source.query}\0{row}".encode())
        return h.hexdigest()

    def view_sql(
        self,
        view: FeatureView,
        join_keys: Sequence[str],
        features: Sequence[Field],
        *,
        cast_time: bool = True,
    ) -> str:
        """A subquery with the join keys, ``__ts`` and the features cast to their types.

        ``__ts`` is cast to a UTC TIMESTAMP unless ``cast_time`` is false (the caller knows
        the other side of a join has the same type; casting a million rows is not free).

        Raises:
            InvalidInputError: a file source that matches no file.
        """
        src = view.source
        cols = [quote(k) for k in join_keys]
        ts = quote(src.timestamp_field)
        cols.append(f"CAST({ts} AS TIMESTAMP) AS __ts" if cast_time else f"{ts} AS __ts")
        cols += [f"CAST({quote(f.name)} AS {_CAST[f.dtype]}) AS {quote(f.name)}" for f in features]
        not_null = " AND ".join(f"{quote(k)} IS NOT NULL" for k in join_keys)
        sql = f"SELECT {', '.join(cols)} FROM {self.relation(src)} WHERE {not_null}"
        if src.created_timestamp_column:
            keys = ", ".join([*(quote(k) for k in join_keys), quote(src.timestamp_field)])
            sql += (
                f" QUALIFY row_number() OVER (PARTITION BY {keys} "
                f"ORDER BY {quote(src.created_timestamp_column)} DESC) = 1"
            )
        return sql

    # -- materialisation ------------------------------------------------------------------------

    def latest_rows(
        self,
        view: FeatureView,
        join_keys: Sequence[str],
        features: Sequence[Field],
        *,
        start_ms: int,
        end_ms: int,
        after_key: str | None,
        batch_rows: int,
    ) -> LatestRows:
        """The latest row per entity with ``start <= event time < end``, in entity-key order.

        Columns: ``__key`` (the online key: the join keys as text, joined by ``\\x1f``),
        ``__ms`` (event time, ms since the epoch), then the features. Rows with keys at or
        before ``after_key`` are skipped (resuming an interrupted run).

        Raises:
            InvalidInputError: the source cannot be read.
            StorageError: DuckDB failed.
        """
        import duckdb

        if len(join_keys) == 1:
            key = f"CAST({quote(join_keys[0])} AS VARCHAR)"
        else:
            key = (
                "concat_ws(chr(31), "
                + ", ".join(f"CAST({quote(k)} AS VARCHAR)" for k in join_keys)
                + ")"
            )
        parts = ", ".join(quote(k) for k in join_keys)
        inner = self.view_sql(view, join_keys, features)
        # One aggregate per entity picks its latest row whole: arg_max over a struct of the
        # features (a struct is never null, so a null feature in the latest row stays null
        # rather than an older value showing through, as arg_max per column would do).
        # Cheaper than ranking every row with row_number().
        latest = f"SELECT {key} AS __key, epoch_ms(max(__ts)) AS __ms"
        if features:
            fields = ", ".join(f"{_literal(f.name)}: {quote(f.name)}" for f in features)
            latest += f", arg_max({{{fields}}}, __ts) AS __latest"
        latest += (
            f" FROM ({inner}) WHERE __ts >= make_timestamp({start_ms * 1000}::BIGINT) "
            f"AND __ts < make_timestamp({end_ms * 1000}::BIGINT) GROUP BY {parts}"
        )
        columns = "__key, __ms" + (", UNNEST(__latest)" if features else "")
        con = self.connect()
        try:
            con.execute(f"CREATE TEMP TABLE latest AS SELECT {columns} FROM ({latest})")
            where = "" if after_key is None else f" WHERE __key > {_literal(after_key)}"
            total_row = first_row(con.execute(f"SELECT count(*) FROM latest{where}").fetchall())
            total = int(total_row[0]) if total_row else 0
            reader = arrow_reader(con, f"SELECT * FROM latest{where} ORDER BY __key", batch_rows)
        except duckdb.Error as exc:
            con.close()
            raise InvalidInputError(
                f"feature view {view.name!r}: reading the source failed: {exc}"
            ) from exc

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield from reader
            finally:
                con.close()

        return LatestRows(total=total, batches=batches())
