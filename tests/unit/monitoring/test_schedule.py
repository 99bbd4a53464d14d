"""The monitoring schedule, driven by a FakeClock: no sleeps, no wall-clock time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bascule.core.errors import ModelNotFoundError
from bascule.core.monitoring_settings import MonitoringSettings
from bascule.monitoring.schedule import MonitorScheduler, every
from bascule.testing import FakeClock

T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)


class FakeMonitoring:
    """Records the runs it is asked for; ``gone`` models are not registered."""

    def __init__(self, *models: str, gone: tuple[str, ...] = ()) -> None:
        self.settings = MonitoringSettings(models={m: {} for m in models})
        self.gone = gone
        self.calls: list[tuple[str, str]] = []

    def run(self, model: str, *, trigger: str) -> str:
        self.calls.append((model, trigger))
        if model in self.gone:
            raise ModelNotFoundError(model)
        return f"report of {model}"


def test_first_tick_plans_and_due_ticks_run_every_configured_model() -> None:
    clock = FakeClock(T0)
    service = FakeMonitoring("fraud", "churn")
    scheduler = MonitorScheduler(service, clock, next_after=every(timedelta(minutes=15)))  # type: ignore[arg-type]

    planned = scheduler.tick()
    clock.advance(14 * 60)
    early = scheduler.tick()
    left = scheduler.seconds_until_due()
    clock.advance(60)
    due = scheduler.tick()

    assert ([], [], 60.0) == (planned, early, left)
    assert ["report of fraud", "report of churn"] == due
    assert [("fraud", "schedule"), ("churn", "schedule")] == service.calls
    assert T0 + timedelta(minutes=30) == scheduler.next_due


def test_a_late_tick_runs_once_and_plans_from_now() -> None:
    clock = FakeClock(T0)
    service = FakeMonitoring("fraud")
    scheduler = MonitorScheduler(service, clock, next_after=every(timedelta(minutes=15)))  # type: ignore[arg-type]
    scheduler.tick()

    clock.advance(3 * 3600)
    scheduler.tick()
    scheduler.tick()

    assert 1 == len(service.calls)
    assert T0 + timedelta(hours=3, minutes=15) == scheduler.next_due


def test_a_failing_model_does_not_stop_the_others() -> None:
    clock = FakeClock(T0)
    service = FakeMonitoring("gone", "fraud", gone=("gone",))
    scheduler = MonitorScheduler(service, clock, next_after=every(timedelta(minutes=1)))  # type: ignore[arg-type]
    scheduler.tick()
    clock.advance(60)

    assert ["report of fraud"] == scheduler.tick()
