"""Arrow work of the prediction log: records and batches → Parquet bytes.

Private to :mod:`bascule.store.predictions` (reading is in ``_prediction_query``). pyarrow is
imported on first use, so importing the log (the inference server does) stays light.

Encoding is column-wise: batches, and records stacked by model, hour, version and columns,
become parts (``_prediction_parts``); parts of one model, hour and column set are joined
column by column (numeric parts of one dtype as Arrow chunks over their own arrays, others
with one ``np.concatenate``), and meta columns are expanded from per-request arrays with
``np.repeat``. The flusher thread calls ``pause`` between columns so that, sharing the
interpreter with the request path, it never holds the GIL for long; the Parquet encoding
itself runs in Arrow with the GIL released.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

import numpy as np

from bascule.store._prediction_parts import (
    EPOCH,
    US_PER_HOUR,
    Columns,
    Part,
    Uneven,
    batch_parts,
    micros,
    normalise,
    record_part,
    stack,
)

if TYPE_CHECKING:
    from bascule.store.predictions import PredictionBatch, PredictionRecord

__all__ = ["CODECS", "META_COLUMNS", "encode_tables", "model_prefix"]

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

CODECS: Final = ("lz4", "zstd", "snappy", "none")
"""Parquet codecs the log writes with (pyarrow's names); ``serving.prediction_log.compression``
accepts the same (a test keeps the two equal: settings may not import the store)."""


Encoded = tuple[str, memoryview, int]
"""``(key, Parquet bytes, rows)`` of one file to write."""
Pause = Callable[[], None]


def model_prefix(prefix: str, model: str) -> str:
    """The folder of one model's partitions: ``{prefix}/model={percent-encoded name}/``."""
    return f"{prefix}/model={quote(model, safe='')}/"


def _no_pause() -> None:
    return None


def _to_arrow(values: np.ndarray, *, strict: bool) -> Any:
    import pyarrow as pa

    if values.dtype == np.float16:
        values = values.astype(np.float32)
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        if strict:
            raise Uneven(str(exc)) from exc
    # mixed Python objects within one record's column: keep their text
    return pa.array([None if v is None else str(v) for v in values], type=pa.string())


_MAX_CHUNKS: Final = 256
"""Parts of a numeric column kept as Arrow chunks at most (more are joined into one)."""


def _join(parts: list[np.ndarray], rows: np.ndarray, *, strict: bool) -> Any:
    if strict:
        lengths = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
        if not np.array_equal(lengths, rows):
            raise Uneven("ragged column")
    if 1 < len(parts) <= _MAX_CHUNKS and _same_numbers(parts):
        # one Arrow chunk per part, each viewing its array: Parquet reads the chunks in turn,
        # so the column is never copied into one array first
        import pyarrow as pa

        return pa.chunked_array([_to_arrow(np.ascontiguousarray(p), strict=strict) for p in parts])
    try:  # contiguous, whatever the parts' strides
        joined = np.ascontiguousarray(parts[0]) if len(parts) == 1 else np.concatenate(parts)
    except (ValueError, TypeError) as exc:
        raise Uneven(str(exc)) from exc
    return _to_arrow(joined, strict=strict)


def _same_numbers(parts: Sequence[Any]) -> bool:
    """Whether every part is a 1-D array of one numeric dtype Arrow takes as it is (records
    may hold lists)."""
    first = parts[0]
    if not isinstance(first, np.ndarray) or first.dtype.kind not in "biuf":
        return False
    dtype = first.dtype
    return dtype != np.float16 and all(
        isinstance(p, np.ndarray) and p.dtype == dtype and p.ndim == 1 for p in parts
    )


def _gather(values: list[Sequence[Any] | np.ndarray], dtype: type[np.generic]) -> np.ndarray:
    """Per-request values of several parts as one array (records hold tuples, batches arrays)."""
    if len(values) == 1 or all(isinstance(v, np.ndarray) for v in values):
        return np.concatenate(values).astype(dtype, copy=False)
    return np.fromiter(itertools.chain.from_iterable(values), dtype=dtype)


def _dictionary(values: Any, repeats: np.ndarray | None) -> Any:
    """``values`` (one per request or part) as a dictionary array, each repeated
    ``repeats`` times: Parquet writes its dictionary and indices as they are."""
    import pyarrow as pa

    encoded = values.dictionary_encode()
    indices = encoded.indices
    if repeats is not None:
        indices = pa.array(np.repeat(indices.to_numpy(), repeats))
    return pa.DictionaryArray.from_arrays(indices, encoded.dictionary)


def _table(
    parts: list[Part], ins: list[Columns], outs: list[Columns], *, strict: bool, pause: Pause
) -> Any:
    """One Arrow table from parts sharing column names, built column by column.

    Raises:
        Uneven: ``strict`` and a column is ragged, 2-D or mixes types across parts.
    """
    import pyarrow as pa

    counts = _gather([p.request_rows for p in parts], np.int64)
    part_rows = np.fromiter((p.rows for p in parts), dtype=np.int64, count=len(parts))
    total = int(part_rows.sum())
    one_row_each = len(counts) == total  # the common case: nothing to repeat
    ids = [i for p in parts for i in p.request_ids]
    routes = [r for p in parts for r in p.routes]

    def per_request(values: Any) -> Any:
        return values if one_row_each else np.repeat(values, counts)

    def per_part(values: list[Any], type_: Any) -> Any:
        arr = pa.array(values, type=type_)
        if pa.types.is_string(type_):
            return _dictionary(arr, part_rows)
        if len(parts) == 1:
            return pa.repeat(arr[0], total)
        return arr.take(pa.array(np.repeat(np.arange(len(parts)), part_rows)))

    def strings(values: list[str], *, unique: bool) -> Any:
        arr = pa.array(values, type=pa.string())
        if one_row_each and unique:
            return arr
        return _dictionary(arr, None if one_row_each else counts)

    stamps = per_request(_gather([p.timestamps_us for p in parts], np.int64))
    row = np.zeros(total, dtype=np.int64)
    if not one_row_each:
        row = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    columns: dict[str, Any] = {
        "request_id": strings(ids, unique=True),
        "row": pa.array(row),
        "model_name": per_part([p.model_name for p in parts], pa.string()),
        "model_version": per_part([p.model_version for p in parts], pa.int64()),
        "timestamp": pa.array(stamps.view("datetime64[us]"), type=pa.timestamp("us", tz="UTC")),
        "latency_ms": pa.array(per_request(_gather([p.latencies_ms for p in parts], np.float64))),
        "route": strings(routes, unique=False),
        "policy": per_part([p.policy for p in parts], pa.string()),
        "features_from": per_part([p.features_from for p in parts], pa.string()),
    }
    pause()
    for tag, sides in (("input", ins), ("output", outs)):
        for name in sides[0]:
            out = name if name not in columns else f"{tag}.{name}"
            columns[out] = _join([c[name] for c in sides], part_rows, strict=strict)
            pause()
    table = pa.table(columns)
    return table.cast(_schema(table))


def _schema(table: Any, *, nullable: bool | None = None) -> Any:
    """The table's schema with each field nullable only if its column holds a null (or
    all ``nullable``): a required column is written without definition levels, which
    pyarrow would otherwise compute and encode for every value."""
    import pyarrow as pa

    return pa.schema(
        [
            f.with_nullable(table.column(i).null_count > 0 if nullable is None else nullable)
            for i, f in enumerate(table.schema)
        ]
    )


def _tables(members: list[Part], invalid: list[str], pause: Pause) -> list[Any]:
    """Tables of parts with the same column names: one, vectorised, in the common case.

    A group that cannot be joined as it is takes the slow path: stacked records are split
    again, each part is checked (malformed ones are described in ``invalid`` and left out)
    and parts are split by column dtypes, one table each.
    """
    try:
        ins, outs = [p.inputs for p in members], [p.outputs for p in members]
        return [_table(members, ins, outs, strict=True, pause=pause)]
    except Uneven:
        pass
    kinds: dict[tuple[Any, ...], list[tuple[Part, Columns, Columns]]] = {}
    split = [q for p in members for q in ([record_part(r) for r in p.records] or [p])]
    for part in split:
        cols = normalise(part)
        if isinstance(cols, str):
            invalid.append(cols)
            continue
        kind = tuple((side, k, v.dtype.str) for side, c in enumerate(cols) for k, v in c.items())
        kinds.setdefault(kind, []).append((part, *cols))
    return [
        _table(
            [g[0] for g in group],
            [g[1] for g in group],
            [g[2] for g in group],
            strict=False,
            pause=pause,
        )
        for group in kinds.values()
    ]


def _parquet(table: Any, compression: str) -> memoryview:
    """Parquet bytes of a table built by :func:`_table`.

    Only text columns get a dictionary (floats and unique ids would not repeat, and hashing
    them is most of the encoding time); the request ids of multi-row requests and the meta
    text columns arrive as dictionary arrays, written as they are, without hashing each row.
    Only the meta columns get min/max statistics (what readers select rows by: time,
    version, route; computing them for every feature and output column is a sixth of the
    encoding time). Values are encoded in batches of 64k rather than pyarrow's 1,024 (the
    per-batch work is per column and batch). The Arrow schema is not stored: readers get
    plain strings, not dictionaries, whichever way a file's ids were written.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    text = [
        f.name
        for f in table.schema
        if pa.types.is_dictionary(f.type) or (pa.types.is_string(f.type) and f.name != "request_id")
    ]
    meta = [name for name in META_COLUMNS if name != "request_id"]
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression=compression,
        use_dictionary=text,
        write_statistics=meta,
        write_batch_size=65536,
        store_schema=False,
    )
    # a view of Arrow's buffer: copying tens of MB into ``bytes`` would hold the GIL meanwhile
    return memoryview(sink.getvalue())


def encode_tables(
    records: Sequence[PredictionRecord | PredictionBatch],
    prefix: str,
    *,
    compression: str = "lz4",
    pause: Pause = _no_pause,
) -> tuple[list[Encoded], list[str]]:
    """Group records and batches by model and hour and encode each group as one Parquet file.

    Records with different columns (versions) are unified by name in one file; when their
    types cannot be unified (text and numbers under one name) each kind gets its own file.

    Args:
        records: What to encode, in order.
        prefix: Key prefix of the log.
        compression: The Parquet codec, one of :data:`CODECS`.
        pause: Called between columns and files (the flusher yields the GIL there).

    Returns:
        The files to write, and a description of each malformed record left out.
    """
    import pyarrow as pa

    from bascule.store.predictions import PredictionRecord

    invalid: list[str] = []
    stacks: dict[tuple[Any, ...], list[tuple[PredictionRecord, int, int]]] = {}
    parts: list[Part] = []
    for item in records:
        if isinstance(item, PredictionRecord):
            n = item.rows
            if n:
                us = micros(item.timestamp)
                key = (
                    item.model_name,
                    us // US_PER_HOUR,
                    tuple(item.inputs),
                    tuple(item.outputs),
                    item.model_version,
                    item.policy,
                    item.features_from,
                )
                stacks.setdefault(key, []).append((item, us, n))
            continue
        found = batch_parts(item)
        if isinstance(found, str):
            invalid.append(found)
        else:
            parts.extend(found)
    parts.extend(stack(key[1], members) for key, members in stacks.items())
    groups: dict[tuple[str, int, tuple[str, ...], tuple[str, ...]], list[Part]] = {}
    for p in parts:
        groups.setdefault((p.model_name, p.hour, tuple(p.inputs), tuple(p.outputs)), []).append(p)
    by_file: dict[tuple[str, int], list[Any]] = {}
    for (model, hour, _, _), members in groups.items():
        by_file.setdefault((model, hour), []).extend(_tables(members, invalid, pause))
    files: list[Encoded] = []
    for (model, hour), tables in by_file.items():
        start = EPOCH + timedelta(hours=hour)
        folder = f"{model_prefix(prefix, model)}date={start:%Y-%m-%d}/hour={start:%H}/"
        if len(tables) > 1:
            # incompatible types under one name: one file each, readers unify them
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError):
                loose = [t.cast(_schema(t, nullable=True)) for t in tables]
                joined = pa.concat_tables(loose, promote_options="permissive")
                tables = [joined.cast(_schema(joined))]
        for table in tables:
            if table.num_rows:
                name = f"{folder}part-{uuid.uuid4().hex}.parquet"
                files.append((name, _parquet(table, compression), table.num_rows))
                pause()
    return files, invalid
