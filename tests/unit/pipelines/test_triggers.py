"""RetrainCoordinator and Scheduler: one retraining per model at a time, triggers coalesced."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from bascule.core.errors import InvalidInputError
from bascule.pipelines import (
    CoordinatorEvent,
    RetrainCoordinator,
    RetrainRequest,
    Scheduler,
    Trigger,
    run_inline,
)
from bascule.testing import FakeClock


class BlockingRetrain:
    """A retraining function that blocks until released and measures its concurrency."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Semaphore(0)
        self.requests: list[RetrainRequest] = []
        self._lock = threading.Lock()
        self._active: dict[str, int] = {}
        self.max_active: dict[str, int] = {}

    def __call__(self, request: RetrainRequest) -> str:
        with self._lock:
            self.requests.append(request)
            n = self._active.get(request.model, 0) + 1
            self._active[request.model] = n
            self.max_active[request.model] = max(self.max_active.get(request.model, 0), n)
        self.started.release()
        self.release.wait(timeout=10)
        with self._lock:
            self._active[request.model] -= 1
        return f"trained {request.model}"


def test_triggers_during_a_run_are_coalesced_into_one_follow_up(clock: FakeClock) -> None:
    retrain = BlockingRetrain()
    events: list[CoordinatorEvent] = []
    coordinator = RetrainCoordinator(retrain, clock=clock, on_event=events.append)

    assert "started" == coordinator.trigger("fraud", "alert", "drift on amount", psi=0.4)
    assert retrain.started.acquire(timeout=5)
    outcomes: list[str] = []
    lock = threading.Lock()

    def fire(i: int) -> None:
        outcome = coordinator.trigger("fraud", "manual", f"by hand {i}")
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert coordinator.is_running("fraud")
    assert 16 == len(coordinator.pending("fraud"))
    retrain.release.set()

    assert coordinator.wait_idle(timeout=10)
    assert ["coalesced"] * 16 == outcomes
    assert 2 == len(retrain.requests)
    assert ["alert"] == retrain.requests[0].kinds
    assert {"psi": 0.4} == retrain.requests[0].triggers[0].details
    assert 16 == len(retrain.requests[1].triggers)
    assert {f"by hand {i}" for i in range(16)} == {t.reason for t in retrain.requests[1].triggers}
    assert {"fraud": 1} == retrain.max_active
    history = coordinator.history("fraud")
    assert ["finished", "finished"] == [r.status for r in history]
    assert "trained fraud" == history[0].result
    kinds = [e.kind for e in coordinator.events()]
    assert ["started", "finished", "started", "finished"] == [k for k in kinds if k != "coalesced"]
    assert 16 == kinds.count("coalesced")
    assert kinds == [e.kind for e in events]
    assert not coordinator.is_running("fraud")


def test_different_models_retrain_at_the_same_time(clock: FakeClock) -> None:
    retrain = BlockingRetrain()
    coordinator = RetrainCoordinator(retrain, clock=clock)

    coordinator.trigger("fraud", "manual", "by hand")
    coordinator.trigger("churn", "manual", "by hand")
    assert retrain.started.acquire(timeout=5)
    assert retrain.started.acquire(timeout=5)

    assert ["churn", "fraud"] == coordinator.running()
    retrain.release.set()
    assert coordinator.wait_idle(timeout=10)
    assert [] == coordinator.running()


@dataclass(frozen=True)
class Outcome:
    ok: bool


def test_failures_and_errors_are_recorded_and_the_coordinator_goes_on(clock: FakeClock) -> None:
    results: list[object] = [Outcome(ok=False), RuntimeError("cluster down"), Outcome(ok=True)]

    def retrain(request: RetrainRequest) -> object:
        value = results.pop(0)
        if isinstance(value, Exception):
            raise value
        return value

    coordinator = RetrainCoordinator(retrain, clock=clock, spawn=lambda fn, name: fn())
    for _ in range(3):
        coordinator.trigger("fraud", "schedule", "nightly")

    history = coordinator.history()
    assert ["failed", "error", "finished"] == [r.status for r in history]
    assert "RuntimeError: cluster down" == history[1].error


def test_new_labels_trigger_at_threshold(clock: FakeClock) -> None:
    seen: list[RetrainRequest] = []
    coordinator = RetrainCoordinator(seen.append, clock=clock, spawn=lambda fn, name: fn())
    coordinator.watch_labels("fraud", 100)

    assert coordinator.add_labels("fraud", 60) is None
    assert 60 == coordinator.labels_since_last_run("fraud")
    assert "started" == coordinator.add_labels("fraud", 50)

    assert 1 == len(seen)
    assert "new_labels" == seen[0].triggers[0].kind
    assert {"rows": 110, "threshold": 100} == seen[0].triggers[0].details
    assert 0 == coordinator.labels_since_last_run("fraud")
    assert coordinator.add_labels("churn", 10**6) is None  # not watched


def test_any_retraining_resets_the_label_count(clock: FakeClock) -> None:
    coordinator = RetrainCoordinator(lambda r: None, clock=clock, spawn=lambda fn, name: fn())
    coordinator.watch_labels("fraud", 100)
    coordinator.add_labels("fraud", 90)

    coordinator.trigger("fraud", "manual", "by hand")

    assert 0 == coordinator.labels_since_last_run("fraud")


def test_bad_triggers_are_rejected(clock: FakeClock) -> None:
    coordinator = RetrainCoordinator(lambda r: None, clock=clock)

    with pytest.raises(InvalidInputError, match="model name"):
        coordinator.trigger("bad name!", "manual", "x")
    with pytest.raises(InvalidInputError, match="trigger kind"):
        coordinator.submit(Trigger("fraud", "whim", "x", clock.now_utc()))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="threshold"):
        coordinator.watch_labels("fraud", 0)
    with pytest.raises(InvalidInputError, match="label count"):
        coordinator.add_labels("fraud", -1)


def test_scheduler_fires_due_schedules_by_the_fake_clock() -> None:
    clock = FakeClock(datetime(2026, 1, 1, 0, 0, tzinfo=UTC))
    seen: list[RetrainRequest] = []
    coordinator = RetrainCoordinator(seen.append, clock=clock, spawn=lambda fn, name: fn())
    scheduler = Scheduler(coordinator, clock=clock)
    scheduler.add("fraud", "*/15 * * * *")
    scheduler.add("fraud", "*/15 * * * *")  # the same pair again: no second schedule

    assert [("fraud", "*/15 * * * *", datetime(2026, 1, 1, 0, 15, tzinfo=UTC))] == (
        scheduler.schedules()
    )
    clock.advance(14 * 60)
    assert [] == scheduler.tick()
    clock.advance(60)
    assert [("fraud", "started")] == scheduler.tick()
    assert [] == scheduler.tick()  # fired once for that minute
    clock.advance(3600)
    assert [("fraud", "started")] == scheduler.tick()  # four due times missed → one trigger

    assert 2 == len(seen)
    assert "schedule" == seen[0].triggers[0].kind
    assert 0 == seen[0].triggers[0].details["missed"]
    assert 3 == seen[1].triggers[0].details["missed"]
    assert datetime(2026, 1, 1, 1, 30, tzinfo=UTC) == scheduler.schedules()[0][2]


def test_scheduler_run_loop_uses_the_injected_sleep() -> None:
    clock = FakeClock(datetime(2026, 1, 1, 0, 0, tzinfo=UTC))
    seen: list[RetrainRequest] = []
    coordinator = RetrainCoordinator(seen.append, clock=clock, spawn=lambda fn, name: fn())
    scheduler = Scheduler(coordinator, clock=clock, sleep=clock.advance)
    scheduler.add("fraud", "@hourly")

    ticks = scheduler.run(threading.Event(), interval_s=60, max_ticks=24 * 60 + 1)

    assert 24 * 60 + 1 == ticks
    assert 24 == len(seen)
    scheduler.remove("fraud")
    assert [] == scheduler.schedules()


def test_scheduled_trigger_during_a_run_is_coalesced() -> None:
    clock = FakeClock(datetime(2026, 1, 1, 0, 0, tzinfo=UTC))
    retrain = BlockingRetrain()
    coordinator = RetrainCoordinator(retrain, clock=clock)
    scheduler = Scheduler(coordinator, clock=clock)
    scheduler.add("fraud", "* * * * *")
    coordinator.trigger("fraud", "alert", "performance drop")
    assert retrain.started.acquire(timeout=5)

    clock.advance(60)
    assert [("fraud", "coalesced")] == scheduler.tick()
    retrain.release.set()

    assert coordinator.wait_idle(timeout=10)
    assert [["alert"], ["schedule"]] == [r.kinds for r in retrain.requests]


def test_closing_refuses_triggers_drops_pending_ones_and_lets_the_run_finish(
    clock: FakeClock,
) -> None:
    retrain = BlockingRetrain()
    events: list[CoordinatorEvent] = []
    coordinator = RetrainCoordinator(retrain, clock=clock, on_event=events.append)
    coordinator.trigger("fraud", "manual", "first")
    assert retrain.started.acquire(timeout=5)
    coordinator.trigger("fraud", "alert", "drift")

    idle = coordinator.close(timeout=0)
    refused = coordinator.trigger("churn", "manual", "too late")
    retrain.release.set()

    assert not idle
    assert "closed" == refused
    assert coordinator.wait_idle(timeout=10)
    assert 1 == len(retrain.requests)
    assert ["started", "coalesced", "dropped", "finished"] == [e.kind for e in events]
    assert ("alert",) == tuple(t.kind for t in events[2].triggers)
    assert events[3].record is not None
    assert "trained fraud" == events[3].record.result


def test_run_inline_runs_in_the_caller_and_history_is_bounded(clock: FakeClock) -> None:
    threads: list[str] = []
    coordinator = RetrainCoordinator(
        lambda r: threads.append(threading.current_thread().name),
        clock=clock,
        spawn=run_inline,
        max_history=3,
    )

    for i in range(5):
        coordinator.trigger("fraud", "manual", f"run {i}")

    assert [threading.current_thread().name] * 5 == threads
    assert ["run 2", "run 3", "run 4"] == [r.triggers[0].reason for r in coordinator.history()]
