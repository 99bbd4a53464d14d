"""Choose a classifier's decision threshold by what its decisions cost (sklearn style).

``ThresholdOptimizer(costs).fit(scores, labels, frame)`` tries every distinct score of
the validation rows as a threshold (a row is positive when ``score >= threshold``),
prices the decisions with the :class:`~bascule.business.costs.CostMatrix` (per-row prices
from columns included), and keeps the cheapest. All thresholds are priced in one pass
over the rows sorted by score. The fitted threshold sits halfway between the lowest
score it calls positive and the next one down, so it makes the same decisions on the
validation rows and is not glued to one of them.

:func:`check_optimizer` is the contract every built-in optimizer passes.
"""

from __future__ import annotations

import math
from typing import Any, Self

import numpy as np
import pandas as pd

from bascule.business.costs import BusinessCost, CostMatrix
from bascule.core.errors import InvalidInputError, NotReadyError

__all__ = ["ThresholdOptimizer", "check_optimizer"]

CURVE_POINTS = 512


def _scores(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel() if np.size(values) else np.zeros(0)
    if array.size == 0 or not np.all(np.isfinite(array)):
        raise InvalidInputError.for_field(name, f"{array.size} values", "finite scores, >= 1")
    return array


class ThresholdOptimizer:
    """Picks the decision threshold that minimises the business cost on validation data.

    Args:
        costs: Prices of the outcomes.
    """

    def __init__(self, costs: CostMatrix) -> None:
        self.costs = costs

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters."""
        return {"costs": self.costs}

    def fit(self, scores: Any, labels: Any, frame: pd.DataFrame | None = None) -> Self:
        """Find the cheapest threshold.

        Args:
            scores: Positive-class scores of the validation rows.
            labels: Actual positives (booleans or 0/1).
            frame: The same rows, when prices come from columns.

        Returns:
            The optimizer, with ``threshold_``, ``cost_per_1000_`` (at the threshold),
            ``curve_`` (threshold → net cost per 1,000 at about 512 thresholds, the best
            among them) and ``n_samples_``.

        Raises:
            InvalidInputError: Empty or non-finite scores, labels not 0/1, lengths differ,
                or a price column is missing.
        """
        if not isinstance(self.costs, CostMatrix):
            raise InvalidInputError.for_field("costs", type(self.costs).__name__, "a CostMatrix")
        s = _scores(scores, "scores")
        y = np.asarray(labels)
        if y.size != s.size or not (y.dtype == bool or np.all(np.isin(y, (0, 1)))):
            raise InvalidInputError.for_field("labels", f"{y.size} values", f"{s.size} 0/1 values")
        y = y.astype(bool)
        price = self.costs.prices(frame, s.size)
        # all rows negative, then each row switched to positive changes the cost by delta
        base = float(price["fn"][y].sum() - price["tn"][~y].sum())
        delta = np.where(y, -price["tp"] - price["fn"], price["fp"] + price["tn"])
        order = np.argsort(-s, kind="stable")
        s_sorted, d_sorted = s[order], delta[order]
        starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
        distinct = s_sorted[starts]
        totals = base + np.r_[0.0, np.cumsum(np.add.reduceat(d_sorted, starts))]
        best = int(np.argmin(totals))  # first minimum: the highest such threshold
        if best == 0:
            threshold = math.inf
        elif best < distinct.size:
            threshold = float((distinct[best - 1] + distinct[best]) / 2.0)
        else:
            threshold = float(distinct[-1])
        n = s.size
        candidates = np.r_[math.inf, distinct]
        spread = np.linspace(0, candidates.size - 1, CURVE_POINTS).astype(int)
        keep = np.unique(np.r_[spread, best])  # the curve always shows the minimum
        self.threshold_ = threshold
        self.cost_per_1000_ = float(totals[best] / n * 1000.0)
        self.curve_ = pd.DataFrame(
            {"threshold": candidates[keep], "cost_per_1000": totals[keep] / n * 1000.0}
        )
        self.n_samples_ = n
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise NotReadyError("ThresholdOptimizer is not fitted yet; call fit() first.")

    def predict(self, scores: Any) -> np.ndarray:
        """Decisions (True = positive) at the fitted threshold.

        Raises:
            NotReadyError: ``fit`` was not called.
            InvalidInputError: Empty or non-finite scores.
        """
        self._check_fitted()
        decisions: np.ndarray = _scores(scores, "scores") >= self.threshold_
        return decisions

    def evaluate(self, scores: Any, labels: Any, frame: pd.DataFrame | None = None) -> BusinessCost:
        """Business cost of the fitted threshold's decisions on other rows.

        Raises:
            NotReadyError: ``fit`` was not called.
            InvalidInputError: As :meth:`CostMatrix.evaluate`.
        """
        return self.costs.evaluate(labels, self.predict(scores), frame=frame)


def _expect(ok: bool, optimizer: object, message: str) -> None:
    if not ok:
        raise AssertionError(f"{type(optimizer).__name__}: {message}")


def check_optimizer(optimizer: ThresholdOptimizer) -> None:
    """Check the optimizer contract; raise ``AssertionError`` naming the broken promise.

    Params only in the constructor; ``predict`` before ``fit`` raises ``NotReadyError``;
    ``fit`` returns the optimizer and is deterministic; empty scores raise
    ``InvalidInputError``; on calibrated scores with a false negative five times as
    costly as a false positive, the threshold lands near the Bayes optimum ``1/6``; and
    its decisions cost no more than the default threshold 0.5.

    Raises:
        AssertionError: A promise is broken.
    """
    params = optimizer.get_params()
    clone = type(optimizer)(**params)
    _expect(clone.get_params() == params, optimizer, "a clone has other parameters")
    fitted = [a for a in vars(optimizer) if a.endswith("_") and not a.startswith("_")]
    _expect(not fitted, optimizer, f"fitted attributes before fit: {fitted}")
    try:
        optimizer.predict([0.5])
    except NotReadyError:
        pass
    else:
        _expect(False, optimizer, "predict() before fit() did not raise NotReadyError")
    try:
        clone.fit([], [])
    except InvalidInputError:
        pass
    else:
        _expect(False, optimizer, "fit() on no rows did not raise InvalidInputError")
    rng = np.random.default_rng(0)
    scores = rng.random(40_000)
    labels = rng.random(40_000) < scores
    bayes = type(optimizer)(CostMatrix(fp_cost=1.0, fn_cost=5.0))
    _expect(bayes.fit(scores, labels) is bayes, optimizer, "fit() did not return self")
    _expect(abs(bayes.threshold_ - 1 / 6) < 0.03, optimizer, f"threshold {bayes.threshold_}")
    default = bayes.costs.evaluate(labels, scores >= 0.5)
    _expect(bayes.cost_per_1000_ <= default.per_1000, optimizer, "costs more than 0.5")
    again = type(optimizer)(CostMatrix(fp_cost=1.0, fn_cost=5.0)).fit(scores, labels)
    _expect(again.threshold_ == bayes.threshold_, optimizer, "fit() is not deterministic")
