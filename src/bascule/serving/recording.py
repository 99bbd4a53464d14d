"""Record answered requests in the prediction log, many requests per log record.

Each answered request is handed to :meth:`PredictionRecorder.record`, which only appends a
tuple (O(1), no array work). Every ``max_pending`` answers, or ``max_delay_s`` after the
first one, :meth:`PredictionRecorder.flush` hands the answers of each model version to the
log as one :class:`~bascule.store.predictions.PredictionBatch` (per-request fields as small
arrays; under load, the answers of several executed batches at once). Its feature and output
columns are built later, by the log's flusher thread, when it reads them: the request path
never joins or transposes the requests' arrays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

import numpy as np

from bascule.core.clock import Clock
from bascule.serving.feeds import Feeds
from bascule.serving.runtime import Outputs, ServedModel
from bascule.store.predictions import PredictionBatch, PredictionRecord

__all__ = ["PredictionRecorder", "PredictionSink"]

log = logging.getLogger("bascule.serving")

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)

# request id, feeds, outputs, started and answered (monotonic seconds), route
_Answer = tuple[str, Feeds, Outputs, float, float, str]


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
    """Turns the answers of each executed batch into one prediction-log record.

    Answers wait at most ``max_delay_s`` (event-loop time) or until ``max_pending`` are
    held; :meth:`flush` at shutdown hands over the rest.

    Args:
        sink: The prediction log.
        clock: Answer times (monotonic, for latencies) and the wall clock of timestamps.
        max_pending: Answers held at most before they are handed to the log.
        max_delay_s: Longest wait of an answer before it is handed to the log.
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
        self._max_delay_s = max_delay_s
        self._pending: dict[tuple[ServedModel, str, str], list[_Answer]] = {}
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None

    def record(
        self,
        model: ServedModel,
        request_id: str,
        feeds: Feeds,
        result: Outputs,
        started: float,
        route: str,
        policy: str,
        *,
        features_from: str = "",
    ) -> None:
        """Note one answer (O(1)); it reaches the log with the answers around it.

        Args:
            model: The version that answered.
            request_id: The request's id.
            feeds: The feeds it ran on.
            result: Its outputs.
            started: When it arrived (the clock's monotonic seconds).
            route: ``champion``, ``challenger`` or ``shadow``.
            policy: The model's traffic policy (``""``, ``canary`` or ``shadow``).
            features_from: The feature service the inputs were looked up in (``""``: the
                request sent them).
        """
        answer = (request_id, feeds, result, started, self._monotonic(), route)
        key = (model, policy, features_from)
        pending = self._pending.get(key)
        if pending is None:
            self._pending[key] = [answer]
        else:
            pending.append(answer)
        self._count += 1
        if self._count >= self._max_pending:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop to wait on: log it now
                self.flush()
                return
            self._timer = loop.call_later(self._max_delay_s, self.flush)

    def flush(self) -> int:
        """Append what was recorded so far: one batch per model version and policy.

        Never raises (a batch that cannot be built is logged and left out).

        Returns:
            The requests handed to the log.
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._count = 0
        pending, self._pending = self._pending, {}
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
