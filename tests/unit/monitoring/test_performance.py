"""Realised metrics, CBPE estimation, concept-drift flag, windows and segments, bad labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from bascule.core.errors import InvalidInputError, NotReadyError
from bascule.monitoring import estimate_performance, performance_report
from bascule.monitoring.estimation import CBPE
from bascule.monitoring.performance import classification_metrics, regression_metrics


def scored_log(n: int, seed: int = 0, *, flip: float = 0.0) -> pd.DataFrame:
    """Calibrated binary scores; ``flip`` of the labels lose their relation to the inputs."""
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 2, n)
    y = (rng.random(n) < p).astype(int)
    flipped = rng.random(n) < flip
    y[flipped] = 1 - y[flipped]
    return pd.DataFrame(
        {
            "score": p,
            "prediction": (p >= 0.5).astype(int),
            "label": y,
            "region": rng.choice(["eu", "us"], n),
            "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n) * 60, unit="s"),
        }
    )


def test_binary_metrics_match_sklearn() -> None:
    log = scored_log(3000)
    y, pred, p = log["label"].to_numpy(), log["prediction"].to_numpy(), log["score"].to_numpy()
    got = classification_metrics(y, pred, np.column_stack([1 - p, p]), 2)

    assert skm.accuracy_score(y, pred) == pytest.approx(got["accuracy"])
    assert skm.precision_score(y, pred) == pytest.approx(got["precision"])
    assert skm.recall_score(y, pred) == pytest.approx(got["recall"])
    assert skm.f1_score(y, pred) == pytest.approx(got["f1"])
    assert skm.roc_auc_score(y, p) == pytest.approx(got["roc_auc"])
    assert skm.log_loss(y, p) == pytest.approx(got["log_loss"])
    assert got["calibration_error"] < 0.05


def test_multiclass_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    proba = rng.dirichlet([1, 1, 1], 2000)
    y = np.array([rng.choice(3, p=row) for row in proba])
    pred = proba.argmax(axis=1)
    got = classification_metrics(y, pred, proba, 3)

    assert skm.f1_score(y, pred, average="macro") == pytest.approx(got["f1"])
    assert skm.precision_score(y, pred, average="macro") == pytest.approx(got["precision"])
    assert skm.roc_auc_score(y, proba, multi_class="ovr") == pytest.approx(got["roc_auc"])


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=500)
    pred = y + rng.normal(scale=0.3, size=500)
    got = regression_metrics(y, pred)

    assert skm.mean_absolute_error(y, pred) == pytest.approx(got["mae"])
    assert np.sqrt(skm.mean_squared_error(y, pred)) == pytest.approx(got["rmse"])
    assert skm.r2_score(y, pred) == pytest.approx(got["r2"])


def test_cbpe_estimates_accuracy_and_auc_of_calibrated_scores() -> None:
    log = scored_log(20_000, seed=3)
    estimate = estimate_performance(log["score"].to_numpy(), log["prediction"].to_numpy())
    realised = classification_metrics(
        log["label"].to_numpy(), log["prediction"].to_numpy(),
        np.column_stack([1 - log["score"], log["score"]]), 2,
    )  # fmt: skip

    for name in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert realised[name] == pytest.approx(estimate.metrics[name], abs=0.015), name
    assert "no concept drift" in estimate.assumption


def test_cbpe_calibrates_distorted_scores_on_the_reference() -> None:
    reference, current = scored_log(20_000, seed=4), scored_log(20_000, seed=5)
    distorted = current["score"].to_numpy() ** 3  # same ranking, badly calibrated
    naive = estimate_performance(distorted)
    calibrated = estimate_performance(
        distorted,
        reference_scores=reference["score"].to_numpy() ** 3,
        reference_labels=reference["label"].to_numpy(),
    )
    truth = np.mean(current["label"].to_numpy() == (distorted >= 0.5))

    assert abs(naive.metrics["accuracy"] - truth) > 0.05
    assert truth == pytest.approx(calibrated.metrics["accuracy"], abs=0.015)


def test_cbpe_multiclass_expected_accuracy_is_mean_top_probability() -> None:
    proba = np.random.default_rng(6).dirichlet([2, 2, 2], 1000)
    estimate = CBPE(calibrate=False).fit(proba[:1], np.zeros(1, dtype=int)).estimate(proba)

    assert proba.max(axis=1).mean() == pytest.approx(estimate.metrics["accuracy"])


def test_cbpe_before_fit_is_not_ready() -> None:
    with pytest.raises(NotReadyError):
        CBPE().estimate(np.array([[0.2, 0.8]]))


def test_windows_without_concept_drift_are_not_flagged() -> None:
    log = scored_log(40_000, seed=7)
    report = performance_report(
        log, task="classification", scores="score", window=2000, input_drift=False
    )
    frame = report.to_frame()

    assert 20 == len(frame)
    assert not report.concept_drift_suspected
    assert (frame["accuracy_gap"].abs() <= frame["gap_tolerance"]).all()


def test_a_changed_label_relation_with_unchanged_inputs_is_flagged() -> None:
    log = pd.concat([scored_log(4000, seed=8), scored_log(4000, seed=9, flip=0.3)])
    report = performance_report(
        log.reset_index(drop=True), task="classification", scores="score", window=4000,
        input_drift=False,
    )  # fmt: skip
    frame = report.to_frame()

    assert [False, True] == list(frame["concept_drift_suspected"])
    assert frame["estimated_accuracy"].iloc[1] == pytest.approx(
        frame["estimated_accuracy"].iloc[0], abs=0.02
    )
    assert ["concept_drift_suspected"] == [f.code for f in report.findings]


def test_input_drift_suppresses_the_concept_drift_flag() -> None:
    log = scored_log(4000, seed=9, flip=0.3)
    report = performance_report(log, task="classification", scores="score", input_drift=True)

    assert not report.concept_drift_suspected


def test_time_windows_and_segments() -> None:
    log = scored_log(2880, seed=10)  # two days of one row a minute
    frame = performance_report(
        log, task="classification", scores="score", window="1D", time_column="ts",
        segment="region",
    ).to_frame()  # fmt: skip

    assert ["2024-01-01", "2024-01-02"] == sorted(set(frame["window"]))
    assert {"(all)", "eu", "us"} == set(frame["segment"])
    assert 1440 == frame.loc[frame["segment"] == "(all)", "n"].iloc[0]


def test_labels_arriving_late_give_estimates_beside_missing_realised_figures() -> None:
    log = scored_log(3000, seed=11)
    log["label"] = log["label"].astype("Int64")
    log.loc[1000:, "label"] = pd.NA
    row = performance_report(log, task="classification", scores="score").to_frame().iloc[0]

    assert 3000 == row["n"]
    assert 1000 == row["n_labelled"]
    assert {"realised_accuracy", "estimated_accuracy", "accuracy_gap"} <= set(row.index)


def test_no_label_column_is_a_finding() -> None:
    log = scored_log(500, seed=12).drop(columns=["label"])
    report = performance_report(log, task="classification", scores="score")

    assert ["no_labels"] == [f.code for f in report.findings]
    assert "estimated_accuracy" in report.to_frame().columns


def test_stray_labels_are_a_finding_and_wrong_typed_labels_an_error() -> None:
    log = scored_log(500, seed=13)
    log["label"] = log["label"].astype(object)
    log.loc[:4, "label"] = "yes"
    report = performance_report(log, task="classification", scores="score")

    assert ["unknown_labels"] == [f.code for f in report.findings]
    log["label"] = np.where(log["prediction"] == 1, "yes", "no")
    with pytest.raises(InvalidInputError, match="label") as e:
        performance_report(log, task="classification", scores="score")
    assert "label" == e.value.field


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"score": "high"}, "score"),
        ({"score": np.inf}, "score"),
        ({"prediction": 7}, "prediction"),
    ],
)
def test_bad_scores_and_predictions_are_clear_errors(change, field) -> None:
    log = scored_log(50, seed=14)
    for column, value in change.items():
        log[column] = log[column].astype(object)
        log.loc[3, column] = value
    with pytest.raises(InvalidInputError) as e:
        performance_report(log, task="classification", scores="score", classes=[0, 1])

    assert field == e.value.field


def test_regression_report_and_non_numeric_labels() -> None:
    rng = np.random.default_rng(15)
    y = rng.normal(size=300)
    log = pd.DataFrame({"prediction": y + 0.1, "label": y.astype(object)})
    log.loc[0, "label"] = "n/a"
    report = performance_report(log, task="regression")
    row = report.to_frame().iloc[0]

    assert 0.1 == pytest.approx(row["realised_mae"])
    assert 299 == row["n_labelled"]
    assert ["unknown_labels"] == [f.code for f in report.findings]
