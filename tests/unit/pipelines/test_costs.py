"""Compute cost per 1,000 predictions from CPU seconds and a price per core-hour."""

from __future__ import annotations

import math

import pytest

from bascule.core.errors import InvalidInputError
from bascule.pipelines.costs import (
    compute_cost,
    cost_per_1000_predictions,
    version_costs,
)


def test_one_core_second_per_prediction_at_3_60_per_core_hour_is_1_per_1000() -> None:
    assert 1.0 == pytest.approx(cost_per_1000_predictions(1.0, 3.6))


def test_compute_cost_from_a_measurement() -> None:
    measured = compute_cost(2.0, 4000, 0.09, version=3, currency="EUR")

    assert 0.0005 == pytest.approx(measured.cpu_seconds_per_prediction)
    assert 0.0005 * 1000 / 3600 * 0.09 == pytest.approx(measured.cost_per_1000)
    assert (3, 4000, "EUR") == (measured.version, measured.predictions, measured.currency)


@pytest.mark.parametrize(
    ("cpu", "predictions", "price", "field"),
    [
        (-1.0, 10, 0.1, "cpu_seconds"),
        (math.nan, 10, 0.1, "cpu_seconds"),
        (1.0, 0, 0.1, "predictions"),
        (1.0, True, 0.1, "predictions"),
        (1.0, 10, -0.1, "price_per_core_hour"),
        (1.0, 10, math.inf, "price_per_core_hour"),
    ],
)
def test_bad_measurements_name_the_field(
    cpu: float, predictions: int, price: float, field: str
) -> None:
    with pytest.raises(InvalidInputError, match=field) as e:
        compute_cost(cpu, predictions, price)

    assert "invalid_input" == e.value.code


def test_version_costs_set_compute_beside_business_cost() -> None:
    rows = version_costs(
        {1: 900.0, 2: 800.0, 3: math.nan},
        {2: compute_cost(3600.0, 1000, 1.0), 4: compute_cost(360.0, 1000, 1.0)},
        currency="EUR",
    )

    assert [1, 2, 3, 4] == [r.version for r in rows]
    assert (900.0, None, None) == (
        rows[0].business_cost_per_1000,
        rows[0].compute_cost_per_1000,
        rows[0].total_per_1000,
    )
    assert 801.0 == pytest.approx(rows[1].total_per_1000)
    assert rows[2].business_cost_per_1000 is None
    assert 0.1 == pytest.approx(rows[3].compute_cost_per_1000)
    assert "EUR" == rows[3].to_dict()["currency"]
