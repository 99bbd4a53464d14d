"""Metrics shared by worker processes (prometheus_client's multiprocess mode), in real processes.

Two processes run ``InferenceMetrics(shared_dir=...)`` over a fake data plane
(``shared_metrics_worker.py``); this process scrapes their directory the way the worker
answering ``GET /metrics`` does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Summary, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bascule.core.errors import ConfigError
from bascule.http.inference.metrics import InferenceMetrics
from bascule.http.inference.multiprocess import (
    GaugeFeed,
    SummaryFeed,
    TotalFeed,
    merge_shared_files,
    reap_exited_workers,
)

WORKER = Path(__file__).with_name("shared_metrics_worker.py")


class Worker:
    def __init__(self, directory: Path) -> None:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), str(directory)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def send(self, op: str, **fields: Any) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.process.stdin.flush()
        if op != "crash":
            assert "ok" == self.process.stdout.readline().strip()

    def state(self, **fields: Any) -> None:
        defaults = {"requests": 0, "queue": {}, "cpu": 0.0, "written": 0, "lookups": 0}
        self.send("state", **{**defaults, "ages": [0, 0.0], **fields})


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    path = tmp_path / "metrics"
    path.mkdir()
    return path


@pytest.fixture
def workers(directory: Path) -> Iterator[tuple[Worker, Worker]]:
    pair = (Worker(directory), Worker(directory))
    yield pair
    for worker in pair:
        worker.process.kill()
        worker.process.wait()


def scrape(directory: Path) -> tuple[str, dict[str, dict[tuple[str, ...], float]]]:
    """What the answering worker renders: every file merged, dead workers' live gauges gone."""
    reap_exited_workers(directory)
    registry = CollectorRegistry()
    merge_shared_files(registry, directory)
    text = generate_latest(registry).decode()
    samples: dict[str, dict[tuple[str, ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = tuple(v for k, v in sorted(s.labels.items()) if k != "pid")
            samples.setdefault(s.name, {})[key] = s.value
    return text, samples


def test_counters_are_summed_and_queue_depths_added_over_live_workers(
    workers: tuple[Worker, Worker], directory: Path
) -> None:
    a, b = workers
    a.state(requests=5, queue={"1": 3}, cpu=0.5, written=10, lookups=4, ages=[2, 1.0])
    b.state(requests=2, queue={"1": 4}, cpu=0.25, written=7, lookups=1, ages=[1, 3.0])

    _, first = scrape(directory)
    a.state(queue={"2": 1}, cpu=0.75, written=12, lookups=4, ages=[2, 1.0])  # v1 gone in a
    _, second = scrape(directory)

    assert 7 == first["bascule_inference_requests_total"][("m", "200", "1")]
    assert 7 == first["bascule_inference_request_duration_seconds_count"][("m",)]
    assert {("m", "1"): 7} == first["bascule_inference_queue_depth"]
    assert 0.75 == first["bascule_inference_cpu_seconds_total"][("m", "1")]
    assert 17 == first["bascule_prediction_log_rows_written_total"][()]
    assert 5 == first["bascule_feature_lookups_total"][("m",)]
    assert 3 == first["bascule_feature_age_seconds_count"][("m", "customer")]
    assert 4.0 == first["bascule_feature_age_seconds_sum"][("m", "customer")]
    assert 0 == first["bascule_feature_lookup_errors_total"][("m", "store_unavailable")]
    assert {("m", "1"): 4, ("m", "2"): 1} == second["bascule_inference_queue_depth"]
    assert 1.0 == second["bascule_inference_cpu_seconds_total"][("m", "1")]
    assert 19 == second["bascule_prediction_log_rows_written_total"][()]
    assert 5 == second["bascule_feature_lookups_total"][("m",)]  # unchanged: no new increment


def test_process_gauges_keep_one_series_per_live_worker(
    workers: tuple[Worker, Worker], directory: Path
) -> None:
    a, b = workers
    a.state()
    b.state()

    text, _ = scrape(directory)

    pids = {
        s.labels["pid"]
        for f in text_string_to_metric_families(text)
        if f.name == "process_resident_memory_bytes"
        for s in f.samples
    }
    assert {str(a.process.pid), str(b.process.pid)} == pids


def test_a_stopped_or_dead_worker_keeps_its_counts_but_not_its_gauges(
    workers: tuple[Worker, Worker], directory: Path
) -> None:
    a, b = workers
    a.state(requests=5, queue={"1": 3}, written=10)
    b.state(requests=2, queue={"1": 4}, written=7)

    a.send("close")
    a.process.wait()
    _, after_close = scrape(directory)
    b.send("crash")
    b.process.wait()
    _, after_crash = scrape(directory)

    assert {("m", "1"): 4} == after_close["bascule_inference_queue_depth"]
    assert 7 == after_close["bascule_inference_requests_total"][("m", "200", "1")]
    assert "bascule_inference_queue_depth" not in after_crash
    assert "process_resident_memory_bytes" not in after_crash
    assert 7 == after_crash["bascule_inference_requests_total"][("m", "200", "1")]
    assert 17 == after_crash["bascule_prediction_log_rows_written_total"][()]


def test_the_merged_metrics_pass_promtool(workers: tuple[Worker, Worker], directory: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if "promtool" in os.environ.get("BASCULE_TEST_REQUIRE", "").split(","):
            pytest.fail("promtool is not on PATH, but BASCULE_TEST_REQUIRE names promtool")
        pytest.skip("promtool is not on PATH (.ci/run unpacks it from the Debian package)")
    a, b = workers
    a.state(requests=5, queue={"1": 3}, cpu=0.5, written=10, lookups=4, ages=[2, 1.0])
    b.state(requests=2, queue={"2": 4}, cpu=0.25, written=7, lookups=1, ages=[1, 3.0])

    text, _ = scrape(directory)
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )

    assert 0 == check.returncode, check.stdout + check.stderr


def test_sharing_needs_prometheus_client_in_multiprocess_mode(directory: Path) -> None:
    # This test process imported prometheus_client without PROMETHEUS_MULTIPROC_DIR.
    with pytest.raises(ConfigError, match="PROMETHEUS_MULTIPROC_DIR"):
        InferenceMetrics(CollectorRegistry(), shared_dir=directory)
    with pytest.raises(ConfigError, match="not a directory"):
        InferenceMetrics(CollectorRegistry(), shared_dir=directory / "missing")


def test_feeds_add_what_changed_since_the_last_update() -> None:
    registry = CollectorRegistry()
    total = TotalFeed(Counter("t", "t", ["k"], registry=registry))
    summary = SummaryFeed(Summary("s", "s", ["k"], registry=registry))
    gauge = GaugeFeed(Gauge("g", "g", ["k"], registry=registry))

    total.update(("a",), 5)
    total.update(("a",), 5)
    total.update(("a",), 8)
    total.update(("b",), 0)
    summary.update(("a",), 3, 1.5)
    summary.update(("a",), 5, 2.5)
    gauge.update([(("a",), 3.0), (("b",), 1.0)])
    gauge.update([(("b",), 2.0)])

    assert 8 == registry.get_sample_value("t_total", {"k": "a"})
    assert 0 == registry.get_sample_value("t_total", {"k": "b"})  # shows at 0, as in one process
    assert 5 == registry.get_sample_value("s_count", {"k": "a"})
    assert 2.5 == registry.get_sample_value("s_sum", {"k": "a"})
    assert 0 == registry.get_sample_value("g", {"k": "a"})  # no longer reported
    assert 2 == registry.get_sample_value("g", {"k": "b"})
