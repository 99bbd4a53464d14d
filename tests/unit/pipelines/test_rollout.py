"""The rollout state machine and the canary verdict, as pure functions."""

from __future__ import annotations

import pytest

from bascule.core.errors import ConflictError
from bascule.core.project_settings import RolloutSettings
from bascule.pipelines.rollout import RolloutPlan, RolloutState, evaluate_canary

SETTINGS = RolloutSettings(
    shadow_requests=100,
    canary_percent=5,
    canary_requests=1000,
    max_error_rate_increase=0.01,
    max_cost_increase=0.05,
)
CHAMPION = {"requests": 9000, "errors": 90, "cost_per_1000": 1000.0}


def kpis(requests: int, errors: int = 0, cost: float | None = 1000.0) -> dict[str, float]:
    out = {"requests": float(requests), "errors": float(errors)}
    if cost is not None:
        out["cost_per_1000"] = cost
    return out


def test_canary_continues_until_it_has_served_enough_requests() -> None:
    assert "continue" == evaluate_canary(CHAMPION, kpis(999, errors=9), SETTINGS)


def test_canary_is_promoted_when_errors_and_cost_stay_within_bounds() -> None:
    assert "promote" == evaluate_canary(CHAMPION, kpis(1000, errors=15, cost=1049.0), SETTINGS)


def test_canary_is_rolled_back_when_its_cost_rose_too_much() -> None:
    assert "rollback" == evaluate_canary(CHAMPION, kpis(1000, cost=1051.0), SETTINGS)


def test_unknown_costs_do_not_block_promotion() -> None:
    assert "promote" == evaluate_canary(CHAMPION, kpis(1000, cost=None), SETTINGS)


def test_canary_with_many_errors_is_rolled_back_early() -> None:
    too_early = kpis(99, errors=50)
    early = kpis(100, errors=50)

    assert "continue" == evaluate_canary(CHAMPION, too_early, SETTINGS)
    assert "rollback" == evaluate_canary(CHAMPION, early, SETTINGS)


def test_error_rate_may_be_given_directly() -> None:
    champion = {"requests": 10.0, "error_rate": 0.0}

    assert "rollback" == evaluate_canary(
        champion, {"requests": 1000.0, "error_rate": 0.02}, SETTINGS
    )


def test_plan_goes_shadow_then_canary_then_full() -> None:
    plan = RolloutPlan(SETTINGS)

    state = plan.start("fraud", challenger_version=4, champion_version=3)
    assert ("shadow", "shadow", True) == (state.stage, state.mode, state.active)

    state = plan.observe(state, CHAMPION, kpis(60))
    assert ("shadow", 60) == (state.stage, state.requests)

    state = plan.observe(state, CHAMPION, kpis(100))
    assert ("canary", 0, "canary") == (state.stage, state.requests, state.mode)

    state = plan.observe(state, CHAMPION, kpis(400))
    assert ("canary", 400) == (state.stage, state.requests)

    state = plan.observe(state, CHAMPION, kpis(1000))
    assert ("full", None, False) == (state.stage, state.mode, state.active)


def test_plan_without_shadow_starts_in_canary() -> None:
    plan = RolloutPlan(SETTINGS.model_copy(update={"shadow_requests": 0}))

    assert "canary" == plan.start("fraud", challenger_version=2, champion_version=1).stage


def test_shadow_errors_roll_the_challenger_back() -> None:
    plan = RolloutPlan(SETTINGS)
    state = plan.start("fraud", challenger_version=4, champion_version=3)

    state = plan.observe(state, CHAMPION, kpis(20, errors=10))

    assert "rolled_back" == state.stage
    assert "shadow error rate" in state.reason


def test_canary_rollback_ends_the_rollout() -> None:
    plan = RolloutPlan(SETTINGS.model_copy(update={"shadow_requests": 0}))
    state = plan.start("fraud", challenger_version=4, champion_version=3)

    state = plan.observe(state, CHAMPION, kpis(1000, cost=2000.0))

    assert "rolled_back" == state.stage
    assert not state.active
    with pytest.raises(ConflictError, match="is over") as e:
        plan.observe(state, CHAMPION, kpis(2000))
    assert "conflict" == e.value.code


def test_state_round_trips_through_its_dict() -> None:
    state = RolloutPlan(SETTINGS).start("fraud", challenger_version=4, champion_version=None)

    assert state == RolloutState.from_dict({**state.to_dict(), "unknown": 1})
