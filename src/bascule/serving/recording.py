"""Record answered requests in the prediction log, many requests per log record.

The data plane gives each request a :data:`LogNote` (request id, arrival, route, policy)
that travels with its feeds through the version's adaptive batcher. Right after a batch ran,
the batcher's thread hands its answered requests to :meth:`PredictionRecorder.record`,
which only appends tuples; every ``max_pending`` answers (in that thread), or every
``max_delay_s`` (the data plane's timer), :meth:`PredictionRecorder.flush` hands the answers
of each model version to the log as one :class:`~bascule.store.predictions.PredictionBatch`.
Its feature and output columns are built later, by the log's flusher thread, when it reads
them. Under load the event loop does no logging work beyond building each request's note.

A logged latency runs from the request's arrival to the end of its batch's run.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

import numpy as np

from bascule.core.clock import Clock
from bascule.serving.feeds import Feeds
from bascule.serving.runtime import Outputs, ServedModel
from bascule.store.predictions import PredictionBatch, PredictionRecord

__all__ = ["LogNote", "PredictionRecorder", "PredictionSink"]

log = logging.getLogger("bascule.serving")

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)

# request id, feeds, outputs, started and answered (monotonic seconds), route
_Answer = tuple[str, Feeds, Outputs, float, float, str]

LogNote = tuple[str, float, str, str, str]
"""How the log records a request's answer: request id, arrival (the clock's monotonic
seconds), route (``champion``, ``challenger``, ``shadow``), the model's traffic policy
(``""``, ``canary``, ``shadow``) and the feature service its inputs were looked up in
(``""``: the request sent them). A plain tuple: the event loop builds one per request."""


class PredictionSink(Protocol):
    """Where answered requests are recorded (``bascule.store.predictions.PredictionLog``)."""

    @property
    def written_rows(self) -> int:
        """Rows written so far."""
        ...

    @property
    def dropped_rows(self) -> int:
        """Rows dropped because the buffer was full."""
        ...

    @property
    def buffered_rows(self) -> int:
        """Rows waiting to be written."""
        ...

    def append(self, record: PredictionRecord | PredictionBatch) -> bool:
        """Record one answer or one batch without blocking; False when it had to be dropped."""
        ...

    def start(self) -> None:
        """Start writing in the background."""
        ...

    def flush(self) -> int:
        """Write every row buffered now (blocking); the rows written."""
        ...

    def close(self) -> None:
        """Write everything buffered and stop (blocking)."""
        ...


class _Deferred(Mapping[str, np.ndarray]):
    """Columns computed from several requests' arrays on first access (by the log's flusher
    thread, off the event loop: joining them is its work, not the request path's)."""

    __slots__ = ("_columns", "_make", "_source")

    def __init__(
        self,
        make: Callable[[Sequence[dict[str, np.ndarray]]], dict[str, np.ndarray]],
        source: Sequence[dict[str, np.ndarray]],
    ) -> None:
        self._make = make
        self._source = source
        self._columns: dict[str, np.ndarray] | None = None

    def _get(self) -> dict[str, np.ndarray]:
        if self._columns is None:
            self._columns = self._make(self._source)
            self._source = ()
        return self._columns

    def __getitem__(self, key: str) -> np.ndarray:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


class PredictionRecorder:
    """Collects answered requests from the batchers' threads and hands them to the log as one
    record per model version and policy, ``max_pending`` answers at a time.

    :meth:`record` is called by a version's batcher thread right after a batch ran (never by
    the event loop); the thread that brings the pending answers to ``max_pending`` builds
    the records. :meth:`flush` hands over the rest: the data plane calls it every
    ``max_delay_s`` from the event loop (so a quiet server logs within that delay) and at
    shutdown. Thread-safe.

    Args:
        sink: The prediction log.
        clock: Answer times (monotonic, for latencies) and the wall clock of timestamps.
        max_pending: Answers held at most before they are handed to the log.
        max_delay_s: How often the data plane flushes (the longest an answer waits).
    """

    def __init__(
        self,
        sink: PredictionSink,
        *,
        clock: Clock,
        max_pending: int = 128,
        max_delay_s: float = 0.05,
    ) -> None:
        self._sink = sink
        self._clock = clock
        self._monotonic = clock.monotonic
        self._max_pending = max_pending
        self.max_delay_s = max_delay_s
        self._lock = threading.Lock()
        self._pending: dict[tuple[ServedModel, str, str], list[_Answer]] = {}
        self._count = 0

    def record(
        self,
        model: ServedModel,
        notes: Sequence[LogNote | None],
        feeds: Sequence[Feeds],
        results: Sequence[Outputs | BaseException],
    ) -> None:
        """Note the answered requests of one executed batch (right after it ran).

        Requests without a note, or whose result is an error, are left out. Never raises.

        Args:
            model: The version that ran the batch.
            notes: Per request, its note (None: not logged).
            feeds: Per request, the feeds it ran on.
            results: Per request, its outputs or the error it got.
        """
        answered = self._monotonic()
        with self._lock:
            pending = self._pending
            added = 0
            for note, feed, result in zip(notes, feeds, results, strict=True):
                if note is None or isinstance(result, BaseException):
                    continue
                request_id, started, route, policy, features_from = note
                answer = (request_id, feed, result, started, answered, route)
                key = (model, policy, features_from)
                group = pending.get(key)
                if group is None:
                    pending[key] = [answer]
                else:
                    group.append(answer)
                added += 1
            self._count += added
            full = self._count >= self._max_pending
        if full:
            self.flush()

    async def flush_every_delay(self) -> None:
        """Hand over what a quiet server holds every ``max_delay_s`` (an event-loop task;
        under load the batchers' threads hand answers over every ``max_pending``)."""
        while True:
            await asyncio.sleep(self.max_delay_s)
            self.flush()

    def flush(self) -> int:
        """Append what was recorded so far: one batch per model version and policy.

        Never raises (a batch that cannot be built is logged and left out).

        Returns:
            The requests handed to the log.
        """
        with self._lock:
            pending, self._pending = self._pending, {}
            self._count = 0
        if not pending:
            return 0
        wall_us = (self._clock.now_utc() - _EPOCH) // _ONE_US
        now = self._clock.monotonic()
        handed = 0
        for (model, policy, features_from), answers in pending.items():
            try:
                batch = _batch(model, policy, answers, wall_us, now, features_from)
            except Exception:  # a log record must never break serving
                log.exception("prediction log: cannot record %d answers", len(answers))
                continue
            self._sink.append(batch)
            handed += len(answers)
        return handed


def _batch(
    model: ServedModel,
    policy: str,
    answers: list[_Answer],
    wall_us: int,
    now: float,
    features_from: str = "",
) -> PredictionBatch:
    ids, feeds, results, started, answered, routes = zip(*answers, strict=True)
    answered_s = np.array(answered)
    first = next(iter(feeds[0]))  # feeds are never empty
    rows = np.fromiter((f[first].shape[0] for f in feeds), dtype=np.int64, count=len(feeds))
    return PredictionBatch(
        model_name=model.name,
        model_version=model.version,
        request_ids=ids,
        request_rows=rows,
        timestamps_us=wall_us - np.round((now - answered_s) * 1e6).astype(np.int64),
        latencies_ms=(answered_s - np.array(started)) * 1000.0,
        routes=routes,
        inputs=_Deferred(model.columns, feeds),
        outputs=_Deferred(model.log_outputs, results),
        policy=policy,
        features_from=features_from,
    )
