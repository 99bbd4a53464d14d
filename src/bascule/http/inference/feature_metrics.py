"""Prometheus metrics of online feature lookups, read from the data plane when scraped.

``bascule_feature_lookups_total{model}`` counts requests whose features were looked up,
``bascule_feature_lookup_rows_total{model}`` their rows, and
``bascule_feature_lookup_errors_total{model, reason}`` the lookups that failed, by reason:
``store_unavailable`` (the online store could not be reached: 503), ``features_unavailable``
(entities missing or values past the TTL: 422) and ``invalid_input`` (a missing entity key or
request field: 400); ``bascule_feature_age_seconds{model, view}`` (a summary: count and
sum) is the age of the values served, answer time minus their event time: their freshness.

In one process, :class:`FeatureLookupCollector` reads the data plane's counts when scraped.
With several workers (prometheus_client's multiprocess mode), :class:`FeatureLookupFeed`
copies each worker's counts into shared counters and a shared summary instead, so a scrape
sums every worker's lookups.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Summary
from prometheus_client.core import CounterMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from bascule.http.inference.multiprocess import SummaryFeed, TotalFeed
from bascule.serving.dataplane import DataPlane
from bascule.serving.features import FeatureLookupStats

__all__ = ["FeatureLookupCollector", "FeatureLookupFeed"]

REASONS = ("features_unavailable", "invalid_input", "store_unavailable")

_LOOKUPS: Final = (
    "bascule_feature_lookups",
    "Requests whose model inputs were looked up in the online feature store.",
)
_ROWS: Final = (
    "bascule_feature_lookup_rows",
    "Rows (entities) looked up in the online feature store.",
)
_ERRORS: Final = (
    "bascule_feature_lookup_errors",
    "Feature lookups that failed, by reason: store_unavailable (503), "
    "features_unavailable (422), invalid_input (400).",
)
_AGES: Final = (
    "bascule_feature_age_seconds",
    "Age of the feature values served (answer time minus their event time).",
)


class FeatureLookupCollector(Collector):
    """Exports the data plane's feature-lookup counts (see the module docstring)."""

    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    @classmethod
    def install(cls, dataplane: DataPlane, registry: CollectorRegistry) -> FeatureLookupCollector:
        """Register a collector for ``dataplane`` on ``registry``."""
        collector = cls(dataplane)
        registry.register(collector)
        return collector

    def collect(self) -> Iterator[Metric]:
        stats = self.dataplane.features.stats()
        lookups = CounterMetricFamily(*_LOOKUPS, labels=["model"])
        rows = CounterMetricFamily(*_ROWS, labels=["model"])
        errors = CounterMetricFamily(*_ERRORS, labels=["model", "reason"])
        ages = SummaryMetricFamily(*_AGES, labels=["model", "view"])
        for (model, view), (count, total) in sorted(stats.ages.items()):
            ages.add_metric([model, view], count, total)
        for model in _models(stats):
            lookups.add_metric([model], stats.lookups.get(model, 0))
            rows.add_metric([model], stats.rows.get(model, 0))
            for reason in REASONS:
                errors.add_metric([model, reason], stats.errors.get((model, reason), 0))
        yield lookups
        yield rows
        yield errors
        yield ages


class FeatureLookupFeed:
    """Copies one worker's feature-lookup counts into metrics shared by every worker.

    For prometheus_client's multiprocess mode: the counters and the summary are written to
    the worker's mmap files (registered on no registry; the scrape merges the files).
    """

    def __init__(self) -> None:
        self._lookups = TotalFeed(Counter(*_LOOKUPS, ["model"], registry=None))
        self._rows = TotalFeed(Counter(*_ROWS, ["model"], registry=None))
        self._errors = TotalFeed(Counter(*_ERRORS, ["model", "reason"], registry=None))
        self._ages = SummaryFeed(Summary(*_AGES, ["model", "view"], registry=None))

    def publish(self, stats: FeatureLookupStats) -> None:
        """Write what changed since the last call."""
        for (model, view), (count, total) in stats.ages.items():
            self._ages.update((model, view), count, total)
        for model in _models(stats):
            self._lookups.update((model,), stats.lookups.get(model, 0))
            self._rows.update((model,), stats.rows.get(model, 0))
            for reason in REASONS:
                self._errors.update((model, reason), stats.errors.get((model, reason), 0))


def _models(stats: FeatureLookupStats) -> list[str]:
    return sorted({*stats.lookups, *(m for m, _ in stats.errors)})
