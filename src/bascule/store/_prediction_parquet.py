"""Arrow and DuckDB work of the prediction log: records → Parquet bytes, Parquet → frames.

Private to :mod:`bascule.store.predictions`. pyarrow and DuckDB are imported on first use,
so importing the log (the inference server does) stays light.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

import numpy as np

from bascule.core.errors import ArtifactNotFoundError, StorageError
from bascule.store.artifacts.base import ArtifactStore
from bascule.store.artifacts.local import LocalArtifactStore

if TYPE_CHECKING:
    import pandas as pd

    from bascule.store.predictions import PredictionRecord

__all__ = [
    "META_COLUMNS",
    "empty_frame",
    "encode_tables",
    "model_prefix",
    "partition_keys",
    "query_tables",
]

META_COLUMNS: Final = (
    "request_id",
    "row",
    "model_name",
    "model_version",
    "timestamp",
    "latency_ms",
    "route",
    "policy",
    "features_from",
)
"""The columns every logged row has, before its inputs and outputs."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)
_US_PER_HOUR: Final = 3_600_000_000
_HOUR: Final = timedelta(hours=1)
_MAX_LISTED_DAYS: Final = 62  # a longer window lists the model's whole folder instead

Columns = dict[str, np.ndarray]
Encoded = tuple[str, bytes, int]
"""``(key, Parquet bytes, rows)`` of one file to write."""


def model_prefix(prefix: str, model: str) -> str:
    """The folder of one model's partitions: ``{prefix}/model={percent-encoded name}/``."""
    return f"{prefix}/model={quote(model, safe='')}/"


def _micros(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return (ts - _EPOCH) // _ONE_US


class _Uneven(Exception):
    """A group's columns cannot be joined as they are (ragged, 2-D or mixed types)."""


def _normalise(record: PredictionRecord) -> tuple[Columns, Columns] | str:
    """The record's columns as 1-D arrays of its row count, or what is wrong with it."""
    n = record.rows
    out: list[Columns] = [{}, {}]
    for side, columns in zip(out, (record.inputs, record.outputs), strict=True):
        for name, values in columns.items():
            arr = np.asarray(values)
            if arr.ndim == 2 and arr.shape[1] == 1:
                arr = arr.ravel()
            if arr.ndim != 1 or len(arr) != n:
                return (
                    f"request {record.request_id!r}: column {name!r} has shape "
                    f"{list(arr.shape)}, expected [{n}]"
                )
            side[name] = arr
    return out[0], out[1]


def _to_arrow(values: np.ndarray, *, strict: bool) -> Any:
    import pyarrow as pa

    if values.dtype == np.float16:
        values = values.astype(np.float32)
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        if strict:
            raise _Uneven(str(exc)) from exc
    # mixed Python objects within one record's column: keep their text
    return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def _join(parts: list[np.ndarray], counts: np.ndarray, *, strict: bool) -> Any:
    if strict:
        lengths = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
        if not np.array_equal(lengths, counts):
            raise _Uneven("ragged column")
    try:
        joined = np.concatenate(parts)
    except (ValueError, TypeError) as exc:
        raise _Uneven(str(exc)) from exc
    return _to_arrow(joined, strict=strict)


def _table(
    records: list[PredictionRecord],
    stamps: list[int],
    counts: np.ndarray,
    inputs: list[Columns],
    outputs: list[Columns],
    *,
    strict: bool,
) -> Any:
    """One Arrow table from records sharing column names, built column by column.

    Raises:
        _Uneven: ``strict`` and a column is ragged, 2-D or mixes types across records.
    """
    import pyarrow as pa

    total = int(counts.sum())
    owner = pa.array(np.repeat(np.arange(len(records)), counts))
    starts = np.cumsum(counts) - counts

    def meta(values: list[Any], type_: Any) -> Any:
        return pa.array(values, type=type_).take(owner)

    us = np.repeat(np.array(stamps, dtype=np.int64), counts)
    columns: dict[str, Any] = {
        "request_id": meta([r.request_id for r in records], pa.string()),
        "row": pa.array(np.arange(total, dtype=np.int64) - np.repeat(starts, counts)),
        "model_name": meta([r.model_name for r in records], pa.string()),
        "model_version": meta([r.model_version for r in records], pa.int64()),
        "timestamp": pa.array(us.view("datetime64[us]"), type=pa.timestamp("us", tz="UTC")),
        "latency_ms": meta([r.latency_ms for r in records], pa.float64()),
        "route": meta([r.route for r in records], pa.string()),
        "policy": meta([r.policy for r in records], pa.string()),
        "features_from": meta([r.features_from for r in records], pa.string()),
    }
    for tag, sides in (("input", inputs), ("output", outputs)):
        for name in sides[0]:
            out = name if name not in columns else f"{tag}.{name}"
            columns[out] = _join([c[name] for c in sides], counts, strict=strict)
    return pa.table(columns)


def _tables(members: list[tuple[PredictionRecord, int, int]], invalid: list[str]) -> list[Any]:
    """Tables of records with the same column names: one, vectorised, in the common case.

    A group that cannot be joined as it is takes the slow path: each record is checked
    (malformed ones are described in ``invalid`` and left out) and records are split by
    column dtypes, one table each.
    """
    records = [m[0] for m in members]
    stamps = [m[1] for m in members]
    counts = np.array([m[2] for m in members], dtype=np.int64)
    try:
        ins, outs = [r.inputs for r in records], [r.outputs for r in records]
        return [_table(records, stamps, counts, ins, outs, strict=True)]
    except _Uneven:
        pass
    kinds: dict[tuple[Any, ...], list[tuple[PredictionRecord, int, Columns, Columns]]] = {}
    for record, us, _ in members:
        cols = _normalise(record)
        if isinstance(cols, str):
            invalid.append(cols)
            continue
        kind = tuple((side, k, v.dtype.str) for side, c in enumerate(cols) for k, v in c.items())
        kinds.setdefault(kind, []).append((record, us, *cols))
    return [
        _table(
            [g[0] for g in group],
            [g[1] for g in group],
            np.array([g[0].rows for g in group], dtype=np.int64),
            [g[2] for g in group],
            [g[3] for g in group],
            strict=False,
        )
        for group in kinds.values()
    ]


def _parquet(table: Any) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())


def encode_tables(
    records: Sequence[PredictionRecord], prefix: str
) -> tuple[list[Encoded], list[str]]:
    """Group records by model and hour and encode each group as one Parquet file.

    Records with different columns (versions) are unified by name in one file; when their
    types cannot be unified (text and numbers under one name) each kind gets its own file.

    Returns:
        The files to write, and a description of each malformed record left out.
    """
    import pyarrow as pa

    groups: dict[tuple[str, int, tuple[str, ...], tuple[str, ...]], list[Any]] = {}
    for record in records:
        n = record.rows
        if n == 0:
            continue
        us = _micros(record.timestamp)
        key = (record.model_name, us // _US_PER_HOUR, tuple(record.inputs), tuple(record.outputs))
        groups.setdefault(key, []).append((record, us, n))
    invalid: list[str] = []
    by_file: dict[tuple[str, int], list[Any]] = {}
    for (model, hour, _, _), members in groups.items():
        by_file.setdefault((model, hour), []).extend(_tables(members, invalid))
    files: list[Encoded] = []
    for (model, hour), tables in by_file.items():
        start = _EPOCH + timedelta(hours=hour)
        folder = f"{model_prefix(prefix, model)}date={start:%Y-%m-%d}/hour={start:%H}/"
        if len(tables) > 1:
            # incompatible types under one name: one file each, readers unify them
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError):
                tables = [pa.concat_tables(tables, promote_options="permissive")]
        for table in tables:
            if table.num_rows:
                name = f"{folder}part-{uuid.uuid4().hex}.parquet"
                files.append((name, _parquet(table), table.num_rows))
    return files, invalid


def _hour_of(key: str, folder: str) -> datetime | None:
    """The hour a partition key covers, or None if it is not a partition file."""
    rest = key[len(folder) :].split("/")
    if len(rest) != 3 or not rest[0].startswith("date=") or not rest[1].startswith("hour="):
        return None
    if not rest[2].endswith(".parquet"):
        return None
    try:
        day = datetime.strptime(rest[0][5:], "%Y-%m-%d").replace(tzinfo=UTC)
        hour = int(rest[1][5:])
    except ValueError:
        return None
    return day + timedelta(hours=hour) if 0 <= hour < 24 else None


def partition_keys(
    store: ArtifactStore, folder: str, start: datetime | None, end: datetime | None
) -> list[str]:
    """Keys of the partitions overlapping ``[start, end)``, pruned by their names."""
    if start is not None and end is not None and end - start <= timedelta(days=_MAX_LISTED_DAYS):
        day = start.astimezone(UTC).date()
        prefixes = []
        while day <= end.astimezone(UTC).date():
            prefixes.append(f"{folder}date={day:%Y-%m-%d}/")
            day += timedelta(days=1)
    else:
        prefixes = [folder]
    keys = []
    for p in prefixes:
        for key in store.list(p):
            hour = _hour_of(key, folder)
            if hour is None:
                continue
            if (start is None or hour + _HOUR > start) and (end is None or hour < end):
                keys.append(key)
    return keys


def empty_frame() -> pd.DataFrame:
    """A frame with the meta columns, their types, and no rows."""
    import pyarrow as pa

    types = [pa.string(), pa.int64(), pa.string(), pa.int64(), pa.timestamp("us", tz="UTC")]
    types += [pa.float64(), pa.string(), pa.string(), pa.string()]
    schema = pa.schema(list(zip(META_COLUMNS, types, strict=True)))
    frame: pd.DataFrame = schema.empty_table().to_pandas()
    return frame


def _arrow_source(con: Any, store: ArtifactStore, keys: list[str]) -> str | None:
    """Register the files' tables with DuckDB; the FROM clause reading them (None: no file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for key in keys:
        try:
            tables.append(pq.read_table(pa.BufferReader(store.read(key))))
        except ArtifactNotFoundError:
            continue  # removed since it was listed
    if not tables:
        return None
    try:
        con.register("t0", pa.concat_tables(tables, promote_options="permissive"))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        for i, table in enumerate(tables):
            con.register(f"t{i}", table)
        union = " UNION ALL BY NAME ".join(f"SELECT * FROM t{i}" for i in range(len(tables)))
        return f"({union})"
    return "t0"


def query_tables(
    store: ArtifactStore, keys: list[str], start: datetime | None, end: datetime | None
) -> pd.DataFrame:
    """Rows of the Parquet files under ``keys`` with ``start <= timestamp < end``, by time.

    Raises:
        StorageError: a file cannot be read or DuckDB fails.
    """
    import duckdb

    conditions: list[str] = []
    params: dict[str, Any] = {}
    if start is not None:
        conditions.append("timestamp >= $start")
        params["start"] = start
    if end is not None:
        conditions.append("timestamp < $end")
        params["end"] = end
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        source: str | None
        if isinstance(store, LocalArtifactStore):
            params["files"] = [str(store.path_for_key(k)) for k in keys]
            source = "read_parquet($files, union_by_name = true, hive_partitioning = false)"
        else:
            source = _arrow_source(con, store, keys)
        if source is None:
            return empty_frame()
        sql = f'SELECT * FROM {source}{where} ORDER BY timestamp, request_id, "row"'
        table = con.sql(sql, params=params).to_arrow_table()
    except (duckdb.Error, OSError) as exc:
        raise StorageError(
            f"cannot read the prediction log in {store.root!r}: {exc}", store=store.root
        ) from exc
    finally:
        con.close()
    frame: pd.DataFrame = table.to_pandas()
    return frame
