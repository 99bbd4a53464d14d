"""Scores, decision thresholds and holdout figures of binary classifiers (pure computations).

A model here is anything with ``predict_proba``: a fitted scikit-learn-style estimator
(classes in ``classes_``) or a registered version loaded as an
:class:`~bascule.registry.predictor.OnnxPredictor` (classes in ``classes``). The
*positive* class is the cost matrix's ``positive_label`` when set, else the second class.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from bascule.business.costs import CostMatrix
from bascule.business.thresholds import ThresholdOptimizer
from bascule.core.errors import InvalidInputError

__all__ = [
    "DEFAULT_THRESHOLD",
    "NEVER_POSITIVE",
    "choose_threshold",
    "classes_of",
    "holdout_figures",
    "is_positive",
    "positive_class",
    "positive_scores",
]

DEFAULT_THRESHOLD = 0.5
"""Used when there is no cost matrix to choose a threshold with."""
NEVER_POSITIVE = math.nextafter(1.0, 2.0)
"""The threshold stored when flagging nothing is cheapest: above every probability."""


def classes_of(model: Any) -> list[Any]:
    """The classes of a binary classifier, in ``predict_proba`` column order.

    Raises:
        InvalidInputError: the model has no ``predict_proba`` or not exactly two classes.
    """
    if not callable(getattr(model, "predict_proba", None)):
        raise InvalidInputError.for_field(
            "model", type(model).__name__, "a binary classifier with predict_proba()"
        )
    classes = getattr(model, "classes_", None)
    if classes is None:
        classes = getattr(model, "classes", None)
    found = [] if classes is None else list(np.asarray(classes).tolist())
    if len(found) != 2:
        raise InvalidInputError.for_field(
            "model classes", found, "exactly two classes (the pipeline trains binary classifiers)"
        )
    return found


def _same(value: Any, wanted: Any) -> bool:
    if value == wanted:
        return True
    try:
        return float(value) == float(wanted)
    except (TypeError, ValueError):
        return str(value) == str(wanted)


def positive_class(classes: list[Any], positive_label: Any = None) -> int:
    """The column of ``predict_proba`` holding the positive class.

    Raises:
        InvalidInputError: ``positive_label`` is not one of the classes.
    """
    if positive_label is None:
        return 1
    for index, value in enumerate(classes):
        if _same(value, positive_label):
            return index
    raise InvalidInputError.for_field(
        "cost.positive_label", positive_label, f"one of the model's classes {classes}"
    )


def is_positive(labels: Any, positive: Any) -> np.ndarray:
    """Booleans: which labels are the positive class (numbers compared as numbers)."""
    values = np.asarray(labels, dtype=object)
    return np.fromiter((_same(v, positive) for v in values), dtype=bool, count=values.size)


def positive_scores(
    model: Any, frame: pd.DataFrame, features: list[str], positive_label: Any = None
) -> tuple[np.ndarray, Any]:
    """Positive-class probabilities of ``frame``'s rows, and the positive class.

    Raises:
        InvalidInputError: the model is not a binary classifier, ``positive_label`` is
            not one of its classes, or it rejects the rows.
    """
    classes = classes_of(model)
    column = positive_class(classes, positive_label)
    if len(frame) == 0:
        return np.zeros(0), classes[column]
    proba = np.asarray(model.predict_proba(frame[features]), dtype=float)
    return proba[:, column], classes[column]


def choose_threshold(
    labels: np.ndarray, scores: np.ndarray, costs: CostMatrix | None, frame: pd.DataFrame
) -> tuple[float, float]:
    """The decision threshold with the lowest business cost, and that cost per 1,000.

    Without a cost matrix the threshold is :data:`DEFAULT_THRESHOLD` (cost NaN). When
    flagging nothing is cheapest, the threshold is :data:`NEVER_POSITIVE`.

    Raises:
        InvalidInputError: no rows, or a price column is missing.
    """
    if costs is None:
        return DEFAULT_THRESHOLD, math.nan
    if scores.size == 0:
        raise InvalidInputError.for_field(
            "validation rows", 0, "at least one row to choose the decision threshold on"
        )
    fitted = ThresholdOptimizer(costs).fit(scores, labels, frame)
    threshold = fitted.threshold_ if math.isfinite(fitted.threshold_) else NEVER_POSITIVE
    return float(threshold), float(fitted.cost_per_1000_)


def holdout_figures(
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    costs: CostMatrix | None,
    frame: pd.DataFrame,
) -> dict[str, float]:
    """Figures of decisions ``scores >= threshold`` against ``labels`` (booleans).

    Returns:
        ``rows``; with a cost matrix, ``business_cost`` (net cost per 1,000 predictions),
        ``net_cost``, ``tp``, ``fp``, ``fn``, ``tn``; and the ML metrics ``accuracy``,
        ``precision``, ``recall``, ``f1``, ``roc_auc``, ``log_loss`` and
        ``calibration_error`` (NaN when undefined, e.g. ROC AUC on one class).

    Raises:
        InvalidInputError: lengths differ or a price column is missing.
    """
    from bascule.monitoring.performance import classification_metrics

    n = int(labels.size)
    figures: dict[str, float] = {"rows": float(n)}
    if n == 0:
        return figures
    if scores.size != n:
        raise InvalidInputError.for_field("scores", scores.size, f"{n} values")
    decisions = scores >= threshold
    if costs is not None:
        cost = costs.evaluate(labels, decisions, frame=frame)
        figures |= {
            "business_cost": cost.per_1000,
            "net_cost": cost.net_cost,
            "tp": float(cost.tp),
            "fp": float(cost.fp),
            "fn": float(cost.fn),
            "tn": float(cost.tn),
        }
    proba = np.column_stack([1.0 - scores, scores])
    metrics = classification_metrics(labels.astype(int), decisions.astype(int), proba, 2)
    figures |= {k: float(v) for k, v in metrics.items()}
    return figures
