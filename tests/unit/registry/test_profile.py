"""build_profile(), sample_rows() and to_frame()."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from bascule.core.errors import InvalidInputError
from bascule.core.schema import ColumnSpec, ModelSignature, TensorSpec
from bascule.registry.profile import OTHER, build_profile, sample_rows, to_frame


def signature_for(columns: dict[str, str]) -> ModelSignature:
    specs = [
        ColumnSpec(
            name=name,
            datatype="BYTES" if kind == "categorical" else "FP32",
            kind="categorical" if kind == "categorical" else "numeric",
        )
        for name, kind in columns.items()
    ]
    return ModelSignature(
        layout="columns",
        columns=specs,
        inputs=[TensorSpec(name=s.name, datatype=s.datatype, shape=[-1, 1]) for s in specs],
        outputs=[TensorSpec(name="variable", datatype="FP32", shape=[-1, 1])],
        task="regression",
        label_output="variable",
    )


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 1000
    frame = pd.DataFrame(
        {
            "amount": rng.lognormal(3, 1, n),
            "flat": np.full(n, 7.0),
            "empty": np.full(n, np.nan),
            "city": rng.choice([f"c{i:03d}" for i in range(150)], n),
            "plan": rng.choice(["basic", "pro"], n, p=[0.7, 0.3]),
        }
    )
    frame.loc[::10, "amount"] = np.nan
    frame.loc[1, "amount"] = np.inf
    frame.loc[::25, "plan"] = None
    return frame


SIGNATURE = signature_for(
    {
        "amount": "numeric",
        "flat": "numeric",
        "empty": "numeric",
        "city": "categorical",
        "plan": "categorical",
    }
)


def test_numeric_column_profile(frame: pd.DataFrame) -> None:
    profile = build_profile(frame, SIGNATURE)
    json.dumps(profile, allow_nan=False)  # strict JSON: no NaN, no infinity

    amount = profile["columns"]["amount"]
    assert profile["row_count"] == 1000
    assert (amount["kind"], amount["datatype"]) == ("numeric", "FP32")
    assert amount["missing"] == 100
    assert amount["count"] + amount["missing"] == 1000
    assert amount["infinite"] == 1
    quantiles = amount["quantiles"]
    assert len(quantiles) == 101
    assert all(a <= b for a, b in itertools.pairwise(quantiles))
    assert (quantiles[0], quantiles[-1]) == (amount["min"], amount["max"])
    finite = frame["amount"][np.isfinite(frame["amount"])]
    assert amount["mean"] == pytest.approx(finite.mean())
    assert amount["std"] == pytest.approx(finite.std(ddof=0))
    histogram = amount["histogram"]
    assert len(histogram["edges"]) == 21
    assert len(histogram["counts"]) == 20
    assert histogram["edges"] == sorted(histogram["edges"])
    assert sum(histogram["counts"]) == amount["count"] - amount["infinite"]


def test_degenerate_numeric_columns(frame: pd.DataFrame) -> None:
    columns = build_profile(frame, SIGNATURE)["columns"]
    flat = columns["flat"]
    assert flat["histogram"] == {"edges": [7.0, 7.0], "counts": [1000]}
    assert flat["std"] == 0.0
    assert flat["quantiles"] == [7.0] * 101
    empty = columns["empty"]
    assert (empty["count"], empty["missing"]) == (0, 1000)
    assert empty["mean"] is None
    assert empty["histogram"] is None


def test_categorical_profile_keeps_top_100_and_other(frame: pd.DataFrame) -> None:
    columns = build_profile(frame, SIGNATURE)["columns"]
    city = columns["city"]
    assert city["kind"] == "categorical"
    assert city["distinct"] == 150
    assert len(city["counts"]) == 101
    assert OTHER in city["counts"]
    assert city["counts"][OTHER] > 0
    assert sum(city["counts"].values()) == city["count"] == 1000
    kept = [v for k, v in city["counts"].items() if k != OTHER]
    assert kept == sorted(kept, reverse=True)
    assert min(kept) >= frame["city"].value_counts().iloc[100]

    plan = columns["plan"]
    assert plan["missing"] == 40
    assert plan["counts"][OTHER] == 0
    assert sum(plan["counts"].values()) == plan["count"] == 960
    assert set(plan["counts"]) == {"basic", "pro", OTHER}


def test_profile_errors(frame: pd.DataFrame) -> None:
    with pytest.raises(InvalidInputError, match=r"lacks columns \['plan'\]"):
        build_profile(frame.drop(columns=["plan"]), SIGNATURE)
    bad = frame.assign(flat=frame["flat"].astype(object))
    bad.loc[3, "flat"] = "seven"
    with pytest.raises(InvalidInputError, match="Column 'flat' must be numeric but row 3"):
        build_profile(bad, SIGNATURE)


def test_sample_rows(frame: pd.DataFrame) -> None:
    sampled = sample_rows(frame, max_rows=100, seed=3)
    assert len(sampled) == 100
    assert sampled.index.is_monotonic_increasing
    assert sampled.index.is_unique
    assert sampled.equals(sample_rows(frame, max_rows=100, seed=3))
    assert not sampled.index.equals(sample_rows(frame, max_rows=100, seed=4).index)
    whole = sample_rows(frame, max_rows=5000)
    assert whole.equals(frame)
    assert whole is not frame
    with pytest.raises(InvalidInputError, match="max_rows"):
        sample_rows(frame, max_rows=0)


def test_to_frame() -> None:
    signature = signature_for({"a": "numeric", "b": "numeric"})
    frame = to_frame(np.arange(6.0).reshape(3, 2), signature)
    assert list(frame.columns) == ["a", "b"]
    assert frame["b"].tolist() == [1.0, 3.0, 5.0]
    records = to_frame([{"b": 1, "a": 2, "z": 0}], signature)
    assert records.to_dict("records") == [{"a": 2, "b": 1}]
    with pytest.raises(InvalidInputError, match=r"shape \[3, 3\].*\[-1, 2\]"):
        to_frame(np.zeros((3, 3)), signature)
    with pytest.raises(InvalidInputError, match="duplicated"):
        to_frame(pd.DataFrame([[1, 2, 3]], columns=["a", "a", "b"]), signature)
    with pytest.raises(InvalidInputError):
        to_frame("a,b\n1,2", signature)
