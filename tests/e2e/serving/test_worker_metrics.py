"""``GET /metrics`` of ``bascule serve --workers 2`` counts every worker, whichever answers.

The workers share their metrics through a fresh directory under ``TMPDIR``; these tests read
each worker's own files there to know how requests were split, so that a scrape returning
the total proves it merged the workers (each worker alone holds less than the total).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow

ROW = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1, 0, 0, -1]}]}


def _one_shot() -> httpx.Client:
    """A client opening a new connection per request: the kernel picks a worker each time."""
    return httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=10)


def _scrape(url: str) -> tuple[str, dict[str, list[Any]]]:
    with _one_shot() as http:
        text = http.get(f"{url}/metrics").text
    families = {f.name: f.samples for f in text_string_to_metric_families(text)}
    return text, families


def _total(families: dict[str, list[Any]], name: str, sample: str | None = None) -> float:
    return sum(s.value for s in families.get(name, []) if s.name == (sample or name + "_total"))


def _metrics_dir(tmp: Path) -> Path:
    found = list(tmp.glob("bascule-metrics-*"))
    assert 1 == len(found), found
    return found[0]


def _requests_by_worker(directory: Path) -> dict[int, float]:
    """Each worker's own count of answered requests, read from its counter file."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        merged = MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
        counts[int(path.stem.split("_")[1])] = sum(
            s.value
            for m in merged
            if m.name == "bascule_inference_requests"
            for s in m.samples
            if s.name == "bascule_inference_requests_total"
        )
    return counts


def _wait_all_ready(url: str) -> None:
    """Until both workers have loaded (and warmed) the model: two successful loads counted."""
    deadline = time.monotonic() + 90
    while _total(_scrape(url)[1], "bascule_model_events") < 2:
        assert time.monotonic() < deadline, "the workers did not all become ready"
        time.sleep(0.2)


def _send_until_both_answered(url: str, directory: Path) -> int:
    """Send requests (new connection each) until both workers answered some; how many sent."""
    sent = 0
    with _one_shot() as http:
        while sent < 1000:
            for _ in range(20):
                assert 200 == http.post(f"{url}/v2/models/fraud/infer", json=ROW).status_code
                sent += 1
            by_worker = _requests_by_worker(directory)
            if len(by_worker) == 2 and all(by_worker.values()):
                return sent
    raise AssertionError(f"one worker answered every request: {_requests_by_worker(directory)}")


def _promtool() -> str | None:
    found = shutil.which("promtool")
    if found is None:
        required = {s.strip() for s in os.environ.get("BASCULE_TEST_REQUIRE", "").split(",")}
        if "promtool" in required:
            pytest.fail("promtool is not on PATH, but BASCULE_TEST_REQUIRE names promtool")
    return found


def test_every_scrape_counts_the_requests_of_both_workers(
    start_server: Callable[..., Any], tmp_path: Path
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    server = start_server("fraud@champion", "--workers", "2", env={"TMPDIR": str(tmp)})
    _wait_all_ready(server.url)
    directory = _metrics_dir(tmp)

    sent = _send_until_both_answered(server.url, directory)
    by_worker = _requests_by_worker(directory)
    scrapes = [_scrape(server.url) for _ in range(12)]
    code, err = server.stop()

    assert 2 == len(by_worker)
    assert max(by_worker.values()) < sent  # no worker alone knows the total
    for _, families in scrapes:
        assert sent == _total(families, "bascule_inference_requests")
        assert sent == _total(
            families,
            "bascule_inference_request_duration_seconds",
            "bascule_inference_request_duration_seconds_count",
        )
        assert sent == _total(
            families, "bascule_inference_batch_size", "bascule_inference_batch_size_sum"
        )  # one row each
        assert 2 == _total(families, "bascule_model_events")  # each worker loaded fraud v1
        pids = {s.labels["pid"] for s in families["process_resident_memory_bytes"]}
        assert {str(pid) for pid in by_worker} == pids
        assert {("fraud", "1")} == {
            (s.labels["model"], s.labels["version"])
            for s in families["bascule_inference_queue_depth"]
        }
    promtool = _promtool()
    if promtool is not None:
        check = subprocess.run(
            [promtool, "check", "metrics"],
            input=scrapes[-1][0],
            capture_output=True,
            text=True,
            check=False,
        )
        assert 0 == check.returncode, check.stdout + check.stderr
    assert 0 == code, err
    assert not directory.exists()  # removed when the server stopped


def test_a_killed_worker_keeps_its_counts_and_loses_its_live_gauges(
    start_server: Callable[..., Any], tmp_path: Path
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    server = start_server(
        "fraud@champion", "--workers", "2", "--no-prediction-log", env={"TMPDIR": str(tmp)}
    )
    _wait_all_ready(server.url)
    directory = _metrics_dir(tmp)
    sent = _send_until_both_answered(server.url, directory)
    victim = min(_requests_by_worker(directory))

    os.kill(victim, signal.SIGKILL)  # no shutdown: uvicorn's supervisor starts a new worker
    deadline = time.monotonic() + 60
    while True:
        _, families = _scrape(server.url)
        pids = {s.labels["pid"] for s in families.get("process_resident_memory_bytes", [])}
        if str(victim) not in pids and len(pids) == 2:
            break
        assert time.monotonic() < deadline, f"still {pids} after killing {victim}"
        time.sleep(0.5)
    code, err = server.stop()

    assert sent == _total(families, "bascule_inference_requests")
    assert 0 == code, err
