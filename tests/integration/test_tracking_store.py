"""Tracking on SQLite and PostgreSQL: the same behaviour on both."""

from __future__ import annotations

import math

import pytest

from bascule.core.errors import (
    ConflictError,
    ExperimentNotFoundError,
    InvalidInputError,
    RunNotFoundError,
)
from bascule.core.records import Metric
from bascule.wiring import Services


def test_experiment_names_are_unique(services: Services) -> None:
    services.tracking.create_experiment("fraud")

    with pytest.raises(ConflictError, match="'fraud' already exists") as e:
        services.tracking.create_experiment("fraud")

    assert "conflict" == e.value.code


def test_unknown_experiment_lists_what_exists(services: Services) -> None:
    services.tracking.create_experiment("churn")

    with pytest.raises(ExperimentNotFoundError, match="'nope'") as e:
        services.tracking.get_experiment_by_name("nope")

    assert "not_found" == e.value.code
    assert "'churn'" in str(e.value)
    assert "'Default'" in str(e.value)


def test_run_logs_params_metrics_tags_with_full_history(services: Services) -> None:
    t = services.tracking
    run = t.start_run(experiment="fraud", name="baseline", tags={"team": "risk"})
    t.log_batch(run.id, metrics=[("loss", 1.0, 0, 10), ("loss", 0.5, 1, 20), ("loss", 0.25, 2, 30)])
    t.log_params(run.id, {"lr": 0.1, "depth": 6})
    t.end_run(run.id)

    got = t.get_run(run.id)
    history = t.metric_history(run.id, "loss")

    assert "FINISHED" == got.status
    assert got.end_time is not None
    assert {"lr": "0.1", "depth": "6"} == got.params
    assert {"team": "risk"} == got.tags
    assert 0.25 == got.metrics["loss"].value
    assert [1.0, 0.5, 0.25] == [m.value for m in history]
    assert [0, 1, 2] == [m.step for m in history]


def test_latest_metric_is_highest_step_even_if_logged_earlier(services: Services) -> None:
    t = services.tracking
    run = t.start_run(experiment="e")
    t.log_batch(run.id, metrics=[Metric("acc", 0.9, 5, 100)])
    t.log_batch(run.id, metrics=[Metric("acc", 0.1, 1, 200)])

    assert 0.9 == t.get_run(run.id).metrics["acc"].value


def test_nan_metric_is_kept(services: Services) -> None:
    t = services.tracking
    run = t.start_run(experiment="e")
    t.log_metrics(run.id, {"loss": float("nan")})

    assert math.isnan(t.get_run(run.id).metrics["loss"].value)


@pytest.mark.parametrize(
    ("metrics", "params", "match"),
    [
        ([("loss", "high", 0, 1)], {}, "metric 'loss' value"),
        ([("loss", None, 0, 1)], {}, "metric 'loss' value"),
        ([("k" * 251, 1.0, 0, 1)], {}, "at most 250 characters"),
        ([("loss", 1.0, "one", 1)], {}, "step"),
        ([], {"p": "x" * 6001}, "at most 6000 characters"),
        ([], {"../x": 1}, "param key"),
    ],
)
def test_invalid_batch_writes_nothing(services: Services, metrics, params, match) -> None:
    t = services.tracking
    run = t.start_run(experiment="e")
    good = [("ok", 1.0, 0, 1)]

    with pytest.raises(InvalidInputError, match=match) as e:
        t.log_batch(run.id, metrics=good + metrics, params={"fine": 1, **params})

    got = t.get_run(run.id)
    assert "invalid_input" == e.value.code
    assert {} == got.metrics
    assert {} == got.params


def test_param_logged_twice_with_another_value_conflicts_and_writes_nothing(
    services: Services,
) -> None:
    t = services.tracking
    run = t.start_run(experiment="e")
    t.log_params(run.id, {"lr": 0.1})

    t.log_params(run.id, {"lr": 0.1})  # same value: fine, as in MLflow
    with pytest.raises(ConflictError, match=r"'lr'.*'0.1'.*'0.2'"):
        t.log_batch(run.id, params={"lr": 0.2}, metrics=[("m", 1.0, 0, 1)])

    got = t.get_run(run.id)
    assert {"lr": "0.1"} == got.params
    assert {} == got.metrics


def test_unknown_run_is_not_found(services: Services) -> None:
    with pytest.raises(RunNotFoundError, match="'deadbeef'") as e:
        services.tracking.log_metrics("deadbeef", {"x": 1})

    assert "not_found" == e.value.code


def test_nested_run_records_parent(services: Services) -> None:
    t = services.tracking
    parent = t.start_run(experiment="e", name="sweep")
    child = t.start_run(experiment="e", name="trial-1", parent_run_id=parent.id)

    assert parent.id == t.get_run(child.id).parent_run_id
    with pytest.raises(RunNotFoundError):
        t.start_run(experiment="e", parent_run_id="f" * 32)


def test_search_filters_by_metric_and_param_and_orders_by_metric(services: Services) -> None:
    t = services.tracking
    for i in range(12):
        run = t.start_run(experiment="grid", name=f"r{i}")
        t.log_batch(
            run.id, metrics=[("auc", i / 12, 0, 1)], params={"model": "rf" if i % 2 else "lr"}
        )
    t.start_run(experiment="other")

    page = t.search_runs(
        experiment_names=["grid"],
        filter_string="metrics.auc > 0.3 and params.model = 'rf'",
        order_by=["metrics.auc DESC"],
    )

    assert ["r11", "r9", "r7", "r5"] == [r.name for r in page.runs]
    assert page.next_page_token is None


def test_search_pages_through_results(services: Services) -> None:
    t = services.tracking
    for i in range(7):
        run = t.start_run(experiment="p", name=f"r{i}")
        t.log_metrics(run.id, {"auc": i})

    first = t.search_runs(experiment_names=["p"], order_by=["metrics.auc ASC"], max_results=3)
    second = t.search_runs(
        experiment_names=["p"],
        order_by=["metrics.auc ASC"],
        max_results=3,
        page_token=first.next_page_token,
    )
    third = t.search_runs(
        experiment_names=["p"],
        order_by=["metrics.auc ASC"],
        max_results=3,
        page_token=second.next_page_token,
    )

    assert ["r0", "r1", "r2"] == [r.name for r in first.runs]
    assert ["r3", "r4", "r5"] == [r.name for r in second.runs]
    assert ["r6"] == [r.name for r in third.runs]
    assert third.next_page_token is None


@pytest.mark.parametrize(
    "bad",
    [
        "metrics.auc >",
        "auc > 0.5",
        "metrics.auc > 'high'",
        "attributes.color = 'red'",
        "params.p > 'a'",
    ],
)
def test_malformed_search_filter_is_invalid_input(services: Services, bad: str) -> None:
    with pytest.raises(InvalidInputError):
        services.tracking.search_runs(filter_string=bad)


def test_artifacts_and_datasets_are_recorded(services: Services, tmp_path) -> None:
    import pandas as pd

    from bascule.tracking.datasets import fingerprint

    t = services.tracking
    run = t.start_run(experiment="e")
    f = tmp_path / "notes.txt"
    f.write_text("hello")
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    t.log_artifact(run.id, f, artifact_path="docs")
    t.log_dataset(run.id, fingerprint(df, name="train"))

    got = t.get_run(run.id)

    assert "docs/notes.txt" == got.artifacts[0].path
    assert b"hello" == services.artifacts.get(got.artifacts[0].digest)
    assert 3 == got.datasets[0].num_rows
    assert {"a": "int64", "b": got.datasets[0].schema["b"]} == got.datasets[0].schema
    assert fingerprint(df.copy(), name="x").digest == got.datasets[0].digest
