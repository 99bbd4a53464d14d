"""One worker process for test_shared_metrics.py (run as a script, not collected).

Run with ``PROMETHEUS_MULTIPROC_DIR`` set to the shared directory given as argument. Reads
one JSON command per line on stdin, answers ``ok`` on stdout:

* ``{"op": "state", "requests": n, "queue": {"version": depth}, "cpu": s, "written": n,
  "lookups": n, "ages": [count, sum]}``: counts ``n`` answered requests, sets what the fake
  data plane reports, publishes;
* ``{"op": "close"}``: stops as a worker does (``InferenceMetrics.close``) and exits;
* ``{"op": "crash"}``: exits at once, without stopping.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from bascule.http.inference.metrics import InferenceMetrics
from bascule.serving.features import FeatureLookupStats
from bascule.serving.usage import VersionTotals


class FakeFeatures:
    def __init__(self) -> None:
        self.lookups = 0
        self.ages = (0, 0.0)

    def stats(self) -> FeatureLookupStats:
        ages = {("m", "customer"): self.ages} if self.ages[0] else {}
        return FeatureLookupStats({"m": self.lookups}, {"m": self.lookups}, {}, ages)


class FakeDataPlane:
    """Reports what the test tells it, as a data plane would (see DataPlane)."""

    def __init__(self) -> None:
        self.features = FakeFeatures()
        self.queue: dict[str, int] = {}
        self.cpu = 0.0
        self.written = 0

    def usage_totals(self) -> list[VersionTotals]:
        return [VersionTotals("m", 1, self.cpu, 0, 0, {})]

    def queue_depths(self) -> list[tuple[str, str, int]]:
        return [("m", version, depth) for version, depth in self.queue.items()]

    def shadow_depths(self) -> list[tuple[str, int]]:
        return []

    def prediction_log_counts(self) -> tuple[int, int, int] | None:
        return self.written, 0, 0


def main() -> None:
    metrics = InferenceMetrics(CollectorRegistry(), shared_dir=Path(sys.argv[1]))
    dataplane = FakeDataPlane()
    metrics.watch(dataplane)  # type: ignore[arg-type]  # a fake of the few reads it makes
    for line in sys.stdin:
        command: dict[str, Any] = json.loads(line)
        if command["op"] == "crash":
            os._exit(0)
        if command["op"] == "close":
            metrics.close()
            _answer()
            return
        for _ in range(command["requests"]):
            metrics.request_done("m", "1", 200, 0.001)
        dataplane.queue = command["queue"]
        dataplane.cpu = command["cpu"]
        dataplane.written = command["written"]
        dataplane.features.lookups = command["lookups"]
        dataplane.features.ages = tuple(command["ages"])  # type: ignore[assignment]
        metrics.publish()
        _answer()


def _answer() -> None:
    sys.stdout.write("ok\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
