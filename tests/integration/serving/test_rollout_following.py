"""A server of ``m@champion`` follows the recorded rollout, driven by the RolloutSupervisor.

The server runs in a thread (uvicorn, real onnxruntime); the test talks to it over HTTP,
records rollout states on the registry, and ticks the supervisor as the control plane
would. Shadow copies, the canary split, promotion, rollback on the challenger's failures,
the prediction log's routes and the CPU seconds per version are checked from outside.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LogisticRegression

from bascule.core.clock import SystemClock
from bascule.core.project_settings import RolloutSettings
from bascule.core.records import ModelVersion
from bascule.core.refs import ModelRef
from bascule.core.settings import BatchingSettings, ServingSettings
from bascule.http.inference.app import create_app
from bascule.http.inference.metrics import InferenceMetrics
from bascule.pipelines.costs import usage_compute_costs
from bascule.pipelines.rollout import RolloutPlan, current_rollout, record_rollout
from bascule.pipelines.supervision import RolloutSupervisor
from bascule.registry.predictor import OnnxPredictor
from bascule.registry.rollouts import RolloutState
from bascule.serving.assembly import build_dataplane
from bascule.serving.dataplane import DataPlane, ModelSpec
from bascule.serving.feeds import Feeds
from bascule.serving.manager import ModelManager
from bascule.serving.router import CanarySplit
from bascule.serving.runtime import ServedModel, load_served_model
from bascule.store.predictions import read_predictions
from bascule.store.usage import read_usage
from bascule.testing import make_services, serve_in_thread
from bascule.wiring import Services

PLAN = RolloutSettings(shadow_requests=20, canary_percent=50.0, canary_requests=40)


def body(features: int = 2) -> dict[str, Any]:
    data = [0.5, -1.0, 0.25][:features]
    return {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, features], "data": data}]}


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    """``m`` v1 (champion) and v2 on two features, v3 on three (it cannot read v1's requests)."""
    svc = make_services(tmp_path / "home")
    rng = np.random.default_rng(7)
    two = pd.DataFrame(rng.normal(size=(200, 2)), columns=["a", "b"])
    three = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    y = (two.a > 0).astype(int)
    svc.registry.register("m", LogisticRegression().fit(two, y), sample=two)
    svc.registry.register("m", LogisticRegression().fit(two, 1 - y), sample=two)
    svc.registry.register("m", LogisticRegression().fit(three, y), sample=three)
    svc.registry.set_alias("m", "champion", 1)
    yield svc
    svc.close()


@pytest.fixture
def served(services: Services) -> Iterator[tuple[httpx.Client, InferenceMetrics]]:
    settings = ServingSettings(
        refs=["m@champion"],
        poll_interval_s=0.05,
        prediction_log={"flush_interval_s": 0.1},
        intra_op_threads=1,
    )
    metrics = InferenceMetrics(CollectorRegistry(), process=False)
    dataplane = build_dataplane(
        services.registry, services.artifacts, settings, clock=SystemClock(), observer=metrics
    )
    app = create_app(dataplane, settings, metrics=metrics)
    with serve_in_thread(app, lifespan="on") as url, httpx.Client(base_url=url) as client:
        wait_for(lambda: client.get("/v2/health/ready").status_code == 200)
        yield client, metrics


def wait_for(check: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        time.sleep(0.02)


def infer(client: httpx.Client, rid: str, features: int = 2) -> dict[str, Any]:
    response = client.post("/v2/models/m/infer", json=body(features), headers={"x-request-id": rid})
    assert 200 == response.status_code, response.text
    out: dict[str, Any] = response.json()
    return out


def policy_of(client: httpx.Client) -> tuple[Any, Any, list[str]]:
    meta = client.get("/v2/models/m").json()
    params = meta["parameters"]
    return params.get("policy"), params.get("canary_percent"), meta["versions"]


def test_shadow_then_canary_then_promotion_over_http(
    services: Services, served: tuple[httpx.Client, InferenceMetrics]
) -> None:
    client, metrics = served
    registry = services.registry
    supervisor = RolloutSupervisor.from_services(services)
    before = [infer(client, f"pre-{i}") for i in range(5)]
    registry.set_alias("m", "challenger", 2)
    record_rollout(registry, RolloutPlan(PLAN).start("m", challenger_version=2, champion_version=1))
    wait_for(lambda: policy_of(client)[0] == "shadow")
    shadowed = [infer(client, f"shadow-{i}") for i in range(25)]

    def copies_counted() -> bool:  # every copy answered and its usage window written
        return supervisor.measure("m")[1].requests == 25

    wait_for(copies_counted)
    [to_canary] = supervisor.tick()
    wait_for(lambda: policy_of(client)[:2] == ("canary", 50.0))
    canary = {f"canary-{i}": infer(client, f"canary-{i}") for i in range(120)}
    wait_for(lambda: supervisor.measure("m")[1].requests >= 40)
    [to_full] = supervisor.tick()
    wait_for(lambda: policy_of(client) == (None, None, ["2"]))
    after = infer(client, "post-0")

    assert {("1", "champion", None)} == {
        (a["model_version"], a["parameters"]["route"], a["parameters"].get("policy"))
        for a in before
    }
    assert {("1", "champion", "shadow")} == {
        (a["model_version"], a["parameters"]["route"], a["parameters"]["policy"]) for a in shadowed
    }
    assert ("shadow", "canary") == (to_canary.before.stage, to_canary.after.stage)  # type: ignore[union-attr]
    assert (25, 0) == (to_canary.challenger.requests, to_canary.challenger.errors)
    split = CanarySplit(50.0)
    for rid, answer in canary.items():
        expected = ("2", "challenger") if split.to_challenger(rid) else ("1", "champion")
        assert expected == (answer["model_version"], answer["parameters"]["route"])
    assert 30 < sum(a["parameters"]["route"] == "challenger" for a in canary.values()) < 90
    assert "full" == to_full.after.stage  # type: ignore[union-attr]
    assert {"champion": 2} == registry.get_model("m").aliases
    assert ("2", "champion", None) == (
        after["model_version"],
        after["parameters"]["route"],
        after["parameters"].get("policy"),
    )

    def logged() -> pd.DataFrame | None:
        frame = read_predictions(services.artifacts, "m")
        return frame if len(frame) == 5 + 25 + 25 + 120 + 1 else None

    frame = wait_for(logged)
    counts = frame.groupby(["policy", "route", "model_version"]).size().to_dict()
    challenger_rows = sum(a["parameters"]["route"] == "challenger" for a in canary.values())
    assert {
        ("", "champion", 1): 5,
        ("shadow", "champion", 1): 25,
        ("shadow", "shadow", 2): 25,
        ("canary", "champion", 1): 120 - challenger_rows,
        ("canary", "challenger", 2): challenger_rows,
        ("", "champion", 2): 1,
    } == counts
    shadow_ids = set(frame[frame.route == "shadow"].request_id)
    assert {f"shadow-{i}" for i in range(25)} == shadow_ids

    text = metrics.render().decode()
    cpu = {
        s.labels["version"]: s.value
        for family in text_string_to_metric_families(text)
        if family.name == "bascule_inference_cpu_seconds"
        for s in family.samples
        if s.labels.get("model") == "m"
    }
    assert {"1", "2"} == set(cpu)
    assert all(value > 0 for value in cpu.values())

    def usage_written() -> dict[int, Any] | None:
        costs = usage_compute_costs(read_usage(services.artifacts, "m"), 0.05)
        return costs if {1, 2} <= set(costs) else None

    costs = wait_for(usage_written)
    assert all(c.cpu_seconds > 0 and c.cost_per_1000 > 0 for c in costs.values())
    assert 5 + 25 + 120 - challenger_rows <= costs[1].predictions


def test_canary_whose_challenger_fails_is_rolled_back(
    services: Services, served: tuple[httpx.Client, InferenceMetrics]
) -> None:
    client, metrics = served
    registry = services.registry
    supervisor = RolloutSupervisor.from_services(services)
    registry.set_alias("m", "challenger", 3)
    plan = RolloutPlan(RolloutSettings(shadow_requests=0, canary_percent=50.0, canary_requests=40))
    record_rollout(registry, plan.start("m", challenger_version=3, champion_version=1))
    wait_for(lambda: policy_of(client)[:2] == ("canary", 50.0))
    answers = [infer(client, f"r-{i}") for i in range(40)]
    given = sum(CanarySplit(50.0).to_challenger(f"r-{i}") for i in range(40))
    wait_for(lambda: supervisor.measure("m")[1].errors == given)
    [result] = supervisor.tick()
    wait_for(lambda: policy_of(client) == (None, None, ["1"]))
    later = infer(client, "later")

    # v3 cannot read two features: the champion answered every request the split gave it
    assert {("1", "champion")} == {(a["model_version"], a["parameters"]["route"]) for a in answers}
    assert given == result.challenger.errors == result.challenger.requests > 10
    assert 0 == result.champion.errors
    assert "rolled_back" == result.after.stage  # type: ignore[union-attr]
    assert "rolled_back" == current_rollout(registry, "m").stage  # type: ignore[union-attr]
    assert {"champion": 1} == registry.get_model("m").aliases
    assert ("1", "champion") == (later["model_version"], later["parameters"]["route"])
    failed = [
        s
        for family in text_string_to_metric_families(metrics.render().decode())
        if family.name == "bascule_inference_failed_requests"
        for s in family.samples
        if s.name.endswith("_total")
    ]
    assert [("m", "3", "challenger")] == [
        (s.labels["model"], s.labels["version"], s.labels["route"]) for s in failed
    ]
    assert result.challenger.errors <= failed[0].value


class Gated(ServedModel):
    """A served model whose batches wait for a gate."""

    def __init__(self, predictor: OnnxPredictor, gate: threading.Event) -> None:
        super().__init__(predictor)
        self.gate = gate
        self.entered = threading.Event()

    def run_batch(self, items: list[Feeds]) -> list[Any]:
        self.entered.set()
        self.gate.wait(20)
        return super().run_batch(items)


@pytest.mark.anyio
async def test_a_request_held_by_the_challenger_finishes_on_it_after_the_rollout_ends(
    services: Services,
) -> None:
    registry, gate = services.registry, threading.Event()
    gated: list[Gated] = []

    def loader(mv: ModelVersion) -> ServedModel:
        if mv.version == 2:
            gated.append(Gated(registry.load(f"{mv.name}:{mv.version}"), gate))
            return gated[-1]
        return load_served_model(registry, mv, warm_rows=1)

    clock = SystemClock()
    manager = ModelManager(registry, clock=clock, batching=BatchingSettings(), loader=loader)
    spec = ModelSpec(ModelRef.parse("m@champion"), follow_rollout=True)
    dataplane = DataPlane(manager, [spec], clock=clock)
    await dataplane.start()
    registry.set_alias("m", "challenger", 2)
    canary = RolloutState("m", 2, 1, "canary", canary_percent=100.0, canary_requests=10)
    record_rollout(registry, canary)
    await dataplane.follow_rollouts()
    held = asyncio.create_task(dataplane.infer("m", None, body(), request_id="held"))
    await asyncio.to_thread(gated[0].entered.wait, 10)
    record_rollout(registry, replace(canary, stage="rolled_back", reason="by hand"))
    await dataplane.follow_rollouts()
    meanwhile = await dataplane.infer("m", None, body(), request_id="meanwhile")
    gate.set()
    answer = await asyncio.wait_for(held, 10)
    status = dataplane.model_status()
    await dataplane.close()

    assert ("2", "challenger", "canary") == (answer.model_version, answer.route, answer.policy)
    assert ("1", "champion", "") == (meanwhile.model_version, meanwhile.route, meanwhile.policy)
    assert (None, "", 0.0) == dataplane.routing_of("m")
    assert ["m@champion"] == [s["ref"] for s in status]


@pytest.mark.anyio
async def test_a_challenger_that_fails_to_load_leaves_the_champion_alone(
    services: Services,
) -> None:
    registry = services.registry

    def loader(mv: ModelVersion) -> ServedModel:
        if mv.version == 2:
            raise RuntimeError("out of memory")
        return load_served_model(registry, mv, warm_rows=1)

    clock = SystemClock()
    manager = ModelManager(registry, clock=clock, batching=BatchingSettings(), loader=loader)
    dataplane = DataPlane(
        manager, [ModelSpec(ModelRef.parse("m@champion"), follow_rollout=True)], clock=clock
    )
    await dataplane.start()
    registry.set_alias("m", "challenger", 2)
    shadow = RolloutState("m", 2, 1, "shadow", shadow_requests=10)
    record_rollout(registry, shadow)
    await dataplane.follow_rollouts()
    await dataplane.follow_rollouts()  # not retried while the rollout names that version
    answer = await dataplane.infer("m", None, body(), request_id="r")
    failing = dataplane.model_status()
    ready = dataplane.ready()
    record_rollout(registry, replace(shadow, stage="rolled_back"))
    await dataplane.follow_rollouts()
    after = dataplane.model_status()
    await dataplane.close()

    assert ("1", "champion", "") == (answer.model_version, answer.route, answer.policy)
    assert (None, "", 0.0) == dataplane.routing_of("m")
    assert ready
    assert ["m@champion", "m:2"] == [s["ref"] for s in failing]
    assert "out of memory" in failing[1]["last_error"]
    assert 1 == manager.stats.load_failures
    assert ["m@champion"] == [s["ref"] for s in after]
