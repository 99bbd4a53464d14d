"""Alerts end to end: rules over real runs, a webhook on a loopback HTTP server, the schedule."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tests.integration.monitoring.conftest import HOUR, T0, MakeWorld, sample

from bascule.http.control.app import create_app
from bascule.http.control.background import run_schedule
from bascule.monitoring.notifiers import AlertEvent
from bascule.testing import serve_in_thread

RULES = [
    {"name": "drift", "metric": "drifted_features", "comparison": ">=", "threshold": 1,
     "severity": "critical", "description": "Check the upstream feed, then retrain."},
    {"name": "amount-drift", "metric": "feature_drift", "feature": "*", "comparison": ">",
     "threshold": 0.15, "for_windows": 2},
]  # fmt: skip


class Hook:
    """A loopback webhook receiver: the JSON bodies it got, in order."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self._lock = threading.Lock()
        self.failures = 0

    async def receive(self, request: Request) -> JSONResponse:
        with self._lock:
            if self.failures:
                self.failures -= 1
                return JSONResponse({"error": "busy"}, status_code=503)
            self.bodies.append(await request.json())
        return JSONResponse({"ok": True})


@pytest.fixture
def hook() -> Iterator[tuple[Hook, str]]:
    receiver = Hook()
    app = Starlette(routes=[Route("/hook", receiver.receive, methods=["POST"])])
    with serve_in_thread(app) as url:
        yield receiver, f"{url}/hook"


def test_alerts_fire_once_and_resolve_to_a_loopback_webhook(
    make_world: MakeWorld, hook: tuple[Hook, str]
) -> None:
    receiver, url = hook
    receiver.failures = 1  # the first delivery is retried
    notifiers = [{"kind": "webhook", "url": url, "backoff_s": 0.01}, {"kind": "log"}]
    world = make_world(notifiers=notifiers, models={"fraud": {"alerts": RULES}})
    heard: list[AlertEvent] = []
    world.services.monitoring.on_alert(heard.append)
    world.log(sample(300, seed=1), hour=0)
    world.log(sample(300, seed=2, shift=2.5), hour=1)
    world.log(sample(300, seed=3, shift=2.5), hour=2)
    world.log(sample(300, seed=4), hour=3)
    world.clock.advance(5 * 3600)
    monitoring = world.services.monitoring

    runs = [
        monitoring.run("fraud", since=T0 + h * HOUR, until=T0 + (h + 1) * HOUR) for h in range(4)
    ]
    rerun = monitoring.run("fraud", since=T0 + 2 * HOUR, until=T0 + 3 * HOUR)

    assert [[], ["firing"], ["firing"], ["resolved", "resolved"]] == [
        [e.status for e in r.events] for r in runs
    ]
    assert [] == rerun.events  # windows already seen: no second notification
    assert [("firing", "drift"), ("firing", "amount-drift"), ("resolved", "drift"),
            ("resolved", "amount-drift")] == [
        (b["status"], b["alert"]["rule"]) for b in receiver.bodies
    ]  # fmt: skip
    fired = receiver.bodies[0]
    assert "critical" == fired["alert"]["severity"]
    assert "Check the upstream feed, then retrain." == fired["description"]
    assert fired["message"].startswith("[critical] fraud: drifted_features = ")
    assert "amount" == receiver.bodies[1]["alert"]["feature"]
    assert receiver.bodies[2]["message"].startswith("[resolved] fraud: drifted_features = 0")
    assert [b["status"] for b in receiver.bodies] == [e.status for e in heard]
    stored = monitoring.alerts("fraud")
    assert {"resolved"} == {a.state for a in stored}
    assert all(a.notified and a.resolve_notified for a in stored)
    drift = next(a for a in stored if a.rule == "drift")
    assert 5 == drift.attempts  # fire: webhook 503 + retry, log; resolve: webhook, log
    assert int((T0 + 2 * HOUR).timestamp() * 1000) == drift.window_end


def test_a_webhook_that_stays_down_is_recorded_not_raised(make_world: MakeWorld) -> None:
    notifiers = [{"kind": "webhook", "url": "http://127.0.0.1:9/hook", "retries": 1,
                  "backoff_s": 0.01, "timeout_s": 1}]  # fmt: skip
    world = make_world(notifiers=notifiers, models={"fraud": {"alerts": RULES[:1]}})
    world.log(sample(300, seed=2, shift=2.5), hour=0)

    report = world.services.monitoring.run("fraud", since=T0, until=T0 + HOUR)
    (alert,) = world.services.monitoring.alerts("fraud")

    assert ["firing"] == [e.status for e in report.events]
    assert (False, 2) == (alert.notified, alert.attempts)
    assert "webhook: ConnectError" in (alert.last_error or "")


def test_a_failing_subscriber_does_not_stop_the_others(make_world: MakeWorld) -> None:
    world = make_world(models={"fraud": {"alerts": RULES[:1]}})
    heard: list[str] = []

    def broken(event: AlertEvent) -> None:
        raise RuntimeError("subscriber bug")

    world.services.monitoring.on_alert(broken)
    world.services.monitoring.on_alert(lambda e: heard.append(e.alert.rule))
    world.log(sample(300, seed=2, shift=2.5), hour=0)

    world.services.monitoring.run("fraud", since=T0, until=T0 + HOUR)

    assert ["drift"] == heard


def test_the_schedule_runs_configured_models_when_due(make_world: MakeWorld) -> None:
    world = make_world(schedule="15m", window="1h")
    world.log(sample(100, seed=5), hour=0)
    world.clock.advance(45 * 60)  # now 10:45; the rows are in the last hour
    scheduler = world.services.monitor_scheduler()
    assert scheduler is not None

    planned = scheduler.tick()
    world.clock.advance(15 * 60)
    due = scheduler.tick()

    assert [] == planned
    assert ["schedule"] == [r.run.trigger for r in due]
    assert T0 + timedelta(hours=1, minutes=15) == scheduler.next_due
    assert [r.run.id for r in due] == [r.id for r in world.services.monitoring.runs("fraud")]


def test_no_schedule_no_scheduler(make_world: MakeWorld) -> None:
    assert make_world().services.monitor_scheduler() is None


def test_a_cron_schedule_is_understood(make_world: MakeWorld) -> None:
    scheduler = make_world(schedule="0 * * * *").services.monitor_scheduler()
    assert scheduler is not None

    scheduler.tick()

    assert T0 + HOUR == scheduler.next_due


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_server_task_ticks_the_scheduler_and_stops_with_the_app(
    make_world: MakeWorld,
) -> None:
    world = make_world(schedule="1m")
    world.log(sample(50, seed=6), hour=0)
    world.clock.advance(30 * 60)
    scheduler = world.services.monitor_scheduler()
    assert scheduler is not None
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        world.clock.advance(seconds)
        if len(slept) == 3:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await run_schedule(scheduler, sleep=sleep)
    app = create_app(world.services)
    async with app.router.lifespan_context(app):
        await asyncio.sleep(0)

    assert [60.0, 60.0, 60.0] == slept
    assert 2 == len(world.services.monitoring.runs("fraud"))
