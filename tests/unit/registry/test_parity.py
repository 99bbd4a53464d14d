"""check_parity(): passes on a faithful conversion, names the worst row otherwise."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression

from bascule.core.errors import InvalidInputError, ParityError
from bascule.registry.converters import convert
from bascule.registry.parity import ParityReport, check_parity
from bascule.registry.predictor import OnnxPredictor


def predictor_for(model: Any, sample: Any) -> OnnxPredictor:
    converted = convert(model, sample)
    return OnnxPredictor(converted.onnx_bytes, converted.signature, name="churn", version=2)


@pytest.fixture(scope="module")
def classification() -> tuple[np.ndarray, np.ndarray]:
    return make_classification(n_samples=200, n_features=5, random_state=0)


def test_report_of_a_faithful_conversion(classification: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = classification
    model = LogisticRegression().fit(X, y)

    report = check_parity(model, predictor_for(model, X), X)

    assert isinstance(report, ParityReport)
    assert report.rows_checked == 200
    assert 0 <= report.max_abs_diff < 1e-5
    assert report.tied_label_mismatches == 0


def test_classifier_mismatch_names_worst_row_class_values_and_tolerance(
    classification: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = classification
    source = LogisticRegression().fit(X, y)
    other = LogisticRegression(C=0.001).fit(X, y)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)], index=range(100, 300))

    with pytest.raises(ParityError) as info:
        check_parity(source, predictor_for(other, X), frame)

    diff = np.abs(source.predict_proba(X) - other.predict_proba(X))
    row, col = np.unravel_index(np.argmax(diff), diff.shape)
    error = info.value
    assert error.code == "parity_failed"
    assert error.details["row"] == row
    assert error.details["column"] == int(source.classes_[col])
    assert error.details["diff"] == pytest.approx(diff[row, col], abs=1e-6)
    assert error.details["tolerance"] == 1e-4
    message = str(error)
    assert f"row {row} (index label {row + 100})" in message
    assert f"class {int(source.classes_[col])}" in message
    assert "source " in message
    assert "onnx " in message
    assert "tolerance 0.0001" in message


def test_regressor_mismatch_uses_relative_and_absolute_tolerance() -> None:
    X, y = make_regression(n_samples=100, n_features=4, random_state=0)
    source = LinearRegression().fit(X, y)
    shifted = LinearRegression().fit(X, y + 0.5)

    with pytest.raises(ParityError, match=r"atol 0\.0001 \+ rtol 0\.0001 \* \|source\|") as info:
        check_parity(source, predictor_for(shifted, X), X)
    assert info.value.details["row"] in range(100)
    assert info.value.details["diff"] > info.value.details["tolerance"]

    # Generous tolerances accept the same pair.
    report = check_parity(source, predictor_for(shifted, X), X, atol=1.0)
    assert report.max_abs_diff == pytest.approx(0.5, abs=1e-3)


class _RelabeledModel:
    """The source model's probabilities, with labels taken from ``labels``."""

    def __init__(self, model: Any, labels: np.ndarray, proba: np.ndarray | None = None) -> None:
        self._model = model
        self._labels = labels
        self._proba = proba

    def predict_proba(self, X: Any) -> np.ndarray:
        return self._model.predict_proba(X) if self._proba is None else self._proba

    def predict(self, X: Any) -> np.ndarray:
        return self._labels


def test_label_mismatch_outside_a_tie_fails(
    classification: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = classification
    model = LogisticRegression().fit(X, y)
    labels = model.predict(X).copy()
    confident = int(np.argmax(np.abs(model.predict_proba(X)[:, 1] - 0.5)))
    labels[confident] = 1 - labels[confident]

    with pytest.raises(ParityError, match=f"label differs .* on row {confident}") as info:
        check_parity(_RelabeledModel(model, labels), predictor_for(model, X), X)
    assert "not a tie" in str(info.value)


def test_label_mismatch_on_a_tie_is_counted_not_failed(
    classification: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = classification
    model = LogisticRegression().fit(X, y)
    model.coef_[:] = 0.0
    model.intercept_[:] = 0.0  # every probability is exactly 0.5
    predictor = predictor_for(model, X)
    flipped = 1 - predictor.predict(X)

    report = check_parity(_RelabeledModel(model, flipped), predictor, X)

    assert report.tied_label_mismatches == len(X)


def test_tolerances_must_be_non_negative(classification: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = classification
    model = LogisticRegression().fit(X, y)
    predictor = predictor_for(model, X)
    with pytest.raises(InvalidInputError, match="atol"):
        check_parity(model, predictor, X, atol=-1.0)
    with pytest.raises(InvalidInputError, match="rtol"):
        check_parity(model, predictor, X, rtol=float("nan"))
    with pytest.raises(InvalidInputError, match="at least one row"):
        check_parity(model, predictor, X[:0])
