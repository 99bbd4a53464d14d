"""Confidence-based performance estimation (CBPE): a classifier's metrics without labels.

If the scores are calibrated probabilities, the expected confusion matrix of a window is
the sum of the probabilities: a row predicted positive with ``P(y=1) = 0.8`` counts 0.8
true positive and 0.2 false positive, and every metric follows (NannyML's CBPE).
:class:`CBPE` first calibrates the scores on labelled reference rows (isotonic regression
per class, on up to 100 quantile groups). The expected accuracy comes with its standard
error ``sqrt(sum q(1 - q)) / n`` (``q`` the probability that each row is right), which
:func:`~bascule.monitoring.performance.performance_report` uses to tell a real gap between
realised and estimated accuracy from sampling noise.

**The estimate assumes no concept drift**: it sees changes in the inputs, never a change
in how the labels relate to them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from bascule.core.errors import InvalidInputError, NotReadyError

__all__ = [
    "ASSUMPTION",
    "CBPE",
    "EstimatedPerformance",
    "as_proba",
    "estimate_performance",
    "prf",
]

ASSUMPTION = "estimated from the model's confidence; assumes calibrated scores and no concept drift"
_EPS = 1e-15


def prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[float, float, float]:
    """Mean precision, recall and F1 over the classes of the given count vectors."""

    def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.divide(a, b, out=np.zeros_like(a, dtype=float), where=b > 0)
        return out

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1 = ratio(2 * tp, 2 * tp + fp + fn)
    return float(precision.mean()), float(recall.mean()), float(f1.mean())


def _isotonic(x: np.ndarray, y: np.ndarray, bins: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators on up to ``bins`` quantile groups; knots for ``np.interp``."""
    order = np.argsort(x, kind="stable")
    groups = np.array_split(order, min(bins, x.size))
    gx = np.array([x[g].mean() for g in groups])
    values, weights, sizes = [], [], []
    for g in groups:
        values.append(float(y[g].mean()))
        weights.append(float(g.size))
        sizes.append(1)
        while len(values) > 1 and values[-2] > values[-1]:
            w = weights[-2] + weights[-1]
            merged = (values[-2] * weights[-2] + values[-1] * weights[-1]) / w
            values[-2:], weights[-2:], sizes[-2:] = [merged], [w], [sizes[-2] + sizes[-1]]
    return gx, np.repeat(values, sizes)


def _expected_auc(score: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC expected when row i is positive with probability ``p[i]``."""
    order = np.argsort(-score, kind="stable")
    s, p = score[order], p[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    pos, neg = np.add.reduceat(p, starts), np.add.reduceat(1.0 - p, starts)
    if pos.sum() <= 0 or neg.sum() <= 0:
        return math.nan
    tpr = np.r_[0.0, np.cumsum(pos) / pos.sum()]
    fpr = np.r_[0.0, np.cumsum(neg) / neg.sum()]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


@dataclass(frozen=True)
class EstimatedPerformance:
    """Metrics expected from the scores alone, with the standard error of the accuracy."""

    metrics: Mapping[str, float]
    accuracy_se: float
    n: int
    assumption: str = ASSUMPTION


class CBPE:
    """Confidence-based performance estimation for calibrated classifiers (sklearn style).

    Args:
        calibrate: Fit an isotonic calibration per class on the reference rows; without
            it, the scores must already be calibrated probabilities.
    """

    def __init__(self, calibrate: bool = True) -> None:
        self.calibrate = calibrate

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters."""
        return {"calibrate": self.calibrate}

    def fit(self, proba: np.ndarray, labels: np.ndarray) -> Self:
        """Learn the calibration from reference probabilities ``(n, k)`` and class indices.

        Raises:
            InvalidInputError: Shapes disagree, fewer than 2 classes, or no rows.
        """
        proba = np.asarray(proba, dtype=float)
        labels = np.asarray(labels)
        if proba.ndim != 2 or proba.shape[1] < 2 or proba.shape[0] != labels.size:
            raise InvalidInputError.for_field(
                "proba", list(proba.shape), f"(n, n_classes >= 2) with n = {labels.size}"
            )
        if labels.size == 0:
            raise InvalidInputError.for_field("labels", 0, "at least one labelled row")
        columns = [1] if proba.shape[1] == 2 else range(proba.shape[1])
        self.knots_ = {
            k: _isotonic(proba[:, k], (labels == k).astype(float)) if self.calibrate else None
            for k in columns
        }
        self.n_classes_ = proba.shape[1]
        return self

    def calibrated(self, proba: np.ndarray) -> np.ndarray:
        """The calibrated probabilities of ``proba`` (rows sum to 1).

        Raises:
            NotReadyError: ``fit`` was not called.
        """
        if not hasattr(self, "knots_"):
            raise NotReadyError("CBPE is not fitted yet; call fit(proba, labels) first.")
        out = np.array(proba, dtype=float)
        for k, knots in self.knots_.items():
            if knots is not None:
                out[:, k] = np.interp(out[:, k], knots[0], knots[1])
        if self.n_classes_ == 2:
            out[:, 0] = 1.0 - out[:, 1]
        result: np.ndarray = out / np.clip(out.sum(axis=1, keepdims=True), _EPS, None)
        return result

    def estimate(
        self, proba: np.ndarray, predicted: np.ndarray | None = None
    ) -> EstimatedPerformance:
        """Expected metrics of a window; ``predicted`` defaults to the top-scoring class."""
        raw = np.asarray(proba, dtype=float)
        p = self.calibrated(raw)
        pred = raw.argmax(axis=1) if predicted is None else np.asarray(predicted)
        n, k = p.shape
        if n == 0:
            return EstimatedPerformance({}, math.nan, 0)
        correct = p[np.arange(n), pred]
        classes = [1] if k == 2 else list(range(k))
        tp = np.array([p[pred == c, c].sum() for c in classes])
        fp = np.array([(1.0 - p[pred == c, c]).sum() for c in classes])
        fn = np.array([p[pred != c, c].sum() for c in classes])
        precision, recall, f1 = prf(tp, fp, fn)
        aucs = [_expected_auc(raw[:, c], p[:, c]) for c in classes]
        metrics = {"accuracy": float(correct.mean()), "precision": precision, "recall": recall}
        metrics |= {
            "f1": f1,
            "roc_auc": float(np.nanmean(aucs)) if any(map(math.isfinite, aucs)) else math.nan,
        }
        se = math.sqrt(float(np.sum(correct * (1.0 - correct)))) / n
        return EstimatedPerformance(metrics, se, n)


def estimate_performance(
    scores: np.ndarray,
    predicted: np.ndarray | None = None,
    *,
    reference_scores: np.ndarray | None = None,
    reference_labels: np.ndarray | None = None,
) -> EstimatedPerformance:
    """Estimate a classifier's performance on unlabelled rows from its own confidence.

    Args:
        scores: ``(n,)`` probabilities of the positive class, or ``(n, k)`` per class.
        predicted: Predicted class indices (default: the top-scoring class).
        reference_scores: Scores of labelled reference rows to calibrate on (same form).
        reference_labels: Their class indices (0 or 1 for binary scores).

    Returns:
        The estimate (labelled with its assumption: calibrated scores, no concept drift).

    Raises:
        InvalidInputError: Scores of the wrong shape, or only one of the reference pair.
    """
    if (reference_scores is None) != (reference_labels is None):
        raise InvalidInputError.for_field(
            "reference_labels", "one of the pair", "both reference_scores and reference_labels"
        )
    proba = as_proba(scores, "scores")
    if reference_scores is None or reference_labels is None:
        cbpe = CBPE(calibrate=False).fit(proba[:1], np.zeros(1, dtype=int))
    else:
        cbpe = CBPE().fit(as_proba(reference_scores, "reference_scores"), reference_labels)
    return cbpe.estimate(proba, predicted)


def as_proba(scores: Any, name: str) -> np.ndarray:
    """Scores as an ``(n, k)`` probability matrix (a 1-D array is the positive class).

    Raises:
        InvalidInputError: Not 1-D or 2-D with at least two columns, or not finite.
    """
    arr = np.asarray(scores, dtype=float)
    if arr.ndim == 1:
        arr = np.column_stack([1.0 - arr, arr])
    if arr.ndim != 2 or arr.shape[1] < 2 or not np.all(np.isfinite(arr)):
        raise InvalidInputError.for_field(name, list(arr.shape), "finite (n,) or (n, k>=2)")
    return arr
