"""Canary and shadow traffic, the prediction log, overload (503 + Retry-After), hot swap."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from bascule.core.clock import SystemClock
from bascule.core.records import ModelVersion
from bascule.core.refs import ModelRef
from bascule.core.settings import BatchingSettings, ServingSettings
from bascule.http.inference.app import create_app
from bascule.http.inference.metrics import InferenceMetrics
from bascule.registry.predictor import OnnxPredictor
from bascule.serving.dataplane import DataPlane, ModelSpec
from bascule.serving.feeds import Feeds
from bascule.serving.manager import ModelManager
from bascule.serving.router import CanarySplit, Policy
from bascule.serving.runtime import ServedModel, load_served_model
from bascule.store.predictions import PredictionLog, read_predictions
from bascule.testing import InMemoryArtifactStore

pytestmark = pytest.mark.anyio

ROW = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1, 0, 0, -1]}]}


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


def gated_app(
    models: Any, specs: list[ModelSpec], gate: threading.Event, gated_version: int, **batching: Any
) -> tuple[Any, DataPlane, PredictionLog, InMemoryArtifactStore, InferenceMetrics]:
    registry = models.services.registry

    def loader(mv: ModelVersion) -> ServedModel:
        if mv.version == gated_version:
            return Gated(registry.load(f"{mv.name}:{mv.version}"), gate)
        return load_served_model(registry, mv, warm_rows=4)

    metrics = InferenceMetrics(CollectorRegistry())
    clock = SystemClock()
    manager = ModelManager(
        registry,
        clock=clock,
        batching=BatchingSettings(**batching),
        loader=loader,
        observer=metrics,
    )
    store = InMemoryArtifactStore()
    log = PredictionLog(store, clock=clock)
    dataplane = DataPlane(manager, specs, clock=clock, prediction_log=log, observer=metrics)
    app = create_app(dataplane, ServingSettings(refs=["unused"]), metrics=metrics)
    return app, dataplane, log, store, metrics


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bascule.test")


async def test_canary_answers_the_split_share_and_logs_both_versions(serve: Any) -> None:
    served = await serve(
        ["fraud@champion"],
        models={
            "fraud": {"challenger": "fraud@challenger", "mode": "canary", "canary_percent": 30}
        },
    )
    ids = [f"req-{i}" for i in range(300)]
    async with served.client() as c:
        answers = [
            await c.post("/v2/models/fraud/infer", json=ROW, headers={"x-request-id": rid})
            for rid in ids
        ]
        meta = (await c.get("/v2/models/fraud")).json()
    await served.dataplane.close()
    logged = read_predictions(served.store, "fraud")

    split = CanarySplit(30)
    expected = ["2" if split.to_challenger(rid) else "1" for rid in ids]
    assert expected == [a.json()["model_version"] for a in answers]
    assert 60 < expected.count("2") < 120
    assert ["1", "2"] == meta["versions"]
    assert "canary" == meta["parameters"]["policy"]
    assert set(ids) == set(logged["request_id"])
    routes = dict(
        zip(
            logged["request_id"],
            zip(logged["route"], logged["model_version"], strict=True),
            strict=True,
        )
    )
    assert ("challenger", 2) == routes[ids[expected.index("2")]]
    assert ("champion", 1) == routes[ids[expected.index("1")]]
    assert {"canary"} == set(logged["policy"])
    assert {"amount", "age", "hour", "risk", "label", "proba_0", "proba_1"} <= set(logged.columns)


async def test_shadow_never_delays_the_client_and_logs_the_challenger(models: Any) -> None:
    gate = threading.Event()
    spec = ModelSpec(
        ModelRef.parse("fraud@champion"),
        ModelRef.parse("fraud@challenger"),
        Policy("shadow"),
        shadow_queue=4,
    )
    app, dataplane, _, store, _ = gated_app(models, [spec], gate, gated_version=2)
    await dataplane.start()
    async with client(app) as c:
        answers = [
            await asyncio.wait_for(
                c.post("/v2/models/fraud/infer", json=ROW, headers={"x-request-id": f"s{i}"}), 5
            )
            for i in range(10)
        ]
        # the challenger is stuck: its queue holds 4 copies, one runs, the rest were dropped
        gate.set()
        text = (await c.get("/metrics")).text
    await dataplane.close()
    logged = read_predictions(store, "fraud")

    assert {"1"} == {a.json()["model_version"] for a in answers}
    assert {"route": "champion", "policy": "shadow"} == answers[0].json()["parameters"]
    champion = logged[logged.route == "champion"]
    shadow = logged[logged.route == "shadow"]
    assert 10 == len(champion)
    assert 1 <= len(shadow) < 10  # 4 shadow workers + a queue of 4; the rest were dropped
    assert {2} == set(shadow.model_version)
    assert {"shadow"} == set(logged.policy)
    assert 'bascule_shadow_requests_total{model="fraud",outcome="dropped",version=""}' in text


async def test_full_queue_is_503_with_retry_after(models: Any) -> None:
    gate = threading.Event()
    spec = ModelSpec(ModelRef.parse("fraud@champion"))
    app, dataplane, _, _, _ = gated_app(models, [spec], gate, gated_version=1, max_queue=1)
    await dataplane.start()
    model = dataplane.manager.slots()[0].require().model
    assert isinstance(model, Gated)
    async with client(app) as c:
        running = asyncio.create_task(c.post("/v2/models/fraud/infer", json=ROW))
        while not model.entered.is_set():
            await asyncio.sleep(0.005)
        queued = asyncio.create_task(c.post("/v2/models/fraud/infer", json=ROW))
        while dataplane.queue_depths() != [("fraud", "1", 1)]:
            await asyncio.sleep(0.005)
        refused = await c.post("/v2/models/fraud/infer", json=ROW)
        gate.set()
        done = await asyncio.gather(running, queued)
        text = (await c.get("/metrics")).text
    await dataplane.close()

    assert 503 == refused.status_code
    assert "overloaded" == refused.json()["code"]
    assert int(refused.headers["retry-after"]) >= 1
    assert [200, 200] == [r.status_code for r in done]
    assert (
        'bascule_inference_rejected_requests_total{model="fraud",reason="queue_full"} 1.0' in text
    )


async def test_alias_move_swaps_versions_with_zero_failed_requests(serve: Any, models: Any) -> None:
    registry = models.services.registry
    for estimator in (models.fraud_v1, models.fraud_v2):
        registry.register("swap", estimator, sample=models.frame)
    registry.set_alias("swap", "live", 1)
    served = await serve(["swap@live"])
    statuses: list[int] = []
    versions: list[str] = []

    async with served.client() as c:

        async def hammer(n: int) -> None:
            for _ in range(n):
                r = await c.post("/v2/models/swap/infer", json=ROW)
                statuses.append(r.status_code)
                versions.append(r.json().get("model_version", ""))

        load = [asyncio.create_task(hammer(40)) for _ in range(8)]
        await asyncio.sleep(0.01)
        registry.set_alias("swap", "live", 2)
        await served.dataplane.manager.poll_once()  # what the poller does every second
        await asyncio.gather(*load)
        after = (await c.post("/v2/models/swap/infer", json=ROW)).json()["model_version"]
        meta = (await c.get("/v2/models/swap")).json()
        text = (await c.get("/metrics")).text

    assert {200} == set(statuses)
    assert 320 == len(statuses)
    assert [{"ref": "swap@live", "version": 2, "last_error": None}] == meta["parameters"]["refs"]
    assert "2" == after
    assert "2" in versions
    assert 'bascule_model_events_total{event="swap",model="swap",outcome="success"} 1.0' in text


async def test_bad_new_version_is_reported_and_the_old_one_keeps_serving(
    serve: Any, models: Any
) -> None:
    registry = models.services.registry
    for estimator in (models.fraud_v1, models.fraud_v2):
        registry.register("flaky", estimator, sample=models.frame)
    registry.set_alias("flaky", "live", 1)
    bad = registry.resolve("flaky:2")
    blob = Path(models.services.artifacts.root) / "blobs" / "sha256" / bad.digest[:2] / bad.digest
    blob.write_bytes(b"corrupted")
    served = await serve(["flaky@live"])

    registry.set_alias("flaky", "live", 2)
    await served.dataplane.manager.poll_once()
    async with served.client() as c:
        answer = await c.post("/v2/models/flaky/infer", json=ROW)
        meta = (await c.get("/v2/models/flaky")).json()
        text = (await c.get("/metrics")).text

    (ref,) = meta["parameters"]["refs"]
    assert (200, "1") == (answer.status_code, answer.json()["model_version"])
    assert 1 == ref["version"]
    assert "version 2" in ref["last_error"]
    assert "still serving version 1" in ref["last_error"]
    assert 'bascule_model_events_total{event="swap",model="flaky",outcome="failure"} 1.0' in text
