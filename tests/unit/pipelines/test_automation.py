"""RetrainAutomation: alerts, the cron schedule, new labels and by hand, into one coordinator,
on a FakeClock; what it does is on the model's history."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from bascule.core.monitoring_records import Alert
from bascule.core.project_settings import RetrainPolicy
from bascule.monitoring.feedback import FeedbackResult
from bascule.monitoring.notifiers import AlertEvent
from bascule.pipelines import RetrainAutomation, RetrainOutcome, RetrainRequest, run_inline
from bascule.testing import FakeClock
from bascule.wiring import Services

MODEL = "fraud"
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # a Monday


class Retrain:
    """A retraining function that records its requests; ``hold()`` makes it block until
    ``release``."""

    def __init__(self) -> None:
        self.requests: list[RetrainRequest] = []
        self.started = threading.Semaphore(0)
        self.release = threading.Event()
        self.release.set()
        self.outcome: Any = "trained"

    def hold(self) -> None:
        self.release.clear()

    def __call__(self, request: RetrainRequest) -> Any:
        self.requests.append(request)
        self.started.release()
        assert self.release.wait(timeout=10)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def retrain() -> Retrain:
    return Retrain()


@pytest.fixture
def make(clock: FakeClock, retrain: Retrain) -> Iterator[Any]:
    built: list[RetrainAutomation] = []

    def factory(registry: Any = None, spawn: Any = run_inline, **policy: Any) -> RetrainAutomation:
        automation = RetrainAutomation(
            MODEL,
            RetrainPolicy(**policy),
            retrain=retrain,
            registry=registry,
            clock=clock,
            spawn=spawn,
        )
        built.append(automation)
        return automation

    yield factory
    retrain.release.set()
    for automation in built:
        automation.close(timeout=10)


def alert_event(
    rule: str = "drift", status: str = "firing", model: str = MODEL, value: float = 0.4
) -> AlertEvent:
    alert = Alert(
        id=7,
        model=model,
        rule=rule,
        metric="feature_drift",
        feature="amount",
        severity="critical",
        state=status,  # type: ignore[arg-type]
        comparison=">",
        threshold=0.2,
        value=value,
        window_start=0,
        window_end=3_600_000,
        fired_at=3_600_000,
        message="feature_drift of amount is 0.4 > 0.2",
    )
    return AlertEvent(status, alert, alert.message)  # type: ignore[arg-type]


def labelled(**counts: int) -> FeedbackResult:
    n = sum(counts.values())
    return FeedbackResult(n, n, 0, 0, lookback="30d", labelled=counts)


def test_a_firing_alert_in_on_alerts_starts_exactly_one_retraining(make, retrain) -> None:
    automation = make(on_alerts=["drift"])

    outcome = automation.alert(alert_event(value=float("nan")))

    assert "started" == outcome
    assert 1 == len(retrain.requests)
    trigger = retrain.requests[0].triggers[0]
    assert ("alert", MODEL) == (trigger.kind, trigger.model)
    assert "alert 'drift' fired: feature_drift of amount is 0.4 > 0.2" == trigger.reason
    assert {"alert_id": 7, "rule": "drift", "value": None, "threshold": 0.2} == {
        k: trigger.details[k] for k in ("alert_id", "rule", "value", "threshold")
    }
    assert ["finished"] == [r.status for r in automation.coordinator.history()]


def test_resolves_other_rules_and_other_models_do_not_trigger(make, retrain) -> None:
    automation = make(on_alerts=["drift"])

    assert automation.alert(alert_event(status="resolved")) is None
    assert automation.alert(alert_event(rule="latency")) is None
    assert automation.alert(alert_event(model="churn")) is None

    assert [] == retrain.requests


def test_no_alert_triggers_when_on_alerts_is_empty(make, retrain) -> None:
    automation = make()

    assert automation.alert(alert_event()) is None
    assert [] == retrain.requests


def test_triggers_during_a_run_are_coalesced_into_one_follow_up(make, retrain) -> None:
    automation = make(spawn=None, on_alerts=["drift"], min_new_labels=10)
    retrain.hold()

    assert "started" == automation.alert(alert_event())
    assert retrain.started.acquire(timeout=5)
    assert "coalesced" == automation.alert(alert_event())
    assert "coalesced" == automation.retrain_now("by hand")
    assert "coalesced" == automation.feedback(labelled(fraud=12))
    state = automation.state()
    retrain.release.set()
    assert automation.wait_idle(timeout=10)

    assert state["running"]
    assert ["alert", "manual", "new_labels"] == [t["kind"] for t in state["pending"]]
    assert 2 == len(retrain.requests)
    assert ["alert", "manual", "new_labels"] == retrain.requests[1].kinds
    assert 3 == len(retrain.requests[1].triggers)
    done = automation.state()
    assert not done["running"]
    assert [] == done["pending"]
    assert [["alert", "manual", "new_labels"], ["alert"]] == [
        [t["kind"] for t in r["triggers"]] for r in done["recent"]
    ]


def test_the_cron_schedule_fires_at_the_right_simulated_time(make, clock, retrain) -> None:
    automation = make(schedule="0 3 * * *")  # 03:00 UTC daily; T0 is 10:00

    assert datetime(2026, 1, 6, 3, 0, tzinfo=UTC) == automation.next_due()
    assert 17 * 3600 == automation.seconds_until_due()
    clock.advance(17 * 3600 - 60)
    assert [] == automation.tick()
    clock.advance(60)
    assert ["started"] == automation.tick()
    assert [] == automation.tick()
    clock.advance(24 * 3600)
    assert ["started"] == automation.tick()

    assert ["schedule", "schedule"] == [r.triggers[0].kind for r in retrain.requests]
    assert "2026-01-06T03:00:00+00:00" == retrain.requests[0].triggers[0].details["due_at"]
    assert datetime(2026, 1, 8, 3, 0, tzinfo=UTC) == automation.next_due()


def test_without_a_schedule_tick_does_nothing(make, clock, retrain) -> None:
    automation = make()

    clock.advance(365 * 86_400)

    assert automation.seconds_until_due() is None
    assert [] == automation.tick()
    assert [] == retrain.requests


def test_new_labels_count_across_ingests_per_model_and_reset_after_a_run(make, retrain) -> None:
    automation = make(min_new_labels=100)

    assert automation.feedback(labelled(fraud=40, churn=500)) is None
    assert automation.feedback(labelled(churn=80)) is None
    assert automation.feedback(labelled(fraud=59)) is None
    assert 99 == automation.state()["labels_since_last_run"]
    assert "started" == automation.feedback(labelled(fraud=1))
    assert 0 == automation.state()["labels_since_last_run"]
    assert automation.feedback(labelled(fraud=99)) is None
    automation.retrain_now()  # any retraining resets the count
    assert automation.feedback(labelled(fraud=99)) is None

    assert ["new_labels", "manual"] == [r.triggers[0].kind for r in retrain.requests]
    assert {"rows": 100, "threshold": 100} == retrain.requests[0].triggers[0].details
    assert 99 == automation.state()["labels_since_last_run"]


def test_labels_are_counted_but_never_trigger_without_min_new_labels(make, retrain) -> None:
    automation = make()

    assert automation.feedback(labelled(fraud=10**6)) is None
    assert [] == retrain.requests


def test_closing_refuses_triggers_and_drops_pending_follow_ups(make, clock, retrain) -> None:
    automation = make(spawn=None, schedule="@hourly", on_alerts=["drift"], min_new_labels=1)
    retrain.hold()
    automation.retrain_now()
    assert retrain.started.acquire(timeout=5)
    automation.alert(alert_event())

    assert not automation.close(timeout=0)
    assert "closed" == automation.retrain_now()
    assert "closed" == automation.alert(alert_event())
    assert automation.feedback(labelled(fraud=5)) is None
    clock.advance(7200)
    assert [] == automation.tick()
    assert automation.next_due() is None
    retrain.release.set()
    assert automation.wait_idle(timeout=10)

    assert 1 == len(retrain.requests)
    kinds = [e.kind for e in automation.coordinator.events()]
    assert ["started", "coalesced", "dropped", "finished"] == kinds
    assert not automation.state()["automated"]


# -- on the model's history -------------------------------------------------------------------


@pytest.fixture
def registered(services: Services) -> Services:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"amount": rng.normal(size=200), "age": rng.normal(size=200)})
    model = LogisticRegression().fit(frame, (frame.amount > 0).astype(int))
    services.registry.register(MODEL, model, sample=frame)
    return services


def outcome(status: str, **fields: Any) -> RetrainOutcome:
    return RetrainOutcome(MODEL, status, fields.pop("reason", "because"), **fields)  # type: ignore[arg-type]


def history(services: Services) -> list[Any]:
    return [e for e in services.registry.history(MODEL) if e.kind.startswith("retrain_")]


def test_starts_coalesced_triggers_and_ends_are_on_the_history(
    make, retrain, registered: Services
) -> None:
    automation = make(registry=registered.registry, spawn=None, on_alerts=["drift"])
    retrain.outcome = outcome("finished", version=2, alias="challenger", run_id="r1")
    retrain.hold()
    automation.alert(alert_event())
    assert retrain.started.acquire(timeout=5)
    automation.retrain_now("by hand")
    retrain.release.set()
    assert automation.wait_idle(timeout=10)

    events = history(registered)
    assert [
        "retrain_started",
        "retrain_coalesced",
        "retrain_finished",
        "retrain_started",
        "retrain_finished",
    ] == [e.kind for e in events]
    assert "alert 'drift' fired" in events[0].reason
    assert "alert" == events[0].details["triggers"][0]["kind"]
    assert "by hand" == events[1].reason
    finished = events[2]
    assert (2, "finished", "challenger", "r1") == (
        finished.version,
        finished.details["status"],
        finished.details["alias"],
        finished.details["run_id"],
    )
    assert "v2 registered, gate failed: because" == finished.reason
    assert ["manual"] == events[4].details["triggers"]


def test_failures_are_recorded_once_and_refusals_and_errors_are_named(
    make, retrain, registered: Services
) -> None:
    automation = make(registry=registered.registry)

    retrain.outcome = outcome("failed", reason="step 'train' failed: ValueError: x")
    automation.retrain_now()  # the Retrainer records retrain_failed itself: not repeated
    retrain.outcome = outcome("refused", reason="a retraining of 'fraud' is already running")
    automation.retrain_now()
    retrain.outcome = RuntimeError("cluster down")
    automation.retrain_now()

    ends = [(e.kind, e.reason) for e in history(registered) if e.kind != "retrain_started"]
    assert [
        ("retrain_refused", "a retraining of 'fraud' is already running"),
        ("retrain_failed", "RuntimeError: cluster down"),
    ] == ends
    assert ["failed", "failed", "error"] == [
        r["status"] for r in reversed(automation.state()["recent"])
    ]


def test_a_model_not_registered_yet_is_only_logged(make, retrain, services: Services) -> None:
    automation = make(registry=services.registry)

    assert "started" == automation.retrain_now()

    assert [] == services.registry.list_models()
    assert 1 == len(retrain.requests)
