"""Data validation: schema skew stops the pipeline with a report, value skew becomes metrics."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from bascule.core.errors import InvalidInputError
from bascule.core.schema import ColumnSpec, ModelSignature, TensorSpec
from bascule.pipelines import (
    DataValidationError,
    LocalRunner,
    NotFittedModelError,
    Pipeline,
    PipelineFailed,
    StepContext,
    check_schema,
    require_fitted,
    schema_from_profile,
    schema_from_signature,
    step,
    value_skew,
)
from bascule.registry.profile import build_profile
from bascule.wiring import Services

EXPECTED = {"amount": "float64", "country": "categorical", "age": "integer"}


def frame(**overrides: object) -> pd.DataFrame:
    data = {
        "amount": [10.0, 20.5, 3.25, 7.0],
        "country": ["fr", "de", "fr", "es"],
        "age": [30, 41, 25, 60],
    }
    data.update(overrides)
    return pd.DataFrame(data)


def signature() -> ModelSignature:
    specs = [
        ColumnSpec(name="amount", datatype="FP64", kind="numeric"),
        ColumnSpec(name="country", datatype="BYTES", kind="categorical"),
        ColumnSpec(name="age", datatype="INT64", kind="numeric"),
    ]
    return ModelSignature(
        layout="columns",
        columns=specs,
        inputs=[TensorSpec(name=s.name, datatype=s.datatype, shape=[-1, 1]) for s in specs],
        outputs=[TensorSpec(name="label", datatype="INT64", shape=[-1])],
        task="classification",
    )


def test_matching_schema_has_no_skew() -> None:
    report = check_schema(frame(), EXPECTED)

    assert report.ok
    assert "no schema skew" == report.summary()
    report.raise_for_skew()


def test_missing_unexpected_and_mistyped_columns_are_all_reported() -> None:
    data = frame(age=["30", "41", "25", "60"]).drop(columns=["country"]).assign(extra=1)

    report = check_schema(data, EXPECTED)
    with pytest.raises(DataValidationError) as e:
        report.raise_for_skew()

    assert ["country"] == report.missing
    assert ["extra"] == report.unexpected
    assert {"age": {"expected": "integer", "actual": str(data["age"].dtype)}} == report.wrong_types
    assert "invalid_input" == e.value.code
    assert "missing columns ['country']" in e.value.message
    assert "unexpected columns ['extra']" in e.value.message
    assert "column 'age' has type" in e.value.message
    assert ["country"] == e.value.details["missing"]


def test_extra_columns_can_be_allowed() -> None:
    assert check_schema(frame(extra=[1, 2, 3, 4]), EXPECTED, allow_extra=True).ok


@pytest.mark.parametrize(
    ("values", "kind", "ok"),
    [
        ([1, 2], "numeric", True),
        ([True, False], "numeric", True),
        ([1.5, 2.0], "integer", False),
        ([1, 2], "float", False),
        (["a", "b"], "numeric", False),
        (["a", "b"], "string", True),
        (pd.Categorical(["a", "b"]), "categorical", True),
        (pd.Categorical(["a", "b"]), "string", False),
        (pd.to_datetime(["2026-01-01", "2026-01-02"]), "datetime", True),
        ([1, 2], "int64", True),
        ([1, 2], "int32", False),
    ],
)
def test_type_kinds(values: object, kind: str, ok: bool) -> None:
    assert ok == check_schema(pd.DataFrame({"c": values}), {"c": kind}).ok


def test_schema_from_signature_and_profile() -> None:
    profile = build_profile(frame(), signature())
    expected = {"amount": "numeric", "country": "categorical", "age": "numeric"}

    assert expected == schema_from_signature(signature())
    assert expected == schema_from_profile(profile)
    with pytest.raises(InvalidInputError, match="reference profile"):
        schema_from_profile({})


def test_value_skew_against_a_reference_profile() -> None:
    profile = build_profile(frame(), signature())
    current = frame(
        amount=[1.0, 100.0, np.nan, 10.0],  # 1.0 and 100.0 outside [3.25, 20.5]
        country=["fr", "it", "it", "pt"],
    )

    report = value_skew(current, profile)
    metrics = report.metrics()

    assert pytest.approx(2 / 3) == report.columns["amount"].out_of_range_share
    assert 0.25 == report.columns["amount"].missing_share
    assert 0.0 == report.columns["amount"].reference_missing_share
    assert 0.75 == report.columns["country"].new_category_share
    assert ["it", "pt"] == report.columns["country"].new_categories
    assert 0.0 == report.columns["age"].out_of_range_share
    assert 0.75 == metrics["skew.country.new_category_share"]
    assert 0.25 == metrics["skew.max_missing_share"]
    assert pytest.approx(2 / 3) == metrics["skew.max_out_of_range_share"]


def test_value_skew_of_identical_data_is_zero() -> None:
    profile = build_profile(frame(), signature())

    metrics = value_skew(frame(), profile).metrics()

    assert {0.0} == set(metrics.values())


def test_validation_failure_stops_pipeline_with_report(
    services: Services, make_runner: Callable[..., LocalRunner]
) -> None:
    profile = build_profile(frame(), signature())

    @step(outputs="valid")
    def validate(data: pd.DataFrame, ctx: StepContext) -> pd.DataFrame:
        check_schema(data, schema_from_profile(profile)).raise_for_skew()
        ctx.log_metrics(value_skew(data, profile).metrics())
        return data

    @step(outputs="model")
    def train(valid: pd.DataFrame) -> int:
        return len(valid)

    pipeline = Pipeline("guarded", [validate, train], params=["data"])
    runner = make_runner()
    good = runner.run(pipeline, {"data": frame()}, experiment="v")
    bad = runner.run(pipeline, {"data": frame().drop(columns=["age"])}, experiment="v")

    assert good.ok
    assert (
        0.0
        == services.tracking.get_run(good.run_id).metrics["validate.skew.max_missing_share"].value
    )
    assert isinstance(bad, PipelineFailed)
    assert "validate" == bad.failed_step
    assert "DataValidationError" == bad.error.type
    assert ("train",) == bad.skipped
    run = services.tracking.get_run(bad.run_id)
    digest = next(a.digest for a in run.artifacts if a.path == "error/error.json")
    report = json.loads(services.artifacts.get(digest))["details"]
    assert ["age"] == report["missing"]


def test_require_fitted() -> None:
    from sklearn.linear_model import LogisticRegression

    require_fitted(LogisticRegression().fit([[0.0], [1.0]], [0, 1]))
    with pytest.raises(NotFittedModelError, match="not fitted") as e:
        require_fitted(LogisticRegression())
    assert "invalid_input" == e.value.code
    with pytest.raises(NotFittedModelError, match="predict"):
        require_fitted({"weights": [1, 2]})
    with pytest.raises(NotFittedModelError):
        require_fitted(None)
