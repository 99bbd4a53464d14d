"""Prometheus metrics of the inference server, on an injected ``CollectorRegistry``.

``InferenceMetrics`` implements :class:`bascule.serving.observer.ServingObserver` (batches,
model events, rejections, shadow outcomes) and records per-request counts and latencies
itself; queue depths, prediction-log counters, and the CPU seconds and failed requests of
each model version (``bascule_inference_cpu_seconds_total``,
``bascule_inference_failed_requests_total``, from the data plane's usage meter) come from the
data plane. Names follow the Prometheus conventions (``bascule_…_total`` counters,
``…_seconds`` durations) and pass ``promtool check metrics``.

**One process** (``bascule serve``, ``--workers 1``): plain in-memory metrics on the registry;
what comes from the data plane is read when scraped (a custom collector), as are the
``process_*`` metrics.

**Several workers** (``shared_dir``: prometheus_client's multiprocess mode, see
:mod:`bascule.http.inference.multiprocess`): every worker writes its metrics to mmap files in
``shared_dir`` and the worker answering ``GET /metrics`` merges every worker's files, so a
scrape sees the whole server whichever worker answers it. Per metric:

* pushed as they happen (request path, batcher threads): ``bascule_inference_requests_total``,
  ``bascule_inference_rejected_requests_total``, ``bascule_model_events_total`` (each worker
  loads its own models: a load per worker), ``bascule_shadow_requests_total`` and the
  histograms ``bascule_inference_request_duration_seconds``, ``bascule_inference_batch_size``,
  ``bascule_inference_batch_duration_seconds``: summed over every worker that ran since the
  server started (an exited worker's counts stay);
* copied from each worker's data plane every ``publish_interval_s`` (and by the answering
  worker just before it renders, so its own share is exact; others' lag by at most the
  interval): the counters ``bascule_inference_cpu_seconds_total``,
  ``bascule_inference_failed_requests_total``, ``bascule_prediction_log_rows_written_total``,
  ``bascule_prediction_log_rows_dropped_total`` and the feature-lookup counters and summary
  (summed, as above); the gauges ``bascule_inference_queue_depth``,
  ``bascule_shadow_queue_depth`` and ``bascule_prediction_log_rows_buffered`` (``livesum``:
  the sum over live workers, each with its own queues and buffer; a version no longer served
  stays at 0 — a child cannot be removed in this mode);
* ``process_*``: ``process_cpu_seconds_total`` summed over every worker that ran (the server's
  CPU time); memory, file descriptors and start time one series per live worker, labelled
  ``pid`` (``liveall``).

A worker drops its live gauges when it stops (:meth:`InferenceMetrics.close`); the scrape
drops those of workers that died without stopping.

Label values are bounded: ``model`` is a served model name or ``""`` for requests naming
an unknown model, ``version`` a served version or ``""``, ``status`` an HTTP status code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from bascule.http.inference.feature_metrics import FeatureLookupCollector, FeatureLookupFeed
from bascule.http.inference.multiprocess import (
    GaugeFeed,
    ProcessFeed,
    TotalFeed,
    check_multiprocess_mode,
    drop_live_gauges,
    merge_shared_files,
    reap_exited_workers,
)

if TYPE_CHECKING:
    from bascule.serving.dataplane import DataPlane

__all__ = ["CONTENT_TYPE", "InferenceMetrics"]

log = logging.getLogger("bascule.http")

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
"""Content type of the Prometheus text exposition format."""

_LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
)
_BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)

# Read from the data plane: (name, help, label names).
_Spec = tuple[str, str, tuple[str, ...]]
_QUEUE_DEPTH: Final[_Spec] = (
    "bascule_inference_queue_depth",
    "Requests waiting in a model version's batcher queue.",
    ("model", "version"),
)
_SHADOW_DEPTH: Final[_Spec] = (
    "bascule_shadow_queue_depth",
    "Shadow copies waiting for the challenger.",
    ("model",),
)
_LOG_WRITTEN: Final[_Spec] = (
    "bascule_prediction_log_rows_written",
    "Prediction-log rows written to the artifact store.",
    (),
)
_LOG_DROPPED: Final[_Spec] = (
    "bascule_prediction_log_rows_dropped",
    "Prediction-log rows dropped because the buffer was full.",
    (),
)
_LOG_BUFFERED: Final[_Spec] = (
    "bascule_prediction_log_rows_buffered",
    "Prediction-log rows waiting to be written.",
    (),
)
_CPU: Final[_Spec] = (
    "bascule_inference_cpu_seconds",
    "CPU seconds of the batcher thread running a model version's onnxruntime calls.",
    ("model", "version"),
)
_FAILED: Final[_Spec] = (
    "bascule_inference_failed_requests",
    "Requests a model version failed to answer, by route (champion, challenger, shadow).",
    ("model", "version", "route"),
)


class InferenceMetrics:
    """The inference server's metrics (see the module docstring).

    Args:
        registry: What ``GET /metrics`` renders (one per app; never the global one).
        process: Also export ``process_*`` metrics (CPU seconds, memory) of this process
            (of every worker, with ``shared_dir``).
        shared_dir: Share the metrics with the other workers of the server through this
            directory: prometheus_client's ``PROMETHEUS_MULTIPROC_DIR``, which must have been
            set to it before ``prometheus_client`` was imported. None: this process only.
        publish_interval_s: With ``shared_dir``, how often the values read from the data
            plane are copied to the shared files.

    Raises:
        ConfigError: ``shared_dir`` is not a directory, or prometheus_client keeps this
            process's values in memory (``PROMETHEUS_MULTIPROC_DIR`` unset at its import).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        process: bool = True,
        shared_dir: Path | None = None,
        publish_interval_s: float = 1.0,
    ) -> None:
        self.registry = registry
        self.shared_dir = shared_dir
        self.publish_interval_s = publish_interval_s
        if shared_dir is not None:
            check_multiprocess_mode(shared_dir)
            merge_shared_files(registry, shared_dir)
        # Shared: every metric this process creates goes to its files, which the collector
        # above merges; registering them as well would export them twice.
        on = registry if shared_dir is None else None
        self._requests = Counter(
            "bascule_inference_requests",
            "Inference requests answered, by model, version and HTTP status.",
            ["model", "version", "status"],
            registry=on,
        )
        self._latency = Histogram(
            "bascule_inference_request_duration_seconds",
            "Time from reading an inference request to its encoded answer.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=on,
        )
        self._batch_rows = Histogram(
            "bascule_inference_batch_size",
            "Rows per onnxruntime call (requests merged by the adaptive batcher).",
            ["model", "version"],
            buckets=_BATCH_BUCKETS,
            registry=on,
        )
        self._batch_seconds = Histogram(
            "bascule_inference_batch_duration_seconds",
            "Time of one onnxruntime call over a batch.",
            ["model", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=on,
        )
        self._rejected = Counter(
            "bascule_inference_rejected_requests",
            "Requests refused before running: queue full, model not ready, body too large.",
            ["model", "reason"],
            registry=on,
        )
        self._model_events = Counter(
            "bascule_model_events",
            "Model version loads and hot swaps, by outcome (success or failure).",
            ["model", "event", "outcome"],
            registry=on,
        )
        self._shadow = Counter(
            "bascule_shadow_requests",
            "Shadow copies sent to challengers, by outcome (ok, error, dropped).",
            ["model", "version", "outcome"],
            registry=on,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._source: _DataPlaneCollector | None = None
        self._features: FeatureLookupCollector | None = None
        self._feed: _DataPlaneFeed | None = None
        self._dataplane: DataPlane | None = None
        if shared_dir is None:
            self._source = _DataPlaneCollector()
            registry.register(self._source)
            if process:
                ProcessCollector(registry=registry)
        else:
            self._feed = _DataPlaneFeed(process=process)

    def watch(self, dataplane: DataPlane) -> None:
        """Export the queue depths, prediction-log and feature-lookup counts of ``dataplane``."""
        self._dataplane = dataplane
        if self._source is not None:
            self._source.dataplane = dataplane
            if self._features is None:
                self._features = FeatureLookupCollector.install(dataplane, self.registry)
            else:
                self._features.dataplane = dataplane

    # -- per request (called by the HTTP layer) ----------------------------------------------------

    def request_done(self, model: str, version: str, status: int, seconds: float) -> None:
        """Count one answered request and observe its latency."""
        key = (model, version, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self._requests.labels(model, version, str(status)),
                self._latency.labels(model),
            )
            if len(self._children) < 10_000:
                self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    # -- ServingObserver ---------------------------------------------------------------------------

    def batch_done(self, model: str, version: str, rows: int, seconds: float) -> None:
        """Observe one onnxruntime call."""
        self._batch_rows.labels(model, version).observe(rows)
        self._batch_seconds.labels(model, version).observe(seconds)

    def model_event(self, model: str, event: str, ok: bool) -> None:
        """Count a load or swap, successful or not."""
        self._model_events.labels(model, event, "success" if ok else "failure").inc()

    def rejected(self, model: str, reason: str) -> None:
        """Count a refused request."""
        self._rejected.labels(model, reason).inc()

    def shadow_done(self, model: str, version: str, outcome: str) -> None:
        """Count a shadow copy's outcome."""
        self._shadow.labels(model, version, outcome).inc()

    # -- shared with other workers -----------------------------------------------------------------

    def publish(self) -> None:
        """Copy this worker's data-plane and process figures to the shared files (if shared)."""
        if self._feed is not None:
            self._feed.publish(self._dataplane)

    @contextlib.asynccontextmanager
    async def publishing(self) -> AsyncIterator[None]:
        """While open, :meth:`publish` every ``publish_interval_s`` (if shared), on this loop."""
        if self._feed is None:
            yield
            return
        task = asyncio.create_task(self._publish_forever(), name="bascule-metrics-publishing")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _publish_forever(self) -> None:
        while True:
            try:
                self.publish()
            except Exception:  # a figure that cannot be read must not stop the others
                log.exception("publishing the metrics to %s failed", self.shared_dir)
            await asyncio.sleep(self.publish_interval_s)

    def close(self) -> None:
        """This worker stops: publish its last figures and drop its live gauges (if shared)."""
        if self.shared_dir is None:
            return
        try:
            self.publish()
        except Exception:  # stopping goes on: the live gauges must go
            log.exception("publishing the last metrics to %s failed", self.shared_dir)
        drop_live_gauges(os.getpid(), self.shared_dir)

    # -- exposition --------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The metrics in the Prometheus text format (every worker's, if shared)."""
        if self.shared_dir is not None:
            self.publish()
            reap_exited_workers(self.shared_dir)
        return generate_latest(self.registry)


class _DataPlaneCollector(Collector):
    """Gauges and counters read from the data plane when scraped (one process)."""

    def __init__(self) -> None:
        self.dataplane: DataPlane | None = None

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(*_QUEUE_DEPTH[:2], labels=_QUEUE_DEPTH[2])
        shadow = GaugeMetricFamily(*_SHADOW_DEPTH[:2], labels=_SHADOW_DEPTH[2])
        written = CounterMetricFamily(*_LOG_WRITTEN[:2])
        dropped = CounterMetricFamily(*_LOG_DROPPED[:2])
        buffered = GaugeMetricFamily(*_LOG_BUFFERED[:2])
        cpu = CounterMetricFamily(*_CPU[:2], labels=_CPU[2])
        failed = CounterMetricFamily(*_FAILED[:2], labels=_FAILED[2])
        dp = self.dataplane
        counts = None
        if dp is not None:
            for totals in dp.usage_totals():
                version = str(totals.version)
                cpu.add_metric([totals.model, version], totals.cpu_seconds)
                for route, errors in sorted(totals.errors_by_route.items()):
                    if errors:
                        failed.add_metric([totals.model, version, route], errors)
            for model, version, queued in dp.queue_depths():
                depth.add_metric([model, version], queued)
            for model, waiting in dp.shadow_depths():
                shadow.add_metric([model], waiting)
            counts = dp.prediction_log_counts()
            if counts is not None:
                written.add_metric([], counts[0])
                dropped.add_metric([], counts[1])
                buffered.add_metric([], counts[2])
        yield depth
        yield shadow
        yield cpu
        yield failed
        if counts is not None:
            yield written
            yield dropped
            yield buffered


class _DataPlaneFeed:
    """Copies one worker's data-plane (and process) figures into the shared metrics."""

    def __init__(self, *, process: bool) -> None:
        self._depth = GaugeFeed(Gauge(*_QUEUE_DEPTH, registry=None, multiprocess_mode="livesum"))
        self._shadow = GaugeFeed(Gauge(*_SHADOW_DEPTH, registry=None, multiprocess_mode="livesum"))
        self._cpu = TotalFeed(Counter(*_CPU, registry=None))
        self._failed = TotalFeed(Counter(*_FAILED, registry=None))
        self._features = FeatureLookupFeed()
        self._process = ProcessFeed() if process else None
        # Created on first use: unlabelled metrics show as soon as they exist, and a server
        # without a prediction log exports none of these (as in one process).
        self._log: tuple[TotalFeed, TotalFeed, GaugeFeed] | None = None

    def publish(self, dp: DataPlane | None) -> None:
        if self._process is not None:
            self._process.publish()
        if dp is None:
            return
        for totals in dp.usage_totals():
            version = str(totals.version)
            self._cpu.update((totals.model, version), totals.cpu_seconds)
            for route, errors in totals.errors_by_route.items():
                if errors:
                    self._failed.update((totals.model, version, route), errors)
        self._depth.update(((m, v), q) for m, v, q in dp.queue_depths())
        self._shadow.update(((m,), w) for m, w in dp.shadow_depths())
        counts = dp.prediction_log_counts()
        if counts is not None:
            if self._log is None:
                self._log = (
                    TotalFeed(Counter(*_LOG_WRITTEN, registry=None)),
                    TotalFeed(Counter(*_LOG_DROPPED, registry=None)),
                    GaugeFeed(Gauge(*_LOG_BUFFERED, registry=None, multiprocess_mode="livesum")),
                )
            written, dropped, buffered = self._log
            written.update((), counts[0])
            dropped.update((), counts[1])
            buffered.update([((), counts[2])])
        self._features.publish(dp.features.stats())
