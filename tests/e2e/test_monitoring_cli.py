"""Monitoring from the terminal on a served model's real prediction log, with late feedback.

``bascule serve`` answers requests (shifted inputs, so the model's inputs drift) and writes
its prediction log; then, in subprocesses as a user would: ``bascule feedback ingest``,
``bascule monitor run``, ``bascule monitor report --html``, ``bascule alerts list``, while
the alert rule fires to a webhook on a loopback HTTP server.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bascule.testing import make_services, serve_in_thread
from tests.e2e.conftest import as_json

FEATURES = ["amount", "age", "hour", "risk"]
CONFIG = """
monitoring:
  window: 1h
  notifiers:
    - {{kind: webhook, url: "{hook}", backoff_s: 0.1}}
  models:
    fraud:
      multivariate: false
      cost: {{fp_cost: 5, fn_cost_column: outcome, tp_value: 1, currency: EUR}}
      alerts:
        - {{name: drift, metric: drifted_features, comparison: ">=", threshold: 1,
            severity: critical}}
"""


@pytest.fixture
def hook() -> Iterator[tuple[list[dict], str]]:
    bodies: list[dict] = []
    lock = threading.Lock()

    async def receive(request: Request) -> JSONResponse:
        body = await request.json()
        with lock:
            bodies.append(body)
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/hook", receive, methods=["POST"])])
    with serve_in_thread(app) as url:
        yield bodies, f"{url}/hook"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home (``tmp_path/home``, the ``cli`` fixture's) with ``fraud`` v1 as champion."""
    services = make_services(tmp_path / "home")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(500, 4)), columns=FEATURES)
    model = LogisticRegression().fit(frame, (frame.amount + frame.risk > 0).astype(int))
    services.registry.register("fraud", model, sample=frame)
    services.registry.set_alias("fraud", "champion", 1)
    services.close()
    return tmp_path / "home"


def _serve(home: Path, cwd: Path) -> tuple[subprocess.Popen[str], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASCULE_")}
    env.update(BASCULE_HOME=str(home), NO_COLOR="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "bascule.cli.main", "serve", "fraud@champion", "--port", str(port)],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"bascule serve exited: {process.communicate()}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError("bascule serve did not become ready")


@pytest.mark.slow
def test_feedback_monitor_report_and_alerts_on_a_served_log(
    cli: Callable[..., subprocess.CompletedProcess[str]],
    home: Path,
    hook: tuple[list[dict], str],
    tmp_path: Path,
) -> None:
    bodies, hook_url = hook
    (tmp_path / "bascule.yaml").write_text(CONFIG.format(hook=hook_url))
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(200, 4)) + np.array([2.5, 0, 0, 0])  # the amounts drifted
    process, url = _serve(home, tmp_path)
    labels = []
    try:
        with httpx.Client(base_url=url) as http:
            for i, row in enumerate(rows):
                body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4],
                                    "data": row.tolist()}]}  # fmt: skip
                r = http.post(
                    "/v2/models/fraud/infer", json=body, headers={"x-request-id": f"e2e-{i}"}
                )
                assert 200 == r.status_code, r.text
                labels.append(r.json()["outputs"][0]["data"][0])
    finally:
        process.terminate()
        process.communicate(timeout=60)
    assert 0 == process.returncode
    # later: labels and amounts at stake arrive for 150 of the 200 requests
    actual = (rows[:150, 0] + rows[:150, 3] + rng.normal(0, 1, 150) > 0).astype(int)
    feedback = pd.DataFrame(
        {
            "request_id": [f"e2e-{i}" for i in range(150)] + ["lost-1", "e2e-151"],
            "label": [*actual.tolist(), 1, 7],
            "outcome": [*(np.abs(rows[:150, 0]) * 100).tolist(), 1.0, 1.0],
        }
    )
    feedback.to_parquet(tmp_path / "labels.parquet")

    ingested = as_json(cli("feedback", "ingest", "labels.parquet", "--json"))
    ran = as_json(cli("monitor", "run", "fraud", "--json"))
    human = cli("monitor", "run", "fraud")
    report = cli("monitor", "report", "fraud", "--html", "out.html")
    alerts = as_json(cli("alerts", "list", "--json", "--model", "fraud"))

    assert (152, 151, 0) == (ingested["received"], ingested["accepted"], ingested["updated"])
    assert {"count": 1, "request_ids": ["lost-1"]} == ingested["unknown"]
    assert 1 == ingested["invalid"]["count"]
    assert "got 7, expected a class of model 'fraud:1'" in ingested["invalid"]["reasons"][0]
    results = ran["results"]

    def value(metric: str, **match: object) -> float:
        (found,) = [
            r["value"] for r in results
            if r["metric"] == metric and all(r.get(k) == v for k, v in match.items())
        ]  # fmt: skip
        return float(found)

    predicted = np.array(labels[:150])
    tp = int(np.sum((predicted == 1) & (actual == 1)))
    fp = int(np.sum((predicted == 1) & (actual == 0)))
    missed = (predicted == 0) & (actual == 1)
    net = 5 * fp + float(np.sum(np.abs(rows[:150, 0])[missed] * 100)) - tp
    assert 200 == value("rows")
    assert 150 == value("labelled_rows", segment=None)
    assert pytest.approx(np.mean(predicted == actual)) == value("accuracy")
    assert pytest.approx(net, rel=1e-4) == value("business_cost")
    assert "alert" == next(
        r["status"] for r in results if r["metric"] == "feature_drift" and r["feature"] == "amount"
    )
    assert ["firing"] == [a["status"] for a in ran["alerts"]]
    assert 0 == human.returncode, human.stderr
    assert "per window" in human.stdout
    assert 0 == report.returncode, report.stderr
    page = (tmp_path / "out.html").read_text()
    assert "Monitoring report: fraud" in page
    assert page.count("<svg") >= 3
    assert "<script" not in page
    assert "src=" not in page
    assert "href=" not in page
    assert [("drift", "firing", "critical")] == [
        (a["rule"], a["state"], a["severity"]) for a in alerts
    ]
    assert ["firing"] == [b["status"] for b in bodies]  # the second run saw the same window
    assert "drifted_features" == bodies[0]["alert"]["metric"]


def test_validate_explains_monitoring_mistakes(
    cli: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    (tmp_path / "bascule.yaml").write_text(
        "monitoring:\n  schedule: often\n  models:\n    fraud:\n"
        "      alerts: [{name: a, metric: accuracy, threshold: 0.9, comparison: '=='}]\n"
    )

    out = cli("validate", "--json")
    problems = json.loads(out.stdout)["problems"]

    assert 78 == out.returncode
    assert any(p.startswith("monitoring.schedule:") for p in problems)
    assert any("monitoring.models.fraud.alerts.0.comparison" in p for p in problems)


def test_monitor_run_of_an_unknown_model_exits_4(
    cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    out = cli("monitor", "run", "nope")

    assert 4 == out.returncode
    assert "model 'nope' not found" in out.stderr
