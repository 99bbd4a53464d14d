"""Model performance: realised on labels, estimated without them, per window and segment.

Realised (labels): accuracy, precision, recall, F1 (binary: of the positive class;
multiclass: macro), ROC AUC (multiclass: macro one-vs-rest), log loss and the expected
calibration error (10 confidence bins) for classifiers; MAE, RMSE and R² for regression.

Estimated (no labels): from the model's own confidence, by
:class:`~bascule.monitoring.estimation.CBPE`, shown beside the realised figure once labels
arrive. **The estimate assumes no concept drift**, so when realised accuracy leaves the
estimate for the same rows by more than ``z`` standard errors plus a floor while the
inputs did not drift, the window is flagged ``concept_drift_suspected``: only labels can
see a change in how labels relate to unchanged inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from bascule.core.errors import InvalidInputError
from bascule.monitoring.estimation import ASSUMPTION, CBPE, as_proba, prf
from bascule.monitoring.multivariate import auc_score
from bascule.monitoring.reference import read_numeric
from bascule.monitoring.report import Finding, clean_json

__all__ = [
    "CostModel",
    "PerformanceReport",
    "classification_metrics",
    "performance_report",
    "regression_metrics",
]

_EPS = 1e-15


# ---------------------------------------------------------------- realised metrics


def classification_metrics(
    labels: np.ndarray, predicted: np.ndarray, proba: np.ndarray | None, n_classes: int
) -> dict[str, float]:
    """Realised metrics from class indices (``labels``, ``predicted``) and probabilities.

    Binary (``n_classes == 2``, class 1 positive): precision, recall and F1 of class 1;
    multiclass: their macro averages. ``proba`` is ``(n, n_classes)`` or None.
    """
    if labels.size == 0:
        return {}
    classes = [1] if n_classes == 2 else list(range(n_classes))
    tp = np.array([np.sum((predicted == k) & (labels == k)) for k in classes], dtype=float)
    fp = np.array([np.sum((predicted == k) & (labels != k)) for k in classes], dtype=float)
    fn = np.array([np.sum((predicted != k) & (labels == k)) for k in classes], dtype=float)
    precision, recall, f1 = prf(tp, fp, fn)
    out = {"accuracy": float(np.mean(labels == predicted)), "precision": precision}
    out |= {"recall": recall, "f1": f1}
    if proba is not None:
        aucs = [
            auc_score(labels == k, proba[:, k])
            for k in classes
            if 0 < np.sum(labels == k) < labels.size
        ]
        out["roc_auc"] = float(np.mean(aucs)) if aucs else math.nan
        p = proba / np.clip(proba.sum(axis=1, keepdims=True), _EPS, None)
        chosen = np.clip(p[np.arange(labels.size), labels], _EPS, 1.0)
        out["log_loss"] = float(-np.mean(np.log(chosen)))
        confidence, top = p.max(axis=1), p.argmax(axis=1)
        bins = np.minimum((confidence * 10).astype(int), 9)
        gap = sum(
            abs(np.mean(top[bins == b] == labels[bins == b]) - np.mean(confidence[bins == b]))
            * np.sum(bins == b)
            for b in range(10)
            if np.any(bins == b)
        )
        out["calibration_error"] = float(gap / labels.size)
    return out


def regression_metrics(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R² (NaN when the labels do not vary)."""
    if labels.size == 0:
        return {}
    error = predicted - labels
    spread = float(np.sum((labels - labels.mean()) ** 2))
    r2 = 1.0 - float(np.sum(error**2)) / spread if spread > 0 else math.nan
    mae, rmse = float(np.mean(np.abs(error))), float(np.sqrt(np.mean(error**2)))
    return {"mae": mae, "rmse": rmse, "r2": r2}


# ---------------------------------------------------------------- per window and segment

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class PerformanceReport:
    """Realised and estimated metrics per window (and segment), with findings."""

    rows: tuple[dict[str, Any], ...]
    findings: tuple[Finding, ...]
    task: str
    assumption: str = ASSUMPTION
    metrics: tuple[str, ...] = field(default=())

    @property
    def concept_drift_suspected(self) -> bool:
        """Whether any window (or segment) is flagged."""
        return any(r.get("concept_drift_suspected") for r in self.rows)

    def to_frame(self) -> pd.DataFrame:
        """One row per (window, segment): ``n``, ``n_labelled``, ``realised_<metric>``,
        ``estimated_<metric>``, the accuracy gap, its tolerance and the flag."""
        return pd.DataFrame(list(self.rows))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict."""
        return {
            "task": self.task,
            "assumption": self.assumption,
            "concept_drift_suspected": self.concept_drift_suspected,
            "rows": clean_json(list(self.rows)),
            "findings": [f.to_dict() for f in self.findings],
        }


class CostModel(Protocol):
    """What ``performance_report(costs=...)`` needs; ``bascule.business.CostMatrix`` fits.

    ``evaluate`` gets booleans (actual positive, predicted positive) and the window's rows,
    and returns an object with ``net_cost`` and ``per_1000`` attributes.
    """

    def evaluate(
        self, labels: np.ndarray, predicted: np.ndarray, *, frame: pd.DataFrame | None = None
    ) -> Any: ...


@dataclass(frozen=True, eq=False)
class _Log:
    truth: np.ndarray  # regression: float, NaN if missing; classification: index, -1 if missing
    predicted: np.ndarray
    n_classes: int = 0
    proba: np.ndarray | None = None
    cbpe: CBPE | None = None


def _column(frame: pd.DataFrame, name: str, what: str) -> pd.Series:
    if name not in frame.columns:
        columns = [str(c) for c in frame.columns]
        raise InvalidInputError.for_field(what, name, f"a column of {columns}")
    return frame[name]


def _numbers(series: pd.Series, name: str) -> np.ndarray:
    values = read_numeric(series)
    if values.type_errors or values.infinite or values.missing:
        bad = values.example if values.type_errors else "NaN or infinity"
        raise InvalidInputError.for_field(name, bad, "finite numbers in every row")
    return np.asarray(values.finite, dtype=float)


def _indices(series: pd.Series, classes: list[Any]) -> np.ndarray:
    """Class index per row: -1 when missing, -2 when not a class."""
    index = {c: i for i, c in enumerate(classes)}
    values = series.astype(object).to_numpy()
    return np.array([-1 if pd.isna(v) else index.get(v, -2) for v in values], dtype=int)


def _windows(frame: pd.DataFrame, window: int | str | None, time_column: str | None) -> np.ndarray:
    if window is None:
        return np.full(len(frame), "all", dtype=object)
    if isinstance(window, int) and not isinstance(window, bool) and window > 0:
        start = (np.arange(len(frame)) // window) * window
        end = np.minimum(start + window, len(frame)) - 1
        return np.array([f"rows {a}-{b}" for a, b in zip(start, end, strict=True)], dtype=object)
    if isinstance(window, str) and time_column is not None:
        times = pd.to_datetime(_column(frame, time_column, "time_column"), errors="coerce")
        try:
            return np.asarray(times.dt.floor(window).astype(str).to_numpy(), dtype=object)
        except ValueError as exc:
            raise InvalidInputError.for_field("window", window, "a fixed frequency") from exc
    raise InvalidInputError.for_field(
        "window", window, "None, a row count > 0, or a frequency string with time_column"
    )


def _regression_log(frame: pd.DataFrame, label: str, prediction: str, found: list[Finding]) -> _Log:
    predicted = _numbers(_column(frame, prediction, "prediction"), prediction)
    truth = np.full(len(frame), np.nan)
    if label in frame.columns:
        values = read_numeric(frame[label])
        truth = np.array(pd.to_numeric(frame[label].astype(object), errors="coerce"), dtype=float)
        truth[~np.isfinite(truth)] = np.nan
        if values.type_errors and not np.isfinite(truth).any():
            raise InvalidInputError.for_field(label, values.example, "numeric labels")
        if values.type_errors:
            msg = f"{values.type_errors} label(s) are not numbers (e.g. {values.example!r})."
            found.append(Finding.of("unknown_labels", msg, label, count=values.type_errors))
    return _Log(truth, predicted)


def _classification_log(
    frame: pd.DataFrame,
    label: str,
    prediction: str,
    scores: str | Sequence[str] | None,
    classes: Sequence[Any] | None,
    reference: pd.DataFrame | None,
    found: list[Finding],
) -> _Log:
    pred_values = _column(frame, prediction, "prediction")
    columns = [] if scores is None else [scores] if isinstance(scores, str) else list(scores)
    if classes is None and len(columns) > 1:
        raise InvalidInputError.for_field("classes", None, "the classes of the score columns")
    known = list(classes) if classes is not None else sorted(pd.unique(pred_values.dropna()))
    predicted = _indices(pred_values, known)
    if np.any(predicted < 0):
        bad = pred_values[predicted < 0].iloc[0]
        raise InvalidInputError.for_field(prediction, bad, f"one of the classes {known}")
    truth = _indices(frame[label], known) if label in frame.columns else np.full(len(frame), -1)
    stray = int(np.sum(truth == -2))
    if stray:
        example = frame[label][truth == -2].iloc[0]
        if stray == int(np.sum(truth != -1)):
            raise InvalidInputError.for_field(label, example, f"labels among the classes {known}")
        msg = f"{stray} label(s) are not classes of the model (e.g. {example!r}); ignored."
        found.append(Finding.of("unknown_labels", msg, label, count=stray))
        truth[truth == -2] = -1
    if not columns:
        return _Log(truth, predicted, len(known))

    def proba_of(rows: pd.DataFrame) -> np.ndarray:
        matrix = np.column_stack([_numbers(_column(rows, c, "scores"), c) for c in columns])
        return as_proba(matrix[:, 0] if len(columns) == 1 else matrix, "scores")

    proba = proba_of(frame)
    if proba.shape[1] != len(known):
        raise InvalidInputError.for_field("scores", columns, f"one score per class of {known}")
    if reference is None:
        cbpe = CBPE(calibrate=False).fit(proba[:1], np.zeros(1, dtype=int))
    else:
        ref_labels = _indices(_column(reference, label, "label"), known)
        keep = ref_labels >= 0
        cbpe = CBPE().fit(proba_of(reference)[keep], ref_labels[keep])
    return _Log(truth, predicted, len(known), proba, cbpe)


def _evaluate(
    log: _Log, mask: np.ndarray, drift: bool | None, z: float, floor: float
) -> dict[str, Any]:
    row: dict[str, Any] = {"n": int(mask.sum())}
    if log.n_classes == 0:
        labelled = mask & np.isfinite(log.truth)
        row["n_labelled"] = int(labelled.sum())
        realised = regression_metrics(log.truth[labelled], log.predicted[labelled])
        return row | {f"realised_{k}": v for k, v in realised.items()}
    labelled = mask & (log.truth >= 0)
    row["n_labelled"] = int(labelled.sum())
    proba = None if log.proba is None else log.proba[labelled]
    realised = classification_metrics(
        log.truth[labelled], log.predicted[labelled], proba, log.n_classes
    )
    row |= {f"realised_{k}": v for k, v in realised.items()}
    if log.proba is None or log.cbpe is None:
        return row
    estimate = log.cbpe.estimate(log.proba[mask], log.predicted[mask])
    row |= {f"estimated_{k}": v for k, v in estimate.metrics.items()}
    row["input_drift"] = drift
    if row["n_labelled"] >= 30:
        on_labelled = log.cbpe.estimate(log.proba[labelled], log.predicted[labelled])
        gap = realised["accuracy"] - on_labelled.metrics["accuracy"]
        tolerance = z * on_labelled.accuracy_se + floor
        row |= {"estimated_accuracy_labelled": on_labelled.metrics["accuracy"]}
        row |= {"accuracy_gap": gap, "gap_tolerance": tolerance}
        row["concept_drift_suspected"] = bool(abs(gap) > tolerance and drift is not True)
    return row


def performance_report(
    frame: pd.DataFrame,
    *,
    task: Task,
    label: str = "label",
    prediction: str = "prediction",
    scores: str | Sequence[str] | None = None,
    classes: Sequence[Any] | None = None,
    reference: pd.DataFrame | None = None,
    window: int | str | None = None,
    time_column: str | None = None,
    segment: str | None = None,
    input_drift: bool | Mapping[str, bool] | None = None,
    costs: CostModel | None = None,
    z: float = 3.0,
    tolerance_floor: float = 0.01,
) -> PerformanceReport:
    """Realised and estimated performance per window and per segment of a prediction log.

    Args:
        frame: One row per prediction: the prediction, scores, the label (missing until
            it arrives), and optionally a time and a segment column.
        task: ``"classification"`` or ``"regression"``.
        label: Label column (absent: no labels yet).
        prediction: Predicted class or value column.
        scores: Classifiers: the positive-class probability column (binary), or one
            column per class in ``classes`` order. Enables the estimate and ROC AUC.
        classes: Class values in score order (default: the sorted predicted values).
        reference: Labelled rows with the same columns to calibrate the estimate on
            (default: the scores are taken as calibrated).
        window: None (one window), rows per window, or a frequency such as ``"1D"``
            with ``time_column``.
        time_column: Timestamps for frequency windows.
        segment: Column whose values get their own rows beside ``"(all)"``.
        input_drift: Whether the inputs drifted: for every window, or by window key.
            Concept drift is suspected only where it is not True (None: unknown).
        costs: A cost model (``bascule.business.CostMatrix``); binary classifiers only.
        z: Standard errors of the accuracy gap tolerated before concept drift is flagged.
        tolerance_floor: Accuracy gap always tolerated (residual miscalibration).

    Returns:
        The report; stray labels become an ``unknown_labels`` finding.

    Raises:
        InvalidInputError: A named column is missing, scores or predictions are not
            valid, every label is of the wrong type, or a parameter is invalid.
    """
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInputError.for_field("frame", type(frame).__name__, "a DataFrame")
    if task not in ("classification", "regression"):
        raise InvalidInputError.for_field("task", task, "'classification' or 'regression'")
    findings: list[Finding] = []
    if label not in frame.columns:
        findings.append(Finding.of("no_labels", f"No '{label}' column: no labels yet.", label))
    if task == "regression":
        log = _regression_log(frame, label, prediction, findings)
    else:
        log = _classification_log(frame, label, prediction, scores, classes, reference, findings)
    if costs is not None and log.n_classes != 2:
        raise InvalidInputError.for_field("costs", type(costs).__name__, "a binary classifier")
    keys = _windows(frame, window, time_column)
    seg = None if segment is None else _column(frame, segment, "segment").astype(str).to_numpy()
    rows = []
    for key in pd.unique(keys):
        in_window = keys == key
        parts = [("(all)", in_window)]
        if seg is not None:
            parts += [(str(v), in_window & (seg == v)) for v in pd.unique(seg[in_window])]
        drift = input_drift.get(str(key)) if isinstance(input_drift, Mapping) else input_drift
        for name, mask in parts:
            row = {"window": str(key), "segment": name}
            row |= _evaluate(log, mask, drift, z, tolerance_floor)
            if costs is not None:
                labelled = mask & (log.truth >= 0)
                cost = costs.evaluate(
                    log.truth[labelled] == 1,
                    log.predicted[labelled] == 1,
                    frame=frame.loc[labelled],
                )
                row |= {"net_cost": cost.net_cost, "cost_per_1000": cost.per_1000}
            rows.append(row)
            if row.get("concept_drift_suspected") and name == "(all)":
                msg = (
                    f"Window {key}: realised accuracy {row['realised_accuracy']:.3f} vs "
                    f"{row['estimated_accuracy_labelled']:.3f} estimated for the same rows "
                    f"(tolerance {row['gap_tolerance']:.3f}) while the inputs did not drift."
                )
                findings.append(Finding.of("concept_drift_suspected", msg, None, window=key))
    return PerformanceReport(tuple(rows), tuple(findings), task)
