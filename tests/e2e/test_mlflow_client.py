"""The stock ``mlflow`` client, pointed at a started bascule server, logs runs bascule can read."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException

from bascule.testing import make_services

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow") / "home"


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[str]:
    """``uvicorn --factory bascule.http.control.app:build_app`` on a free port; its base URL."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BASCULE_", "MLFLOW_"))}
    env["BASCULE_HOME"] = str(home)
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "bascule.http.control.app:build_app"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(
        cmd, cwd=home.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    try:
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"the server exited with {proc.returncode}:\n{out}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail("the server did not answer /health within 15 s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


@pytest.fixture
def tracking(server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowClient]:
    """The stock client, configured by environment only; no retries and no telemetry."""
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    yield MlflowClient()
    with contextlib.suppress(Exception):
        while mlflow.active_run() is not None:
            mlflow.end_run()


def test_stock_client_logs_runs_that_bascule_reads(
    tracking: MlflowClient, server: str, home: Path
) -> None:
    experiment = mlflow.set_experiment("mlflow-e2e")
    with mlflow.start_run(run_name="train") as parent:
        mlflow.log_param("lr", 0.1)
        mlflow.log_params({"depth": 4, "model": "gbm"})
        for step, loss in enumerate([0.9, 0.5, 0.3]):
            mlflow.log_metric("loss", loss, step=step)
        mlflow.log_metrics({"auc": 0.91})
        mlflow.set_tag("team", "risk")
        mlflow.set_tags({"stage": "dev"})
        tracking.log_batch(
            parent.info.run_id,
            metrics=[Metric("f1", 0.8, int(time.time() * 1000), 0)],
            params=[Param("seed", "7")],
            tags=[RunTag("batch", "yes")],
        )
        with mlflow.start_run(run_name="fold-1", nested=True) as child:
            mlflow.log_metric("auc", 0.85)
    mlflow.start_run(run_name="broken")
    mlflow.log_metric("auc", 0.4)
    mlflow.end_run(status="FAILED")

    run = tracking.get_run(parent.info.run_id)
    nested = tracking.get_run(child.info.run_id)
    history = tracking.get_metric_history(parent.info.run_id, "loss")
    frame = mlflow.search_runs(filter_string="metrics.auc > 0.5", order_by=["metrics.auc DESC"])
    page_1 = tracking.search_runs(
        [experiment.experiment_id],
        "attributes.status = 'FINISHED'",
        max_results=1,
        order_by=["attributes.start_time ASC"],
    )
    page_2 = tracking.search_runs(
        [experiment.experiment_id],
        "attributes.status = 'FINISHED'",
        max_results=1,
        order_by=["attributes.start_time ASC"],
        page_token=page_1.token,
    )

    assert ("train", "FINISHED") == (run.info.run_name, run.info.status)
    assert run.info.end_time is not None
    assert run.info.end_time >= run.info.start_time
    assert {"lr": "0.1", "depth": "4", "model": "gbm", "seed": "7"} == run.data.params
    assert {"loss": 0.3, "auc": 0.91, "f1": 0.8} == run.data.metrics
    assert {"team": "risk", "stage": "dev", "batch": "yes"}.items() <= run.data.tags.items()
    assert parent.info.run_id == nested.data.tags["mlflow.parentRunId"]
    assert [(0, 0.9), (1, 0.5), (2, 0.3)] == [(m.step, m.value) for m in history]
    assert ["train", "fold-1"] == list(frame["tags.mlflow.runName"])
    assert [0.91, 0.85] == list(frame["metrics.auc"])
    assert ["train"] == [r.info.run_name for r in page_1]
    assert ["fold-1"] == [r.info.run_name for r in page_2]
    assert page_2.token is None

    services = make_services(home)
    try:
        found = services.tracking.search_runs(
            experiment_names=["mlflow-e2e"], order_by=["attributes.start_time"]
        ).runs
    finally:
        services.close()
    assert ["train", "fold-1", "broken"] == [r.name for r in found]
    assert ["FINISHED", "FINISHED", "FAILED"] == [r.status for r in found]
    assert parent.info.run_id == found[1].parent_run_id
    assert {"lr": "0.1", "depth": "4", "model": "gbm", "seed": "7"} == found[0].params
    assert 0.3 == found[0].metrics["loss"].value
    assert "risk" == found[0].tags["team"]

    listed = httpx.get(f"{server}/api/v1/runs", params={"experiment": "mlflow-e2e"}).json()
    assert {"train", "fold-1", "broken"} == {r["name"] for r in listed["runs"]}


def test_client_experiments_and_run_lifecycle(tracking: MlflowClient) -> None:
    exp_id = tracking.create_experiment("lifecycle", tags={"owner": "ada"})
    run = tracking.create_run(exp_id, run_name="short-lived")
    tracking.set_terminated(run.info.run_id, status="KILLED")
    tracking.delete_run(run.info.run_id)

    by_id = tracking.get_experiment(exp_id)
    by_name = tracking.get_experiment_by_name("lifecycle")
    listed = tracking.search_experiments(filter_string="name = 'lifecycle'")
    active = tracking.search_runs([exp_id])
    deleted = tracking.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY)
    tracking.restore_run(run.info.run_id)
    restored = tracking.search_runs([exp_id])

    assert ("lifecycle", {"owner": "ada"}) == (by_id.name, by_id.tags)
    assert by_name is not None
    assert by_id.experiment_id == by_name.experiment_id
    assert [exp_id] == [e.experiment_id for e in listed]
    assert [] == list(active)
    assert [run.info.run_id] == [r.info.run_id for r in deleted]
    assert ["KILLED"] == [r.info.status for r in restored]
    assert tracking.get_experiment_by_name("no-such-experiment") is None


def test_server_errors_reach_the_client_with_mlflow_error_codes(tracking: MlflowClient) -> None:
    run = tracking.create_run("0", run_name="errors")
    tracking.log_param(run.info.run_id, "lr", "0.1")

    with pytest.raises(MlflowException, match="'no-such-run'") as missing:
        tracking.get_run("no-such-run")
    with pytest.raises(MlflowException) as duplicate:
        tracking.create_experiment("Default")
    with pytest.raises(MlflowException) as changed:
        tracking.log_param(run.info.run_id, "lr", "0.2")
    with pytest.raises(MlflowException, match=re.escape("metrics.auc >> 1")) as bad_filter:
        tracking.search_runs(["0"], "metrics.auc >> 1")

    assert "RESOURCE_DOES_NOT_EXIST" == missing.value.error_code
    assert "RESOURCE_ALREADY_EXISTS" == duplicate.value.error_code
    assert "INVALID_PARAMETER_VALUE" == changed.value.error_code
    assert "INVALID_PARAMETER_VALUE" == bad_filter.value.error_code
