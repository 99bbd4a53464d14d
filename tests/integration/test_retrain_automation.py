"""Automatic retraining in the control-plane server: feedback posted over HTTP reaches
``min_new_labels`` and the project's real pipeline registers a new version; the retraining
schedule is ticked by the server's background loop; the state is served read-only."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import numpy as np
import pytest
from tests.integration.test_retraining import (  # noqa: F401 - fixtures used by name
    MODEL,
    add_rows,
    champion_project,
    one_thread,
    project_settings,
)

from bascule.core.project_settings import RetrainPolicy
from bascule.http.control.app import create_app
from bascule.http.control.background import Every, run_schedule
from bascule.pipelines import RetrainAutomation, RetrainRequest
from bascule.store.predictions import PredictionLog, PredictionRecord
from bascule.testing import FakeClock, make_services
from bascule.wiring import Services, build_services


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def project(champion_project: Path, tmp_path: Path) -> Path:  # noqa: F811 - the fixture
    """A copy of a project made by ``bascule init`` whose v1 is champion (on-alerts
    ``drift``, schedule ``0 3 * * 1``)."""
    folder = tmp_path / "project"
    shutil.copytree(champion_project, folder)
    return folder


def log_answers(services: Services, n: int) -> list[str]:
    """``n`` answers of ``fraud`` v1 in the prediction log, a minute ago, as the inference
    server writes them; returns their request ids."""
    log = PredictionLog(services.artifacts, clock=services.clock)
    at = services.clock.now_utc() - timedelta(minutes=1)
    ids = [f"req-{i}" for i in range(n)]
    for rid in ids:
        log.append(
            PredictionRecord(
                rid,
                MODEL,
                1,
                at,
                {"amount": np.array([42.0])},
                {"label": np.array([0]), "proba_1": np.array([0.1], dtype=np.float32)},
                1.0,
                route="champion",
            )
        )
    log.close()
    return ids


def labels(ids: list[str], label: int = 0) -> list[dict[str, Any]]:
    return [{"request_id": rid, "label": label} for rid in ids]


@pytest.mark.anyio
async def test_feedback_over_http_reaches_min_new_labels_and_a_new_version_is_registered(
    project: Path,
) -> None:
    add_rows(project, 4000, 14, shift=1.0)
    services = build_services(project_settings(project, retraining={"min_new_labels": 40}))
    try:
        ids = log_answers(services, 60)
        app = create_app(services, project_dir=project)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://control") as client,
        ):
            automation: RetrainAutomation = app.state.retraining
            first = await client.post("/api/v1/feedback", json=labels(ids[:30]))
            again = await client.post("/api/v1/feedback", json=labels(ids[:30], 1))
            before = (await client.get(f"/api/v1/models/{MODEL}/retraining")).json()
            second = await client.post("/api/v1/feedback", json={"records": labels(ids[30:])})
            assert await anyio.to_thread.run_sync(automation.wait_idle, 600)
            after = (await client.get(f"/api/v1/models/{MODEL}/retraining")).json()
        versions = services.registry.list_versions(MODEL)
        history = [e for e in services.registry.history(MODEL) if e.kind.startswith("retrain_")]
        run = services.tracking.get_run(after["recent"][0]["outcome"]["run_id"])
    finally:
        services.close()

    assert [{MODEL: 30}, {}, {MODEL: 30}] == [r.json()["labelled"] for r in (first, again, second)]
    assert (True, False, 30, []) == (
        before["automated"],
        before["running"],
        before["labels_since_last_run"],
        before["recent"],
    )
    assert {"on_alerts": ["drift"], "schedule": "0 3 * * 1", "min_new_labels": 40} == before[
        "policy"
    ]
    assert (False, 0, []) == (after["running"], after["labels_since_last_run"], after["pending"])
    [done] = after["recent"]
    assert "finished" == done["status"]
    assert [("new_labels", {"rows": 60, "threshold": 40})] == [
        (t["kind"], t["details"]) for t in done["triggers"]
    ]
    assert (2, "finished") == (done["outcome"]["version"], done["outcome"]["status"])
    assert [1, 2] == [v.version for v in versions]
    assert "new_labels" == run.tags["bascule.triggers"]
    assert ["retrain_started", "retrain_finished"] == [e.kind for e in history]
    assert "60 new labelled rows (threshold 40)" == history[0].reason
    assert 2 == history[1].version
    assert automation.coordinator.closed
    assert app.state.retraining is None


# -- the server's loop, and the state without automation -------------------------------------


@pytest.mark.anyio
async def test_the_background_loop_ticks_the_retraining_schedule() -> None:
    clock = FakeClock(datetime(2026, 1, 5, 10, 0, tzinfo=UTC))
    seen: list[RetrainRequest] = []
    automation = RetrainAutomation(
        MODEL,
        RetrainPolicy(schedule="*/5 * * * *"),
        retrain=seen.append,
        clock=clock,
        spawn=lambda fn, name: fn(),
    )
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)
        if len(slept) == 12:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await run_schedule(automation, sleep=sleep, name="scheduled retraining")

    assert [60.0] * 12 == slept  # due in 5 minutes, but the loop looks at least once a minute
    assert [
        datetime(2026, 1, 5, 10, 5, tzinfo=UTC),
        datetime(2026, 1, 5, 10, 10, tzinfo=UTC),
    ] == [r.triggers[0].at for r in seen]


@pytest.mark.anyio
async def test_a_plain_function_runs_every_interval_in_the_loop() -> None:
    clock = FakeClock()
    calls: list[float] = []
    job = Every(lambda: calls.append(clock.monotonic()), 5.0, clock=clock)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)
        if len(slept) == 3:
            raise asyncio.CancelledError

    assert 0.0 == job.seconds_until_due()
    with pytest.raises(asyncio.CancelledError):
        await run_schedule(job, sleep=sleep, name="every 5 s")

    assert [5.0, 5.0, 5.0] == slept
    assert [1000.0, 1005.0, 1010.0] == calls


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[Services]:
    services = make_services(tmp_path / "home")
    yield services
    services.close()


@pytest.mark.anyio
async def test_without_a_project_nothing_is_automated(plain: Services) -> None:
    app = create_app(plain)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://control") as client,
    ):
        automation = app.state.retraining
        unknown = await client.get(f"/api/v1/models/{MODEL}/retraining")

    assert automation is None
    assert (404, "not_found") == (unknown.status_code, unknown.json()["code"])


@pytest.mark.anyio
async def test_the_state_says_why_a_model_is_not_automated(project: Path) -> None:
    services = build_services(project_settings(project, retraining={"schedule": "@daily"}))
    try:
        app = create_app(services, project_dir=project)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://control") as client:
            outside = (await client.get(f"/api/v1/models/{MODEL}/retraining")).json()
            async with app.router.lifespan_context(app):
                inside = (await client.get(f"/api/v1/models/{MODEL}/retraining")).json()
    finally:
        services.close()

    assert not outside["automated"]
    assert "runs in 'bascule server'" in outside["reason"]
    assert inside["automated"]
    assert "@daily" == inside["policy"]["schedule"]
    assert inside["next_scheduled"].endswith("T00:00:00+00:00")
    assert ["drift"] == inside["policy"]["on_alerts"]
