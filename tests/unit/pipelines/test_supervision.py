"""RolloutSupervisor over a real SQLite registry, prediction log, usage log and feedback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from bascule.core.errors import InvalidInputError
from bascule.pipelines.costs import usage_compute_costs
from bascule.pipelines.rollout import current_rollout, record_rollout
from bascule.pipelines.supervision import RolloutSupervisor
from bascule.registry.rollouts import RolloutState
from bascule.store.predictions import PredictionLog, PredictionRecord
from bascule.store.usage import RouteUsage, UsageLog, UsageRecord, read_usage
from bascule.testing import FakeClock, make_services
from bascule.wiring import Services

ROLLOUT: dict[str, Any] = {"shadow_requests": 20, "canary_percent": 25.0, "canary_requests": 40}


@pytest.fixture(scope="module")
def fitted() -> tuple[Any, Any, pd.DataFrame]:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(200, 2)), columns=["x0", "x1"])
    y = (frame.x0 > 0).astype(int)
    return LogisticRegression().fit(frame, y), LogisticRegression().fit(frame, 1 - y), frame


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def services(tmp_path: Path, clock: FakeClock, fitted: Any) -> Iterator[Services]:
    svc = make_services(
        tmp_path / "home",
        clock=clock,
        monitoring={"models": {"m": {"cost": {"fp_cost": 1.0, "fn_cost": 10.0}}}},
    )
    v1, v2, frame = fitted
    svc.registry.register("m", v1, sample=frame)
    svc.registry.register("m", v2, sample=frame)
    svc.registry.set_alias("m", "champion", 1)
    svc.registry.set_alias("m", "challenger", 2)
    yield svc
    svc.close()


def start(server: Server, stage: Any) -> RolloutState:
    """Record a rollout state (what the retraining pipeline or the supervisor does)."""
    state = RolloutState("m", 2, 1, stage, **ROLLOUT)
    record_rollout(server.services.registry, state)
    server.clock.advance(1)
    return state


class Server:
    """Writes what an inference server would: usage windows and prediction-log rows."""

    def __init__(self, services: Services, clock: FakeClock) -> None:
        self.services, self.clock = services, clock
        self.usage = UsageLog(services.artifacts)
        self.log = PredictionLog(services.artifacts, clock=clock)
        self.count = 0

    def answer(
        self,
        version: int,
        route: str,
        policy: str,
        requests: int,
        *,
        errors: int = 0,
        predicted: int = 1,
        cpu_seconds: float = 0.0,
    ) -> list[str]:
        ids = [f"r{self.count + i}" for i in range(requests)]
        self.count += requests
        now = self.clock.now_utc()
        for rid in ids:
            self.log.append(
                PredictionRecord(
                    rid,
                    "m",
                    version,
                    now,
                    {"x0": np.zeros(1), "x1": np.zeros(1)},
                    {"label": np.array([predicted]), "proba_1": np.array([0.5])},
                    latency_ms=1.0,
                    route=route,
                    policy=policy,
                )
            )
        self.log.flush()
        window = UsageRecord(
            "m",
            version,
            policy,
            now - timedelta(seconds=1),
            now,
            cpu_seconds=cpu_seconds,
            batches=requests,
            batch_rows=requests + errors,
            routes={route: RouteUsage(requests, requests, errors)},
        )
        self.usage.write([window])
        self.clock.advance(1)
        return ids

    def label(self, ids: list[str], label: int) -> None:
        result = self.services.monitoring.ingest_feedback(
            [{"request_id": rid, "label": label} for rid in ids]
        )
        assert len(ids) == result.accepted


@pytest.fixture
def server(services: Services, clock: FakeClock) -> Server:
    return Server(services, clock)


def supervisor(services: Services, **kwargs: Any) -> RolloutSupervisor:
    return RolloutSupervisor.from_services(services, min_labelled_rows=10, **kwargs)


def test_no_active_rollout_no_result(services: Services) -> None:
    assert [] == supervisor(services).tick()


def test_shadow_moves_to_canary_once_the_copies_are_answered(
    services: Services, server: Server
) -> None:
    server.answer(1, "champion", "", 50)  # before the rollout: not counted
    start(server, "shadow")
    server.answer(1, "champion", "shadow", 12)
    server.answer(2, "shadow", "shadow", 12)
    sup = supervisor(services)

    first = sup.tick()
    server.answer(1, "champion", "shadow", 10)
    server.answer(2, "shadow", "shadow", 10)
    second = sup.tick()

    assert [("shadow", 12)] == [(r.after.stage, r.after.requests) for r in first if r.after]
    assert (12, 0) == (first[0].champion.requests, first[0].champion.errors)
    assert not first[0].changed
    assert second[0].changed
    assert "canary" == current_rollout(services.registry, "m").stage  # type: ignore[union-attr]
    assert 22 == second[0].challenger.requests


def test_shadow_errors_roll_back_and_drop_the_challenger(
    services: Services, server: Server
) -> None:
    start(server, "shadow")
    server.answer(1, "champion", "shadow", 10)
    server.answer(2, "shadow", "shadow", 8, errors=2)

    [result] = supervisor(services).tick()

    assert "rolled_back" == result.after.stage  # type: ignore[union-attr]
    assert (10, 2) == (result.challenger.requests, result.challenger.errors)
    assert {"champion": 1} == services.registry.get_model("m").aliases


def test_canary_counts_only_its_own_stage(services: Services, server: Server) -> None:
    start(server, "shadow")
    server.answer(2, "shadow", "shadow", 30, errors=5)  # the shadow stage's errors
    start(server, "canary")
    server.answer(2, "shadow", "shadow", 3)  # a server still shadowing: not the canary's
    server.answer(1, "champion", "canary", 30)
    server.answer(2, "challenger", "canary", 10)

    [result] = supervisor(services).tick()

    assert "canary" == result.after.stage  # type: ignore[union-attr]
    assert (10, 0) == (result.challenger.requests, result.challenger.errors)
    assert 30 == result.champion.requests


def test_canary_error_rate_rolls_back_early(services: Services, server: Server) -> None:
    start(server, "canary")
    server.answer(1, "champion", "canary", 30)
    server.answer(2, "challenger", "canary", 6, errors=4)

    [result] = supervisor(services).tick()

    assert "rolled_back" == result.after.stage  # type: ignore[union-attr]
    assert "error rate" in result.after.reason  # type: ignore[union-attr]
    assert 1 == services.registry.get_model("m").aliases["champion"]
    assert "challenger" not in services.registry.get_model("m").aliases


def test_canary_waits_for_labels_then_promotes_the_cheaper_challenger(
    services: Services, server: Server
) -> None:
    start(server, "canary")
    old = server.answer(1, "champion", "canary", 40, predicted=0)
    new = server.answer(2, "challenger", "canary", 40, predicted=1)
    sup = supervisor(services)

    waiting = sup.tick()
    server.label(old[:12] + new[:12], 1)  # the champion missed them: 10 each
    done = sup.tick()

    assert waiting[0].waiting_for_labels
    assert "canary" == waiting[0].after.stage  # type: ignore[union-attr]
    assert 40 == waiting[0].after.requests  # type: ignore[union-attr]
    assert None is waiting[0].challenger.cost_per_1000
    assert (12, 12) == (done[0].champion.labelled, done[0].challenger.labelled)
    assert 10_000.0 == done[0].champion.cost_per_1000
    assert 0.0 == done[0].challenger.cost_per_1000
    assert "full" == done[0].after.stage  # type: ignore[union-attr]
    assert {"champion": 2} == services.registry.get_model("m").aliases


def test_canary_costlier_challenger_is_rolled_back(services: Services, server: Server) -> None:
    start(server, "canary")
    old = server.answer(1, "champion", "canary", 40, predicted=1)
    new = server.answer(2, "challenger", "canary", 40, predicted=0)
    server.label(old[:10] + new[:10], 1)

    [result] = supervisor(services).tick()

    assert (0.0, 10_000.0) == (result.champion.cost_per_1000, result.challenger.cost_per_1000)
    assert "rolled_back" == result.after.stage  # type: ignore[union-attr]
    assert 1 == services.registry.get_model("m").aliases["champion"]


def test_model_without_cost_matrix_is_promoted_on_requests_and_errors(
    tmp_path: Path, clock: FakeClock, fitted: Any
) -> None:
    services = make_services(tmp_path / "plain", clock=clock)
    v1, v2, frame = fitted
    services.registry.register("m", v1, sample=frame)
    services.registry.register("m", v2, sample=frame)
    services.registry.set_alias("m", "champion", 1)
    services.registry.set_alias("m", "challenger", 2)
    server = Server(services, clock)
    start(server, "canary")
    server.answer(1, "champion", "canary", 100)
    server.answer(2, "challenger", "canary", 40)

    [result] = RolloutSupervisor.from_services(services).tick()

    assert "full" == result.after.stage  # type: ignore[union-attr]
    assert not result.waiting_for_labels
    assert 2 == services.registry.get_model("m").aliases["champion"]
    services.close()


def test_usage_cpu_seconds_become_compute_cost_per_version(
    services: Services, server: Server
) -> None:
    server.answer(1, "champion", "", 100, cpu_seconds=0.36)
    server.answer(2, "shadow", "shadow", 50, cpu_seconds=0.18)
    server.answer(2, "shadow", "shadow", 50, cpu_seconds=0.18)

    costs = usage_compute_costs(read_usage(services.artifacts, "m"), 0.5, currency="EUR")

    assert [1, 2] == sorted(costs)
    assert 0.0036 == pytest.approx(costs[1].cpu_seconds_per_prediction)
    assert 0.0036 * 1000 / 3600 * 0.5 == pytest.approx(costs[2].cost_per_1000)
    assert (100, "EUR") == (costs[2].predictions, costs[2].currency)


def test_supervisor_refuses_a_minimum_below_one(services: Services) -> None:
    with pytest.raises(InvalidInputError, match="min_labelled_rows") as e:
        RolloutSupervisor.from_services(services, min_labelled_rows=0)

    assert "invalid_input" == e.value.code
