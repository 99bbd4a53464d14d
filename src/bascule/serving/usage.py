"""UsageMeter: what the server does with each model version, counted as it happens.

Per model version and traffic policy it counts answered and failed requests by route, and
the CPU seconds of the version's batches. :meth:`UsageMeter.cut` closes the current window
and returns it as :class:`~bascule.store.usage.UsageRecord` values for the usage log; the
running totals (for Prometheus counters) are never reset.

**How CPU is measured**: the batcher thread that calls onnxruntime reads its own thread CPU
time (``time.thread_time``) before and after each ``run_batch`` call. With one intra-op
thread per session (the default on machines with few cores: see
``serving.intra_op_threads``), onnxruntime runs the whole graph on that calling thread, so
this is the whole cost of the batch: graph execution, the merging of requests' feeds and the
split of its outputs, and nothing else (not the event loop, not other versions' threads,
which ``process_cpu_seconds_total`` would mix in). With more intra-op threads, the work done
by onnxruntime's own pool threads is not seen, so the figure is a lower bound.

Calls come from the event loop (answers) and from batcher threads (CPU), under one lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bascule.store.usage import RouteUsage, UsageRecord

__all__ = ["UsageMeter", "VersionTotals"]

_Key = tuple[str, int, str]  # model, version, policy


@dataclass
class _Counts:
    cpu_seconds: float = 0.0
    batches: int = 0
    batch_rows: int = 0
    routes: dict[str, list[int]] | None = None  # route -> [requests, rows, errors]

    def route(self, name: str) -> list[int]:
        if self.routes is None:
            self.routes = {}
        counts = self.routes.get(name)
        if counts is None:
            counts = self.routes[name] = [0, 0, 0]
        return counts


@dataclass(frozen=True)
class VersionTotals:
    """Running totals of one model version since the server started."""

    model: str
    version: int
    cpu_seconds: float
    requests: int
    errors: int
    errors_by_route: dict[str, int]


class UsageMeter:
    """Counts answers, failures and CPU seconds per model version (thread-safe).

    Args:
        now: The wall clock of window bounds (``Clock.now_utc``).
    """

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._window: dict[_Key, _Counts] = {}
        self._totals: dict[tuple[str, int], _Counts] = {}
        self._policies: dict[str, str] = {}
        self._started = now()

    def set_policy(self, model: str, policy: str) -> None:
        """The model's traffic policy from now on (CPU seconds are counted under it)."""
        with self._lock:
            self._policies[model] = policy

    def _counts(self, model: str, version: int, policy: str) -> tuple[_Counts, _Counts]:
        key = (model, version, policy)
        window = self._window.get(key)
        if window is None:
            window = self._window[key] = _Counts()
        total = self._totals.get((model, version))
        if total is None:
            total = self._totals[(model, version)] = _Counts()
        return window, total

    def answered(self, model: str, version: int, route: str, policy: str, rows: int) -> None:
        """Count one answered request of ``rows`` rows."""
        with self._lock:
            for counts in self._counts(model, version, policy):
                c = counts.route(route)
                c[0] += 1
                c[1] += rows

    def failed(self, model: str, version: int, route: str, policy: str) -> None:
        """Count one request the version failed to answer."""
        with self._lock:
            for counts in self._counts(model, version, policy):
                counts.route(route)[2] += 1

    def batch(self, model: str, version: int, rows: int, cpu_seconds: float) -> None:
        """Count one onnxruntime call over ``rows`` rows that took ``cpu_seconds`` of CPU."""
        with self._lock:
            policy = self._policies.get(model, "")
            for counts in self._counts(model, version, policy):
                counts.cpu_seconds += cpu_seconds
                counts.batches += 1
                counts.batch_rows += rows

    def cut(self) -> list[UsageRecord]:
        """Close the current window: its records (versions with any activity), then reset."""
        now = self._now()
        with self._lock:
            window, self._window = self._window, {}
            start, self._started = self._started, now
        out = []
        for (model, version, policy), c in window.items():
            routes = {k: RouteUsage(*v) for k, v in (c.routes or {}).items()}
            out.append(
                UsageRecord(
                    model_name=model,
                    model_version=version,
                    policy=policy,
                    start_at=start,
                    end_at=now,
                    cpu_seconds=c.cpu_seconds,
                    batches=c.batches,
                    batch_rows=c.batch_rows,
                    routes=routes,
                )
            )
        return out

    def totals(self) -> list[VersionTotals]:
        """Running totals per model version, sorted."""
        with self._lock:
            items = sorted(self._totals.items())
            return [
                VersionTotals(
                    model=model,
                    version=version,
                    cpu_seconds=c.cpu_seconds,
                    requests=sum(v[0] for v in (c.routes or {}).values()),
                    errors=sum(v[2] for v in (c.routes or {}).values()),
                    errors_by_route={k: v[2] for k, v in (c.routes or {}).items()},
                )
                for (model, version), c in items
            ]
