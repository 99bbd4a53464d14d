"""Active runs of the SDK: metrics buffered in memory and written in batches.

A run's buffer is written when it holds ``max_buffered_metrics`` values, every
``flush_interval_s`` by a background thread, when the run ends (normally or by an
exception), and at interpreter shutdown, so nothing logged is lost.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from bascule.core.errors import BasculeError
from bascule.core.records import DatasetInput, Metric, Run, RunArtifact
from bascule.tracking.validation import check_key, check_metric_value, check_step

__all__ = ["ActiveRun", "TrackingBackend", "active_run"]

log = logging.getLogger("bascule.sdk")

# A buffer this many times max_buffered_metrics is written by the caller itself.
_HARD_CAP_FACTOR = 10


class TrackingBackend(Protocol):
    """Where an SDK run writes: the TrackingService in-process, or a bascule server over HTTP."""

    def start_run(
        self,
        *,
        experiment: str | None,
        name: str | None,
        tags: dict[str, str],
        parent_run_id: str | None,
    ) -> Run: ...

    def log_batch(
        self, run_id: str, *, metrics: list[Metric], params: dict[str, Any], tags: dict[str, Any]
    ) -> None: ...

    def end_run(self, run_id: str, *, status: str) -> None: ...

    def log_artifact(
        self, run_id: str, path: Path, *, artifact_path: str | None
    ) -> RunArtifact: ...

    def log_dataset(self, run_id: str, dataset: DatasetInput) -> None: ...

    def get_run(self, run_id: str) -> Run: ...


_local = threading.local()


def _stack() -> list[ActiveRun]:
    stack: list[ActiveRun] | None = getattr(_local, "stack", None)
    if stack is None:
        stack = []
        _local.stack = stack
    return stack


def active_run() -> ActiveRun | None:
    """The innermost run started in this thread and not yet ended."""
    stack = _stack()
    return stack[-1] if stack else None


class ActiveRun:
    """A run in progress. Use as a context manager: ``with bascule.start_run(...) as run:``."""

    def __init__(
        self, backend: TrackingBackend, run: Run, *, max_buffered: int, flush_interval_s: float
    ) -> None:
        self._backend = backend
        self.id = run.id
        self.name = run.name
        self.experiment_id = run.experiment_id
        self._buffer: list[Metric] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._max = max_buffered
        self._interval = flush_interval_s
        self._last_flush = time.monotonic()
        self._ended = False
        self.last_dataset: DatasetInput | None = None
        _stack().append(self)
        _FLUSHER.track(self)

    # -- logging --------------------------------------------------------------------------------

    def log_metric(self, key: str, value: float, *, step: int = 0) -> None:
        """Buffer one metric value. Raises: InvalidInputError (bad key or value)."""
        self.log_metrics({key: value}, step=step)

    def log_metrics(self, metrics: dict[str, Any], *, step: int = 0) -> None:
        """Buffer metric values at ``step`` (validated now, written in batches).

        Raises:
            InvalidInputError: a key is invalid or a value is not a real number.
        """
        ts = int(time.time() * 1000)
        checked = [
            Metric(check_key(k, what="metric"), check_metric_value(k, v), check_step(k, step), ts)
            for k, v in metrics.items()
        ]
        with self._lock:
            self._buffer.extend(checked)
            size = len(self._buffer)
        if size >= _HARD_CAP_FACTOR * self._max:
            self.flush()  # the writer cannot keep up: apply back-pressure to the training loop
        elif size >= self._max:
            _FLUSHER.kick()  # written by the flusher thread; the training loop does not wait

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: dict[str, Any]) -> None:
        """Write params now (so a conflicting value fails at the call).

        Raises:
            InvalidInputError, ConflictError.
        """
        self._backend.log_batch(self.id, metrics=[], params=params, tags={})

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: dict[str, Any]) -> None:
        """Raises: InvalidInputError."""
        self._backend.log_batch(self.id, metrics=[], params={}, tags=tags)

    def log_artifact(self, path: str | Path, *, artifact_path: str | None = None) -> RunArtifact:
        """Store a file with the run (content-addressed). Raises: InvalidInputError."""
        return self._backend.log_artifact(self.id, Path(path), artifact_path=artifact_path)

    def log_dataset(
        self, data: Any, *, name: str, source: str = "", context: str = "training"
    ) -> DatasetInput:
        """Record a data set the run used: content fingerprint, schema, row count.

        Raises:
            InvalidInputError: ``data`` is not a DataFrame or 2-D array.
        """
        from bascule.tracking.datasets import fingerprint

        ds = fingerprint(data, name=name, source=source, context=context)
        self._backend.log_dataset(self.id, ds)
        self.last_dataset = ds
        return ds

    # -- lifecycle ------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write buffered metrics now. On failure they stay buffered and the error is raised."""
        with self._flush_lock:
            with self._lock:
                batch, self._buffer = self._buffer, []
                self._last_flush = time.monotonic()
            if not batch:
                return
            try:
                self._backend.log_batch(self.id, metrics=batch, params={}, tags={})
            except BaseException:
                with self._lock:
                    self._buffer[:0] = batch
                raise

    def due(self) -> bool:
        """Whether the buffer is full or has waited ``flush_interval_s``."""
        with self._lock:
            if not self._buffer:
                return False
            full = len(self._buffer) >= self._max
            return full or time.monotonic() - self._last_flush >= self._interval

    def end(self, status: str = "FINISHED") -> None:
        """Flush and mark the run ended (idempotent)."""
        if self._ended:
            return
        try:
            self.flush()
        finally:
            self._ended = True
            stack = _stack()
            if self in stack:
                stack.remove(self)
            _FLUSHER.untrack(self)
            self._backend.end_run(self.id, status=status)

    @property
    def info(self) -> Run:
        """The run as stored now (buffered metrics are flushed first)."""
        self.flush()
        return self._backend.get_run(self.id)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.end("FINISHED")
        else:
            self.end("KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED")


class _Flusher:
    """One daemon thread per process that writes buffers that are due, and everything at exit."""

    def __init__(self) -> None:
        self._runs: weakref.WeakSet[ActiveRun] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._kick = threading.Event()
        self._registered = False

    def track(self, run: ActiveRun) -> None:
        with self._lock:
            self._runs.add(run)
            if not self._registered:
                atexit.register(self.shutdown)
                self._registered = True
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="bascule-flusher", daemon=True
                )
                self._thread.start()

    def untrack(self, run: ActiveRun) -> None:
        with self._lock:
            self._runs.discard(run)

    def _snapshot(self) -> list[ActiveRun]:
        with self._lock:
            return list(self._runs)

    def kick(self) -> None:
        """Ask the thread to look at the buffers now (one is full)."""
        self._kick.set()

    def _loop(self) -> None:
        while not self._wake.is_set():
            self._kick.wait(0.25)
            self._kick.clear()
            for run in self._snapshot():
                if run.due():
                    with contextlib.suppress(BasculeError):
                        run.flush()

    def shutdown(self) -> None:
        """At interpreter exit: write every buffer and finish runs still open."""
        self._wake.set()
        for run in self._snapshot():
            try:
                run.end("FINISHED")
            except BasculeError as exc:  # the process is exiting: report, never hide
                log.error("bascule: could not write run %s at exit: %s", run.id, exc)


_FLUSHER = _Flusher()


def iter_active() -> Iterator[ActiveRun]:
    yield from _stack()
