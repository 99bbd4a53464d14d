"""The control plane's ``/metrics``: monitoring results and alerts as Prometheus gauges.

Read from the metadata DB at scrape time, on an injected ``CollectorRegistry`` (one per app):

* ``bascule_monitoring_value{model,version,metric,feature,segment}`` — each figure of the
  last window of each model's newest run (``feature``, ``segment`` and ``version`` are ``""``
  when the figure has none);
* ``bascule_monitoring_alert{model,version,metric,feature,segment}`` — 1 when that figure's
  status is ``alert`` (drift, a rule breached), else 0;
* ``bascule_monitoring_findings{model,code}`` — findings (empty window, missing column…) in
  that window;
* ``bascule_monitoring_last_run_timestamp_seconds{model}`` — end of the newest run's range;
* ``bascule_alerts_firing{model,rule,severity}`` — alerts firing now.

Label values are bounded by the configured models, their features and metrics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Final

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bascule.wiring import Services

__all__ = ["CONTENT_TYPE", "MonitoringCollector", "install_metrics"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
_FIGURE = ["model", "version", "metric", "feature", "segment"]


class MonitoringCollector(Collector):
    """Gauges of the newest monitoring results and firing alerts, read at scrape time."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterator[Metric]:
        """The gauges (see the module docstring)."""
        monitoring = self._services.monitoring
        value = GaugeMetricFamily(
            "bascule_monitoring_value",
            "Latest monitoring figure per model, version, metric, feature and segment.",
            labels=_FIGURE,
        )
        alert = GaugeMetricFamily(
            "bascule_monitoring_alert",
            "1 when the latest monitoring figure is in alert (drift, a rule breached).",
            labels=_FIGURE,
        )
        findings = GaugeMetricFamily(
            "bascule_monitoring_findings",
            "Findings (empty window, missing column...) in the latest monitored window.",
            labels=["model", "code"],
        )
        last_run = GaugeMetricFamily(
            "bascule_monitoring_last_run_timestamp_seconds",
            "End of the time range of the newest monitoring run, per model.",
            labels=["model"],
        )
        results = monitoring.results(latest_run=True, limit=200_000)
        last_end: dict[str, int] = {}
        for r in results:
            last_end[r.model] = max(last_end.get(r.model, r.window_end), r.window_end)
        counts: Counter[tuple[str, str]] = Counter()
        for r in results:
            if r.window_end != last_end[r.model]:
                continue
            if r.status == "finding":
                counts[(r.model, r.metric)] += 1
                continue
            labels = [
                r.model, "" if r.model_version is None else str(r.model_version), r.metric,
                r.feature or "", r.segment or "",
            ]  # fmt: skip
            if r.value is not None:
                value.add_metric(labels, r.value)
            alert.add_metric(labels, 1.0 if r.status == "alert" else 0.0)
        for (model, code), n in sorted(counts.items()):
            findings.add_metric([model, code], n)
        for model, end in sorted(last_end.items()):
            last_run.add_metric([model], end / 1000)
        firing = GaugeMetricFamily(
            "bascule_alerts_firing",
            "Alerts firing now, by model, rule and severity.",
            labels=["model", "rule", "severity"],
        )
        by_rule = Counter((a.model, a.rule, a.severity) for a in monitoring.alerts(state="firing"))
        for key, n in sorted(by_rule.items()):
            firing.add_metric(list(key), n)
        yield from (value, alert, findings, last_run, firing)


def install_metrics(
    app: FastAPI, services: Services, registry: CollectorRegistry | None = None
) -> CollectorRegistry:
    """Register the monitoring gauges on ``registry`` (a new one by default) and serve them at
    ``GET /metrics``."""
    registry = registry if registry is not None else CollectorRegistry()
    registry.register(MonitoringCollector(services))

    @app.get("/metrics", tags=["metrics"], include_in_schema=False)
    def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE)

    return registry
