"""Feedback records: types checked field by field, labels checked against the model."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from bascule.core.errors import InvalidInputError
from bascule.core.schema import ModelSignature
from bascule.monitoring.feedback import (
    Feedback,
    FeedbackResult,
    coerce_label,
    decode_label,
    encode_label,
    parse_feedback,
    read_feedback_file,
)


def signature(task: str = "classification", classes: list | None = None) -> ModelSignature:
    return ModelSignature(
        layout="tensor",
        columns=[{"name": "x", "datatype": "FP32", "kind": "numeric"}],
        inputs=[{"name": "input", "datatype": "FP32", "shape": [-1, 1]}],
        outputs=[{"name": "label", "datatype": "INT64", "shape": [-1]}],
        task=task,
        classes=classes,
    )


def test_a_full_record_is_parsed() -> None:
    parsed = parse_feedback(
        {
            "request_id": "r1",
            "label": np.int64(1),
            "row": 2.0,
            "model": "fraud",
            "outcome": np.float64(12.5),
            "timestamp": "2026-03-01T10:00:00Z",
        }
    )

    assert Feedback("r1", 1, 2, "fraud", 12.5, datetime(2026, 3, 1, 10, tzinfo=UTC)) == parsed


def test_missing_optional_fields_default_and_naive_times_are_utc() -> None:
    parsed = parse_feedback(
        {"request_id": 42, "label": "yes", "row": None, "outcome": math.nan,
         "timestamp": pd.Timestamp("2026-03-01 10:00")}
    )  # fmt: skip

    assert Feedback("42", "yes", 0, None, None, datetime(2026, 3, 1, 10, tzinfo=UTC)) == parsed


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"label": 1}, "'request_id'"),
        ({"request_id": "", "label": 1}, "'request_id'"),
        ({"request_id": "r", "label": None}, "'label'"),
        ({"request_id": "r", "label": [1]}, "'label'"),
        ({"request_id": "r", "label": math.inf}, "'label'"),
        ({"request_id": "r", "label": 1, "row": -1}, "'row'"),
        ({"request_id": "r", "label": 1, "row": "a"}, "'row'"),
        ({"request_id": "r", "label": 1, "outcome": "12 EUR"}, "'outcome'"),
        ({"request_id": "r", "label": 1, "timestamp": "yesterday"}, "'timestamp'"),
        ({"request_id": "r", "label": 1, "lable": 1}, "'lable'"),
    ],
)
def test_a_bad_record_gets_a_reason_naming_the_field(record: dict, field: str) -> None:
    reason = parse_feedback(record, 3)

    assert isinstance(reason, str)
    assert reason.startswith("record 3 ")
    assert field in reason


@pytest.mark.parametrize("label", [1, 1.0, "1", True, np.int64(1)])
def test_integer_classes_accept_equivalent_labels(label) -> None:
    assert 1 == coerce_label(label, signature(classes=[0, 1]), "fraud:1")


def test_string_classes_accept_numbers_that_name_them() -> None:
    sig = signature(classes=["0", "1", "x"])

    assert "1" == coerce_label(1, sig, "m:1")
    assert "x" == coerce_label("x", sig, "m:1")


@pytest.mark.parametrize(
    ("label", "sig"),
    [
        ("fraud", signature(classes=[0, 1])),
        (2, signature(classes=[0, 1])),
        ("maybe", signature(classes=["no", "yes"])),
        ("high", signature(task="regression")),
        (True, signature(task="regression")),
    ],
)
def test_labels_of_the_wrong_type_raise_naming_the_label(label, sig: ModelSignature) -> None:
    with pytest.raises(InvalidInputError, match="label") as e:
        coerce_label(label, sig, "fraud:1")

    assert "invalid_input" == e.value.code
    assert "label" == e.value.field


def test_regressors_take_numbers() -> None:
    assert 3.5 == coerce_label("3.5", signature(task="regression"), "price:1")


@pytest.mark.parametrize("label", [1, 2.5, "yes", True, False])
def test_labels_survive_storage(label) -> None:
    assert label == decode_label(*encode_label(label))
    assert type(label) is type(decode_label(*encode_label(label)))


def test_feedback_file_needs_request_id_and_label(tmp_path) -> None:
    path = tmp_path / "fb.parquet"
    pd.DataFrame({"request_id": ["a"], "outcome": [1.0]}).to_parquet(path)

    with pytest.raises(InvalidInputError, match="missing \\['label'\\]"):
        read_feedback_file(path)
    with pytest.raises(InvalidInputError, match="an existing Parquet file"):
        read_feedback_file(tmp_path / "none.parquet")


def test_feedback_file_rows_become_records(tmp_path) -> None:
    path = tmp_path / "fb.parquet"
    pd.DataFrame({"request_id": ["a", "b"], "label": [1, 0], "outcome": [3.0, None]}).to_parquet(
        path
    )

    records = read_feedback_file(path)

    assert [Feedback("a", 1, outcome=3.0), Feedback("b", 0)] == [parse_feedback(r) for r in records]


def test_results_add_up_and_keep_samples_short() -> None:
    one = FeedbackResult(3, 1, 1, 1, ["u1"], 1, ["bad"], "30d", {"fraud": 1})
    total = one + one + FeedbackResult(1, 1, 0, 0, lookback="30d", labelled={"churn": 1})

    assert {
        "received": 7,
        "accepted": 3,
        "updated": 2,
        "unknown": {"count": 2, "request_ids": ["u1", "u1"]},
        "invalid": {"count": 2, "reasons": ["bad", "bad"]},
        "lookback": "30d",
        "labelled": {"churn": 1, "fraud": 2},
    } == total.to_dict()
