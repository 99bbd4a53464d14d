"""Parity check: does the ONNX model reproduce the source model on a sample of rows?

The rules, per row of the sample:

* **Classifiers.** Every class probability of the ONNX model is within ``atol`` (absolute)
  of the source model's ``predict_proba``. Labels are equal, except on near-ties: rows
  where the source model's two highest probabilities differ by at most
  ``max(1e-6, 2 * d)``, ``d`` being that row's largest probability difference. A
  difference already accepted by the ``atol`` check can flip such a label, so it is
  counted in ``ParityReport.tied_label_mismatches`` instead of failing.
* **Regressors.** ``|onnx - source| <= atol + rtol * |source|`` for every value (the rule
  of ``numpy.isclose``). The relative part is needed because the ONNX graphs compute in
  float32, about 7 significant digits: a target of 300 is only good to ~3e-5 whatever
  the model, so a purely absolute bound would fail on large targets.

A NaN on one side and not the other fails; NaN on both sides counts as equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bascule.core.errors import InvalidInputError, ParityError
from bascule.core.schema import ModelSignature
from bascule.registry.predictor import OnnxPredictor
from bascule.registry.profile import to_frame

__all__ = ["TIE_ATOL", "ParityReport", "check_parity"]

TIE_ATOL = 1e-6
"""Source probabilities this close count as a tie whatever the observed difference."""


@dataclass(frozen=True)
class ParityReport:
    """Outcome of a passed parity check.

    Attributes:
        max_abs_diff: Largest absolute difference seen (probabilities or predictions).
        rows_checked: Rows of the sample compared.
        tied_label_mismatches: Rows whose labels differ on a near-tie (see module doc).
    """

    max_abs_diff: float
    rows_checked: int
    tied_label_mismatches: int = 0


def check_parity(
    model: Any,
    predictor: OnnxPredictor,
    sample: pd.DataFrame | np.ndarray,
    *,
    atol: float = 1e-4,
    rtol: float = 1e-4,
) -> ParityReport:
    """Compare the source model with its ONNX predictor on ``sample``.

    Args:
        model: The fitted source model (scikit-learn API).
        predictor: The ONNX model to check.
        sample: Rows to compare on, a DataFrame or a 2-D array, as for ``convert``.
        atol: Absolute tolerance on probabilities and predictions.
        rtol: Relative tolerance on regression predictions (ignored for classifiers).

    Returns:
        The largest difference seen and how many rows were compared.

    Raises:
        ParityError: A value differs beyond tolerance; the message gives the worst row,
            the class or output column, both values, their difference and the tolerance.
        InvalidInputError: A tolerance is negative, or the sample is empty or does not
            match the predictor's signature.
    """
    for name, value in (("atol", atol), ("rtol", rtol)):
        if not value >= 0:
            raise InvalidInputError.for_field(name, value, "a number >= 0")
    signature = predictor.signature
    source_X = _source_input(model, sample, signature)
    rows = len(sample)
    if rows == 0:
        raise InvalidInputError.for_field("sample", "0 rows", "at least one row")
    index = sample.index if isinstance(sample, pd.DataFrame) else None
    if signature.task == "classification":
        return _check_classifier(model, predictor, sample, source_X, atol, index)
    source = np.asarray(model.predict(source_X), dtype=np.float64).reshape(rows, -1)
    onnx = np.asarray(predictor.predict(sample), dtype=np.float64).reshape(rows, -1)
    _check_shapes("predictions", source, onnx)
    diff = _abs_diff(source, onnx)
    tolerance = atol + rtol * np.nan_to_num(np.abs(source))
    excess = diff - tolerance
    worst = np.unravel_index(int(np.argmax(excess)), excess.shape)
    if excess[worst] > 0:
        row, col = int(worst[0]), int(worst[1])
        raise _mismatch(
            what=f"prediction (output column {col})",
            field=signature.label_output,
            row=row,
            index=index,
            column=col,
            source=float(source[row, col]),
            onnx=float(onnx[row, col]),
            diff=float(diff[row, col]),
            tolerance=float(tolerance[row, col]),
            rule=f"atol {atol:g} + rtol {rtol:g} * |source|",
        )
    return ParityReport(max_abs_diff=float(diff.max()), rows_checked=rows)


def _check_classifier(
    model: Any,
    predictor: OnnxPredictor,
    sample: Any,
    source_X: Any,
    atol: float,
    index: pd.Index | None,
) -> ParityReport:
    classes = list(predictor.classes or [])
    source = np.asarray(model.predict_proba(source_X), dtype=np.float64)
    onnx = np.asarray(predictor.predict_proba(sample), dtype=np.float64)
    _check_shapes("probabilities", source, onnx)
    diff = _abs_diff(source, onnx)
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    row, col = int(worst[0]), int(worst[1])
    if diff[row, col] > atol:
        label = classes[col] if col < len(classes) else col
        raise _mismatch(
            what=f"probability of class {label!r}",
            field=predictor.signature.proba_output or "probabilities",
            row=row,
            index=index,
            column=label,
            source=float(source[row, col]),
            onnx=float(onnx[row, col]),
            diff=float(diff[row, col]),
            tolerance=atol,
            rule=f"atol {atol:g}",
        )
    source_labels = np.asarray(model.predict(source_X), dtype=object).ravel()
    onnx_labels = np.asarray(predictor.predict(sample), dtype=object).ravel()
    differ = np.flatnonzero(source_labels != onnx_labels)
    if source.shape[1] >= 2:
        top_two = np.sort(source, axis=1)[:, -2:]
        gap = top_two[:, 1] - top_two[:, 0]
    else:
        gap = np.full(len(source), np.inf)
    tie_tolerance = np.maximum(TIE_ATOL, 2 * diff.max(axis=1))
    real = [int(r) for r in differ if not gap[r] <= tie_tolerance[r]]
    if real:
        r = real[0]
        where = _where(r, index)
        raise ParityError(
            f"ONNX label differs from the source model's on {where}: source "
            f"{source_labels[r]!r}, onnx {onnx_labels[r]!r}; the source probabilities "
            f"{np.round(source[r], 6).tolist()} are not a tie (top two differ by "
            f"{gap[r]:.3g} > {tie_tolerance[r]:.3g}). {len(real)} of {len(source)} rows "
            "have different labels.",
            field=predictor.signature.label_output,
            value=onnx_labels[r],
            expected=repr(source_labels[r]),
            row=r,
            source_value=source_labels[r],
            onnx_value=onnx_labels[r],
        )
    return ParityReport(
        max_abs_diff=float(diff.max()),
        rows_checked=len(source),
        tied_label_mismatches=len(differ),
    )


def _source_input(model: Any, sample: Any, signature: ModelSignature) -> Any:
    """Give the source model its rows the way it was fitted: named columns or a matrix."""
    frame = to_frame(sample, signature, target="the ONNX model")
    if getattr(model, "feature_names_in_", None) is not None:
        return frame
    return sample if isinstance(sample, np.ndarray) else frame.to_numpy()


def _check_shapes(what: str, source: np.ndarray, onnx: np.ndarray) -> None:
    if source.shape != onnx.shape:
        raise ParityError(
            f"ONNX {what} have shape {list(onnx.shape)} but the source model's have "
            f"{list(source.shape)}.",
            field=what,
            value=list(onnx.shape),
            expected=str(list(source.shape)),
        )


def _abs_diff(source: np.ndarray, onnx: np.ndarray) -> np.ndarray:
    diff: np.ndarray = np.abs(onnx - source)
    both_nan = np.isnan(source) & np.isnan(onnx)
    one_nan = np.isnan(source) ^ np.isnan(onnx)
    diff[both_nan] = 0.0
    diff[one_nan] = np.inf
    return diff


def _where(row: int, index: pd.Index | None) -> str:
    if index is None or index[row] == row:
        return f"row {row}"
    return f"row {row} (index label {index[row]!r})"


def _mismatch(
    *,
    what: str,
    field: str,
    row: int,
    index: pd.Index | None,
    column: object,
    source: float,
    onnx: float,
    diff: float,
    tolerance: float,
    rule: str,
) -> ParityError:
    return ParityError(
        f"ONNX {what} differs from the source model's on {_where(row, index)} "
        f"(worst row): source {source!r}, onnx {onnx!r}, |diff| {diff:.3g} > tolerance "
        f"{tolerance:.3g} ({rule}).",
        field=field,
        value=onnx,
        expected=f"within {tolerance:.3g} of {source!r}",
        row=row,
        column=column,
        source_value=source,
        onnx_value=onnx,
        diff=diff,
        tolerance=tolerance,
    )
