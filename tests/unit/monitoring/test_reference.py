"""Reference summaries fitted from rows and rebuilt from a registry profile agree."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bascule.core.errors import InvalidInputError
from bascule.core.schema import ColumnSpec, ModelSignature, TensorSpec
from bascule.monitoring import DriftDetector
from bascule.monitoring.reference import NumericReference, ReferenceSummary
from bascule.registry.profile import build_profile


def signature(frame: pd.DataFrame) -> ModelSignature:
    specs = [
        ColumnSpec(
            name=str(c),
            datatype="FP64" if frame[c].dtype.kind == "f" else "BYTES",
            kind="numeric" if frame[c].dtype.kind == "f" else "categorical",
        )
        for c in frame.columns
    ]
    return ModelSignature(
        layout="columns",
        columns=specs,
        inputs=[TensorSpec(name=s.name, datatype=s.datatype, shape=[-1, 1]) for s in specs],
        outputs=[TensorSpec(name="variable", datatype="FP32", shape=[-1, 1])],
        task="regression",
        label_output="variable",
    )


def test_profile_and_rows_give_the_same_verdicts(make_frame) -> None:
    reference = make_frame(20_000)
    profile = build_profile(reference, signature(reference))
    for current, expected in [
        (make_frame(20_000, seed=1), []),
        (make_frame(20_000, seed=2, shift=0.5), ["a", "b"]),
        (make_frame(20_000, seed=3, scale=1.6, plan=(0.3, 0.3, 0.4)), ["c", "plan"]),
    ]:
        from_rows = DriftDetector().fit(reference).test(current)
        from_profile = DriftDetector().fit(profile).test(current)

        assert expected == from_rows.drifted_features
        assert expected == from_profile.drifted_features
        for a, b in zip(from_rows.features, from_profile.features, strict=True):
            assert a.effect_size == pytest.approx(b.effect_size, abs=0.03), a.column


def test_numeric_summary_keeps_exact_moments(make_frame) -> None:
    frame = make_frame(1000)
    column = ReferenceSummary.fit(frame).columns["a"]

    assert isinstance(column, NumericReference)
    assert 1000 == column.count
    assert float(frame["a"].std(ddof=0)) == pytest.approx(column.std)
    assert 1.0 == column.cdf_right[-1]
    assert 0.0 == column.cdf_left[0]
    assert 1000 == int(column.bin_counts.sum())


def test_summary_keeps_a_bounded_sample(make_frame) -> None:
    summary = ReferenceSummary.fit(make_frame(3000), sample_size=500)

    assert summary.sample is not None
    assert 500 == len(summary.sample)
    assert ["a", "b"] == list(summary.select(["a", "b"]).columns)


def test_constant_and_all_missing_columns_are_summarised() -> None:
    frame = pd.DataFrame({"k": [3.0] * 50, "gone": [np.nan] * 50, "when": pd.Timestamp(0)})
    summary = ReferenceSummary.fit(frame)

    assert summary.columns["k"].constant
    assert 0 == summary.columns["gone"].count
    assert ["when"] == list(summary.unsupported)


@pytest.mark.parametrize(
    "bad",
    [{"format": "other"}, {"format": "bascule.profile/1", "columns": {"x": {}}}, [1, 2]],
)
def test_a_malformed_profile_is_a_clear_error(bad) -> None:
    with pytest.raises(InvalidInputError, match="profile") as e:
        ReferenceSummary.from_profile(bad)

    assert "invalid_input" == e.value.code


def test_an_empty_reference_is_a_clear_error() -> None:
    with pytest.raises(InvalidInputError, match="at least one row"):
        ReferenceSummary.fit(pd.DataFrame({"x": []}))
