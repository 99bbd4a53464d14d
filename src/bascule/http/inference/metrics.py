"""Prometheus metrics of the inference server, on an injected ``CollectorRegistry``.

``InferenceMetrics`` implements :class:`bascule.serving.observer.ServingObserver` (batches,
model events, rejections, shadow outcomes) and records per-request counts and latencies
itself; queue depths, prediction-log counters, and the CPU seconds and failed requests of
each model version (``bascule_inference_cpu_seconds_total``,
``bascule_inference_failed_requests_total``, from the data plane's usage meter) are read
from the data plane at scrape time. Names follow the Prometheus conventions
(``bascule_…_total`` counters, ``…_seconds`` durations) and pass ``promtool check metrics``.

Label values are bounded: ``model`` is a served model name or ``""`` for requests naming
an unknown model, ``version`` a served version or ``""``, ``status`` an HTTP status code.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from bascule.serving.dataplane import DataPlane

__all__ = ["CONTENT_TYPE", "InferenceMetrics"]

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


class InferenceMetrics:
    """The inference server's metrics.

    Args:
        registry: Where the metrics are registered (one per app; never the global one).
        process: Also export ``process_*`` metrics (CPU seconds, memory) of this process.
    """

    def __init__(self, registry: CollectorRegistry, *, process: bool = True) -> None:
        self.registry = registry
        self._requests = Counter(
            "bascule_inference_requests",
            "Inference requests answered, by model, version and HTTP status.",
            ["model", "version", "status"],
            registry=registry,
        )
        self._latency = Histogram(
            "bascule_inference_request_duration_seconds",
            "Time from reading an inference request to its encoded answer.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self._batch_rows = Histogram(
            "bascule_inference_batch_size",
            "Rows per onnxruntime call (requests merged by the adaptive batcher).",
            ["model", "version"],
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self._batch_seconds = Histogram(
            "bascule_inference_batch_duration_seconds",
            "Time of one onnxruntime call over a batch.",
            ["model", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self._rejected = Counter(
            "bascule_inference_rejected_requests",
            "Requests refused before running: queue full, model not ready, body too large.",
            ["model", "reason"],
            registry=registry,
        )
        self._model_events = Counter(
            "bascule_model_events",
            "Model version loads and hot swaps, by outcome (success or failure).",
            ["model", "event", "outcome"],
            registry=registry,
        )
        self._shadow = Counter(
            "bascule_shadow_requests",
            "Shadow copies sent to challengers, by outcome (ok, error, dropped).",
            ["model", "version", "outcome"],
            registry=registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._source = _DataPlaneCollector()
        registry.register(self._source)
        if process:
            ProcessCollector(registry=registry)

    def watch(self, dataplane: DataPlane) -> None:
        """Read queue depths and prediction-log counters from ``dataplane`` at scrape time."""
        self._source.dataplane = dataplane

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

    # -- exposition --------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)


class _DataPlaneCollector(Collector):
    """Gauges and counters read from the data plane when scraped."""

    def __init__(self) -> None:
        self.dataplane: DataPlane | None = None

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "bascule_inference_queue_depth",
            "Requests waiting in a model version's batcher queue.",
            labels=["model", "version"],
        )
        shadow = GaugeMetricFamily(
            "bascule_shadow_queue_depth",
            "Shadow copies waiting for the challenger.",
            labels=["model"],
        )
        written = CounterMetricFamily(
            "bascule_prediction_log_rows_written",
            "Prediction-log rows written to the artifact store.",
        )
        dropped = CounterMetricFamily(
            "bascule_prediction_log_rows_dropped",
            "Prediction-log rows dropped because the buffer was full.",
        )
        buffered = GaugeMetricFamily(
            "bascule_prediction_log_rows_buffered",
            "Prediction-log rows waiting to be written.",
        )
        cpu = CounterMetricFamily(
            "bascule_inference_cpu_seconds",
            "CPU seconds of the batcher thread running a model version's onnxruntime calls.",
            labels=["model", "version"],
        )
        failed = CounterMetricFamily(
            "bascule_inference_failed_requests",
            "Requests a model version failed to answer, by route (champion, challenger, shadow).",
            labels=["model", "version", "route"],
        )
        dp = self.dataplane
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
        if dp is not None and dp.prediction_log_counts() is not None:
            yield written
            yield dropped
            yield buffered
