"""One window of one model version's prediction log → stored monitoring results.

:func:`evaluate_window` runs the statistical engine on the rows of a window (joined with
their feedback) against the version's reference and flattens what it finds into
:class:`~bascule.core.monitoring_records.MonitoringResult` rows:

=====================  ====================================================================
metric                 value (feature / segment)
=====================  ====================================================================
``feature_drift``      effect size of the feature's drift test (feature), ``alert`` if drifted
``prediction_drift``   the same for a model output column (``label``, ``proba_<class>``)
``drifted_features``   number of drifted features; ``dataset_drift`` 1 or 0
``multivariate_auc``   held-out AUC of the domain classifier
``missing_rate``       share of missing values (feature); ``out_of_range_rate``,
                       ``unseen_rate`` likewise
``accuracy`` …         realised metrics on labelled rows (segment): ``accuracy``,
                       ``precision``, ``recall``, ``f1``, ``roc_auc``, ``log_loss``,
                       ``calibration_error``; ``mae``, ``rmse``, ``r2`` for regressors
``estimated_*``        confidence-based estimate (CBPE) beside them, for classifiers
``labelled_rows``      rows with feedback; ``accuracy_gap`` realised minus estimated on them
``concept_drift``      1 when realised accuracy left the estimate while inputs did not drift
``business_cost``      net cost of the labelled decisions; ``cost_per_1000`` per 1,000
a finding code         ``empty_window``, ``all_missing``, ``schema_mismatch``, … (status
                       ``finding``; the message is in ``details``)
=====================  ====================================================================

Nothing in the data raises: a report that cannot be computed becomes a finding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from bascule.core.errors import InvalidInputError
from bascule.core.monitoring_records import MonitoringResult, ResultStatus
from bascule.core.monitoring_settings import ModelMonitoringSettings
from bascule.core.schema import ModelSignature
from bascule.monitoring.feedback import coerce_label, decode_label
from bascule.monitoring.performance import CostModel, performance_report
from bascule.monitoring.quality import quality_report
from bascule.monitoring.reference import ReferenceSummary
from bascule.monitoring.report import DriftReport, FeatureDrift, Finding, clean_json, drift_report

__all__ = [
    "LABEL_COLUMN",
    "OUTCOME_COLUMN",
    "VersionReference",
    "WindowOutcome",
    "build_reference",
    "cost_column",
    "evaluate_window",
    "findings_only",
    "input_frame",
]

LABEL_COLUMN = "feedback_label"
"""Column of the joined log holding each row's feedback label (as stored: text)."""
LABEL_KIND_COLUMN = "feedback_label_kind"
OUTCOME_COLUMN = "feedback_outcome"
"""Column of the joined log holding the feedback's business outcome (``outcome`` in settings)."""
META = frozenset(
    {"request_id", "row", "model_name", "model_version", "timestamp", "latency_ms", "route",
     "policy", "features_from", LABEL_COLUMN, LABEL_KIND_COLUMN, OUTCOME_COLUMN}
)  # fmt: skip
_PERFORMANCE_SKIP = frozenset({"window", "segment", "n", "input_drift", "gap_tolerance"})


def cost_column(name: str | None) -> str | None:
    """The joined-log column a cost setting names (``outcome`` is the feedback's outcome)."""
    return OUTCOME_COLUMN if name == "outcome" else name


def _is_output(name: str) -> bool:
    return name in ("label", "prediction") or name.startswith(("proba_", "prediction_", "output."))


def input_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The model inputs of logged rows, named as in the signature (``input.x`` → ``x``)."""
    names = [c for c in frame.columns if c not in META and not _is_output(str(c))]
    out = frame[names]
    return out.rename(columns={c: str(c).removeprefix("input.") for c in names})


@dataclass(frozen=True)
class VersionReference:
    """What a version is compared with: its profile (features) and reference predictions."""

    version: int
    signature: ModelSignature
    summary: ReferenceSummary
    predictions: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()

    @property
    def features(self) -> list[str]:
        """The feature columns of the summary."""
        return [c for c in self.summary.names if c not in self.predictions]


def build_reference(
    version: int,
    signature: ModelSignature,
    profile: Mapping[str, Any],
    sample: pd.DataFrame,
    outputs: Mapping[str, np.ndarray] | None,
) -> VersionReference:
    """The reference of a version: its stored profile and sample, plus its predictions on the
    sample (the reference of prediction drift).

    Raises:
        InvalidInputError: Neither a profile nor a sample is stored.
    """
    findings: list[Finding] = []
    columns = [c for c in signature.column_names if c in sample.columns]
    rows = sample[columns] if columns else None
    categorical = [c.name for c in signature.columns if c.kind == "categorical"]
    if profile:
        summary = ReferenceSummary.from_profile(profile, sample=rows)
    elif rows is not None and len(rows):
        summary = ReferenceSummary.fit(rows, categorical=[c for c in categorical if c in columns])
    else:
        raise InvalidInputError.for_field(
            "reference", f"version {version}", "a version registered with a sample"
        )
    predictions: tuple[str, ...] = ()
    if outputs:
        shown = dict(outputs)
        classes = signature.classes or []
        if len(classes) == 2:  # binary: one score column says it all
            shown.pop(f"proba_{classes[0]}", None)
        pred = ReferenceSummary.fit(
            pd.DataFrame(shown), categorical=[c for c in ("label",) if c in shown], sample_size=0
        )
        merged = {**summary.columns, **pred.columns}
        summary = ReferenceSummary(merged, summary.row_count, summary.sample, summary.unsupported)
        predictions = tuple(pred.names)
    else:
        msg = "No predictions on a reference sample: prediction drift is not tested."
        findings.append(Finding("no_reference_predictions", "info", msg))
    return VersionReference(version, signature, summary, predictions, tuple(findings))


@dataclass
class WindowOutcome:
    """The results of one window of one version, and the facts the run summary needs."""

    results: list[MonitoringResult] = field(default_factory=list)
    labelled: int = 0
    dataset_drift: bool = False
    drifted: list[str] = field(default_factory=list)


class _Collector:
    def __init__(self, start: int, end: int, version: int | None) -> None:
        self.start, self.end, self.version = start, end, version
        self.results: list[MonitoringResult] = []
        self._seen: set[tuple[str, str | None]] = set()

    def add(
        self,
        metric: str,
        value: float | None,
        status: ResultStatus = "ok",
        *,
        feature: str | None = None,
        segment: str | None = None,
        threshold: float | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        number = None if value is None else float(value)
        if number is not None and not math.isfinite(number):
            number = None
        result = MonitoringResult(
            self.start, self.end, metric, number, status, feature, segment, threshold,
            self.version, dict(clean_json(dict(details or {}))),
        )  # fmt: skip
        self.results.append(result)

    def finding(self, f: Finding) -> None:
        if (f.code, f.column) in self._seen:
            return  # the drift and quality reports both name some problems
        self._seen.add((f.code, f.column))
        count = f.details.get("count")
        value = float(count) if isinstance(count, int | float) else 1.0
        details = {"severity": f.severity, "message": f.message, **dict(f.details)}
        self.add(f.code, value, "finding", feature=f.column, details=details)


def _drift_row(out: _Collector, metric: str, f: FeatureDrift) -> None:
    value = f.effect_size if f.effect_size is not None else f.statistic
    details: dict[str, Any] = {
        "method": f.method, "statistic": f.statistic, "p_value": f.p_value, "alpha": f.alpha,
        "drifted": f.drifted, "tested": f.tested, "kind": f.kind, "n_current": f.n_current,
        "n_reference": f.n_reference, "note": f.note,
    }  # fmt: skip
    if f.drifted and f.histogram is not None:
        h = f.histogram
        details["histogram"] = {
            "labels": list(h.labels),
            "reference": list(h.reference),
            "current": list(h.current),
        }
    status: ResultStatus = "alert" if f.drifted else "ok"
    out.add(metric, value, status, feature=f.column, threshold=f.threshold, details=details)


def _drift(out: _Collector, report: DriftReport) -> None:
    for f in report.features:
        _drift_row(out, "feature_drift", f)
    for p in report.predictions:
        _drift_row(out, "prediction_drift", p)
    status: ResultStatus = "alert" if report.dataset_drift else "ok"
    details = {"rule": report.rule, "reasons": list(report.reasons)}
    out.add("drifted_features", len(report.drifted_features), status, details=details)
    out.add("dataset_drift", float(report.dataset_drift), status, details=details)
    mv = report.multivariate
    if mv is not None and mv.auc is not None:
        status = "alert" if mv.drifted else "ok"
        out.add("multivariate_auc", mv.auc, status, threshold=mv.threshold, details=mv.to_dict())
    for finding in report.findings:
        out.finding(finding)


def _methods(cfg: ModelMonitoringSettings, ref: VersionReference, out: _Collector) -> Any:
    if not cfg.drift_methods:
        return cfg.drift_method
    known = set(ref.summary.names)
    for column in sorted(set(cfg.drift_methods) - known):
        msg = f"drift_methods names '{column}', which is not a column of the reference."
        out.finding(Finding("unknown_column_in_settings", "warning", msg, column))
    return {c: cfg.drift_methods.get(c, cfg.drift_method) for c in ref.summary.names}


def evaluate_window(
    frame: pd.DataFrame,
    ref: VersionReference,
    cfg: ModelMonitoringSettings,
    *,
    costs: CostModel | None,
    start: int,
    end: int,
) -> WindowOutcome:
    """Drift, quality, performance and business cost of one version's rows in one window.

    Args:
        frame: The logged rows (non-empty), joined with feedback (``LABEL_COLUMN``,
            ``LABEL_KIND_COLUMN``, ``OUTCOME_COLUMN``).
        ref: The version's reference.
        cfg: The model's monitoring settings.
        costs: The model's cost matrix, if any.
        start: Window start (ms).
        end: Window end (ms).

    Returns:
        The results (and the facts the run summary needs); problems become findings.
    """
    out = _Collector(start, end, ref.version)
    result = WindowOutcome(out.results)
    out.add("version_rows", len(frame))
    for finding in ref.findings:
        out.finding(finding)
    inputs = input_frame(frame)
    current = inputs.join(frame[[c for c in ref.predictions if c in frame.columns]])
    try:
        report = drift_report(
            ref.summary, current, predictions=list(ref.predictions), alpha=cfg.alpha,
            methods=_methods(cfg, ref, out), multivariate=cfg.multivariate,
        )  # fmt: skip
    except (InvalidInputError, ImportError) as exc:
        msg = f"Drift was not tested: {exc}"
        out.finding(Finding("drift_unavailable", "error", msg))
    else:
        _drift(out, report)
        result.dataset_drift, result.drifted = report.dataset_drift, report.drifted_features
    quality = quality_report(ref.summary.select(ref.features), inputs, signature=ref.signature)
    for c in quality.columns:
        details = {
            "missing": c.missing, "rows": c.rows, "type_errors": c.type_errors,
            "non_finite": c.non_finite, "reference_missing_rate": c.reference_missing_rate,
        }  # fmt: skip
        flagged = {(f.code, f.column) for f in quality.findings}
        warn: ResultStatus = "warn" if ("missing_rate", c.column) in flagged else "ok"
        out.add("missing_rate", c.missing_rate, warn, feature=c.column, details=details)
        if c.kind == "numeric":
            warn = "warn" if ("out_of_range", c.column) in flagged else "ok"
            out.add("out_of_range_rate", c.out_of_range_rate, warn, feature=c.column)
        else:
            warn = "warn" if ("unseen_categories", c.column) in flagged else "ok"
            out.add("unseen_rate", c.unseen_rate, warn, feature=c.column)
    for finding in quality.findings:
        out.finding(finding)
    result.labelled = _performance(out, frame, ref, cfg, costs, result.dataset_drift)
    return result


def _labels(frame: pd.DataFrame, signature: ModelSignature, model: str) -> pd.Series:
    """Feedback labels in the model's type; a label that cannot be one is kept as given."""

    def one(text: Any, kind: Any) -> Any:
        if text is None or (isinstance(text, float) and math.isnan(text)):
            return None
        value = decode_label(str(text), str(kind))
        try:
            return coerce_label(value, signature, model)
        except InvalidInputError:
            return value

    values = [one(t, k) for t, k in zip(frame[LABEL_COLUMN], frame[LABEL_KIND_COLUMN], strict=True)]
    return pd.Series(values, index=frame.index, dtype=object)


def _classes(cfg: ModelMonitoringSettings, sig: ModelSignature, out: _Collector) -> list[Any]:
    classes = list(sig.classes or [])
    positive = cfg.cost.positive_label if cfg.cost is not None else None
    if positive is None or len(classes) != 2:
        return classes
    match = [c for c in classes if str(c) == str(positive)]
    if not match:
        msg = f"cost.positive_label {positive!r} is not a class of the model ({classes})."
        out.finding(Finding("cost_unavailable", "warning", msg))
        return classes
    return [c for c in classes if c != match[0]] + match


def _prices(frame: pd.DataFrame, cfg: ModelMonitoringSettings, out: _Collector) -> bool:
    """Fill missing prices of labelled rows with 0 (and say so); False if a column is absent."""
    if cfg.cost is None:
        return False
    names = (cfg.cost.fp_cost_column, cfg.cost.fn_cost_column, cfg.cost.tp_value_column)
    labelled = frame[LABEL_COLUMN].notna()
    for name in filter(None, names):
        column = cost_column(name) or name
        if column not in frame.columns:
            msg = f"Cost column '{name}' is not in the prediction log; no business cost."
            out.finding(Finding("cost_unavailable", "warning", msg, name))
            return False
        values = pd.to_numeric(frame[column].astype(object), errors="coerce").astype(float)
        bad = labelled & ~np.isfinite(values)
        if bad.any():
            msg = f"{int(bad.sum())} labelled row(s) have no '{name}' value; counted as 0."
            out.finding(
                Finding("missing_cost_values", "warning", msg, name, {"count": int(bad.sum())})
            )
        frame[column] = values.where(np.isfinite(values), 0.0)
    return True


def _performance(
    out: _Collector,
    frame: pd.DataFrame,
    ref: VersionReference,
    cfg: ModelMonitoringSettings,
    costs: CostModel | None,
    drift: bool,
) -> int:
    sig = ref.signature
    data = frame.copy()
    has_labels = bool(data[LABEL_COLUMN].notna().any())
    segment = cfg.segment_column
    if segment is not None and segment not in data.columns:
        msg = f"segment_column '{segment}' is not in the prediction log; no segments."
        out.finding(Finding("missing_segment_column", "warning", msg, segment))
        segment = None
    kwargs: dict[str, Any] = {"segment": segment, "input_drift": drift}
    if has_labels:
        data["__label__"] = _labels(data, sig, f"{sig.task} model")
    if sig.task == "regression":
        kwargs |= {"task": "regression", "prediction": "prediction"}
    else:
        classes = _classes(cfg, sig, out)
        scores = [f"proba_{c}" for c in classes]
        has_scores = bool(classes) and all(s in data.columns for s in scores)
        kwargs |= {
            "task": "classification",
            "prediction": "label" if "label" in data.columns else "prediction",
            "classes": classes or None,
            "scores": scores if has_scores else None,
        }
        if costs is not None and len(classes) == 2 and has_labels and _prices(data, cfg, out):
            kwargs["costs"] = costs
    kwargs["label"] = "__label__" if has_labels else "__no_label__"
    try:
        report = performance_report(data, **kwargs)
    except InvalidInputError as exc:
        msg = f"Performance was not computed: {exc}"
        out.finding(Finding("performance_unavailable", "error", msg))
        return int(data[LABEL_COLUMN].notna().sum())
    currency = cfg.cost.currency if cfg.cost is not None else ""
    labelled = 0
    for row in report.rows:
        seg = None if row["segment"] == "(all)" else str(row["segment"])
        if seg is None:
            labelled = int(row.get("n_labelled", 0))
        else:
            out.add("rows", row["n"], segment=seg)
        _performance_row(out, row, seg, currency)
    for finding in report.findings:
        if finding.code != "no_labels":
            column = LABEL_COLUMN if finding.column == "__label__" else finding.column
            out.finding(replace(finding, column=column))
    return labelled


def _performance_row(
    out: _Collector, row: Mapping[str, Any], seg: str | None, currency: str
) -> None:
    for key, value in row.items():
        if key in _PERFORMANCE_SKIP or key == "estimated_accuracy_labelled":
            continue
        if key == "n_labelled":
            out.add("labelled_rows", value, segment=seg)
        elif key == "accuracy_gap":
            details = {"estimated_on_labelled": row.get("estimated_accuracy_labelled")}
            tolerance = row.get("gap_tolerance")
            out.add(key, value, segment=seg, threshold=tolerance, details=details)
        elif key == "concept_drift_suspected":
            out.add("concept_drift", float(bool(value)), "alert" if value else "ok", segment=seg)
        elif key in ("net_cost", "cost_per_1000"):
            name = "business_cost" if key == "net_cost" else key
            out.add(name, value, segment=seg, details={"currency": currency})
        elif key.startswith("realised_"):
            out.add(key.removeprefix("realised_"), value, segment=seg)
        elif key.startswith("estimated_"):
            out.add(key, value, segment=seg, details={"method": "cbpe"})


def findings_only(start: int, end: int, findings: Sequence[Finding]) -> list[MonitoringResult]:
    """Results of a window where nothing could be evaluated (no rows, unknown version…)."""
    out = _Collector(start, end, None)
    for f in findings:
        out.finding(f)
    return out.results
