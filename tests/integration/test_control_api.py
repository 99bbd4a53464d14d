"""The control-plane REST API, in-process through httpx's ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from bascule.http.control.app import create_app
from bascule.wiring import Services

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://control") as c:
        yield c


async def test_runs_are_created_logged_searched_and_ended(client: httpx.AsyncClient) -> None:
    ids = []
    for i in range(5):
        r = await client.post("/api/v1/runs", json={"experiment": "fraud", "name": f"r{i}"})
        assert 201 == r.status_code
        ids.append(r.json()["id"])
        batch = {
            "metrics": [{"key": "auc", "value": i / 5, "step": 0, "timestamp": 1}],
            "params": {"i": str(i)},
        }
        assert 204 == (await client.post(f"/api/v1/runs/{ids[-1]}/batch", json=batch)).status_code
    await client.patch(f"/api/v1/runs/{ids[0]}", json={"end": True, "status": "FINISHED"})

    search = await client.get(
        "/api/v1/runs",
        params={
            "experiment": "fraud",
            "filter": "metrics.auc > 0.3",
            "order_by": "metrics.auc DESC",
        },
    )
    one = await client.get(f"/api/v1/runs/{ids[0]}")

    assert ["r4", "r3", "r2"] == [r["name"] for r in search.json()["runs"]]
    assert "FINISHED" == one.json()["status"]


async def test_metric_history_is_returned_by_step(client: httpx.AsyncClient) -> None:
    run_id = (await client.post("/api/v1/runs", json={"experiment": "e"})).json()["id"]
    metrics = [{"key": "loss", "value": 1 / (s + 1), "step": s, "timestamp": s} for s in range(3)]
    await client.post(f"/api/v1/runs/{run_id}/batch", json={"metrics": metrics})

    history = (await client.get(f"/api/v1/runs/{run_id}/metrics/loss")).json()

    assert [0, 1, 2] == [m["step"] for m in history]


async def test_errors_have_status_code_and_request_id(client: httpx.AsyncClient) -> None:
    run_id = (await client.post("/api/v1/runs", json={"experiment": "e"})).json()["id"]

    missing = await client.get("/api/v1/runs/nope", headers={"x-request-id": "req-42"})
    bad_value = await client.post(
        f"/api/v1/runs/{run_id}/batch",
        json={"metrics": [{"key": "a", "value": "high", "timestamp": 1}]},
    )
    bad_filter = await client.get("/api/v1/runs", params={"filter": "metrics.auc >"})
    dup = await client.post("/api/v1/experiments", json={"name": "e"})
    no_model = await client.get("/api/v1/models/fraud")

    assert (404, "not_found") == (missing.status_code, missing.json()["code"])
    assert "req-42" == missing.headers["x-request-id"]
    assert (400, "invalid_input") == (bad_value.status_code, bad_value.json()["code"])
    assert "metrics.0.value" in bad_value.json()["error"]
    assert 400 == bad_filter.status_code
    assert 409 == dup.status_code
    assert 404 == no_model.status_code


async def test_models_aliases_and_history(client: httpx.AsyncClient, services: Services) -> None:
    X = np.random.default_rng(0).normal(size=(50, 3))
    for _ in range(2):
        services.registry.register(
            "fraud", LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), sample=X
        )

    moved = await client.put(
        "/api/v1/models/fraud/aliases/champion", json={"version": 2, "reason": "test"}
    )
    bad = await client.put("/api/v1/models/fraud/aliases/champion", json={"version": 9})
    model = (await client.get("/api/v1/models/fraud")).json()
    history = (await client.get("/api/v1/models/fraud/history")).json()
    resolved = (await client.get("/api/v1/models/fraud/resolve/champion")).json()

    assert 200 == moved.status_code
    assert 404 == bad.status_code
    assert {"champion": 2} == model["aliases"]
    assert [1, 2] == [v["version"] for v in model["versions"]]
    assert ["registered", "registered", "alias_set"] == [e["kind"] for e in history]
    assert 2 == resolved["version"]


async def test_openapi_is_served(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()

    assert "/api/v1/runs" in spec["paths"]
    assert 200 == (await client.get("/docs")).status_code
