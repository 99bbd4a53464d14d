"""The promotion gate as a pure function: margin, guard metrics, no champion, holdout size."""

from __future__ import annotations

import math

import pytest

from bascule.core.project_settings import GateSettings
from bascule.pipelines.gate import GateDecision, decide, regression

CHAMPION = {"rows": 1000.0, "business_cost": 1000.0, "roc_auc": 0.80, "log_loss": 0.20}


def figures(**overrides: float) -> dict[str, float]:
    return {**CHAMPION, **overrides}


def test_no_champion_passes_with_reason_no_champion() -> None:
    decision = decide(figures(rows=3), None, GateSettings(min_holdout_rows=500))

    assert decision.passed
    assert "no champion" == decision.reason
    assert decision.champion is None
    assert [] == decision.failures


def test_challenger_beating_the_margin_passes_with_both_figures() -> None:
    decision = decide(
        figures(business_cost=900.0, roc_auc=0.81), CHAMPION, GateSettings(), champion_version=3
    )

    assert decision.passed
    assert decision.improvement == pytest.approx(0.10)
    assert "beats champion v3 on business_cost by 10.00%" in decision.reason
    assert 900.0 == decision.challenger["business_cost"]
    assert 1000.0 == (decision.champion or {})["business_cost"]
    assert decision.guards["roc_auc"]["ok"]


@pytest.mark.parametrize(
    ("cost", "passed"),
    [(981.0, False), (980.0, True), (1000.0, False), (1010.0, False)],
)
def test_improvement_must_reach_the_relative_margin(cost: float, passed: bool) -> None:
    decision = decide(figures(business_cost=cost), CHAMPION, GateSettings(margin=0.02))

    assert passed == decision.passed


def test_zero_margin_still_needs_a_strictly_better_challenger() -> None:
    same = decide(figures(), CHAMPION, GateSettings(margin=0.0))
    better = decide(figures(business_cost=999.0), CHAMPION, GateSettings(margin=0.0))

    assert not same.passed
    assert "not better" in same.reason
    assert better.passed


def test_negative_costs_net_of_value_compare_by_magnitude() -> None:
    champion = figures(business_cost=-100.0)

    decision = decide(figures(business_cost=-110.0), champion, GateSettings(margin=0.05))

    assert decision.passed
    assert decision.improvement == pytest.approx(0.10)


def test_guard_regression_beyond_allowed_fails_even_when_cost_improves() -> None:
    settings = GateSettings(guard_metrics={"roc_auc": 0.01, "log_loss": 0.05})

    decision = decide(figures(business_cost=500.0, roc_auc=0.78), CHAMPION, settings)

    assert not decision.passed
    assert 1 == len(decision.failures)
    assert "guard roc_auc regressed by 0.02" in decision.reason
    assert decision.guards["roc_auc"]["regression"] == pytest.approx(0.02)
    assert decision.guards["log_loss"]["ok"]


def test_guard_regression_within_allowed_passes() -> None:
    decision = decide(
        figures(business_cost=500.0, roc_auc=0.795, log_loss=0.24),
        CHAMPION,
        GateSettings(guard_metrics={"roc_auc": 0.01, "log_loss": 0.05}),
    )

    assert decision.passed


def test_too_few_holdout_rows_fails_and_says_how_many() -> None:
    decision = decide(
        figures(rows=120, business_cost=10.0), CHAMPION, GateSettings(min_holdout_rows=200)
    )

    assert not decision.passed
    assert 120 == decision.holdout_rows
    assert "too few holdout rows: 120" in decision.reason


def test_missing_or_nan_figures_cannot_pass() -> None:
    no_cost = decide({"rows": 1000.0, "roc_auc": 0.9}, CHAMPION, GateSettings())
    nan_auc = decide(figures(business_cost=1.0, roc_auc=math.nan), CHAMPION, GateSettings())

    assert not no_cost.passed
    assert "business_cost cannot be compared" in no_cost.reason
    assert not nan_auc.passed
    assert "guard roc_auc cannot be compared" in nan_auc.reason


def test_every_failed_check_is_listed() -> None:
    decision = decide(figures(rows=10, business_cost=2000.0, roc_auc=0.5), CHAMPION, GateSettings())

    assert 3 == len(decision.failures)
    assert decision.reason == "; ".join(decision.failures)


def test_a_higher_is_better_gate_metric() -> None:
    settings = GateSettings(metric="roc_auc", margin=0.01, guard_metrics={})

    assert decide(figures(roc_auc=0.82), CHAMPION, settings).passed
    assert not decide(figures(roc_auc=0.805), CHAMPION, settings).passed


def test_regression_direction_per_metric() -> None:
    assert 0.1 == pytest.approx(regression("roc_auc", 0.9, 0.8))
    assert 0.1 == pytest.approx(regression("log_loss", 0.2, 0.3))
    assert -50.0 == regression("business_cost", 100.0, 50.0)


def test_decision_round_trips_through_json_values() -> None:
    decision = decide(figures(business_cost=1.0, log_loss=math.nan), CHAMPION, GateSettings())

    data = decision.to_dict()
    again = GateDecision.from_dict(data)

    assert data["challenger"]["log_loss"] is None
    assert decision.passed == again.passed
    assert decision.reason == again.reason
    assert math.isnan(again.challenger["log_loss"])
    assert decision.guards == again.guards
