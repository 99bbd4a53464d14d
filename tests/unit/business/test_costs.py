"""CostMatrix, business_cost() and ThresholdOptimizer on cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bascule.business import (
    CostMatrix,
    ThresholdOptimizer,
    business_cost,
    check_optimizer,
)
from bascule.core.errors import InvalidInputError, NotReadyError
from bascule.monitoring import performance_report


@pytest.fixture
def log() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "label": [1, 1, 0, 0, 1, 0, None, 0],
            "prediction": [1, 0, 1, 0, 1, 0, 1, 0],
            "amount": [100.0, 250.0, 40.0, 10.0, 60.0, 5.0, 80.0, 1.0],
            "day": ["mon", "mon", "mon", "mon", "tue", "tue", "tue", "tue"],
        }
    )


def test_constant_prices_give_cost_and_cost_per_1000() -> None:
    costs = CostMatrix(fp_cost=5.0, fn_cost=50.0, tp_value=20.0)
    result = costs.evaluate([1, 1, 0, 0], [1, 0, 1, 0])

    assert (1, 1, 1, 1) == (result.tp, result.fp, result.fn, result.tn)
    assert 55.0 == result.cost
    assert 20.0 == result.value
    assert 35.0 == result.net_cost
    assert 8750.0 == result.per_1000


def test_a_missed_fraud_costs_its_amount(log) -> None:
    costs = CostMatrix(fp_cost=5.0, fn_cost_column="amount")
    known = log[log["label"].notna()]
    result = costs.evaluate(known["label"] == 1, known["prediction"] == 1, frame=known)

    assert 250.0 + 5.0 == result.cost  # the 250 fraud missed, one false alarm


def test_business_cost_per_window_counts_unlabelled_rows(log) -> None:
    table = business_cost(log, CostMatrix(fp_cost=5.0, fn_cost_column="amount"), by="day")

    assert ["mon", "tue"] == list(table["day"])
    assert [0, 1] == list(table["unlabelled"])
    assert [255.0, 0.0] == list(table["net_cost"])
    assert 255.0 / 4 * 1000 == table["per_1000"].iloc[0]


def test_performance_report_puts_costs_next_to_ml_metrics() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(2000)
    frame = pd.DataFrame({"score": p, "prediction": (p >= 0.5).astype(int)})
    frame["label"] = (rng.random(2000) < p).astype(int)
    frame["amount"] = rng.exponential(100.0, 2000)
    costs = CostMatrix(fp_cost=5.0, fn_cost_column="amount")
    table = performance_report(
        frame, task="classification", scores="score", window=1000, costs=costs
    ).to_frame()

    assert {"realised_f1", "estimated_f1", "net_cost", "cost_per_1000"} <= set(table.columns)
    assert (table["cost_per_1000"] > 0).all()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"fp_cost": math.nan}, "fp_cost"), ({"fn_cost": "ten"}, "fn_cost")],
)
def test_bad_prices_are_clear_errors(kwargs, field) -> None:
    with pytest.raises(InvalidInputError) as e:
        CostMatrix(**kwargs)

    assert field == e.value.field


def test_a_missing_price_column_is_a_clear_error(log) -> None:
    with pytest.raises(InvalidInputError, match="fraud_amount"):
        business_cost(log, CostMatrix(fn_cost_column="fraud_amount"))


def test_threshold_optimizer_passes_check_optimizer() -> None:
    check_optimizer(ThresholdOptimizer(CostMatrix(fp_cost=1.0, fn_cost=1.0)))


def test_threshold_optimizer_finds_the_bayes_threshold() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random(50_000)
    labels = rng.random(50_000) < scores
    optimizer = ThresholdOptimizer(CostMatrix(fp_cost=3.0, fn_cost=1.0)).fit(scores, labels)

    assert 0.75 == pytest.approx(optimizer.threshold_, abs=0.02)
    assert optimizer.cost_per_1000_ == optimizer.curve_["cost_per_1000"].min()
    assert (optimizer.predict(scores) == (scores >= optimizer.threshold_)).all()


def test_threshold_follows_per_row_prices() -> None:
    scores = np.array([0.9, 0.6, 0.4, 0.1])
    labels = np.array([1, 0, 1, 0])
    frame = pd.DataFrame({"amount": [10.0, 10.0, 1000.0, 10.0]})
    optimizer = ThresholdOptimizer(CostMatrix(fp_cost=20.0, fn_cost_column="amount"))
    optimizer.fit(scores, labels, frame)

    assert 0.25 == optimizer.threshold_  # catching the 1,000 fraud is worth a false alarm
    assert 20.0 == optimizer.evaluate(scores, labels, frame).net_cost


def test_predict_before_fit_is_not_ready() -> None:
    with pytest.raises(NotReadyError):
        ThresholdOptimizer(CostMatrix()).predict([0.2])
