"""Multivariate drift: can a small model tell reference rows from current rows?

:class:`DomainClassifierDetector` trains a small gradient-boosted tree model
(scikit-learn's ``HistGradientBoostingClassifier``, 50 trees of 15 leaves) to separate a
bounded sample of reference rows (label 0) from current rows (label 1), both sides capped
at ``max_rows`` and balanced, and scores it by the ROC AUC on a held-out half. Trees see
interactions, so a change in the correlation between features — invisible to every
per-feature test — shows up as an AUC above 0.5.

Calibration: the AUC is measured on rows the model never trained on, so without drift it
follows the Mann-Whitney null law, mean 0.5 and variance ``(n0 + n1 + 1) / (12 n0 n1)``.
The windows drift when the AUC is significant (one-sided ``p < alpha``) **and** reaches
the floor ``threshold`` (default 0.57: the separability of a 0.25 sd mean shift in a
single normal feature, ``Phi(0.25 / sqrt(2))``, the same size of change the per-feature
floors call non-trivial). The floor keeps large windows from flagging tiny shifts; the
significance keeps small windows from flagging noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import pandas as pd

from bascule.core.errors import InvalidInputError, NotReadyError
from bascule.monitoring.drift import normal_sf
from bascule.monitoring.reference import ReferenceSummary, infer_kind
from bascule.monitoring.report import MultivariateDrift

__all__ = ["DomainClassifierDetector", "auc_score"]

MIN_ROWS = 20
MAX_CATEGORIES = 100


def auc_score(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of ``scores`` for binary ``labels`` (1 positive), ties counted as half.

    Raises:
        InvalidInputError: Both classes are not present.
    """
    labels = np.asarray(labels).astype(bool)
    n1 = int(labels.sum())
    n0 = labels.size - n1
    if n1 == 0 or n0 == 0:
        raise InvalidInputError.for_field("labels", f"{n1} positives, {n0} negatives", "both")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average_rank = ends - (counts - 1) / 2.0  # 1-based mean rank of each tie group
    ranks = average_rank[inverse]
    return float((ranks[labels].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def _encode(
    frame: pd.DataFrame,
    columns: Sequence[str],
    kinds: Mapping[str, str],
    categories: Mapping[str, tuple[str, ...]],
) -> np.ndarray:
    out = np.full((len(frame), len(columns)), np.nan)
    for j, name in enumerate(columns):
        series = frame[name]
        if kinds[name] == "numeric":
            values = pd.to_numeric(series.astype(object), errors="coerce")
            col = np.array(values.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
            col[~np.isfinite(col)] = np.nan
            # At float32 precision, as the model saw them: the prediction log holds what an
            # ONNX model got (often float32), the reference what it was trained on (float64);
            # otherwise 6.7 and float32(6.7) are two values a tree tells apart perfectly.
            col = col.astype(np.float32).astype(np.float64)
        else:
            index = {c: i for i, c in enumerate(categories[name])}
            other = len(index)
            text = series.astype(object)
            missing = text.isna().to_numpy()
            col = np.array([index.get(str(v), other) for v in text.to_numpy()], dtype=np.float64)
            col[missing] = np.nan
        out[:, j] = col
    return out


class DomainClassifierDetector:
    """Detects multivariate drift by training a classifier to tell the two windows apart.

    Args:
        threshold: AUC floor (default 0.57, see the module docstring).
        alpha: Significance level of the one-sided AUC test.
        max_rows: Rows drawn from each side at most (train on half, score the other half).
        max_iter: Boosting iterations.
        random_state: Seed for the row samples and the model.
        categorical: Columns to treat as categorical whatever their dtype.
    """

    def __init__(
        self,
        threshold: float = 0.57,
        alpha: float = 0.01,
        max_rows: int = 5000,
        max_iter: int = 50,
        random_state: int = 0,
        categorical: Sequence[str] | None = None,
    ) -> None:
        self.threshold = threshold
        self.alpha = alpha
        self.max_rows = max_rows
        self.max_iter = max_iter
        self.random_state = random_state
        self.categorical = categorical

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters."""
        keys = ("threshold", "alpha", "max_rows", "max_iter", "random_state", "categorical")
        return {k: getattr(self, k) for k in keys}

    def fit(self, reference: Any) -> Self:
        """Keep an encoded sample of reference rows.

        Args:
            reference: Reference rows (DataFrame), or a ``ReferenceSummary`` that kept a
                sample of rows.

        Returns:
            The detector, fitted.

        Raises:
            InvalidInputError: No rows, a summary without a sample, or bad parameters.
        """
        if not 0.5 <= self.threshold < 1.0:
            raise InvalidInputError.for_field("threshold", self.threshold, "an AUC in [0.5, 1)")
        if not 0.0 < self.alpha < 1.0:
            raise InvalidInputError.for_field("alpha", self.alpha, "a number in (0, 1)")
        if self.max_rows < 2 * MIN_ROWS:
            raise InvalidInputError.for_field("max_rows", self.max_rows, f">= {2 * MIN_ROWS}")
        kinds: dict[str, str] = {}
        if isinstance(reference, ReferenceSummary):
            if reference.sample is None:
                raise InvalidInputError.for_field(
                    "reference", "a summary without sample rows", "rows, or a summary with a sample"
                )
            frame = reference.sample
            kinds = {name: col.kind for name, col in reference.columns.items()}
        elif isinstance(reference, pd.DataFrame):
            frame = reference
        else:
            raise InvalidInputError.for_field(
                "reference", type(reference).__name__, "a DataFrame or a ReferenceSummary"
            )
        if len(frame) < MIN_ROWS or frame.shape[1] == 0:
            raise InvalidInputError.for_field(
                "reference", f"{len(frame)} rows", f"at least {MIN_ROWS} rows and one column"
            )
        forced, known = set(self.categorical or ()), dict(kinds)
        for raw in frame.columns:
            name = str(raw)
            if known and name not in known:
                continue
            kind = "categorical" if name in forced else known.get(name) or infer_kind(frame[raw])
            if kind is not None:
                kinds[name] = kind
        rng = np.random.default_rng(self.random_state)
        if len(frame) > self.max_rows:
            frame = frame.iloc[np.sort(rng.choice(len(frame), self.max_rows, replace=False))]
        frame = frame.rename(columns=str)
        columns = [c for c in kinds if c in frame.columns]
        categories = {
            c: tuple(
                str(v) for v in frame[c].dropna().astype(str).value_counts().index[:MAX_CATEGORIES]
            )
            for c in columns
            if kinds[c] == "categorical"
        }
        self.columns_ = columns
        self.kinds_ = {c: kinds[c] for c in columns}
        self.categories_ = categories
        self.reference_rows_ = _encode(frame, columns, self.kinds_, categories)
        return self

    def test(self, current: Any) -> MultivariateDrift:
        """Train on half of both samples, score the AUC on the other half.

        Args:
            current: The current window (DataFrame); fitted columns it lacks are left out.

        Returns:
            The AUC, its p-value and the verdict; ``auc`` is None (with a ``note``) when
            fewer than 20 rows, no shared column, or no scikit-learn.

        Raises:
            NotReadyError: ``fit`` was not called.
            InvalidInputError: ``current`` is not a DataFrame.
        """
        if not hasattr(self, "reference_rows_"):
            raise NotReadyError(f"{type(self).__name__} is not fitted yet; call fit() first.")
        if not isinstance(current, pd.DataFrame):
            raise InvalidInputError.for_field("current", type(current).__name__, "a DataFrame")
        current = current.rename(columns=str)
        used = [c for c in self.columns_ if c in current.columns]
        n_ref = self.reference_rows_.shape[0]

        def skipped(note: str, n_cur: int = len(current)) -> MultivariateDrift:
            return MultivariateDrift(
                None, None, self.threshold, self.alpha, False, n_ref, n_cur, tuple(used), note=note
            )

        if not used:
            return skipped("no column shared with the reference")
        if len(current) < MIN_ROWS:
            return skipped(f"fewer than {MIN_ROWS} current rows")
        try:
            from sklearn.ensemble import HistGradientBoostingClassifier
        except ImportError:
            return skipped("scikit-learn is not installed (pip install 'bascule[convert]')")
        rng = np.random.default_rng(self.random_state)
        n = min(n_ref, len(current), self.max_rows)
        cur_rows = np.sort(rng.choice(len(current), n, replace=False))
        cur = _encode(current.iloc[cur_rows], used, self.kinds_, self.categories_)
        ref = self.reference_rows_[np.sort(rng.choice(n_ref, n, replace=False))]
        ref = ref[:, [self.columns_.index(c) for c in used]]
        X = np.vstack([ref, cur])
        y = np.concatenate([np.zeros(n), np.ones(n)])
        train = np.zeros(2 * n, dtype=bool)
        train[rng.permutation(n)[: n // 2]] = True
        train[n + rng.permutation(n)[: n // 2]] = True
        model = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            max_leaf_nodes=15,
            min_samples_leaf=20,
            early_stopping=False,
            categorical_features=np.array([self.kinds_[c] == "categorical" for c in used]),
            random_state=self.random_state,
        )
        model.fit(X[train], y[train])
        scores = model.predict_proba(X[~train])[:, 1]
        auc = auc_score(y[~train], scores)
        n0 = n1 = n - n // 2
        sd = math.sqrt((n0 + n1 + 1) / (12.0 * n0 * n1))
        p_value = normal_sf((auc - 0.5) / sd)
        drifted = bool(auc >= self.threshold and p_value < self.alpha)
        return MultivariateDrift(
            auc, p_value, self.threshold, self.alpha, drifted, n, n, tuple(used)
        )
