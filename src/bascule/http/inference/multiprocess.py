"""Metrics shared by the worker processes of one server (prometheus_client's multiprocess mode).

With ``bascule serve --workers N`` every worker writes its metrics to memory-mapped files in one
directory (``PROMETHEUS_MULTIPROC_DIR``, set before ``prometheus_client`` is imported: the
library picks its value class at import), and whichever worker answers ``GET /metrics`` merges
every worker's files: counters and histograms are summed over every worker that ran since the
server started, gauges are merged by their ``multiprocess_mode``.

Values that one process reads from its own memory at scrape time (custom collectors) cannot be
merged that way; :class:`TotalFeed`, :class:`GaugeFeed` and :class:`SummaryFeed` copy such
values into mmap-backed metrics, and :class:`ProcessFeed` does it for the ``process_*``
metrics. :func:`reap_exited_workers` drops the live gauges of workers that are gone.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Summary, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.process_collector import ProcessCollector

from bascule.core.errors import ConfigError

__all__ = [
    "GaugeFeed",
    "ProcessFeed",
    "SummaryFeed",
    "TotalFeed",
    "check_multiprocess_mode",
    "drop_live_gauges",
    "merge_shared_files",
    "reap_exited_workers",
]

Labels = tuple[str, ...]

_LIVE_PREFIX = "gauge_live"


def check_multiprocess_mode(directory: Path) -> None:
    """Refuse to share metrics through ``directory`` unless prometheus_client can.

    Raises:
        ConfigError: ``directory`` is not a directory, or prometheus_client keeps its values
            in memory (``PROMETHEUS_MULTIPROC_DIR`` was not set before it was imported).
    """
    if not directory.is_dir():
        raise ConfigError(
            f"serving.metrics_dir {str(directory)!r} is not a directory: expected the "
            "directory the server's workers share their metrics through"
        )
    if not getattr(values.ValueClass, "_multiprocess", False):
        raise ConfigError(
            f"serving.metrics_dir is {str(directory)!r}, but prometheus_client keeps this "
            "process's metrics in memory: set PROMETHEUS_MULTIPROC_DIR to that directory "
            "before the process starts"
        )


def merge_shared_files(registry: CollectorRegistry, directory: Path) -> None:
    """Make ``registry`` render the merge of every worker's files in ``directory``."""
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]


def drop_live_gauges(pid: int, directory: Path) -> None:
    """Remove the live gauges (``live*`` multiprocess modes) of process ``pid``."""
    mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


class TotalFeed:
    """Copies running totals read elsewhere into a counter, as increments.

    Each process adds what it counted since its last update, so the merged counter is the
    sum over every worker, including workers that have exited (their files stay).
    """

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._seen: dict[Labels, float] = {}

    def update(self, labels: Labels, total: float) -> None:
        """The running total of ``labels`` is now ``total`` (a new label set shows, even at 0)."""
        seen = self._seen.get(labels)
        if seen is None or total > seen:
            child = self._counter.labels(*labels) if labels else self._counter
            child.inc(total - (seen or 0.0))
            self._seen[labels] = total


class SummaryFeed:
    """Copies a running ``(count, sum)`` read elsewhere into a summary, as increments."""

    def __init__(self, summary: Summary) -> None:
        self._summary = summary
        self._seen: dict[Labels, tuple[int, float]] = {}

    def update(self, labels: Labels, count: int, total: float) -> None:
        """The running count and sum of ``labels`` are now ``count`` and ``total``."""
        seen_count, seen_total = self._seen.get(labels, (0, 0.0))
        if count > seen_count:
            child = self._summary.labels(*labels) if labels else self._summary
            # Summary.observe adds one observation; these are many at once. Its two values
            # are the count and sum samples themselves (prometheus_client's own layout).
            child._count.inc(count - seen_count)
            child._sum.inc(total - seen_total)
            self._seen[labels] = (count, total)


class GaugeFeed:
    """Sets a gauge from values read elsewhere; label sets no longer reported are set to 0.

    (prometheus_client cannot remove a child in multiprocess mode.)
    """

    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge
        self._last: dict[Labels, float] = {}

    def update(self, current: Iterable[tuple[Labels, float]]) -> None:
        """The gauge's values now, by label values."""
        now = dict(current)
        for labels in self._last.keys() - now.keys():
            now[labels] = 0.0
        for labels, value in now.items():
            if self._last.get(labels) != value:
                (self._gauge.labels(*labels) if labels else self._gauge).set(value)
        self._last = now


class ProcessFeed:
    """This worker's ``process_*`` metrics (CPU, memory, file descriptors), as shared metrics.

    ``process_cpu_seconds_total`` is summed over every worker that ran (the server's CPU
    time); the gauges (memory, open and max file descriptors, start time) keep one series per
    live worker, labelled ``pid`` (``multiprocess_mode="liveall"``).
    """

    def __init__(self) -> None:
        self._collector = ProcessCollector(registry=None)
        self._totals: dict[str, TotalFeed] = {}
        self._gauges: dict[str, Gauge] = {}

    def publish(self) -> None:
        """Read this process's figures from ``/proc`` and write them."""
        for family in self._collector.collect():
            for sample in family.samples:
                if family.type == "counter":
                    feed = self._totals.get(family.name)
                    if feed is None:
                        counter = Counter(family.name, family.documentation, registry=None)
                        feed = self._totals[family.name] = TotalFeed(counter)
                    feed.update((), sample.value)
                elif family.type == "gauge":
                    gauge = self._gauges.get(family.name)
                    if gauge is None:
                        gauge = self._gauges[family.name] = Gauge(
                            family.name,
                            family.documentation,
                            registry=None,
                            multiprocess_mode="liveall",
                        )
                    gauge.set(sample.value)


def reap_exited_workers(directory: Path) -> None:
    """Drop the live gauges of worker processes that no longer run (crashed or killed).

    A worker that stops cleanly drops its own (``mark_process_dead`` at shutdown); this
    catches the others, so a dead worker's last queue depth is not summed forever.
    """
    me = os.getpid()
    pids = set()
    for path in directory.glob(f"{_LIVE_PREFIX}*_*.db"):
        with contextlib.suppress(ValueError):
            pids.add(int(path.stem.rsplit("_", 1)[1]))
    for pid in pids - {me}:
        if not _alive(pid):
            drop_live_gauges(pid, directory)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process has that pid: not ours, but alive
        return True
    return True
