"""convert(): every supported model type reaches parity through OnnxPredictor."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.semi_supervised import LabelSpreading
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from xgboost import XGBClassifier, XGBRegressor

from bascule.core.errors import InvalidInputError, UnsupportedModelError
from bascule.registry.converters import SUPPORTED_MODELS, ConvertedModel, convert
from bascule.registry.parity import check_parity
from bascule.registry.predictor import OnnxPredictor

N_ROWS = 240


def classification_data(n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    return make_classification(
        n_samples=N_ROWS, n_features=6, n_informative=4, n_classes=n_classes, random_state=0
    )


def regression_data() -> tuple[np.ndarray, np.ndarray]:
    return make_regression(n_samples=N_ROWS, n_features=6, noise=5.0, random_state=0)


def mixed_frame() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Floats with NaNs, an integer column and a string column with missing values."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, N_ROWS),
            "visits": rng.integers(0, 8, N_ROWS),
            "plan": rng.choice(["basic", "pro", "team"], N_ROWS),
            "spend": rng.gamma(2.0, 30.0, N_ROWS),
        }
    )
    frame.loc[::7, "age"] = np.nan
    frame.loc[::11, "plan"] = None
    score = (
        frame["age"].fillna(40).to_numpy() / 10
        + frame["visits"].to_numpy()
        + (frame["plan"] == "pro").to_numpy() * 3
        + rng.normal(0, 1, N_ROWS)
    )
    return frame, (score > np.median(score)).astype(int), score * 10


def mixed_pipeline(final: Any) -> Any:
    # Trees get unscaled numbers, as in practice: a float32 StandardScaler in the ONNX graph
    # can move a training row that sits on an XGBoost cut point across it (a real parity
    # failure the check would report), while imputed raw values reach the trees exactly.
    linear = isinstance(final, LogisticRegression | Ridge)
    scaler = [StandardScaler()] if linear else []
    numeric = make_pipeline(SimpleImputer(strategy="median"), *scaler)
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    columns = ColumnTransformer(
        [("num", numeric, ["age", "visits", "spend"]), ("cat", encoder, ["plan"])]
    )
    return make_pipeline(columns, final)


Case = tuple[Callable[[], Any], str]
NUMERIC_CASES: dict[str, Case] = {
    "logistic-binary": (lambda: LogisticRegression(), "clf2"),
    "logistic-multiclass": (lambda: LogisticRegression(max_iter=500), "clf3"),
    "decision-tree-clf": (lambda: DecisionTreeClassifier(max_depth=6, random_state=0), "clf3"),
    "random-forest-clf": (
        lambda: RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0),
        "clf3",
    ),
    "histgb-clf-binary": (lambda: HistGradientBoostingClassifier(max_iter=20), "clf2"),
    "histgb-clf-multiclass": (lambda: HistGradientBoostingClassifier(max_iter=10), "clf3"),
    "lgbm-clf-binary": (lambda: LGBMClassifier(n_jobs=1, n_estimators=20, verbose=-1), "clf2"),
    "lgbm-clf-multiclass": (lambda: LGBMClassifier(n_jobs=1, n_estimators=10, verbose=-1), "clf3"),
    "xgb-clf-binary": (lambda: XGBClassifier(n_jobs=1, n_estimators=20, max_depth=4), "clf2"),
    "xgb-clf-multiclass": (lambda: XGBClassifier(n_jobs=1, n_estimators=10, max_depth=4), "clf3"),
    "scaled-logistic": (lambda: make_pipeline(StandardScaler(), LogisticRegression()), "clf2"),
    "linear-regression": (lambda: LinearRegression(), "reg"),
    "ridge": (lambda: Ridge(alpha=1.0), "reg"),
    "decision-tree-reg": (lambda: DecisionTreeRegressor(max_depth=6, random_state=0), "reg"),
    "random-forest-reg": (
        lambda: RandomForestRegressor(n_estimators=10, max_depth=6, random_state=0),
        "reg",
    ),
    "histgb-reg": (lambda: HistGradientBoostingRegressor(max_iter=20), "reg"),
    "lgbm-reg": (lambda: LGBMRegressor(n_jobs=1, n_estimators=20, verbose=-1), "reg"),
    "xgb-reg": (lambda: XGBRegressor(n_jobs=1, n_estimators=20, max_depth=4), "reg"),
}


def roundtrip(model: Any, sample: Any) -> tuple[ConvertedModel, OnnxPredictor]:
    converted = convert(model, sample)
    return converted, OnnxPredictor(converted.onnx_bytes, converted.signature, name="m")


def assert_agrees(model: Any, predictor: OnnxPredictor, sample: Any) -> None:
    report = check_parity(model, predictor, sample, atol=1e-4)
    assert report.rows_checked == len(sample)
    assert report.max_abs_diff <= 1e-3
    if predictor.signature.task == "classification":
        np.testing.assert_allclose(
            predictor.predict_proba(sample), model.predict_proba(sample), atol=1e-4
        )
        assert list(predictor.predict(sample)) == list(model.predict(sample))
    else:
        np.testing.assert_allclose(
            predictor.predict(sample), model.predict(sample), rtol=1e-4, atol=1e-4
        )


@pytest.mark.parametrize("as_frame", [False, True], ids=["array", "frame"])
@pytest.mark.parametrize("case", list(NUMERIC_CASES))
def test_numeric_models_reach_parity(case: str, as_frame: bool) -> None:
    make_model, kind = NUMERIC_CASES[case]
    X, y = regression_data() if kind == "reg" else classification_data(int(kind[-1]))
    sample: Any = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)]) if as_frame else X
    model = make_model().fit(sample, y)

    converted, predictor = roundtrip(model, sample)

    signature = converted.signature
    assert signature.layout == "tensor"
    assert [i.name for i in signature.inputs] == ["input"]
    assert signature.inputs[0].shape == [-1, 6]
    assert signature.column_names == (
        [f"x{i}" for i in range(6)] if as_frame else [f"f{i}" for i in range(6)]
    )
    if kind == "reg":
        assert signature.task == "regression"
        assert signature.classes is None
        assert signature.proba_output is None
        assert signature.label_output in [o.name for o in signature.outputs]
    else:
        assert signature.task == "classification"
        assert signature.classes == list(range(int(kind[-1])))
        assert (signature.label_output, signature.proba_output) == ("label", "probabilities")
    assert_agrees(model, predictor, sample)


def test_flavor_and_opset_are_reported() -> None:
    X, y = classification_data(2)
    for model, flavor in [
        (LogisticRegression(), "sklearn"),
        (LGBMClassifier(n_jobs=1, n_estimators=5, verbose=-1), "lightgbm"),
        (XGBClassifier(n_jobs=1, n_estimators=5), "xgboost"),
        (
            make_pipeline(StandardScaler(), LGBMClassifier(n_jobs=1, n_estimators=5, verbose=-1)),
            "sklearn",
        ),
    ]:
        converted = convert(model.fit(X, y), X)
        proto = onnx.load_from_string(converted.onnx_bytes)
        opsets = {o.domain: o.version for o in proto.opset_import}
        assert converted.flavor == flavor
        assert converted.opset == opsets.get("", opsets.get("ai.onnx")) >= 21
        assert opsets.get("ai.onnx.ml", 3) <= 3


@pytest.mark.parametrize(
    "final",
    [
        LogisticRegression(max_iter=500),
        RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0),
        HistGradientBoostingClassifier(max_iter=10),
        LGBMClassifier(n_jobs=1, n_estimators=10, verbose=-1),
        XGBClassifier(n_jobs=1, n_estimators=10, max_depth=3),
    ],
    ids=lambda m: type(m).__name__,
)
def test_mixed_frame_pipeline_classifier_uses_column_layout(final: Any) -> None:
    frame, y, _ = mixed_frame()
    model = mixed_pipeline(final).fit(frame, y)

    converted, predictor = roundtrip(model, frame)

    signature = converted.signature
    assert signature.layout == "columns"
    assert {c.name: (c.datatype, c.kind) for c in signature.columns} == {
        "age": ("FP32", "numeric"),
        "visits": ("INT64", "numeric"),
        "plan": ("BYTES", "categorical"),
        "spend": ("FP32", "numeric"),
    }
    assert [(i.name, i.shape) for i in signature.inputs] == [
        (name, [-1, 1]) for name in ["age", "visits", "plan", "spend"]
    ]
    assert_agrees(model, predictor, frame)
    unseen = frame.head(3).assign(plan=["enterprise", None, "pro"])
    assert_agrees(model, predictor, unseen)


@pytest.mark.parametrize(
    "final",
    [Ridge(), RandomForestRegressor(n_estimators=10, max_depth=5, random_state=0)],
    ids=lambda m: type(m).__name__,
)
def test_mixed_frame_pipeline_regressor(final: Any) -> None:
    frame, _, target = mixed_frame()
    model = mixed_pipeline(final).fit(frame, target)

    converted, predictor = roundtrip(model, frame)

    assert converted.signature.layout == "columns"
    assert converted.signature.task == "regression"
    assert_agrees(model, predictor, frame)


def test_string_class_labels_come_back_as_strings() -> None:
    X, y = classification_data(3)
    labels = np.array(["bronze", "gold", "silver"])[y]
    model = LogisticRegression(max_iter=500).fit(X, labels)

    converted, predictor = roundtrip(model, X)

    assert converted.signature.classes == ["bronze", "gold", "silver"]
    predicted = predictor.predict(X)
    assert all(isinstance(v, str) for v in predicted)
    assert_agrees(model, predictor, X)


@pytest.mark.parametrize(
    "model",
    [HistGradientBoostingClassifier(max_iter=20), HistGradientBoostingRegressor(max_iter=20)],
    ids=["classifier", "regressor"],
)
def test_histgb_with_missing_values_routes_nan_like_sklearn(model: Any) -> None:
    # NaN in feature 1 carries signal, so a wrong missing-value branch changes predictions.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 4))
    X[rng.random(400) < 0.25, 1] = np.nan
    X[rng.random(400) < 0.10, 2] = np.nan
    signal = np.where(np.isnan(X[:, 1]), 2.5, X[:, 1]) + X[:, 0]
    y = (signal > 0.5).astype(int) if isinstance(model, HistGradientBoostingClassifier) else signal
    model.fit(X, y)

    converted, predictor = roundtrip(model, X)

    proto = onnx.load_from_string(converted.onnx_bytes)
    tracks = [
        list(attribute.ints)
        for node in proto.graph.node
        for attribute in node.attribute
        if attribute.name == "nodes_missing_value_tracks_true"
    ]
    assert tracks
    assert any(1 in flags for flags in tracks)
    all_missing = X.copy()
    all_missing[:, 1] = np.nan
    for sample in (X, all_missing, np.full((5, 4), np.nan)):
        assert_agrees(model, predictor, sample)


# ---------------------------------------------------------------- refusals


class _Estimatorish:
    def fit(self, X: Any, y: Any) -> _Estimatorish:
        return self

    def predict(self, X: Any) -> Any:
        return X


@pytest.mark.parametrize(
    ("obj", "type_name"),
    [
        ({"weights": [1, 2]}, "builtins.dict"),
        (lambda x: x, "builtins.function"),
        (_Estimatorish(), "_Estimatorish"),
    ],
    ids=["dict", "lambda", "duck-typed"],
)
def test_non_estimators_are_unsupported(obj: Any, type_name: str) -> None:
    X, _ = classification_data(2)
    with pytest.raises(UnsupportedModelError) as info:
        convert(obj, X)
    message = str(info.value)
    assert type_name in message
    assert "Supported:" in message
    assert "lightgbm.LGBMClassifier" in message
    assert all(entry in message for entry in SUPPORTED_MODELS)


def test_estimator_without_converter_is_unsupported_even_inside_a_pipeline() -> None:
    X, y = classification_data(2)
    for model in [LabelSpreading(), make_pipeline(StandardScaler(), LabelSpreading())]:
        with pytest.raises(UnsupportedModelError) as info:
            convert(model.fit(X, y), X)
        assert "sklearn.semi_supervised._label_propagation.LabelSpreading" in str(info.value)
        assert "no ONNX converter" in str(info.value)


def test_native_booster_is_unsupported() -> None:
    X, y = classification_data(2)
    booster = LGBMClassifier(n_jobs=1, n_estimators=3, verbose=-1).fit(X, y).booster_
    with pytest.raises(UnsupportedModelError, match=r"'lightgbm\.basic\.Booster'"):
        convert(booster, X)


def test_missing_converter_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = classification_data(2)
    model = LogisticRegression().fit(X, y)
    monkeypatch.setitem(sys.modules, "skl2onnx", None)  # makes `import skl2onnx` fail
    with pytest.raises(UnsupportedModelError, match=r"pip install 'bascule\[convert\]'"):
        convert(model, X)


def test_transformer_alone_is_unsupported() -> None:
    X, _ = classification_data(2)
    with pytest.raises(UnsupportedModelError, match="neither a classifier nor a regressor"):
        convert(StandardScaler().fit(X), X)


def test_histgb_native_categorical_splits_are_refused() -> None:
    frame, y, _ = mixed_frame()
    frame = frame.assign(plan=frame["plan"].astype("category"))
    model = HistGradientBoostingClassifier(max_iter=5).fit(frame, y)
    with pytest.raises(UnsupportedModelError, match="categorical"):
        convert(model, frame)


@pytest.mark.parametrize(
    "model",
    [
        LogisticRegression(),
        make_pipeline(StandardScaler(), LogisticRegression()),
        LGBMClassifier(),
        XGBRegressor(),
    ],
    ids=lambda m: type(m).__name__,
)
def test_unfitted_model_is_refused(model: Any) -> None:
    X, _ = classification_data(2)
    with pytest.raises(InvalidInputError, match="is not fitted") as info:
        convert(model, X)
    assert not isinstance(info.value, UnsupportedModelError)
    assert type(model).__qualname__ in str(info.value)


def test_sample_must_match_the_model() -> None:
    X, y = classification_data(2)
    model = LogisticRegression().fit(X, y)
    with pytest.raises(InvalidInputError, match="fitted on 6"):
        convert(model, X[:, :4])
    with pytest.raises(InvalidInputError, match="sample"):
        convert(model, X[:, 0])
    with pytest.raises(InvalidInputError, match="sample"):
        convert(model, X.tolist())

    frame, labels, _ = mixed_frame()
    pipeline = mixed_pipeline(LogisticRegression()).fit(frame, labels)
    with pytest.raises(InvalidInputError, match=r"lacks columns \['plan'\]"):
        convert(pipeline, frame.drop(columns=["plan"]))


def test_string_column_for_a_plain_matrix_model_is_refused() -> None:
    frame, y, _ = mixed_frame()
    numbers = frame[["age", "visits"]].fillna(0)
    model = LogisticRegression().fit(numbers, y)
    strings = numbers.assign(visits=numbers["visits"].astype(str))
    with pytest.raises(InvalidInputError, match=r"\['visits'\] hold strings") as info:
        convert(model, strings)
    assert not isinstance(info.value, UnsupportedModelError)


def test_xgboost_fitted_on_misleading_column_names_keeps_positions() -> None:
    # Columns named f5..f0: onnxmltools must not read "f5" in position 0 as feature 5.
    X, y = classification_data(2)
    frame = pd.DataFrame(X, columns=[f"f{5 - i}" for i in range(6)])
    model = XGBClassifier(n_jobs=1, n_estimators=10, max_depth=4).fit(frame, y)

    converted, predictor = roundtrip(model, frame)

    assert converted.signature.column_names == list(frame.columns)
    assert model.get_booster().feature_names == list(frame.columns)  # caller's model untouched
    assert_agrees(model, predictor, frame)
