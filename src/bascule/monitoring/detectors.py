"""Per-feature drift detection, scikit-learn style, and the detector conformance check.

``DriftDetector(method="psi", threshold=0.1).fit(reference).test(current)`` returns a
:class:`~bascule.monitoring.report.DriftResult`. The constructor stores parameters only;
``fit`` builds a compact :class:`~bascule.monitoring.reference.ReferenceSummary` (from
rows, an existing summary, or a registry profile) into attributes ending in ``_``;
``test`` before ``fit`` raises :class:`~bascule.core.errors.NotReadyError`.

A column drifts when its test's effect size reaches the threshold (the method's default
unless given) **and** its p-value is below ``alpha / k``, ``k`` being the number of
columns tested in the window (Bonferroni: the chance that a window without drift flags
any column stays below ``alpha``).

:func:`check_detector` is the contract every built-in detector passes, like
scikit-learn's ``check_estimator``.
"""

from __future__ import annotations

import inspect
import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, Self

import numpy as np
import pandas as pd

from bascule.core.errors import BasculeError, InvalidInputError, NotReadyError
from bascule.monitoring.drift import AUTO, DRIFT_METHODS, choose_method
from bascule.monitoring.reference import (
    ColumnReference,
    NumericObservation,
    NumericReference,
    Observation,
    ReferenceSummary,
    read_categories,
    read_numeric,
)
from bascule.monitoring.report import DriftResult, FeatureDrift, Finding, Histogram

__all__ = ["Detector", "DriftDetector", "as_frame", "check_detector", "observe_column"]

SMALL_WINDOW = 30


def as_frame(data: Any, what: str) -> pd.DataFrame:
    """A DataFrame from a DataFrame, a Series or a 1-D/2-D array (columns ``x0``, ``x1``…).

    Raises:
        InvalidInputError: ``data`` is none of these.
    """
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        return data.to_frame(name="value" if data.name is None else str(data.name))
    if isinstance(data, np.ndarray) and data.ndim in (1, 2):
        if data.ndim == 1:
            return pd.DataFrame({"value": data})
        return pd.DataFrame(data, columns=[f"x{i}" for i in range(data.shape[1])])
    raise InvalidInputError.for_field(
        what, type(data).__name__, "a pandas DataFrame or Series, or a 1-D or 2-D numpy array"
    )


def observe_column(
    ref: ColumnReference, series: pd.Series
) -> tuple[Observation | None, list[Finding]]:
    """Read one current column against its reference, turning bad input into findings.

    Returns:
        The observation (None when the column cannot be tested) and the findings.
    """
    name, findings = ref.name, []
    if isinstance(ref, NumericReference):
        values = read_numeric(series)
        if values.type_errors:
            msg = (
                f"Column '{name}' must be numeric but {values.type_errors} value(s) are not "
                f"numbers (e.g. {values.example!r}); they are counted as missing."
            )
            findings.append(
                Finding.of(
                    "type_error", msg, name, count=values.type_errors, example=repr(values.example)
                )
            )
        if values.infinite:
            msg = f"Column '{name}' holds {values.infinite} infinite value(s), left out of tests."
            findings.append(Finding.of("non_finite", msg, name, count=values.infinite))
        observation: Observation = ref.observe(values.finite)
    else:
        counts, _ = read_categories(series)
        observation = ref.observe(counts)
        if observation.unseen_total:
            share = observation.unseen_total / max(observation.n, 1)
            msg = (
                f"Column '{name}' has {observation.unseen_total} value(s) ({share:.1%}) in "
                f"categories the reference never saw: {sorted(observation.unseen)[:10]}."
            )
            findings.append(
                Finding.of(
                    "unseen_categories",
                    msg,
                    name,
                    count=observation.unseen_total,
                    share=share,
                    categories=observation.unseen,
                )
            )
    if observation.n == 0 and len(series) > 0:
        msg = f"Every current value of column '{name}' is missing or unusable; not tested."
        findings.append(Finding.of("all_missing", msg, name, rows=len(series)))
        return None, findings
    return observation, findings


def _histogram(ref: ColumnReference, obs: Observation) -> Histogram:
    ref_bins, cur_bins = obs.ref_bins.astype(float), obs.cur_bins.astype(float)
    if isinstance(ref, NumericReference):
        edges = [f"{e:.4g}" for e in ref.bin_edges]
        labels = [f"< {edges[0]}"] if edges else ["all"]
        labels += [f"[{a}, {b})" for a, b in itertools.pairwise(edges)]
        labels += [f">= {edges[-1]}"] if edges else []
    else:
        labels = list(obs.labels) if not isinstance(obs, NumericObservation) else []
        keep = np.flatnonzero((ref_bins + cur_bins) > 0)[:30]
        labels = [labels[i] for i in keep]
        ref_bins, cur_bins = ref_bins[keep], cur_bins[keep]
    r, c = ref_bins.sum() or 1.0, cur_bins.sum() or 1.0
    return Histogram(tuple(labels), tuple(ref_bins / r), tuple(cur_bins / c))


class DriftDetector:
    """Tests each column of a current window against a fitted reference.

    Args:
        method: A name in ``DRIFT_METHODS`` or ``"auto"`` (by kind and size, see
            :func:`~bascule.monitoring.drift.choose_method`) for every column, or a dict
            from column name to method (columns not in it use ``"auto"``).
        threshold: Effect-size floor; None uses each method's default threshold.
        alpha: Family-wise significance level across the columns tested in a window.
        categorical: Columns to treat as categorical whatever their dtype.
    """

    def __init__(
        self,
        method: str | Mapping[str, str] = AUTO,
        threshold: float | None = None,
        alpha: float = 0.05,
        categorical: Sequence[str] | None = None,
    ) -> None:
        self.method = method
        self.threshold = threshold
        self.alpha = alpha
        self.categorical = categorical

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters, for the audit record and for cloning."""
        return {k: getattr(self, k) for k in ("method", "threshold", "alpha", "categorical")}

    def set_params(self, **params: Any) -> Self:
        """Set constructor parameters (a fitted detector must be fitted again).

        Raises:
            InvalidInputError: A name is not a constructor parameter.
        """
        for key, value in params.items():
            if key not in self.get_params():
                raise InvalidInputError.for_field("parameter", key, str(list(self.get_params())))
            setattr(self, key, value)
        return self

    def _validate(self, summary: ReferenceSummary) -> dict[str, str]:
        if self.threshold is not None and not self.threshold > 0:
            raise InvalidInputError.for_field("threshold", self.threshold, "a number > 0 or None")
        if not 0.0 < self.alpha < 1.0:
            raise InvalidInputError.for_field("alpha", self.alpha, "a number in (0, 1)")
        known = [AUTO, *DRIFT_METHODS]
        if isinstance(self.method, str):
            if self.method not in known:
                raise InvalidInputError.for_field("method", self.method, f"one of {known}")
            return dict.fromkeys(summary.columns, self.method)
        methods = dict.fromkeys(summary.columns, AUTO)
        for column, name in self.method.items():
            if column not in summary.columns:
                raise InvalidInputError.for_field("method", column, f"a column of {summary.names}")
            if name not in known:
                raise InvalidInputError.for_field(f"method[{column!r}]", name, f"one of {known}")
            kind = summary.columns[column].kind
            if name != AUTO and kind not in DRIFT_METHODS[name].kinds:
                raise InvalidInputError.for_field(
                    f"method[{column!r}]", name, f"a test for {kind} columns"
                )
            methods[column] = name
        return methods

    def fit(self, reference: Any) -> Self:
        """Summarise the reference once.

        Args:
            reference: Rows (DataFrame, Series, array), a ``ReferenceSummary``, or a
                ``bascule.profile/1`` dict kept with a model version.

        Returns:
            The detector, fitted.

        Raises:
            InvalidInputError: Empty reference, unknown method or column, bad threshold.
        """
        if isinstance(reference, ReferenceSummary):
            summary = reference
        elif isinstance(reference, Mapping):
            summary = ReferenceSummary.from_profile(reference)
        else:
            frame = as_frame(reference, "reference")
            summary = ReferenceSummary.fit(frame, categorical=self.categorical, sample_size=0)
        self.methods_ = self._validate(summary)
        self.reference_ = summary
        self.columns_ = summary.names
        self.n_reference_ = summary.row_count
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "reference_"):
            raise NotReadyError(
                f"{type(self).__name__} is not fitted yet; call fit(reference) first.",
                expected="a fitted detector",
            )

    def test(self, current: Any) -> DriftResult:
        """Test every reference column of ``current``.

        Args:
            current: The window (same forms as ``fit`` takes rows in).

        Returns:
            One verdict per reference column, and the findings.

        Raises:
            NotReadyError: ``fit`` was not called.
            InvalidInputError: ``current`` is not a table.
        """
        self._check_fitted()
        frame = as_frame(current, "current")
        summary, findings = self.reference_, list[Finding]()
        for name, dtype in summary.unsupported.items():
            msg = f"Column '{name}' has dtype {dtype}; drift tests do not take it."
            findings.append(Finding.of("unsupported_dtype", msg, name, dtype=dtype))
        present = {str(c) for c in frame.columns}
        for name in sorted(present - set(summary.columns) - set(summary.unsupported)):
            msg = f"Column '{name}' is not in the reference; it is not tested."
            findings.append(Finding.of("new_column", msg, name))
        if len(frame) == 0:
            msg = "The current window has no rows; nothing was tested."
            findings.append(Finding.of("empty_window", msg))
        elif len(frame) < SMALL_WINDOW:
            msg = f"The current window has {len(frame)} rows; tests have little power."
            findings.append(Finding.of("small_window", msg, rows=len(frame)))
        observed: dict[str, Observation] = {}
        notes: dict[str, str] = {}
        for name, ref in summary.columns.items():
            if name not in present:
                msg = f"Column '{name}' is missing from the current window."
                findings.append(Finding.of("missing_column", msg, name))
                notes[name] = "missing from the current window"
            elif ref.count == 0:
                msg = f"The reference has no values for column '{name}'; it is not tested."
                findings.append(Finding.of("reference_all_missing", msg, name))
                notes[name] = "no reference values"
            elif len(frame) == 0:
                notes[name] = "empty window"
            else:
                obs, found = observe_column(ref, frame[name])
                findings += found
                if obs is None:
                    notes[name] = "all current values missing"
                else:
                    observed[name] = obs
        alpha_each = self.alpha / max(len(observed), 1)
        features = []
        for name, ref in summary.columns.items():
            obs_or_none = observed.get(name)
            if obs_or_none is None:
                untested = FeatureDrift(
                    name, ref.kind, None, None, None, None, None, None, False, False,
                    ref.count, 0, note=notes.get(name, ""),
                )  # fmt: skip
                features.append(untested)
                continue
            features.append(self._verdict(ref, obs_or_none, alpha_each, findings))
        return DriftResult(
            tuple(features), tuple(findings), summary.row_count, len(frame), self.alpha
        )

    def _verdict(
        self, ref: ColumnReference, obs: Observation, alpha: float, findings: list[Finding]
    ) -> FeatureDrift:
        name = self.methods_[ref.name]
        if ref.constant:
            msg = f"Column '{ref.name}' holds a single value in the reference."
            findings.append(Finding.of("constant_reference", msg, ref.name))
        if name != AUTO and ref.kind not in DRIFT_METHODS[name].kinds:
            msg = f"Method '{name}' does not take {ref.kind} column '{ref.name}'; auto used."
            findings.append(Finding.of("method_not_applicable", msg, ref.name, method=name))
            name = AUTO
        if name == AUTO:
            name = choose_method(ref.kind, ref.count, obs.n, constant=ref.constant)
        method = DRIFT_METHODS[name]
        score = method.func(ref, obs)
        threshold = method.default_threshold if self.threshold is None else self.threshold
        significant = score.p_value is None or score.p_value < alpha
        drifted = bool(score.effect_size >= threshold and significant)
        return FeatureDrift(
            ref.name, ref.kind, name, score.statistic, score.p_value, score.effect_size,
            threshold, alpha, drifted, True, ref.count, obs.n, _histogram(ref, obs),
        )  # fmt: skip


# ---------------------------------------------------------------- conformance


class Detector(Protocol):
    """What every detector offers: params, ``fit(reference)``, ``test(current)``."""

    def get_params(self) -> dict[str, Any]: ...
    def fit(self, reference: Any) -> Any: ...
    def test(self, current: Any) -> Any: ...


def _expect(ok: bool, detector: object, message: str) -> None:
    if not ok:
        raise AssertionError(f"{type(detector).__name__}: {message}")


def _check_frames(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def make(n: int, shift: float) -> pd.DataFrame:
        x = rng.standard_normal(n) + shift
        cats = rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1] if shift == 0 else [0.2, 0.3, 0.5])
        return pd.DataFrame({"x": x, "y": 0.5 * x + rng.standard_normal(n), "c": cats})

    return make(3000, 0.0), make(2000, 0.0), make(2000, 1.0)


def check_detector(detector: Detector) -> None:
    """Check that a detector keeps the contract; raise ``AssertionError`` naming the breach.

    The contract: the constructor only stores parameters (``get_params()`` lists them and
    a clone from them behaves the same); no ``*_`` attribute before ``fit``; ``test``
    before ``fit`` raises ``NotReadyError``; ``fit`` returns the detector and leaves the
    parameters alone; an empty reference raises ``InvalidInputError``; a window drawn from
    the reference's distribution does not drift and a shifted one does; ``test`` is
    deterministic and does not change the fitted state; results serialise to JSON.

    Args:
        detector: An unfitted detector instance.

    Raises:
        AssertionError: A promise is broken (the message says which).
    """
    params = detector.get_params()
    names = [p for p in inspect.signature(type(detector).__init__).parameters if p != "self"]
    _expect(sorted(params) == sorted(names), detector, f"get_params() {sorted(params)} != {names}")
    for key, value in params.items():
        _expect(getattr(detector, key) is value, detector, f"attribute {key!r} != its parameter")
    fitted = [a for a in vars(detector) if a.endswith("_") and not a.startswith("_")]
    _expect(not fitted, detector, f"has fitted attributes before fit: {fitted}")
    reference, same, shifted = _check_frames()
    try:
        detector.test(same)
    except NotReadyError as exc:
        _expect(exc.code == "not_ready", detector, f"unfitted error code {exc.code!r}")
    else:
        _expect(False, detector, "test() before fit() did not raise NotReadyError")
    try:
        type(detector)(**params).fit(reference.iloc[0:0])
    except InvalidInputError:
        pass
    except BasculeError as exc:
        _expect(False, detector, f"empty reference raised {type(exc).__name__}")
    else:
        _expect(False, detector, "fit() on an empty reference did not raise InvalidInputError")
    _expect(detector.fit(reference) is detector, detector, "fit() did not return self")
    _expect(detector.get_params() == params, detector, "fit() changed the parameters")
    fitted = [a for a in vars(detector) if a.endswith("_") and not a.startswith("_")]
    _expect(bool(fitted), detector, "fit() set no attribute ending in '_'")
    quiet, loud = detector.test(same), detector.test(shifted)
    _expect(not _drifted(quiet), detector, "a window from the reference distribution drifted")
    _expect(_drifted(loud), detector, "a window shifted by one standard deviation did not drift")
    again = detector.test(same)
    _expect(again.to_dict() == quiet.to_dict(), detector, "test() is not deterministic")
    json.dumps(loud.to_dict(), allow_nan=False)
    clone = type(detector)(**params).fit(reference)
    _expect(clone.test(shifted).to_dict() == loud.to_dict(), detector, "a clone tests differently")


def _drifted(result: Any) -> bool:
    return bool(getattr(result, "drifted", False))
