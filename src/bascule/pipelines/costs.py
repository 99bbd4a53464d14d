"""What serving a model version costs in compute, beside what its decisions cost the business.

Measured serving CPU seconds per prediction times a price per core-hour gives the compute cost
per 1,000 predictions::

    compute per 1,000 = cpu_seconds_per_prediction * 1,000 / 3,600 * price_per_core_hour

:func:`compute_cost` turns a measurement (CPU seconds spent over a number of predictions)
into a :class:`ComputeCost`; :func:`usage_compute_costs` does it for every version from the
inference server's usage log (the CPU seconds of each version's batches and the rows it
answered, read with :func:`bascule.store.usage.read_usage` over a time range);
:func:`version_costs` sets it beside the business cost per 1,000 predictions of the same
version (from monitoring), so a faster but slightly worse model and a slower but better one
compare in one currency. Everything here is pure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from bascule.core.errors import InvalidInputError

__all__ = [
    "SECONDS_PER_HOUR",
    "ComputeCost",
    "VersionCost",
    "compute_cost",
    "cost_per_1000_predictions",
    "usage_compute_costs",
    "version_costs",
]

SECONDS_PER_HOUR = 3600.0


def _check(name: str, value: object, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError.for_field(name, value, "a finite number")
    number = float(value)
    if number < 0 or (positive and number == 0):
        expected = "a number > 0" if positive else "a number >= 0"
        raise InvalidInputError.for_field(name, value, expected)
    return number


def cost_per_1000_predictions(
    cpu_seconds_per_prediction: float, price_per_core_hour: float
) -> float:
    """Compute cost of 1,000 predictions.

    Args:
        cpu_seconds_per_prediction: CPU seconds (summed over cores) one prediction takes.
        price_per_core_hour: Price of one core for one hour.

    Returns:
        ``cpu_seconds_per_prediction * 1000 / 3600 * price_per_core_hour``.

    Raises:
        InvalidInputError: a negative or non-finite argument.
    """
    cpu = _check("cpu_seconds_per_prediction", cpu_seconds_per_prediction)
    price = _check("price_per_core_hour", price_per_core_hour)
    return cpu * 1000.0 / SECONDS_PER_HOUR * price


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError.for_field("predictions", value, "an integer >= 1")
    return value


@dataclass(frozen=True)
class ComputeCost:
    """The compute cost of one version's predictions, from a measurement."""

    version: int | None
    predictions: int
    cpu_seconds: float
    cpu_seconds_per_prediction: float
    price_per_core_hour: float
    cost_per_1000: float
    currency: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict."""
        return asdict(self)


def compute_cost(
    cpu_seconds: float,
    predictions: int,
    price_per_core_hour: float,
    *,
    version: int | None = None,
    currency: str = "",
) -> ComputeCost:
    """Compute cost per 1,000 predictions from CPU seconds measured over ``predictions``.

    Args:
        cpu_seconds: Serving CPU seconds spent (process CPU time, all cores).
        predictions: Predictions (rows) answered in that time; must be > 0.
        price_per_core_hour: Price of one core for one hour.
        version: The model version measured, recorded as is.
        currency: Unit of the price.

    Returns:
        The cost, with the CPU seconds per prediction it came from.

    Raises:
        InvalidInputError: negative or non-finite CPU seconds or price, or no predictions.
    """
    cpu = _check("cpu_seconds", cpu_seconds)
    count = _count(predictions)
    per_prediction = cpu / count
    return ComputeCost(
        version=version,
        predictions=count,
        cpu_seconds=cpu,
        cpu_seconds_per_prediction=per_prediction,
        price_per_core_hour=_check("price_per_core_hour", price_per_core_hour),
        cost_per_1000=cost_per_1000_predictions(per_prediction, price_per_core_hour),
        currency=currency,
    )


class VersionUsage(Protocol):
    """One usage window of a version (``bascule.store.usage.UsageRecord``)."""

    @property
    def model_version(self) -> int: ...
    @property
    def cpu_seconds(self) -> float: ...
    @property
    def rows(self) -> int: ...


def usage_compute_costs(
    records: Iterable[VersionUsage], price_per_core_hour: float, *, currency: str = ""
) -> dict[int, ComputeCost]:
    """The compute cost of every version in usage windows of one model.

    A version's CPU seconds (its batches' onnxruntime calls) are summed over the windows and
    divided by the rows it answered on every route (shadow copies are computed too);
    versions that answered nothing are left out.

    Args:
        records: Usage windows of one model (``read_usage(store, model, start=, end=)``).
        price_per_core_hour: Price of one core for one hour
            (``settings.project.price_per_core_hour``).
        currency: Unit of the price.

    Returns:
        Version → its :class:`ComputeCost`.

    Raises:
        InvalidInputError: a negative or non-finite price or CPU time.
    """
    cpu: dict[int, float] = {}
    rows: dict[int, int] = {}
    for r in records:
        cpu[r.model_version] = cpu.get(r.model_version, 0.0) + r.cpu_seconds
        rows[r.model_version] = rows.get(r.model_version, 0) + r.rows
    return {
        version: compute_cost(
            cpu[version], rows[version], price_per_core_hour, version=version, currency=currency
        )
        for version in sorted(cpu)
        if rows[version] > 0
    }


@dataclass(frozen=True)
class VersionCost:
    """One version's business cost and compute cost per 1,000 predictions, side by side."""

    version: int
    business_cost_per_1000: float | None
    """Net business cost per 1,000 predictions (monitoring); None when not measured."""
    compute_cost_per_1000: float | None
    """Compute cost per 1,000 predictions; None when not measured or no price is set."""
    total_per_1000: float | None
    """The sum when both are known."""
    currency: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict."""
        return asdict(self)


def version_costs(
    business: Mapping[int, float | None],
    compute: Mapping[int, ComputeCost],
    *,
    currency: str = "",
) -> list[VersionCost]:
    """Business and compute cost per 1,000 predictions of every version in either mapping.

    Args:
        business: Version → net business cost per 1,000 predictions (None or NaN: unknown).
        compute: Version → its measured :class:`ComputeCost`.
        currency: Unit of both (the cost matrix's currency).

    Returns:
        One row per version, sorted by version.
    """
    rows = []
    for version in sorted(set(business) | set(compute)):
        raw = business.get(version)
        kpi = None if raw is None or not math.isfinite(raw) else float(raw)
        measured = compute.get(version)
        cpu = None if measured is None else measured.cost_per_1000
        total = None if kpi is None or cpu is None else kpi + cpu
        rows.append(VersionCost(version, kpi, cpu, total, currency))
    return rows
