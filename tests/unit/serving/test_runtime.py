"""ServedModel: V2 tensors → feeds (both forms), every input mistake, batches, outputs, warm-up."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from bascule.core.errors import InvalidInputError
from bascule.core.tensors import RequestedOutput, Tensor
from bascule.registry.converters import convert
from bascule.registry.predictor import OnnxPredictor
from bascule.serving.runtime import ServedModel

COLUMNS = ["amount", "age", "score"]


def served(model: Any, frame: pd.DataFrame, version: int = 1) -> ServedModel:
    converted = convert(model, frame)
    return ServedModel(
        OnnxPredictor(converted.onnx_bytes, converted.signature, name="m", version=version)
    )


@pytest.fixture(scope="module")
def numeric() -> tuple[pd.DataFrame, Any, ServedModel]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=COLUMNS)
    y = (frame.amount + frame.score > 0).astype(int)
    model = LogisticRegression().fit(frame, y)
    return frame, model, served(model, frame)


@pytest.fixture(scope="module")
def mixed() -> tuple[pd.DataFrame, Any, ServedModel]:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "n": rng.integers(0, 5, 120),
            "x": rng.normal(size=120),
            "city": rng.choice(["lyon", "nantes", "paris"], 120),
        }
    )
    y = np.where(frame["n"] > 2, "yes", "no")
    encode = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["city"])], remainder="passthrough"
    )
    model = make_pipeline(encode, LogisticRegression()).fit(frame, y)
    return frame, model, served(model, frame)


def per_column(frame: pd.DataFrame, two_d: bool = False) -> list[Tensor]:
    out = []
    for name in frame.columns:
        values = frame[name].to_numpy()
        if values.dtype.kind == "O":
            datatype = "BYTES"
        elif values.dtype.kind in "iu":
            datatype, values = "INT64", values.astype(np.int64)
        else:
            datatype, values = "FP64", values.astype(np.float64)
        out.append(Tensor(name, datatype, values.reshape(-1, 1) if two_d else values))
    return out


def test_matrix_and_per_column_inputs_give_the_model_answers(
    numeric: tuple[pd.DataFrame, Any, ServedModel],
) -> None:
    frame, model, m = numeric
    rows = frame.head(5)
    forms = [
        [Tensor("input", "FP64", rows.to_numpy())],
        [Tensor("input", "FP32", rows.to_numpy().astype(np.float32))],
        per_column(rows),
        per_column(rows, two_d=True),
        list(reversed(per_column(rows))),
    ]

    for inputs in forms:
        (out,) = m.run_batch([m.feeds(inputs)])
        assert not isinstance(out, Exception)
        np.testing.assert_allclose(out["probabilities"], model.predict_proba(rows), atol=1e-5)
        assert model.predict(rows).tolist() == out["label"].tolist()


def test_text_columns_and_string_classes(mixed: tuple[pd.DataFrame, Any, ServedModel]) -> None:
    frame, model, m = mixed
    rows = frame.head(6)

    (out,) = m.run_batch([m.feeds(per_column(rows))])

    assert not isinstance(out, Exception)
    assert model.predict(rows).tolist() == out["label"].tolist()
    tensors = m.outputs(out, None, False)
    assert ["BYTES", "FP32"] == [t.datatype for t in tensors]
    assert ["no", "yes"] == m.output_metadata()[1]["parameters"]["classes"]


def test_missing_text_value_is_fed_as_the_missing_category(
    mixed: tuple[pd.DataFrame, Any, ServedModel],
) -> None:
    frame, _, m = mixed
    inputs = per_column(frame.head(2))
    inputs[2] = Tensor("city", "BYTES", np.array([None, "lyon"], dtype=object))

    (out,) = m.run_batch([m.feeds(inputs)])

    assert not isinstance(out, Exception)
    assert 2 == len(out["label"])


def test_batches_are_merged_and_split_back_in_order(
    numeric: tuple[pd.DataFrame, Any, ServedModel],
) -> None:
    frame, model, m = numeric
    parts = [frame.iloc[0:1], frame.iloc[1:4], frame.iloc[4:9]]

    results = m.run_batch([m.feeds([Tensor("input", "FP64", p.to_numpy())]) for p in parts])

    for part, out in zip(parts, results, strict=True):
        assert not isinstance(out, Exception)
        np.testing.assert_allclose(out["probabilities"], model.predict_proba(part), atol=1e-5)


def _bad(m: ServedModel, inputs: list[Tensor]) -> str:
    with pytest.raises(InvalidInputError) as e:
        m.feeds(inputs)
    assert "invalid_input" == e.value.code
    return e.value.message


def test_input_mistakes_name_the_input_what_was_sent_and_what_is_expected(
    numeric: tuple[pd.DataFrame, Any, ServedModel], mixed: tuple[pd.DataFrame, Any, ServedModel]
) -> None:
    frame, _, m = numeric
    cols = per_column(frame.head(3))
    _, _, text_model = mixed
    text_cols = per_column(mixed[0].head(3))

    cases = {
        "wrong name": (
            [Tensor("amount_eur", "FP64", np.zeros(3)), *cols[1:]],
            ["'amount_eur'", "amount"],
        ),
        "missing": (cols[:2], ["['score']", "missing"]),
        "matrix shape": (
            [Tensor("input", "FP32", np.zeros((2, 2), np.float32))],
            ["'input'", "[2, 2]", "[rows, 3]"],
        ),
        "matrix 1-D": ([Tensor("input", "FP32", np.zeros(3, np.float32))], ["'input'", "[3]"]),
        "matrix of text": (
            [Tensor("input", "BYTES", np.full((1, 3), "a", dtype=object))],
            ["'input'", "BYTES", "FP32"],
        ),
        "bytes for a number": (
            [*cols[:2], Tensor("score", "BYTES", np.array(["1", "2", "3"], dtype=object))],
            ["'score'", "BYTES", "FP32"],
        ),
        "column shape": (
            [*cols[:2], Tensor("score", "FP64", np.zeros((3, 2)))],
            ["'score'", "[3, 2]", "[rows]"],
        ),
        "row counts": (
            [*cols[:2], Tensor("score", "FP64", np.zeros(4))],
            ["'score'", "4 rows", "3 rows"],
        ),
        "empty batch": (
            [Tensor("input", "FP32", np.zeros((0, 3), np.float32))],
            ["'input'", "empty", "at least one row"],
        ),
        "empty columns": ([Tensor(c.name, "FP64", np.zeros(0)) for c in cols], ["empty"]),
    }
    text_cases = {
        "number for text": (
            [*text_cols[:2], Tensor("city", "FP64", np.zeros(3))],
            ["'city'", "FP64", "BYTES"],
        ),
        "matrix for text model": (
            [Tensor("input", "FP64", np.zeros((3, 3)))],
            ["'input'", "text columns", "['city']"],
        ),
        "fraction for integer": (
            [Tensor("n", "FP64", np.array([1.5, 2, 3])), *text_cols[1:]],
            ["'n'", "1.5", "INT64"],
        ),
    }

    for label, (inputs, words) in [*cases.items()]:
        message = _bad(m, inputs)
        for word in words:
            assert word in message, (label, message)
    for label, (inputs, words) in text_cases.items():
        message = _bad(text_model, inputs)
        for word in words:
            assert word in message, (label, message)


def test_unknown_requested_output_is_refused_before_running(
    numeric: tuple[pd.DataFrame, Any, ServedModel],
) -> None:
    _, _, m = numeric

    with pytest.raises(InvalidInputError, match=r"'proba'.*\['label', 'probabilities'\]"):
        m.check_requested([RequestedOutput("proba", False)])


def test_requested_outputs_and_binary_flags(numeric: tuple[pd.DataFrame, Any, ServedModel]) -> None:
    frame, _, m = numeric
    (out,) = m.run_batch([m.feeds([Tensor("input", "FP64", frame.head(2).to_numpy())])])
    assert not isinstance(out, Exception)

    tensors = m.outputs(out, [RequestedOutput("probabilities", True)], False)

    assert [("probabilities", True)] == [(t.name, t.binary) for t in tensors]
    assert all(t.binary for t in m.outputs(out, None, True))


def test_regressors_return_a_prediction() -> None:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.normal(size=(50, 3)), columns=COLUMNS)
    model = LinearRegression().fit(frame, frame.amount * 2 + 1)
    m = served(model, frame)

    (out,) = m.run_batch([m.feeds([Tensor("input", "FP64", frame.head(4).to_numpy())])])

    assert not isinstance(out, Exception)
    assert ["prediction"] == m.output_names
    np.testing.assert_allclose(out["prediction"], model.predict(frame.head(4)), rtol=1e-4)


def test_warm_up_runs_with_the_sample_or_zeros(
    numeric: tuple[pd.DataFrame, Any, ServedModel], mixed: tuple[pd.DataFrame, Any, ServedModel]
) -> None:
    numeric[2].warm_up(numeric[0].head(7), max_rows=64)
    numeric[2].warm_up(None, max_rows=16)
    mixed[2].warm_up(None, max_rows=8)
    mixed[2].warm_up(mixed[0], max_rows=1)


def test_columns_for_the_log_are_one_array_per_feature(
    numeric: tuple[pd.DataFrame, Any, ServedModel],
) -> None:
    frame, _, m = numeric

    first = m.feeds([Tensor("input", "FP64", frame.head(3).to_numpy())])
    second = m.feeds([Tensor("input", "FP64", frame.iloc[3:5].to_numpy())])

    columns = m.columns([first, second])

    assert COLUMNS == list(columns)
    np.testing.assert_allclose(columns["age"], frame.age.head(5), rtol=1e-6)
    assert all(c.flags.c_contiguous for c in columns.values())
    outputs = m.log_outputs([m.run_batch([first])[0], m.run_batch([second])[0]])
    one_call = m.log_outputs(
        m.run_batch([m.feeds([Tensor("input", "FP64", frame.head(5).to_numpy())])])
    )
    assert list(one_call) == list(outputs)
    for name, values in one_call.items():
        np.testing.assert_allclose(outputs[name], values, rtol=1e-6)


def test_stored_decision_threshold_decides_the_served_label(
    numeric: tuple[pd.DataFrame, Any, ServedModel],
) -> None:
    frame, model, _ = numeric
    converted = convert(model, frame)
    low = ServedModel(
        OnnxPredictor(converted.onnx_bytes, converted.signature, name="m", version=1),
        decision_threshold=0.05,
        positive_label="1",
    )
    rows = frame.head(50)
    (out,) = low.run_batch([low.feeds([Tensor("input", "FP64", rows.to_numpy())])])

    proba = model.predict_proba(rows)[:, 1]
    assert (proba >= 0.05).astype(int).tolist() == out["label"].tolist()
    assert (proba >= 0.5).sum() < out["label"].sum()


def test_threshold_for_a_model_without_two_classes_is_refused() -> None:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.normal(size=(60, 3)), columns=COLUMNS)
    y = rng.integers(0, 3, 60)
    converted = convert(LogisticRegression(max_iter=300).fit(frame, y), frame)
    predictor = OnnxPredictor(converted.onnx_bytes, converted.signature, name="m", version=1)

    with pytest.raises(InvalidInputError, match="decision_threshold"):
        ServedModel(predictor, decision_threshold=0.3)
    with pytest.raises(InvalidInputError, match="positive_label"):
        ServedModel(
            OnnxPredictor(
                convert(LogisticRegression().fit(frame, y % 2), frame).onnx_bytes,
                convert(LogisticRegression().fit(frame, y % 2), frame).signature,
            ),
            decision_threshold=0.3,
            positive_label="yes",
        )
