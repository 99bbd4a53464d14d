"""What a binary classifier's decisions cost: a cost matrix, per window and per 1,000.

A :class:`CostMatrix` prices each outcome: the cost of a false positive (a good customer
blocked), of a false negative (a fraud let through), and the value of a true positive
(and of a true negative). Any of them can come from a column of the prediction log
instead of a constant — a missed fraud costs its transaction amount — so the total is
``sum over rows`` of the row's price. ``net_cost = costs - values``; ``per_1000`` scales
it to 1,000 predictions so windows of different sizes compare.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from bascule.core.errors import InvalidInputError
from bascule.core.monitoring_settings import CostSettings

__all__ = ["BusinessCost", "CostMatrix", "business_cost"]


@dataclass(frozen=True)
class BusinessCost:
    """Outcome counts and money of one set of decisions."""

    n: int
    tp: int
    fp: int
    fn: int
    tn: int
    cost: float
    """Sum of false-positive and false-negative costs."""
    value: float
    """Sum of true-positive and true-negative values."""
    net_cost: float
    per_1000: float
    """``net_cost`` per 1,000 predictions (NaN for no predictions)."""

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict."""
        return asdict(self)


@dataclass(frozen=True)
class CostMatrix:
    """Prices of a binary classifier's outcomes; ``*_column`` names override a constant.

    Args:
        fp_cost: Cost of a false positive.
        fn_cost: Cost of a false negative.
        tp_value: Value of a true positive (e.g. fraud stopped).
        tn_value: Value of a true negative.
        fp_cost_column: Column holding each row's false-positive cost.
        fn_cost_column: Column holding each row's false-negative cost (e.g. the amount).
        tp_value_column: Column holding each row's true-positive value.
        currency: Unit shown with the figures.
    """

    fp_cost: float = 0.0
    fn_cost: float = 0.0
    tp_value: float = 0.0
    tn_value: float = 0.0
    fp_cost_column: str | None = None
    fn_cost_column: str | None = None
    tp_value_column: str | None = None
    currency: str = ""

    def __post_init__(self) -> None:
        for name in ("fp_cost", "fn_cost", "tp_value", "tn_value"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise InvalidInputError.for_field(name, value, "a finite number")

    @classmethod
    def from_settings(
        cls, cost: CostSettings, *, column: Callable[[str | None], str | None] | None = None
    ) -> CostMatrix:
        """The matrix of a model's ``monitoring.models.<model>.cost`` settings.

        Args:
            cost: The settings.
            column: Maps a column named in the settings to the frame's column (monitoring
                maps ``outcome`` to the joined feedback's outcome); default: as named.
        """
        rename = column or (lambda name: name)
        return cls(
            fp_cost=cost.fp_cost,
            fn_cost=cost.fn_cost,
            tp_value=cost.tp_value,
            tn_value=cost.tn_value,
            fp_cost_column=rename(cost.fp_cost_column),
            fn_cost_column=rename(cost.fn_cost_column),
            tp_value_column=rename(cost.tp_value_column),
            currency=cost.currency,
        )

    @property
    def columns(self) -> list[str]:
        """The columns the matrix reads from the prediction log."""
        names = (self.fp_cost_column, self.fn_cost_column, self.tp_value_column)
        return [c for c in names if c is not None]

    def prices(self, frame: pd.DataFrame | None, n: int) -> dict[str, np.ndarray]:
        """Per-row ``fp``, ``fn`` (costs) and ``tp``, ``tn`` (values) for ``n`` rows.

        Raises:
            InvalidInputError: A named column is missing or not finite numbers.
        """
        out = {
            "fp": np.full(n, float(self.fp_cost)),
            "fn": np.full(n, float(self.fn_cost)),
            "tp": np.full(n, float(self.tp_value)),
            "tn": np.full(n, float(self.tn_value)),
        }
        for key, column in (
            ("fp", self.fp_cost_column),
            ("fn", self.fn_cost_column),
            ("tp", self.tp_value_column),
        ):
            if column is None:
                continue
            if frame is None or column not in frame.columns:
                present = [] if frame is None else [str(c) for c in frame.columns]
                raise InvalidInputError.for_field(f"{key}_column", column, f"one of {present}")
            values = pd.to_numeric(frame[column].astype(object), errors="coerce")
            array = np.asarray(values.to_numpy(dtype=float, na_value=np.nan), dtype=float)
            if array.size != n or not np.all(np.isfinite(array)):
                raise InvalidInputError.for_field(
                    column, "missing or non-numeric values", "numbers"
                )
            out[key] = array
        return out

    def evaluate(
        self, labels: Any, predicted: Any, *, frame: pd.DataFrame | None = None
    ) -> BusinessCost:
        """Cost of the decisions ``predicted`` (True = positive) given the truth ``labels``.

        Args:
            labels: Actual positives, booleans (or 0/1).
            predicted: Predicted positives, booleans (or 0/1).
            frame: The same rows of the prediction log, when prices come from columns.

        Returns:
            Counts, costs, values, net cost and net cost per 1,000 predictions.

        Raises:
            InvalidInputError: Lengths differ, values are not booleans, or a price column
                is missing or not numeric.
        """
        y, p = _booleans(labels, "labels"), _booleans(predicted, "predicted")
        if y.size != p.size:
            raise InvalidInputError.for_field("predicted", p.size, f"{y.size} values")
        price = self.prices(frame, y.size)
        tp, fp, fn, tn = y & p, ~y & p, y & ~p, ~y & ~p
        cost = float(price["fp"][fp].sum() + price["fn"][fn].sum())
        value = float(price["tp"][tp].sum() + price["tn"][tn].sum())
        net = cost - value
        per_1000 = net / y.size * 1000.0 if y.size else math.nan
        return BusinessCost(
            int(y.size), int(tp.sum()), int(fp.sum()), int(fn.sum()), int(tn.sum()),
            cost, value, net, per_1000,
        )  # fmt: skip


def _booleans(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == bool:
        return array.ravel()
    if array.dtype.kind in "iuf" and np.all(np.isin(array, (0, 1))):
        return array.astype(bool).ravel()
    raise InvalidInputError.for_field(name, str(array.dtype), "booleans or 0/1")


def business_cost(
    frame: pd.DataFrame,
    costs: CostMatrix,
    *,
    label: str = "label",
    prediction: str = "prediction",
    positive: Any = 1,
    by: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Business cost of a prediction log, overall or per group (window, segment…).

    Rows without a label (not arrived yet) are left out and counted in ``unlabelled``.

    Args:
        frame: The prediction log.
        costs: The cost matrix.
        label: Column of actual outcomes.
        prediction: Column of decisions.
        positive: The value meaning "positive" in both columns.
        by: Columns to group by (e.g. a window key and a segment).

    Returns:
        One row per group: the group keys, ``n``, ``unlabelled``, ``tp``, ``fp``, ``fn``,
        ``tn``, ``cost``, ``value``, ``net_cost`` and ``per_1000``.

    Raises:
        InvalidInputError: A column is missing or a price column is not numeric.
    """
    keys = [] if by is None else [by] if isinstance(by, str) else list(by)
    for name in [label, prediction, *keys]:
        if name not in frame.columns:
            present = [str(c) for c in frame.columns]
            raise InvalidInputError.for_field("column", name, f"one of {present}")
    groups = frame.groupby(keys, sort=True, dropna=False) if keys else [((), frame)]
    rows = []
    for key, rows_of in groups:
        known = rows_of[rows_of[label].notna()]
        result = costs.evaluate(
            (known[label] == positive).to_numpy(),
            (known[prediction] == positive).to_numpy(),
            frame=known,
        )
        group = tuple(key)  # grouping by a list always gives tuples
        head = dict(zip(keys, group, strict=True)) | {"unlabelled": len(rows_of) - len(known)}
        rows.append(head | result.to_dict())
    columns = [*keys, "n", "unlabelled", "tp", "fp", "fn", "tn", "cost", "value", "net_cost"]
    return pd.DataFrame(rows, columns=[*columns, "per_1000"])
