"""Drift results as plain dataclasses: per feature, per detector, per dataset.

Nothing here computes a statistic or draws a chart: :meth:`DriftReport.to_html` hands the
finished report to :mod:`bascule.monitoring.html`.

Bad input never crashes a report and is never skipped silently: it becomes a
:class:`Finding` with a stable ``code`` (listed in ``FINDING_CODES``), and the feature it
concerns stays in the table with ``tested=False`` and a note.

The dataset-level rule (``DATASET_RULE``) is deliberately simple and explicit: the
dataset drifts when at least ``min_drifted`` features drift (default 1 — every per-feature
verdict already needs a non-trivial effect size and Bonferroni-corrected significance), or
when the domain classifier tells reference rows from current rows (AUC at or above its
floor and significant). Evidently's "half of the columns" rule is not used: with 25
features and 3 drifted, it never fires.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from bascule.core.errors import InvalidInputError

__all__ = [
    "DATASET_RULE",
    "FINDING_CODES",
    "DriftReport",
    "DriftResult",
    "FeatureDrift",
    "Finding",
    "Histogram",
    "MultivariateDrift",
    "clean_json",
    "drift_report",
]

Severity = Literal["info", "warning", "error"]

FINDING_CODES: Mapping[str, tuple[Severity, str]] = {
    "empty_window": ("error", "the current window has no rows; nothing was tested"),
    "missing_column": ("error", "a reference column is absent from the current window"),
    "new_column": ("info", "the current window has a column the reference does not"),
    "all_missing": ("error", "every current value of the column is missing"),
    "reference_all_missing": ("warning", "the reference has no values for the column"),
    "unsupported_dtype": ("warning", "the column's dtype (dates, durations…) is not tested"),
    "constant_reference": ("info", "the reference column holds one value; auto uses KS"),
    "constant_current": ("warning", "the column is stuck at one value; the reference varied"),
    "non_finite": ("warning", "±infinity in the column; those values are left out of tests"),
    "type_error": ("error", "values of the wrong type (text in a numeric column)"),
    "unseen_categories": ("warning", "current values that the reference never saw"),
    "method_not_applicable": ("info", "the requested test does not take this kind; auto used"),
    "small_window": ("info", "fewer than 30 rows: tests have little power"),
    "missing_rate": ("warning", "the share of missing values rose above the reference's"),
    "out_of_range": ("warning", "values outside the reference's [min, max]"),
    "schema_mismatch": ("error", "columns added or missing versus the model signature"),
    "multivariate_skipped": ("info", "the domain classifier did not run (reason given)"),
    "unknown_labels": ("warning", "labels that are not classes of the model (or not numbers)"),
    "no_labels": ("info", "no label column yet: only estimated performance"),
    "concept_drift_suspected": (
        "warning",
        "realised performance left the estimate while the inputs did not drift",
    ),
}
"""Every finding code: its severity and what it means."""

DATASET_RULE = (
    "dataset drift = at least {min_drifted} feature(s) drifted (effect size >= threshold and "
    "p-value < alpha / number of tested features), or the domain classifier AUC >= {auc:.2f} "
    "with p-value < {auc_alpha:g}"
)


def clean_json(value: Any) -> Any:
    """JSON-safe: NaN and infinity become None, tuples lists, numpy scalars Python ones."""
    if isinstance(value, Mapping):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class Finding:
    """A named problem with the input, kept in the report instead of crashing it."""

    code: str
    severity: Severity
    message: str
    column: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, code: str, message: str, column: str | None = None, **details: Any) -> Finding:
        """A finding with the severity ``FINDING_CODES`` gives its code."""
        return cls(code, FINDING_CODES[code][0], message, column, details)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict."""
        return {
            "code": self.code,
            "severity": self.severity,
            "column": self.column,
            "message": self.message,
            "details": clean_json(self.details),
        }


@dataclass(frozen=True)
class Histogram:
    """Reference and current shares over the same bins, for plots."""

    labels: tuple[str, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...]


@dataclass(frozen=True)
class FeatureDrift:
    """The drift verdict of one column: the test, its figures, and whether it drifted."""

    column: str
    kind: str
    method: str | None
    statistic: float | None
    p_value: float | None
    effect_size: float | None
    threshold: float | None
    alpha: float | None
    drifted: bool
    tested: bool
    n_reference: int
    n_current: int
    histogram: Histogram | None = None
    note: str = ""

    def to_dict(self, *, histogram: bool = False) -> dict[str, Any]:
        """A JSON-serializable dict; the plot data only when ``histogram`` is true."""
        out = asdict(self)
        if not histogram:
            out.pop("histogram")
        return dict(clean_json(out))


_FRAME_COLUMNS = [
    "column",
    "kind",
    "method",
    "statistic",
    "p_value",
    "effect_size",
    "threshold",
    "alpha",
    "drifted",
    "tested",
    "n_reference",
    "n_current",
    "note",
]


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["role", *_FRAME_COLUMNS])
    for name in ("statistic", "p_value", "effect_size", "threshold", "alpha"):
        frame[name] = frame[name].astype("float64")
    return frame


@dataclass(frozen=True)
class DriftResult:
    """What a per-feature :class:`DriftDetector` found in one current window."""

    features: tuple[FeatureDrift, ...]
    findings: tuple[Finding, ...]
    n_reference: int
    n_current: int
    alpha: float

    @property
    def drifted_features(self) -> list[str]:
        """Names of the columns that drifted, in column order."""
        return [f.column for f in self.features if f.drifted]

    @property
    def drifted(self) -> bool:
        """Whether any column drifted."""
        return any(f.drifted for f in self.features)

    def to_frame(self) -> pd.DataFrame:
        """One row per feature (see :meth:`DriftReport.to_frame`)."""
        return _frame([{"role": "feature", **f.to_dict()} for f in self.features])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict."""
        return {
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "alpha": self.alpha,
            "drifted_features": self.drifted_features,
            "features": [f.to_dict() for f in self.features],
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass(frozen=True)
class MultivariateDrift:
    """How well a small classifier tells reference rows from current rows (held-out AUC)."""

    auc: float | None
    p_value: float | None
    threshold: float
    alpha: float
    drifted: bool
    n_reference: int
    n_current: int
    columns: tuple[str, ...]
    method: str = "domain_classifier"
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict."""
        return dict(clean_json(asdict(self)))


@dataclass(frozen=True)
class DriftReport:
    """Dataset-level drift: per-feature and prediction verdicts, multivariate, findings.

    ``dataset_drift`` follows ``rule`` (see ``DATASET_RULE``); ``reasons`` says which part
    of the rule fired.
    """

    features: tuple[FeatureDrift, ...]
    predictions: tuple[FeatureDrift, ...]
    multivariate: MultivariateDrift | None
    findings: tuple[Finding, ...]
    dataset_drift: bool
    rule: str
    reasons: tuple[str, ...]
    n_reference: int
    n_current: int
    alpha: float

    @property
    def drifted_features(self) -> list[str]:
        """Names of the features (not predictions) that drifted, in column order."""
        return [f.column for f in self.features if f.drifted]

    @property
    def prediction_drift(self) -> bool:
        """Whether any prediction column (scores, labels) drifted."""
        return any(p.drifted for p in self.predictions)

    @property
    def has_errors(self) -> bool:
        """Whether a finding of severity ``error`` makes the verdict incomplete."""
        return any(f.severity == "error" for f in self.findings)

    def to_frame(self) -> pd.DataFrame:
        """One row per feature, then one per prediction column.

        Columns: ``role`` (feature or prediction), ``column``, ``kind``, ``method``,
        ``statistic``, ``p_value`` (NaN where the test has none), ``effect_size``,
        ``threshold``, ``alpha``, ``drifted``, ``tested``, ``n_reference``, ``n_current``,
        ``note`` (why a column was not tested).
        """
        rows = [{"role": "feature", **f.to_dict()} for f in self.features]
        rows += [{"role": "prediction", **p.to_dict()} for p in self.predictions]
        return _frame(rows)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (no NaN, no numpy types)."""
        return {
            "dataset_drift": self.dataset_drift,
            "prediction_drift": self.prediction_drift,
            "drifted_features": self.drifted_features,
            "rule": self.rule,
            "reasons": list(self.reasons),
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "alpha": self.alpha,
            "features": [f.to_dict() for f in self.features],
            "predictions": [p.to_dict() for p in self.predictions],
            "multivariate": None if self.multivariate is None else self.multivariate.to_dict(),
            "findings": [f.to_dict() for f in self.findings],
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as strict JSON text."""
        return json.dumps(self.to_dict(), allow_nan=False)

    def to_html(self, path: str | Path) -> Path:
        """Write a self-contained HTML report (inline SVG, no external fetch).

        Args:
            path: Where to write the file; parent folders must exist.

        Returns:
            The path written.

        Raises:
            StorageError: The file cannot be written.
        """
        from bascule.monitoring.html import write_html

        return write_html(self, Path(path))


def drift_report(
    reference: Any,
    current: pd.DataFrame,
    *,
    categorical: Sequence[str] | None = None,
    methods: str | Mapping[str, str] | None = None,
    predictions: Sequence[str] | None = None,
    alpha: float = 0.05,
    min_drifted: int = 1,
    multivariate: bool = True,
    auc_threshold: float = 0.57,
    random_state: int = 0,
) -> DriftReport:
    """Compare a current window with the reference: per feature, predictions, multivariate.

    Args:
        reference: Reference rows (DataFrame), a ``ReferenceSummary`` or the
            ``bascule.profile/1`` dict kept with a model version (no multivariate test
            then, unless the summary kept sample rows).
        current: The current window.
        categorical: Columns to treat as categorical whatever their dtype (rows only).
        methods: One method name (or ``"auto"``) for every column, or a dict from column
            name to method; see ``DRIFT_METHODS``.
        predictions: Model output columns (scores, labels) tested as prediction drift:
            reported apart and left out of the dataset verdict and the domain classifier.
        alpha: Family-wise significance level across the features of the window.
        min_drifted: Drifted features that make the dataset drift.
        multivariate: Whether to run the domain classifier.
        auc_threshold: AUC floor of the domain classifier.
        random_state: Seed of the domain classifier's samples and model.

    Returns:
        The report; bad input shows up in ``findings``, never as a crash.

    Raises:
        InvalidInputError: ``current`` is not a table, the reference is empty or not a
            profile, a method or a prediction column is unknown, or a parameter is out
            of range.
    """
    from bascule.monitoring.detectors import DriftDetector, as_frame
    from bascule.monitoring.multivariate import MIN_ROWS, DomainClassifierDetector
    from bascule.monitoring.reference import ReferenceSummary

    frame = as_frame(current, "current")
    if min_drifted < 1:
        raise InvalidInputError.for_field("min_drifted", min_drifted, "an integer >= 1")
    if isinstance(reference, ReferenceSummary):
        summary = reference
    elif isinstance(reference, Mapping):
        summary = ReferenceSummary.from_profile(reference)
    else:
        summary = ReferenceSummary.fit(
            as_frame(reference, "reference"), categorical=categorical, seed=random_state
        )
    outputs = list(predictions or ())
    unknown = [p for p in outputs if p not in summary.columns]
    if unknown:
        raise InvalidInputError.for_field("predictions", unknown, f"columns of {summary.names}")
    features = [c for c in summary.names if c not in outputs]

    def method_for(names: list[str]) -> str | dict[str, str]:
        if methods is None or isinstance(methods, str):
            return methods or "auto"
        absent = [c for c in methods if c not in summary.columns]
        if absent:
            raise InvalidInputError.for_field("methods", absent, f"columns of {summary.names}")
        return {c: m for c, m in methods.items() if c in names}

    feature_detector = DriftDetector(method_for(features), alpha=alpha)
    result = feature_detector.fit(summary.select(features, unsupported=True)).test(
        frame.drop(columns=[c for c in outputs if c in frame.columns])
    )
    findings = list(result.findings)
    predicted: tuple[FeatureDrift, ...] = ()
    if outputs:
        pred_detector = DriftDetector(method_for(outputs), alpha=alpha)
        pred_result = pred_detector.fit(summary.select(outputs)).test(
            frame[[c for c in outputs if c in frame.columns]]
        )
        predicted = pred_result.features
        findings += [
            f for f in pred_result.findings if f.code not in ("empty_window", "small_window")
        ]
    multi: MultivariateDrift | None = None
    tested = [f.column for f in result.features if f.tested]
    if multivariate and len(frame) > 0:
        why = ""
        if summary.sample is None:
            why = "the reference keeps no sample rows (a profile alone)"
        elif len(summary.sample) < MIN_ROWS:
            why = f"the reference sample has fewer than {MIN_ROWS} rows"
        elif not tested:
            why = "no feature could be tested"
        else:
            detector = DomainClassifierDetector(threshold=auc_threshold, random_state=random_state)
            multi = detector.fit(summary.select(features)).test(frame[tested])
            why = "" if multi.auc is not None else multi.note
        if why:
            findings.append(Finding.of("multivariate_skipped", f"No domain classifier: {why}."))
    drifted = result.drifted_features
    reasons = []
    if len(drifted) >= min_drifted:
        reasons.append(f"{len(drifted)} feature(s) drifted: {drifted}")
    if multi is not None and multi.drifted:
        reasons.append(f"domain classifier AUC {multi.auc:.3f} >= {multi.threshold:.2f}")
    rule = DATASET_RULE.format(
        min_drifted=min_drifted, auc=auc_threshold, auc_alpha=multi.alpha if multi else 0.01
    )
    return DriftReport(
        features=result.features,
        predictions=predicted,
        multivariate=multi,
        findings=tuple(findings),
        dataset_drift=bool(reasons),
        rule=rule,
        reasons=tuple(reasons),
        n_reference=summary.row_count,
        n_current=len(frame),
        alpha=alpha,
    )
