"""DuckDB work of the prediction log: the partitions of a time window → one frame.

Private to :mod:`bascule.store.predictions`. pyarrow and DuckDB are imported on first use.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from bascule.core.errors import ArtifactNotFoundError, InvalidInputError, StorageError
from bascule.store._prediction_parquet import META_COLUMNS
from bascule.store.artifacts.base import ArtifactStore
from bascule.store.artifacts.local import LocalArtifactStore

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["check_window", "empty_frame", "partition_keys", "query_tables"]

_HOUR: Final = timedelta(hours=1)
_MAX_LISTED_DAYS: Final = 62  # a longer window lists the model's whole folder instead


def check_window(start: datetime | None, end: datetime | None) -> None:
    """Refuse a naive bound or a window whose start is after its end.

    Raises:
        InvalidInputError: what is wrong with the window.
    """
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.utcoffset() is None:
            raise InvalidInputError.for_field(
                name, value, "a timezone-aware datetime (for example datetime(…, tzinfo=UTC))"
            )
    if start is not None and end is not None and start > end:
        raise InvalidInputError(
            f"invalid window: start {start.isoformat()} is after end {end.isoformat()}",
            field="start",
            value=start,
            expected="start <= end",
        )


def hour_of(key: str, folder: str, suffix: str = ".parquet") -> datetime | None:
    """The hour a ``date=…/hour=…/<file><suffix>`` partition key under ``folder`` covers, or
    None if it is not such a file (the prediction log's and the usage log's layout)."""
    rest = key[len(folder) :].split("/")
    if len(rest) != 3 or not rest[0].startswith("date=") or not rest[1].startswith("hour="):
        return None
    if not rest[2].endswith(suffix):
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
            hour = hour_of(key, folder)
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
