"""Prometheus metrics of online feature lookups, read from the data plane when scraped.

``bascule_feature_lookups_total{model}`` counts requests whose features were looked up,
``bascule_feature_lookup_rows_total{model}`` their rows, and
``bascule_feature_lookup_errors_total{model, reason}`` the lookups that failed, by reason:
``store_unavailable`` (the online store could not be reached: 503), ``features_unavailable``
(entities missing or values past the TTL: 422) and ``invalid_input`` (a missing entity key or
request field: 400); ``bascule_feature_age_seconds{model, view}`` (a summary: count and
sum) is the age of the values served, answer time minus their event time: their freshness.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from bascule.serving.dataplane import DataPlane

__all__ = ["FeatureLookupCollector"]

REASONS = ("features_unavailable", "invalid_input", "store_unavailable")


class FeatureLookupCollector(Collector):
    """Exports the data plane's feature-lookup counts (see the module docstring)."""

    def __init__(self, dataplane: DataPlane) -> None:
        self._dataplane = dataplane

    @classmethod
    def install(cls, dataplane: DataPlane, registry: CollectorRegistry) -> FeatureLookupCollector:
        """Register a collector for ``dataplane`` on ``registry``."""
        collector = cls(dataplane)
        registry.register(collector)
        return collector

    def collect(self) -> Iterator[Metric]:
        stats = self._dataplane.features.stats()
        lookups = CounterMetricFamily(
            "bascule_feature_lookups",
            "Requests whose model inputs were looked up in the online feature store.",
            labels=["model"],
        )
        rows = CounterMetricFamily(
            "bascule_feature_lookup_rows",
            "Rows (entities) looked up in the online feature store.",
            labels=["model"],
        )
        errors = CounterMetricFamily(
            "bascule_feature_lookup_errors",
            "Feature lookups that failed, by reason: store_unavailable (503), "
            "features_unavailable (422), invalid_input (400).",
            labels=["model", "reason"],
        )
        ages = SummaryMetricFamily(
            "bascule_feature_age_seconds",
            "Age of the feature values served (answer time minus their event time).",
            labels=["model", "view"],
        )
        for (model, view), (count, total) in sorted(stats.ages.items()):
            ages.add_metric([model, view], count, total)
        models = sorted({*stats.lookups, *(m for m, _ in stats.errors)})
        for model in models:
            lookups.add_metric([model], stats.lookups.get(model, 0))
            rows.add_metric([model], stats.rows.get(model, 0))
            for reason in REASONS:
                errors.add_metric([model, reason], stats.errors.get((model, reason), 0))
        yield lookups
        yield rows
        yield errors
        yield ages
