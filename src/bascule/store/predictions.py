"""The prediction log: every answered request, as Parquet files partitioned by model and hour.

The request path only calls :meth:`PredictionLog.append`, which puts a record in a bounded
deque under a lock (no copy, no serialisation) or drops it, counted, when the buffer is full.
A record is one request (:class:`PredictionRecord`) or many requests answered by one model
version (:class:`PredictionBatch`: per-request fields as arrays, columns already joined),
which is what the inference server logs: one append for the answers of many requests.

A daemon thread (:meth:`PredictionLog.start`) writes the buffer by size and by time, in
chunks of about ``flush_rows`` rows. Encoding is column-wise (one ``np.concatenate`` per
column, no per-row Python) and the thread yields the GIL between columns and chunks, so the
request path sharing the interpreter never waits on it for long; Parquet encoding and
compression run in Arrow with the GIL released.

Each flushed record becomes one row per input row::

    request_id, row, model_name, model_version, timestamp (timestamp[us, tz=UTC]),
    latency_ms, route, policy, features_from, <input columns…>, <output columns…>

An input column whose name is a meta column is stored as ``input.<name>``, and an output
column whose name is taken as ``output.<name>``. Rows are grouped by model and hour and
written, one Parquet file per group and flush, under::

    {prefix}/model={name}/date={YYYY-MM-DD}/hour={HH}/part-{uuid}.parquet

(the model name is percent-encoded). Columns may change between versions: readers unify
them by name. :func:`read_predictions` reads a time window back with DuckDB.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from bascule.core.clock import Clock
from bascule.core.errors import InvalidInputError, NotReadyError
from bascule.store._prediction_parquet import CODECS, META_COLUMNS, encode_tables, model_prefix
from bascule.store._prediction_query import (
    check_window,
    empty_frame,
    partition_keys,
    query_tables,
)
from bascule.store.artifacts.base import ArtifactStore, check_key

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "META_COLUMNS",
    "PredictionBatch",
    "PredictionLog",
    "PredictionLogStats",
    "PredictionRecord",
    "read_predictions",
]

log = logging.getLogger("bascule.store.predictions")


@dataclass(frozen=True, eq=False)
class PredictionRecord:
    """One answered request: its inputs and outputs, one value per row in every column.

    Attributes:
        request_id: The id returned to the client (``x-request-id``), to join feedback.
        model_name: The served model.
        model_version: The version that answered.
        timestamp: When it was answered (timezone-aware UTC; a naive value is taken as UTC).
        inputs: Column name → 1-D array (numeric, string or object), one value per row.
        outputs: Column name → 1-D array (``prediction``, ``proba_<class>``…).
        latency_ms: Time spent answering, in milliseconds.
        route: ``"champion"``, ``"challenger"``, ``"shadow"`` or ``""``.
        policy: ``""``, ``"canary"`` or ``"shadow"``.
        features_from: Where the inputs came from (a feature view), if not the request.
    """

    request_id: str
    model_name: str
    model_version: int
    timestamp: datetime
    inputs: dict[str, np.ndarray] = field(repr=False)
    outputs: dict[str, np.ndarray] = field(repr=False)
    latency_ms: float
    route: str = ""
    policy: str = ""
    features_from: str = ""

    @property
    def rows(self) -> int:
        """Rows in the record (the length of its first column; O(1))."""
        for column in self.inputs.values():
            return len(column)
        for column in self.outputs.values():
            return len(column)
        return 0


@dataclass(frozen=True, eq=False)
class PredictionBatch:
    """Requests answered by one model version, logged as one record (the server's way).

    Per-request fields hold one entry per request, in order; ``inputs`` and ``outputs`` hold
    the rows of every request, request after request (``request_rows`` says how many each).
    Logging a batch costs one append however many requests it holds, and its columns are
    joined as they are.

    Attributes:
        model_name: The served model.
        model_version: The version that answered.
        request_ids: Per request: the id returned to the client (``x-request-id``).
        request_rows: Per request: its rows (integers >= 0 adding up to the column length).
        timestamps_us: Per request: when it was answered, in microseconds since the Unix
            epoch (UTC).
        latencies_ms: Per request: time spent answering, in milliseconds.
        routes: Per request: ``"champion"``, ``"challenger"``, ``"shadow"`` or ``""``.
        inputs: Column name → 1-D array of every row (a mapping read only when flushed).
        outputs: Column name → 1-D array of every row (``label``, ``proba_<class>``…).
        policy: ``""``, ``"canary"`` or ``"shadow"``.
        features_from: Where the inputs came from (a feature view), if not the requests.
    """

    model_name: str
    model_version: int
    request_ids: Sequence[str]
    request_rows: np.ndarray | Sequence[int] = field(repr=False)
    timestamps_us: np.ndarray | Sequence[int] = field(repr=False)
    latencies_ms: np.ndarray | Sequence[float] = field(repr=False)
    routes: Sequence[str] = field(repr=False)
    inputs: Mapping[str, np.ndarray] = field(repr=False)
    outputs: Mapping[str, np.ndarray] = field(repr=False)
    policy: str = ""
    features_from: str = ""

    @property
    def rows(self) -> int:
        """Rows in the batch (the sum of ``request_rows``)."""
        counts = self.request_rows
        if isinstance(counts, np.ndarray):
            return int(counts.sum(dtype=np.int64))
        return int(sum(counts))


@dataclass(frozen=True)
class PredictionLogStats:
    """A snapshot of a :class:`PredictionLog`'s counters (rows unless said otherwise)."""

    buffered_rows: int
    written_rows: int
    dropped_rows: int
    files_written: int
    flush_errors: int


class PredictionLog:
    """Buffers prediction records in memory and writes them as Parquet partitions.

    Args:
        store: Where the Parquet files go (``store.write`` is atomic).
        max_buffer_rows: Rows held at most, counting a flush in progress; beyond that
            :meth:`append` drops the record.
        flush_rows: The flusher writes as soon as this many rows are buffered, in chunks of
            about this many rows (one file per model and hour and chunk).
        flush_interval_s: Buffered rows are written at least this often.
        compression: The files' Parquet codec (``lz4``, ``zstd``, ``snappy`` or ``none``).
        clock: Source of time for the time-based flush.
        prefix: Key prefix of the log in the store.

    Raises:
        InvalidInputError: a size or interval is not positive, or ``prefix`` is not a valid key.
    """

    def __init__(
        self,
        store: ArtifactStore,
        *,
        max_buffer_rows: int = 600_000,
        flush_rows: int = 200_000,
        flush_interval_s: float = 5.0,
        compression: str = "lz4",
        clock: Clock,
        prefix: str = "predictions",
    ) -> None:
        for name, value in (("max_buffer_rows", max_buffer_rows), ("flush_rows", flush_rows)):
            if value < 1:
                raise InvalidInputError.for_field(name, value, "an integer >= 1")
        if not flush_interval_s > 0:
            raise InvalidInputError.for_field("flush_interval_s", flush_interval_s, "seconds > 0")
        if compression not in CODECS:
            raise InvalidInputError.for_field("compression", compression, " or ".join(CODECS))
        self._compression = compression
        self._store = store
        self._max_rows = max_buffer_rows
        self._flush_rows = flush_rows
        self._interval_s = flush_interval_s
        self._clock = clock
        self._prefix = check_key(prefix.rstrip("/"))
        self._lock = threading.Lock()  # the buffer and the counters
        self._flush_lock = threading.Lock()  # one flush at a time
        self._buffer: deque[PredictionRecord | PredictionBatch] = deque()
        self._buffered = 0  # rows in the buffer
        self._flushing = 0  # rows taken by a flush and not yet written or dropped
        self._written = self._dropped = self._files = self._errors = 0
        self._last_flush = clock.monotonic()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"PredictionLog({self._store!r}, prefix={self._prefix!r})"

    # -- the request path ------------------------------------------------------------------------

    def append(self, record: PredictionRecord | PredictionBatch) -> bool:
        """Buffer a record (one request) or a batch (many) without blocking or copying.

        Never raises for a full buffer; a malformed record is found and counted when flushed.

        Returns:
            True when buffered; False when dropped (buffer full or log closed), counted in
            ``dropped_rows``.
        """
        n = record.rows
        with self._lock:
            before = self._buffered
            if self._closed or before + self._flushing + n > self._max_rows:
                self._dropped += n
                return False
            self._buffer.append(record)
            self._buffered = before + n
        if before < self._flush_rows <= before + n:
            self._wake.set()
        return True

    # -- counters --------------------------------------------------------------------------------

    @property
    def buffered_rows(self) -> int:
        """Rows in memory, waiting or being written."""
        with self._lock:
            return self._buffered + self._flushing

    @property
    def written_rows(self) -> int:
        """Rows written to the store."""
        return self._written

    @property
    def dropped_rows(self) -> int:
        """Rows dropped: buffer full, log closed, malformed record or failed write."""
        return self._dropped

    @property
    def files_written(self) -> int:
        """Parquet files written."""
        return self._files

    @property
    def flush_errors(self) -> int:
        """Groups of rows that could not be encoded or written (after one retry)."""
        return self._errors

    def stats(self) -> PredictionLogStats:
        """All counters at once, consistent with each other."""
        with self._lock:
            return PredictionLogStats(
                buffered_rows=self._buffered + self._flushing,
                written_rows=self._written,
                dropped_rows=self._dropped,
                files_written=self._files,
                flush_errors=self._errors,
            )

    # -- flushing --------------------------------------------------------------------------------

    def flush_due(self) -> bool:
        """Whether a flush is due: ``flush_rows`` buffered, or any row and the interval passed."""
        with self._lock:
            rows = self._buffered
        if rows == 0:
            return False
        if rows >= self._flush_rows:
            return True
        return self._clock.monotonic() - self._last_flush >= self._interval_s

    def flush(self) -> int:
        """Write every row buffered now, in chunks of about ``flush_rows`` rows.

        Never raises for a failed write: the group is retried once, then dropped and counted in
        ``flush_errors`` and ``dropped_rows``.

        Returns:
            The rows written.
        """
        written = 0
        with self._flush_lock:
            with self._lock:
                left = self._buffered
            while left > 0:
                chunk, rows = self._take(self._flush_rows)
                if not chunk:
                    break
                left -= rows
                written += self._write_chunk(chunk, rows)
                _pause()
            self._last_flush = self._clock.monotonic()
        return written

    def _take(self, limit: int) -> tuple[list[PredictionRecord | PredictionBatch], int]:
        chunk: list[PredictionRecord | PredictionBatch] = []
        rows = 0
        with self._lock:
            while self._buffer and rows < limit:
                record = self._buffer.popleft()
                chunk.append(record)
                rows += record.rows
            self._buffered -= rows
            self._flushing += rows
        return chunk, rows

    def _write_chunk(self, chunk: list[PredictionRecord | PredictionBatch], rows: int) -> int:
        written = files = errors = 0
        try:
            encoded, invalid = encode_tables(
                chunk, self._prefix, compression=self._compression, pause=_pause
            )
        except Exception:
            log.exception("prediction log: cannot encode %d rows; they are dropped", rows)
            encoded, invalid, errors = [], [], 1
        if invalid:
            log.warning("prediction log: dropped %d malformed records: %s", *_sample(invalid))
        for key, data, n in encoded:
            if self._write(key, data):
                written += n
                files += 1
            else:
                errors += 1
        with self._lock:
            self._flushing -= rows
            self._written += written
            self._files += files
            self._errors += errors
            self._dropped += rows - written
        return written

    def _write(self, key: str, data: memoryview) -> bool:
        for attempt in (1, 2):
            try:
                self._store.write(key, data)
            except Exception as exc:  # noqa: BLE001 - a failed write must never reach requests
                if attempt == 2:
                    log.error("prediction log: dropping %s after a retry: %s", key, exc)
                    return False
                log.warning("prediction log: writing %s failed (%s); retrying once", key, exc)
            else:
                return True
        return False

    # -- the flusher thread ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the flusher thread (idempotent).

        Raises:
            NotReadyError: the log is closed.
        """
        with self._lock:
            if self._closed:
                raise NotReadyError("the prediction log is closed", prefix=self._prefix)
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name="bascule-prediction-log", daemon=True
            )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            elapsed = self._clock.monotonic() - self._last_flush
            self._wake.wait(timeout=min(max(self._interval_s - elapsed, 0.01), self._interval_s))
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                if self.flush_due():
                    self.flush()
            except Exception:
                log.exception("prediction log: flush failed; the flusher keeps running")

    def close(self) -> None:
        """Stop the flusher and write everything buffered, synchronously (idempotent).

        Later :meth:`append` calls return False (counted as dropped).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()


def _pause() -> None:
    """Let the threads waiting for the GIL (the event loop) run now, not at the next switch
    interval (5 ms): the flusher calls it between columns and chunks."""
    time.sleep(0)


def _sample(invalid: list[str]) -> tuple[int, str]:
    return len(invalid), "; ".join(invalid[:3])


def read_predictions(
    store: ArtifactStore,
    model: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    prefix: str = "predictions",
) -> pd.DataFrame:
    """The logged rows of ``model`` with ``start <= timestamp < end``, ordered by time.

    Files are chosen by their ``date=/hour=`` partition before anything is read. A
    :class:`~bascule.store.artifacts.local.LocalArtifactStore` is scanned in place by
    DuckDB; other stores' files are read with ``store.read`` and queried as Arrow tables.
    Columns of different versions are unified by name (missing values are null).

    Args:
        store: The store the log writes to.
        model: The model name (an unknown model gives an empty frame).
        start: Inclusive lower bound (timezone-aware); None for no bound.
        end: Exclusive upper bound (timezone-aware); None for no bound.
        prefix: Key prefix of the log in the store.

    Returns:
        One row per logged input row; with no rows, an empty frame with the meta columns.

    Raises:
        InvalidInputError: ``start`` is after ``end``, or a bound is naive.
        StorageError: the store or the Parquet files cannot be read.
    """
    check_window(start, end)
    folder = model_prefix(check_key(prefix.rstrip("/")), model)
    keys = partition_keys(store, folder, start, end)
    if not keys:
        return empty_frame()
    return query_tables(store, keys, start, end)
