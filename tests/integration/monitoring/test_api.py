"""Monitoring on the control plane, in-process through httpx's ASGI transport."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator

import httpx
import pytest
from tests.integration.monitoring.conftest import HOUR, T0, MakeWorld, World, sample, truth

from bascule.http.control.app import create_app

pytestmark = pytest.mark.anyio

RULES = [{"name": "drift", "metric": "drifted_features", "comparison": ">=", "threshold": 1}]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def world(make_world: MakeWorld) -> World:
    world = make_world(models={"fraud": {"alerts": RULES}})
    world.log(sample(200, seed=1), hour=0)
    world.log(sample(200, seed=2, shift=2.5), hour=1)
    world.clock.advance(3 * 3600)
    return world


@pytest.fixture
async def client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(world.services))
    async with httpx.AsyncClient(transport=transport, base_url="http://control") as c:
        yield c


async def test_feedback_takes_one_record_a_list_or_a_batch(
    client: httpx.AsyncClient, world: World
) -> None:
    ids = world.logged[0].request_id.tolist()

    one = await client.post("/api/v1/feedback", json={"request_id": ids[0], "label": 1})
    many = await client.post(
        "/api/v1/feedback",
        json=[{"request_id": ids[1], "label": 0, "outcome": 12.5}, {"request_id": "x", "label": 1}],
    )
    batch = await client.post(
        "/api/v1/feedback",
        json={"records": [{"request_id": ids[0], "label": 0, "timestamp": "2026-03-02T08:00:00Z"}]},
    )

    assert (200, 1) == (one.status_code, one.json()["accepted"])
    assert {"count": 1, "request_ids": ["x"]} == many.json()["unknown"]
    assert 2 == many.json()["accepted"]
    assert (0, 1) == (batch.json()["accepted"], batch.json()["updated"])
    assert "30d" == batch.json()["lookback"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"request_id": "r", "label": {"a": 1}}, "label"),
        ({"label": 1}, "request_id"),
        ({"request_id": "r", "label": 1, "row": -1}, "row"),
        ({"request_id": "r", "label": 1, "outcome": "a lot"}, "outcome"),
        ({"records": [{"request_id": "r", "label": 1}, {"request_id": "s", "label": None}]},
         "records.1.label"),
        ([{"request_id": "r", "label": 1, "colour": "red"}], "0.colour"),
    ],
)  # fmt: skip
async def test_feedback_of_the_wrong_type_is_a_400_naming_the_field(
    client: httpx.AsyncClient, body: object, field: str
) -> None:
    r = await client.post("/api/v1/feedback", json=body)

    assert 400 == r.status_code
    assert "invalid_input" == r.json()["code"]
    assert field in r.json()["error"]


async def test_feedback_that_cannot_be_stored_at_all_is_a_400_with_reasons(
    client: httpx.AsyncClient, world: World
) -> None:
    rid = world.logged[0].request_id[0]

    r = await client.post("/api/v1/feedback", json={"request_id": rid, "label": "fraud"})

    assert 400 == r.status_code
    assert "expected a class of model 'fraud:1'" in r.json()["error"]


async def test_runs_results_and_alerts_are_served(client: httpx.AsyncClient, world: World) -> None:
    rows = world.logged[0]
    labels = truth(rows, seed=3)
    await client.post(
        "/api/v1/feedback",
        json=[
            {"request_id": i, "label": int(y)} for i, y in zip(rows.request_id, labels, strict=True)
        ],
    )

    ran = await client.post(
        "/api/v1/models/fraud/monitoring/runs",
        json={"since": T0.isoformat(), "until": (T0 + 2 * HOUR).isoformat()},
    )
    latest = await client.get("/api/v1/models/fraud/monitoring")
    amount = await client.get(
        "/api/v1/models/fraud/monitoring",
        params={"metric": "feature_drift", "feature": "amount", "since": T0.isoformat()},
    )
    alerts = await client.get("/api/v1/alerts", params={"model": "fraud", "state": "firing"})
    unknown = await client.get("/api/v1/models/nope/monitoring")

    assert 200 == ran.status_code
    assert "api" == ran.json()["run"]["trigger"]
    assert ["firing"] == [a["status"] for a in ran.json()["alerts"]]
    body = latest.json()
    assert ran.json()["run"]["id"] == body["runs"][0]["id"]
    assert len(ran.json()["results"]) == len(body["results"])
    labelled = [r for r in body["results"] if r["metric"] == "labelled_rows" and not r["segment"]]
    assert [200.0, 0.0] == [r["value"] for r in labelled]
    assert ["ok", "alert"] == [r["status"] for r in amount.json()["results"]]
    assert ["drift"] == [a["rule"] for a in alerts.json()]
    assert ["drift"] == [a["rule"] for a in body["firing"]]
    assert 404 == unknown.status_code


async def test_metrics_expose_the_latest_figures_and_firing_alerts(
    client: httpx.AsyncClient, world: World
) -> None:
    world.services.monitoring.run("fraud", since=T0, until=T0 + 2 * HOUR)

    r = await client.get("/metrics")
    text = r.text

    assert 200 == r.status_code
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    rows = 'metric="rows",model="fraud",segment="",version=""} 200.0'
    drift = 'feature="amount",metric="feature_drift",model="fraud",segment="",version="1"} 1.0'
    assert f'bascule_monitoring_value{{feature="",{rows}' in text
    assert f"bascule_monitoring_alert{{{drift}" in text
    assert 'bascule_alerts_firing{model="fraud",rule="drift",severity="warning"} 1.0' in text
    assert "bascule_monitoring_last_run_timestamp_seconds" in text


async def test_metrics_pass_promtool(client: httpx.AsyncClient, world: World) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if "promtool" in os.environ.get("BASCULE_TEST_REQUIRE", "").split(","):
            pytest.fail("promtool is not on PATH, but BASCULE_TEST_REQUIRE names promtool")
        pytest.skip("promtool is not on PATH (.ci/run unpacks it from the Debian package)")
    world.services.monitoring.run("fraud", since=T0, until=T0 + 2 * HOUR)
    text = (await client.get("/metrics")).text

    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )

    assert 0 == checked.returncode, checked.stdout + checked.stderr
