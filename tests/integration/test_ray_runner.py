"""RayRunner on a local Ray cluster started by the test: same results as LocalRunner."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bascule.pipelines import (
    LocalRunner,
    Pipeline,
    PipelineFailed,
    PipelineResult,
    StepContext,
    require_fitted,
    step,
)
from bascule.pipelines.ray import RayRunner
from bascule.testing import FakeClock, make_services
from bascule.wiring import Services

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray")


@step(outputs="data")
def load(n_rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    x = rng.normal(size=n_rows)
    return pd.DataFrame({"x": x, "y": (x + rng.normal(scale=0.3, size=n_rows) > 0).astype(int)})


@step(outputs="attempt_dir", cache=False)
def flaky(marker: str) -> str:
    # Fails on the first attempt (in one worker process), succeeds on the retry (another).
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        raise ConnectionError("worker lost its connection")
    return str(path.parent)


@step(outputs=("model", "worker_pid"), checks={"model": require_fitted})
def train(data: pd.DataFrame, attempt_dir: str, ctx: StepContext) -> tuple[Any, int]:
    from sklearn.linear_model import LogisticRegression

    ctx.log_dataset(data, name="train")
    model = LogisticRegression().fit(data[["x"]], data["y"])
    ctx.log_metrics({"accuracy": float(model.score(data[["x"]], data["y"]))})
    return model, os.getpid()


@step(outputs="report")
def evaluate(model: Any, data: pd.DataFrame) -> dict[str, float]:
    return {"accuracy": float(model.score(data[["x"]], data["y"]))}


PIPELINE = Pipeline("ray-demo", [load, flaky, train, evaluate], params=["n_rows", "marker"])


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    # Workers import step functions by module name; this test module is not importable
    # there, so Ray ships its functions by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def services_in(path: Path) -> Services:
    return make_services(path, clock=FakeClock())


def summary(result: PipelineResult) -> dict[str, Any]:
    return {
        "status": result.status,
        "steps": [(s.name, s.status, s.cache, s.attempts, s.metrics) for s in result.steps],
        "report": result.outputs["report"],
        "datasets": [d.digest for d in result.datasets],
    }


def test_ray_runner_matches_local_runner(ray_cluster: None, tmp_path: Path) -> None:
    local_svc = services_in(tmp_path / "local")
    ray_svc = services_in(tmp_path / "ray")
    waits: list[float] = []
    try:
        local = LocalRunner(
            local_svc.tracking, local_svc.artifacts, sleep=waits.append, max_retries=1
        ).run(PIPELINE, {"n_rows": 300, "marker": str(tmp_path / "local-marker")}, experiment="e")
        runner = RayRunner(ray_svc.tracking, ray_svc.artifacts, sleep=waits.append, max_retries=1)
        on_ray = runner.run(
            PIPELINE, {"n_rows": 300, "marker": str(tmp_path / "ray-marker")}, experiment="e"
        )
        again = runner.run(
            PIPELINE, {"n_rows": 300, "marker": str(tmp_path / "ray-marker")}, experiment="e"
        )
        ray_run = ray_svc.tracking.get_run(on_ray.run_id)
    finally:
        local_svc.close()
        ray_svc.close()

    assert on_ray.ok
    assert summary(local) == summary(on_ray)
    assert 2 == on_ray.step("flaky").attempts
    assert [1.0, 1.0] == waits  # one backoff each, through the injected sleep
    assert os.getpid() != on_ray.outputs["worker_pid"]
    assert os.getpid() == local.outputs["worker_pid"]
    assert {"load": "hit", "flaky": "off"} == {
        s.name: s.cache for s in again.steps if s.name in ("load", "flaky")
    }
    assert "FINISHED" == ray_run.status
    assert "train.accuracy" in ray_run.metrics


def test_failure_on_a_worker_is_recorded_with_its_traceback(
    ray_cluster: None, tmp_path: Path
) -> None:
    @step(outputs="model")
    def broken(data: pd.DataFrame) -> Any:
        raise ValueError("no positive labels")

    svc = services_in(tmp_path / "home")
    try:
        result = RayRunner(svc.tracking, svc.artifacts).run(
            Pipeline("ray-fail", [load, broken], params=["n_rows"]), {"n_rows": 10}, experiment="e"
        )
        run = svc.tracking.get_run(result.run_id)
        digest = next(a.digest for a in run.artifacts if a.path == "error/traceback.txt")
        traceback = svc.artifacts.get(digest).decode()
    finally:
        svc.close()

    assert isinstance(result, PipelineFailed)
    assert "step 'broken' failed: ValueError: no positive labels" == result.reason
    assert "FAILED" == run.status
    assert "no positive labels" in traceback
