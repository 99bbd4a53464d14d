"""LocalRunner: caching, retries with backoff, failures, tracking and lineage."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bascule.core.errors import InvalidInputError
from bascule.pipelines import (
    LocalRunner,
    Pipeline,
    PipelineFailed,
    PipelineResult,
    StepContext,
    require_fitted,
    step,
)
from bascule.testing import FakeClock
from bascule.wiring import Services

MakeRunner = Callable[..., LocalRunner]


@step(outputs="data")
def load(n_rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=n_rows), "y": rng.integers(0, 2, size=n_rows)})


@step(outputs="clean")
def clean(data: pd.DataFrame, ctx: StepContext) -> pd.DataFrame:
    ctx.log_dataset(data, name="raw", source="generated")
    ctx.log_metrics({"rows": len(data)})
    return data.dropna()


@step(outputs=("model", "mean_x"), checks={"model": require_fitted})
def train(clean: pd.DataFrame, ctx: StepContext) -> tuple[Any, float]:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(clean[["x"]], clean["y"])
    ctx.log_metrics({"accuracy": float(model.score(clean[["x"]], clean["y"]))})
    return model, float(clean["x"].mean())


@step(outputs="report")
def evaluate(model: Any, clean: pd.DataFrame) -> dict[str, float]:
    return {"accuracy": float(model.score(clean[["x"]], clean["y"]))}


PIPELINE = Pipeline("fraud", [load, clean, train, evaluate], params=["n_rows", "seed"])


def cache_of(result: PipelineResult) -> dict[str, str]:
    return {s.name: s.cache for s in result.steps}


def test_second_run_hits_the_cache_for_cacheable_steps(make_runner: MakeRunner) -> None:
    runner = make_runner()

    first = runner.run(PIPELINE, {"n_rows": 200}, experiment="fraud")
    second = runner.run(PIPELINE, {"n_rows": 200}, experiment="fraud")

    assert first.ok
    assert second.ok
    assert {"load": "miss", "clean": "miss", "train": "uncacheable", "evaluate": "uncacheable"} == (
        cache_of(first)
    )
    assert {"load": "hit", "clean": "hit", "train": "uncacheable", "evaluate": "uncacheable"} == (
        cache_of(second)
    )
    assert ["load", "clean"] == second.cached_steps
    pd.testing.assert_frame_equal(first.outputs["clean"], second.outputs["clean"])
    assert first.outputs["report"] == second.outputs["report"]


def test_non_cacheable_output_records_the_reason(make_runner: MakeRunner) -> None:
    result = make_runner().run(PIPELINE, {"n_rows": 50}, experiment="fraud")
    train_rec = result.step("train")
    eval_rec = result.step("evaluate")

    assert "LogisticRegression" in str(train_rec.cache_reason)
    assert "input 'model' is not cacheable" in str(eval_rec.cache_reason)
    assert 1 == train_rec.attempts


def test_param_change_misses(make_runner: MakeRunner) -> None:
    runner = make_runner()
    runner.run(PIPELINE, {"n_rows": 100}, experiment="fraud")

    changed = runner.run(PIPELINE, {"n_rows": 100, "seed": 1}, experiment="fraud")

    assert "miss" == changed.step("load").cache
    assert "miss" == changed.step("clean").cache


def test_data_change_misses_downstream(make_runner: MakeRunner) -> None:
    @step(outputs="total")
    def total(frame: pd.DataFrame) -> float:
        return float(frame["a"].sum())

    pipeline = Pipeline("sum", [total], params=["frame"])
    runner = make_runner()
    runner.run(pipeline, {"frame": pd.DataFrame({"a": [1, 2]})}, experiment="x")

    same = runner.run(pipeline, {"frame": pd.DataFrame({"a": [1, 2]})}, experiment="x")
    other = runner.run(pipeline, {"frame": pd.DataFrame({"a": [1, 3]})}, experiment="x")

    assert "hit" == same.step("total").cache
    assert "miss" == other.step("total").cache
    assert 4.0 == other.outputs["total"]


def test_code_change_misses(make_runner: MakeRunner) -> None:
    @step("double", outputs="y")
    def v1(x: int) -> int:
        return x * 2

    @step("double", outputs="y")
    def v1_again(x: int) -> int:
        return x * 2

    @step("double", outputs="y")
    def v2(x: int) -> int:
        return x * 3

    runner = make_runner()
    runner.run(Pipeline("p", [v1], params=["x"]), {"x": 2}, experiment="x")

    same = runner.run(Pipeline("p", [v1_again], params=["x"]), {"x": 2}, experiment="x")
    changed = runner.run(Pipeline("p", [v2], params=["x"]), {"x": 2}, experiment="x")

    assert "hit" == same.step("double").cache
    assert "miss" == changed.step("double").cache
    assert 6 == changed.outputs["y"]


CALLS: list[int] = []


def record_call(x: int) -> int:
    CALLS.append(x)
    return x


def test_version_bump_and_cache_off_rerun(make_runner: MakeRunner) -> None:
    # Globals are not part of the fingerprint.
    CALLS.clear()
    runner = make_runner()
    off = step("f", outputs="y", cache=False)(lambda x: record_call(x))
    v1 = step("g", outputs="y", version="1")(lambda x: record_call(x))
    v2 = step("g", outputs="y", version="2")(lambda x: record_call(x))
    for s in (off, off, v1, v1, v2):
        result = runner.run(Pipeline("p", [s], params=["x"]), {"x": 1}, experiment="x")

    assert 4 == len(CALLS)  # off twice, v1 once, v2 once
    assert "miss" == result.step("g").cache


def test_retries_with_exponential_backoff_through_injected_sleep(
    make_runner: MakeRunner, sleeps: Any, clock: FakeClock, services: Services
) -> None:
    failures = [OSError("disk busy"), TimeoutError("slow")]

    @step(outputs="y", retries=3, backoff_s=0.5, cache=False)
    def flaky(x: int) -> int:
        if failures:
            raise failures.pop(0)
        return x + 1

    result = make_runner().run(Pipeline("p", [flaky], params=["x"]), {"x": 1}, experiment="x")
    record = result.step("flaky")
    step_run = services.tracking.get_run(record.run_id)

    assert result.ok
    assert 2 == result.outputs["y"]
    assert [0.5, 1.0] == sleeps.waits
    assert 3 == record.attempts
    assert 1.5 == record.duration_s
    assert 3.0 == step_run.metrics["attempts"].value
    assert "0.5,1" == step_run.tags["bascule.retry_delays_s"]


def test_runner_default_retries_apply_and_are_capped(make_runner: MakeRunner, sleeps: Any) -> None:
    @step(outputs="y", cache=False)
    def always(x: int) -> int:
        raise RuntimeError("down")

    result = make_runner(max_retries=4, backoff_s=2.0, max_backoff_s=5.0).run(
        Pipeline("p", [always], params=["x"]), {"x": 1}, experiment="x"
    )

    assert isinstance(result, PipelineFailed)
    assert 5 == result.step("always").attempts
    assert [2.0, 4.0, 5.0, 5.0] == sleeps.waits


def test_bad_input_errors_are_not_retried(make_runner: MakeRunner, sleeps: Any) -> None:
    @step(outputs="y", retries=3)
    def strict(x: int) -> int:
        raise InvalidInputError.for_field("x", x, "a positive number")

    result = make_runner().run(Pipeline("p", [strict], params=["x"]), {"x": -1}, experiment="x")

    assert isinstance(result, PipelineFailed)
    assert 1 == result.step("strict").attempts
    assert [] == sleeps.waits
    assert "invalid_input" == result.error.code


def test_failure_stops_the_pipeline_and_is_recorded(
    make_runner: MakeRunner, services: Services
) -> None:
    @step(outputs=("model", "mean_x"))
    def broken_train(clean: pd.DataFrame) -> tuple[Any, float]:
        raise ValueError("labels are all one class")

    pipeline = Pipeline("fraud", [load, clean, broken_train, evaluate], params=["n_rows"])
    result = make_runner().run(pipeline, {"n_rows": 30}, experiment="fraud")

    assert isinstance(result, PipelineFailed)
    assert "FAILED" == result.status
    assert "broken_train" == result.failed_step
    assert "ValueError" == result.error.type
    assert "step 'broken_train' failed: ValueError: labels are all one class" == result.reason
    assert ("evaluate",) == result.skipped
    assert ["load", "clean", "broken_train"] == [s.name for s in result.steps]

    run = services.tracking.get_run(result.run_id)
    step_run = services.tracking.get_run(result.step("broken_train").run_id)
    assert "FAILED" == run.status
    assert "FAILED" == step_run.status
    assert "broken_train" == run.tags["bascule.failed_step"]
    assert "ValueError" == run.tags["bascule.error_type"]
    assert "labels are all one class" == run.tags["bascule.error"]
    paths = {a.path: a.digest for a in run.artifacts}
    assert {"error/traceback.txt", "error/error.json"} == set(paths)
    traceback = services.artifacts.get(paths["error/traceback.txt"]).decode()
    assert "labels are all one class" in traceback
    assert "broken_train" in traceback
    assert services.registry.list_models() == []  # nothing registered, no alias moved


def test_step_returning_an_unfitted_model_fails_at_that_step(make_runner: MakeRunner) -> None:
    from sklearn.linear_model import LogisticRegression

    @step(outputs="model", checks={"model": require_fitted}, retries=2)
    def lazy_train(clean: pd.DataFrame) -> Any:
        return LogisticRegression()

    @step(outputs="model", checks={"model": require_fitted})
    def wrong_train(clean: pd.DataFrame) -> Any:
        return "a model, honest"

    for bad in (lazy_train, wrong_train):
        pipeline = Pipeline("fraud", [load, clean, bad], params=["n_rows"])
        result = make_runner().run(pipeline, {"n_rows": 30}, experiment="fraud")

        assert isinstance(result, PipelineFailed)
        assert bad.name == result.failed_step
        assert "NotFittedModelError" == result.error.type
        assert 1 == result.step(bad.name).attempts


def test_wrong_number_of_outputs_fails_the_step(make_runner: MakeRunner) -> None:
    @step(outputs=("a", "b"))
    def two(x: int) -> tuple[int, int, int]:
        return (x, x, x)

    @step(outputs=("a", "b"))
    def mapping(x: int) -> dict[str, int]:
        return {"b": 2, "a": 1}

    failed = make_runner().run(Pipeline("p", [two], params=["x"]), {"x": 1}, experiment="x")
    ok = make_runner().run(Pipeline("p", [mapping], params=["x"]), {"x": 1}, experiment="x")

    assert isinstance(failed, PipelineFailed)
    assert "tuple of 2 values" in failed.error.message
    assert {"a": 1, "b": 2} == dict(ok.outputs)


def test_parameters_are_checked_before_anything_is_recorded(
    make_runner: MakeRunner, services: Services
) -> None:
    runner = make_runner()

    with pytest.raises(InvalidInputError, match="'n_rowz'"):
        runner.run(PIPELINE, {"n_rowz": 1}, experiment="fraud")
    with pytest.raises(InvalidInputError, match="n_rows"):
        runner.run(PIPELINE, {}, experiment="fraud")

    assert [] == services.tracking.search_runs().runs


def test_tracked_runs_hold_steps_metrics_and_lineage(
    make_runner: MakeRunner, services: Services
) -> None:
    result = make_runner().run(PIPELINE, {"n_rows": 100}, experiment="fraud", run_name="nightly")
    run = services.tracking.get_run(result.run_id)
    clean_run = services.tracking.get_run(result.step("clean").run_id)
    train_run = services.tracking.get_run(result.step("train").run_id)

    assert ("nightly", "FINISHED", "pipeline") == (run.name, run.status, run.tags["bascule.kind"])
    assert "100" == run.params["n_rows"]
    assert result.run_id == clean_run.parent_run_id
    assert "clean" == clean_run.tags["bascule.step"]
    assert {"rows", "duration_s", "attempts", "cache_hit"} <= set(clean_run.metrics)
    assert 0.0 == clean_run.metrics["cache_hit"].value
    assert "miss" == clean_run.tags["bascule.cache"]
    assert 64 == len(clean_run.tags["bascule.cache_key"])
    assert {"clean.rows", "train.accuracy", "duration_s"} <= set(run.metrics)
    assert "uncacheable" == train_run.tags["bascule.cache"]
    assert ["raw"] == [d.name for d in run.datasets]
    assert run.datasets == list(result.datasets)
    assert result.datasets[0].digest == clean_run.datasets[0].digest


def test_cache_hit_replays_metrics_and_datasets(
    make_runner: MakeRunner, services: Services
) -> None:
    runner = make_runner()
    first = runner.run(PIPELINE, {"n_rows": 40}, experiment="fraud")
    second = runner.run(PIPELINE, {"n_rows": 40}, experiment="fraud")
    run = services.tracking.get_run(second.run_id)
    clean_run = services.tracking.get_run(second.step("clean").run_id)

    assert "hit" == second.step("clean").cache
    assert 0 == second.step("clean").attempts
    assert 1.0 == clean_run.metrics["cache_hit"].value
    assert 40.0 == run.metrics["clean.rows"].value
    assert first.datasets == second.datasets


def test_keyboard_interrupt_marks_the_run_killed(
    make_runner: MakeRunner, services: Services
) -> None:
    @step(outputs="y")
    def interrupted(x: int) -> int:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_runner().run(Pipeline("p", [interrupted], params=["x"]), {"x": 1}, experiment="x")

    [run] = [r for r in services.tracking.search_runs().runs if r.parent_run_id is None]
    assert "KILLED" == run.status


def test_error_details_are_stored_as_json(make_runner: MakeRunner, services: Services) -> None:
    @step(outputs="y")
    def picky(x: int) -> int:
        raise InvalidInputError.for_field("x", x, "an even number")

    result = make_runner().run(Pipeline("p", [picky], params=["x"]), {"x": 3}, experiment="x")
    run = services.tracking.get_run(result.run_id)
    digest = next(a.digest for a in run.artifacts if a.path == "error/error.json")
    body = json.loads(services.artifacts.get(digest))

    assert "picky" == body["step"]
    assert "x" == body["details"]["field"]
    assert "an even number" == body["details"]["expected"]


def test_build_runner_follows_the_settings(services: Services) -> None:
    from bascule.core.settings import PipelineSettings
    from bascule.pipelines import RayRunner, build_runner

    local = build_runner(
        PipelineSettings(max_retries=2), tracking=services.tracking, artifacts=services.artifacts
    )
    by_name = build_runner(
        PipelineSettings(runner="ray"), tracking=services.tracking, artifacts=services.artifacts
    )
    by_address = build_runner(
        PipelineSettings(ray_address="127.0.0.1:6379"),
        tracking=services.tracking,
        artifacts=services.artifacts,
    )

    assert isinstance(local, LocalRunner)
    assert isinstance(by_name, RayRunner)
    assert isinstance(by_address, RayRunner)


def test_cache_hit_does_not_replay_retry_bookkeeping(
    make_runner: MakeRunner, services: Services
) -> None:
    marker: list[int] = []

    @step(outputs="y", retries=1, backoff_s=0.0)
    def once_flaky(x: int, ctx: StepContext) -> int:
        ctx.set_tags({"note": "kept"})
        if not marker:
            marker.append(1)
            raise OSError("transient")
        return x

    pipeline = Pipeline("p", [once_flaky], params=["x"])
    runner = make_runner()
    runner.run(pipeline, {"x": 1}, experiment="x")
    hit = runner.run(pipeline, {"x": 1}, experiment="x")
    tags = services.tracking.get_run(hit.step("once_flaky").run_id).tags

    assert "hit" == hit.step("once_flaky").cache
    assert "kept" == tags["note"]
    assert "bascule.retry_delays_s" not in tags
