"""Parts of the prediction log: records and batches as requests of one model version and hour.

Private to :mod:`bascule.store._prediction_parquet`, which joins parts into Arrow tables.
Records sharing model, hour, version and columns are stacked into one part (their columns
joined when read); a batch is one part, or one per hour it spans.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

import numpy as np

if TYPE_CHECKING:
    from bascule.store.predictions import PredictionBatch, PredictionRecord

__all__ = [
    "EPOCH",
    "US_PER_HOUR",
    "Columns",
    "Part",
    "Stacked",
    "Uneven",
    "batch_parts",
    "micros",
    "normalise",
    "record_part",
    "stack",
]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)
US_PER_HOUR: Final = 3_600_000_000

Columns = Mapping[str, np.ndarray]


def micros(ts: datetime) -> int:
    """Microseconds since the Unix epoch (a naive datetime is taken as UTC)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return (ts - EPOCH) // _ONE_US


class Uneven(Exception):
    """A group's columns cannot be joined as they are (ragged, 2-D or mixed types)."""


@dataclass(slots=True, eq=False)
class Part:
    """Requests of one model version within one hour, per-request fields as arrays."""

    model_name: str
    model_version: int
    hour: int
    rows: int
    request_ids: Sequence[str]
    request_rows: Sequence[int] | np.ndarray  # one per request, like the next two
    timestamps_us: Sequence[int] | np.ndarray
    latencies_ms: Sequence[float] | np.ndarray
    routes: Sequence[str]
    policy: str
    features_from: str
    inputs: Columns
    outputs: Columns
    records: Sequence[PredictionRecord] = ()
    """The records stacked into this part (split again if they cannot be joined)."""

    @property
    def label(self) -> str:
        ids = self.request_ids  # a part has at least one request
        return f"request {ids[0]!r}" + (f" (and {len(ids) - 1} more)" if len(ids) > 1 else "")


class Stacked(Mapping[str, np.ndarray]):
    """The same-named columns of several records, joined when read.

    Raises:
        Uneven: (on reading) a record's column does not have its row count, or the
            columns cannot be joined.
    """

    __slots__ = ("_columns", "_rows")

    def __init__(self, columns: list[Columns], rows: list[int]) -> None:
        self._columns = columns
        self._rows = rows

    def __getitem__(self, key: str) -> np.ndarray:
        arrays = [c[key] for c in self._columns]
        if list(map(len, arrays)) != self._rows:
            raise Uneven(f"ragged column {key!r}")
        try:
            return np.concatenate(arrays)
        except (ValueError, TypeError) as exc:
            raise Uneven(str(exc)) from exc

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns[0])

    def __len__(self) -> int:
        return len(self._columns[0])


def stack(hour: int, members: list[tuple[PredictionRecord, int, int]]) -> Part:
    """One part from records sharing model, hour, version, policy, source and column names."""
    records = [m[0] for m in members]
    rows = [m[2] for m in members]
    first = records[0]
    return Part(
        first.model_name,
        first.model_version,
        hour=hour,
        rows=sum(rows),
        request_ids=[r.request_id for r in records],
        request_rows=rows,
        timestamps_us=[m[1] for m in members],
        latencies_ms=[r.latency_ms for r in records],
        routes=[r.route for r in records],
        policy=first.policy,
        features_from=first.features_from,
        inputs=Stacked([r.inputs for r in records], rows),
        outputs=Stacked([r.outputs for r in records], rows),
        records=records,
    )


def record_part(record: PredictionRecord) -> Part:
    n = record.rows
    us = micros(record.timestamp)
    return Part(
        record.model_name,
        record.model_version,
        hour=us // US_PER_HOUR,
        rows=n,
        request_ids=(record.request_id,),
        request_rows=(n,),
        timestamps_us=(us,),
        latencies_ms=(record.latency_ms,),
        routes=(record.route,),
        policy=record.policy,
        features_from=record.features_from,
        inputs=record.inputs,
        outputs=record.outputs,
    )


def batch_parts(batch: PredictionBatch) -> list[Part] | str:
    """The batch as parts, one per hour it spans (almost always one), or what is wrong."""
    ids, routes = batch.request_ids, batch.routes
    k = len(ids)
    wrong = (
        f"batch of {k} requests starting with {ids[0] if k else ''!r}: request_rows, "
        "timestamps_us, latencies_ms and routes need one entry per request (rows >= 0)"
    )
    try:
        counts = np.asarray(batch.request_rows, dtype=np.int64).reshape(-1)
        stamps = np.asarray(batch.timestamps_us, dtype=np.int64).reshape(-1)
        latencies = np.asarray(batch.latencies_ms, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return wrong
    if {len(routes), len(counts), len(stamps), len(latencies)} != {k} or (counts < 0).any():
        return wrong
    rows = int(counts.sum())
    if rows == 0:
        return []
    hours = stamps // US_PER_HOUR
    whole = Part(
        batch.model_name,
        batch.model_version,
        hour=int(hours[0]),
        rows=rows,
        request_ids=ids,
        request_rows=counts,
        timestamps_us=stamps,
        latencies_ms=latencies,
        routes=routes,
        policy=batch.policy,
        features_from=batch.features_from,
        inputs=batch.inputs,
        outputs=batch.outputs,
    )
    if (hours == whole.hour).all():
        return [whole]
    row_hours = np.repeat(hours, counts)
    parts = []
    for hour in np.unique(hours).tolist():
        sel, row_sel = hours == hour, row_hours == hour
        picked = np.flatnonzero(sel).tolist()
        try:
            ins = {name: np.asarray(v)[row_sel] for name, v in batch.inputs.items()}
            outs = {name: np.asarray(v)[row_sel] for name, v in batch.outputs.items()}
        except IndexError:
            return f"batch starting with {ids[0]!r}: a column does not have {rows} rows"
        parts.append(
            dataclasses.replace(
                whole,
                hour=hour,
                rows=int(counts[sel].sum()),
                request_ids=[ids[i] for i in picked],
                request_rows=counts[sel],
                timestamps_us=stamps[sel],
                latencies_ms=latencies[sel],
                routes=[routes[i] for i in picked],
                inputs=ins,
                outputs=outs,
            )
        )
    return parts


def normalise(part: Part) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | str:
    """The part's columns as 1-D arrays of its row count, or what is wrong with it."""
    n = part.rows
    out: list[dict[str, np.ndarray]] = [{}, {}]
    for side, columns in zip(out, (part.inputs, part.outputs), strict=True):
        for name, values in columns.items():
            arr = np.asarray(values)
            if arr.ndim == 2 and arr.shape[1] == 1:
                arr = arr.ravel()
            if arr.ndim != 1 or len(arr) != n:
                return f"{part.label}: column {name!r} has shape {list(arr.shape)}, expected [{n}]"
            side[name] = arr
    return out[0], out[1]
