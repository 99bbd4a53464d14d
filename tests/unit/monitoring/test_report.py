"""drift_report(): the verdict, the table, bad input as findings, JSON and HTML."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from bascule.core.errors import InvalidInputError
from bascule.monitoring import DriftReport, drift_report
from bascule.monitoring.report import FINDING_CODES

FRAME_COLUMNS = [
    "role", "column", "kind", "method", "statistic", "p_value", "effect_size", "threshold",
    "alpha", "drifted", "tested", "n_reference", "n_current", "note",
]  # fmt: skip


@pytest.fixture
def reference(make_frame) -> pd.DataFrame:
    return make_frame(4000)


def codes(report: DriftReport) -> dict[str, set[str | None]]:
    out: dict[str, set[str | None]] = {}
    for f in report.findings:
        out.setdefault(f.code, set()).add(f.column)
    return out


def test_no_drift_gives_a_quiet_report(reference, make_frame) -> None:
    report = drift_report(reference, make_frame(4000, seed=1))

    assert not report.dataset_drift
    assert [] == report.drifted_features
    assert () == report.reasons
    assert report.multivariate is not None
    assert not report.multivariate.drifted


def test_a_shift_is_found_and_explained(reference, make_frame) -> None:
    report = drift_report(reference, make_frame(4000, seed=1, shift=0.5))
    frame = report.to_frame()

    assert report.dataset_drift
    assert ["a", "b"] == report.drifted_features
    assert FRAME_COLUMNS == list(frame.columns)
    assert ["a", "b", "c", "d", "plan", "region"] == list(frame["column"])
    assert {"wasserstein", "jensenshannon"} == set(frame["method"])
    assert "2 feature(s) drifted" in report.reasons[0]
    assert "dataset drift = at least 1 feature(s) drifted" in report.rule


def test_correlation_only_change_drifts_the_dataset_not_the_features(reference, make_frame):
    report = drift_report(reference, make_frame(4000, seed=1, rho=-0.6))

    assert [] == report.drifted_features
    assert report.dataset_drift
    assert "domain classifier AUC" in report.reasons[0]


def test_prediction_drift_is_reported_apart(reference, make_frame) -> None:
    current = make_frame(4000, seed=1)
    reference = reference.assign(score=np.linspace(0, 1, len(reference)))
    current = current.assign(score=np.linspace(0.4, 1, len(current)))
    report = drift_report(reference, current, predictions=["score"])

    assert report.prediction_drift
    assert not report.dataset_drift
    assert ["score"] == [p.column for p in report.predictions]
    assert ["feature"] * 6 + ["prediction"] == list(report.to_frame()["role"])


def test_every_kind_of_bad_input_becomes_a_named_finding(reference, make_frame) -> None:
    current = make_frame(500, seed=1).drop(columns=["d"])
    current["a"] = current["a"].astype(object)
    current.loc[:9, "a"] = "oops"
    current["b"] = np.nan
    current.loc[:4, "c"] = np.inf
    current.loc[:19, "plan"] = "enterprise"
    current["extra"] = 1.0
    reference = reference.assign(k=1.0, when=pd.Timestamp("2024-01-01"))
    current = current.assign(k=1.0, when=pd.Timestamp("2024-01-02"))
    report = drift_report(reference, current)
    found = codes(report)

    assert {"a"} == found["type_error"]
    assert {"b"} == found["all_missing"]
    assert {"c"} == found["non_finite"]
    assert {"d"} == found["missing_column"]
    assert {"plan"} == found["unseen_categories"]
    assert {"extra"} == found["new_column"]
    assert {"k"} == found["constant_reference"]
    assert {"when"} == found["unsupported_dtype"]
    assert set(found) <= set(FINDING_CODES)
    assert report.has_errors
    untested = {f.column: f.note for f in report.features if not f.tested}
    assert {"b": "all current values missing", "d": "missing from the current window"} == untested


def test_an_empty_window_is_a_finding_not_a_crash(reference) -> None:
    report = drift_report(reference, reference.iloc[0:0])

    assert {"empty_window"} == set(codes(report))
    assert not report.dataset_drift
    assert not any(f.tested for f in report.features)


def test_a_tiny_window_is_flagged_as_small(reference) -> None:
    report = drift_report(reference, reference.iloc[:10])

    assert "small_window" in codes(report)
    assert not report.dataset_drift


def test_a_profile_without_sample_skips_the_classifier_with_a_finding(reference, make_frame):
    from bascule.monitoring.reference import ReferenceSummary

    summary = ReferenceSummary.fit(reference, sample_size=0)
    report = drift_report(summary, make_frame(2000, seed=1))

    assert report.multivariate is None
    assert "multivariate_skipped" in codes(report)


def test_bad_arguments_are_clear_errors(reference) -> None:
    with pytest.raises(InvalidInputError, match="current"):
        drift_report(reference, [1, 2, 3])
    with pytest.raises(InvalidInputError, match="predictions"):
        drift_report(reference, reference, predictions=["nope"])
    with pytest.raises(InvalidInputError, match="methods"):
        drift_report(reference, reference, methods={"nope": "ks"})
    with pytest.raises(InvalidInputError, match="min_drifted"):
        drift_report(reference, reference, min_drifted=0)


def test_to_dict_is_strict_json(reference, make_frame) -> None:
    current = make_frame(3000, seed=1, shift=0.5)
    current["b"] = np.nan
    data = json.loads(drift_report(reference, current).to_json())

    assert ["a"] == data["drifted_features"]
    assert data["dataset_drift"] is True
    assert data["features"][1]["statistic"] is None


def test_to_html_writes_a_self_contained_file(reference, make_frame, tmp_path) -> None:
    current = make_frame(3000, seed=1, shift=0.5, plan=(0.2, 0.3, 0.5))
    current.loc[:5, "region"] = "<script>alert(1)</script>"
    path = drift_report(reference, current).to_html(tmp_path / "drift.html")
    text = path.read_text(encoding="utf-8")

    assert text.startswith("<!DOCTYPE html>")
    assert 3 == text.count("<svg")  # a, b and plan drifted
    assert "<script>" not in text
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", text)
    assert "Dataset drift detected" in text


def test_a_tiny_reference_skips_the_classifier_with_a_finding(reference, make_frame) -> None:
    report = drift_report(reference.iloc[:10], make_frame(500, seed=1))

    assert report.multivariate is None
    assert "multivariate_skipped" in codes(report)


def test_html_plots_are_well_formed_svg(reference, make_frame, tmp_path) -> None:
    from xml.etree import ElementTree

    current = make_frame(3000, seed=2, shift=0.5, plan=(0.2, 0.3, 0.5))
    text = drift_report(reference, current).to_html(tmp_path / "r.html").read_text()
    plots = re.findall(r"<svg.*?</svg>", text, flags=re.DOTALL)

    assert 3 == len(plots)
    for svg in plots:
        assert ElementTree.fromstring(svg).tag.endswith("svg")  # noqa: S314 - our own output
