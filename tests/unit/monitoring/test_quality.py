"""quality_report(): missing rates, ranges, new categories, types, schema versus signature."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from bascule.core.schema import ColumnSpec, ModelSignature, TensorSpec
from bascule.monitoring import quality_report


def signature(numeric: list[str], categorical: list[str]) -> ModelSignature:
    specs = [ColumnSpec(name=n, datatype="FP32", kind="numeric") for n in numeric]
    specs += [ColumnSpec(name=n, datatype="BYTES", kind="categorical") for n in categorical]
    return ModelSignature(
        layout="columns",
        columns=specs,
        inputs=[TensorSpec(name=s.name, datatype=s.datatype, shape=[-1, 1]) for s in specs],
        outputs=[TensorSpec(name="label", datatype="INT64", shape=[-1, 1])],
        task="classification",
        classes=[0, 1],
    )


def codes(report) -> dict[str, set[str | None]]:
    out: dict[str, set[str | None]] = {}
    for f in report.findings:
        out.setdefault(f.code, set()).add(f.column)
    return out


def test_a_clean_window_has_no_findings(make_frame) -> None:
    report = quality_report(make_frame(5000), make_frame(2000, seed=1))

    assert {} == codes(report)
    assert not report.has_errors
    assert 6 == len(report.to_frame())


def test_each_quality_problem_is_named(make_frame) -> None:
    reference, current = make_frame(5000), make_frame(1000, seed=1)
    current.loc[:199, "a"] = np.nan  # 20 % missing
    current.loc[:49, "b"] = 50.0  # far outside the reference range
    current["c"] = current["c"].astype(object)
    current.loc[:2, "c"] = "n/a"
    current.loc[3:5, "c"] = -np.inf
    current["d"] = 0.25  # stuck sensor
    current.loc[:9, "plan"] = "enterprise"
    current["region"] = None
    report = quality_report(reference, current)
    found = codes(report)
    frame = report.to_frame().set_index("column")

    assert {"a"} == found["missing_rate"]
    assert {"b"} == found["out_of_range"]
    assert {"c"} == found["type_error"]
    assert {"c"} == found["non_finite"]
    assert {"d"} == found["constant_current"]
    assert {"plan"} == found["unseen_categories"]
    assert {"region"} == found["all_missing"]
    assert 0.2 == frame.loc["a", "missing_rate"]
    assert 0.05 == frame.loc["b", "out_of_range_rate"]
    assert 10 == frame.loc["plan", "unseen"]
    json.dumps(report.to_dict(), allow_nan=False)


def test_schema_changes_versus_the_signature(make_frame) -> None:
    sig = signature(["a", "b", "c", "d"], ["plan", "region"])
    current = make_frame(300, seed=2).drop(columns=["d"]).assign(extra=1)
    report = quality_report(make_frame(2000), current, signature=sig)
    (finding,) = [f for f in report.findings if f.code == "schema_mismatch"]

    assert ("d",) == report.missing_columns
    assert ("extra",) == report.new_columns
    assert "error" == finding.severity
    assert report.has_errors


def test_an_empty_window_is_a_finding(make_frame) -> None:
    report = quality_report(make_frame(100), make_frame(100).iloc[0:0])

    assert {"empty_window": {None}} == codes(report)


def test_small_noise_in_missing_rates_stays_quiet() -> None:
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"x": np.where(rng.random(10_000) < 0.1, np.nan, 1.0)})
    quiet = [
        codes(
            quality_report(
                reference, pd.DataFrame({"x": np.where(rng.random(500) < 0.1, np.nan, 1.0)})
            )
        )
        for _ in range(30)
    ]

    assert [{}] * 30 == quiet
