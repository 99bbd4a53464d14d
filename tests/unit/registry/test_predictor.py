"""OnnxPredictor: input forms, input errors, regressors, thread safety."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from bascule.core.errors import InvalidInputError
from bascule.registry.converters import convert
from bascule.registry.predictor import OnnxPredictor

COLUMNS = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def frame_and_model() -> tuple[pd.DataFrame, Any, OnnxPredictor]:
    X, y = make_classification(n_samples=120, n_features=4, random_state=0)
    frame = pd.DataFrame(X, columns=COLUMNS)
    model = LogisticRegression().fit(frame, y)
    converted = convert(model, frame)
    return frame, model, OnnxPredictor(converted.onnx_bytes, converted.signature, name="churn")


@pytest.fixture(scope="module")
def mixed() -> tuple[pd.DataFrame, Any, OnnxPredictor]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "n": rng.integers(0, 5, 80),
            "x": rng.normal(size=80),
            "city": rng.choice(["lyon", "nantes"], 80),
        }
    )
    frame.loc[::9, "city"] = None
    y = (frame["n"] > 2).astype(int).to_numpy()
    encode = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["city"])], remainder="passthrough"
    )
    model = make_pipeline(encode, LogisticRegression()).fit(frame, y)
    converted = convert(model, frame)
    return frame, model, OnnxPredictor(converted.onnx_bytes, converted.signature, version=3)


def test_properties(frame_and_model: tuple[pd.DataFrame, Any, OnnxPredictor]) -> None:
    _, _, predictor = frame_and_model
    assert (predictor.name, predictor.version) == ("churn", 0)
    assert predictor.classes == [0, 1]
    assert predictor.signature.column_names == COLUMNS
    assert "churn" in repr(predictor)


def test_frame_array_and_records_give_the_same_answer(
    frame_and_model: tuple[pd.DataFrame, Any, OnnxPredictor],
) -> None:
    frame, model, predictor = frame_and_model
    expected = model.predict_proba(frame)
    shuffled_with_extra = frame[["d", "b", "a", "c"]].assign(extra="ignored")
    for rows in (frame, frame.to_numpy(), frame.to_dict("records"), shuffled_with_extra):
        np.testing.assert_allclose(predictor.predict_proba(rows), expected, atol=1e-5)
        assert predictor.predict(rows).tolist() == model.predict(frame).tolist()


def test_feeds_and_run(frame_and_model: tuple[pd.DataFrame, Any, OnnxPredictor]) -> None:
    frame, _, predictor = frame_and_model
    feeds = predictor.to_feeds(frame.head(3))
    assert list(feeds) == ["input"]
    assert feeds["input"].dtype == np.float32
    assert feeds["input"].shape == (3, 4)
    outputs = predictor.run(feeds)
    assert set(outputs) == {"label", "probabilities"}
    with pytest.raises(InvalidInputError, match=r"missing \['input'\].*unknown \['x'\]"):
        predictor.run({"x": feeds["input"]})
    with pytest.raises(InvalidInputError, match="onnxruntime rejected"):
        predictor.run({"input": feeds["input"].astype(np.float64)})


def test_missing_columns_are_listed(
    frame_and_model: tuple[pd.DataFrame, Any, OnnxPredictor],
) -> None:
    frame, _, predictor = frame_and_model
    with pytest.raises(InvalidInputError) as info:
        predictor.predict(frame.drop(columns=["b", "d"]))
    message = str(info.value)
    assert "['b', 'd']" in message
    assert str(COLUMNS) in message
    assert "model 'churn:0'" in message
    with pytest.raises(InvalidInputError, match=r"lacks columns \['c'\]"):
        predictor.predict([{"a": 1.0, "b": 2.0, "d": 3.0}])


@pytest.mark.parametrize("shape", [(3, 5), (4,), (2, 2, 2)])
def test_wrong_array_shape(
    frame_and_model: tuple[pd.DataFrame, Any, OnnxPredictor], shape: tuple[int, ...]
) -> None:
    _, _, predictor = frame_and_model
    with pytest.raises(InvalidInputError) as info:
        predictor.predict(np.zeros(shape))
    assert f"shape {list(shape)}" in str(info.value)
    assert "[-1, 4]" in str(info.value)


def test_non_numeric_value_names_the_column(
    frame_and_model: tuple[pd.DataFrame, Any, OnnxPredictor],
) -> None:
    frame, _, predictor = frame_and_model
    bad = frame.head(3).astype(object)
    bad.loc[1, "c"] = "oops"
    with pytest.raises(
        InvalidInputError, match=r"Column 'c' must be numeric but row 1 holds 'oops'"
    ):
        predictor.predict(bad)
    rows = np.array([[1.0, 2.0, "x", 4.0]], dtype=object)
    with pytest.raises(InvalidInputError, match="Column 'c'"):
        predictor.predict(rows)
    with pytest.raises(InvalidInputError, match="Column 'a'"):
        predictor.predict([{"a": "1.5", "b": 1, "c": 2, "d": 3}])


def test_missing_numbers_are_nan(frame_and_model: tuple[pd.DataFrame, Any, OnnxPredictor]) -> None:
    _, _, predictor = frame_and_model
    feeds = predictor.to_feeds([{"a": None, "b": 1, "c": 2, "d": 3}])
    assert np.isnan(feeds["input"][0, 0])


def test_column_layout_inputs(mixed: tuple[pd.DataFrame, Any, OnnxPredictor]) -> None:
    frame, model, predictor = mixed
    feeds = predictor.to_feeds(frame.head(10))
    assert {name: (a.dtype, a.shape) for name, a in feeds.items()} == {
        "n": (np.dtype(np.int64), (10, 1)),
        "x": (np.dtype(np.float32), (10, 1)),
        "city": (np.dtype(object), (10, 1)),
    }
    assert feeds["city"][0, 0] == "nan"  # a missing string, as skl2onnx encodes NaN
    np.testing.assert_allclose(
        predictor.predict_proba(frame), model.predict_proba(frame), atol=1e-5
    )
    np.testing.assert_allclose(
        predictor.predict_proba(frame.to_numpy(dtype=object)), model.predict_proba(frame), atol=1e-5
    )


def test_integer_column_refuses_missing_and_fractions(
    mixed: tuple[pd.DataFrame, Any, OnnxPredictor],
) -> None:
    _, _, predictor = mixed
    with pytest.raises(InvalidInputError, match=r"Column 'n' must hold integers .* row 0"):
        predictor.predict([{"n": None, "x": 0.1, "city": "lyon"}])
    with pytest.raises(InvalidInputError, match=r"Column 'n' must hold integers .* 2\.5"):
        predictor.predict([{"n": 2.5, "x": 0.1, "city": "lyon"}])
    assert predictor.predict([{"n": 2.0, "x": 0.1, "city": "paris"}]).shape == (1,)


def test_regressor_predicts_values_and_refuses_predict_proba() -> None:
    X, y = make_regression(n_samples=80, n_features=3, random_state=0)
    model = RandomForestRegressor(n_estimators=5, random_state=0).fit(X, y)
    converted = convert(model, X)
    predictor = OnnxPredictor(converted.onnx_bytes, converted.signature, name="price", version=7)

    predicted = predictor.predict(X)

    assert predicted.shape == (80,)
    np.testing.assert_allclose(predicted, model.predict(X), rtol=1e-5)
    assert predictor.classes is None
    with pytest.raises(InvalidInputError, match="predict_proba needs a classifier") as info:
        predictor.predict_proba(X)
    assert "model 'price:7'" in str(info.value)


def test_bad_bytes_and_mismatched_signature(
    frame_and_model: tuple[pd.DataFrame, Any, OnnxPredictor],
) -> None:
    _, _, predictor = frame_and_model
    with pytest.raises(InvalidInputError, match="cannot load the ONNX bytes"):
        OnnxPredictor(b"not onnx", predictor.signature)
    converted = convert(
        RandomForestRegressor(n_estimators=2).fit(np.eye(4), np.arange(4.0)), np.eye(4)
    )
    with pytest.raises(InvalidInputError, match="does not match its ONNX graph"):
        OnnxPredictor(converted.onnx_bytes, predictor.signature)
    with pytest.raises(InvalidInputError, match="intra_op_threads"):
        OnnxPredictor(converted.onnx_bytes, converted.signature, intra_op_threads=-1)


def test_concurrent_predictions_are_consistent(
    frame_and_model: tuple[pd.DataFrame, Any, OnnxPredictor],
) -> None:
    frame, _, predictor = frame_and_model
    expected = predictor.predict_proba(frame)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: predictor.predict_proba(frame), range(64)))
    for result in results:
        np.testing.assert_array_equal(result, expected)


def test_string_classes_in_a_column_layout() -> None:
    X, y = make_classification(
        n_samples=60, n_features=3, n_informative=2, n_redundant=0, random_state=1
    )
    frame = pd.DataFrame(X, columns=["p", "q", "r"]).assign(tag=np.where(y, "u", "v"))
    labels = np.where(y, "yes", "no")
    encode = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["tag"])], remainder="passthrough"
    )
    model = make_pipeline(encode, LogisticRegression()).fit(frame, labels)
    converted = convert(model, frame)
    predictor = OnnxPredictor(converted.onnx_bytes, converted.signature)
    assert predictor.classes == ["no", "yes"]
    assert predictor.predict(frame).tolist() == model.predict(frame).tolist()
