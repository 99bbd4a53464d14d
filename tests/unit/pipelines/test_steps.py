"""@step and Pipeline: declared inputs and outputs, DAG checks at construction."""

from __future__ import annotations

import pytest

from bascule.core.errors import InvalidInputError
from bascule.pipelines import Pipeline, StepContext, step


@step(outputs="data")
def load(n_rows: int) -> list[int]:
    return list(range(n_rows))


@step(outputs=("train_rows", "test_rows"))
def split(data: list[int], ratio: float = 0.8) -> tuple[list[int], list[int]]:
    cut = int(len(data) * ratio)
    return data[:cut], data[cut:]


@step(outputs="model")
def fit(train_rows: list[int], ctx: StepContext) -> int:
    ctx.log_metrics({"rows": len(train_rows)})
    return sum(train_rows)


def test_step_reads_inputs_from_parameter_names() -> None:
    assert "split" == split.name
    assert ("data", "ratio") == split.inputs
    assert frozenset({"ratio"}) == split.optional
    assert ("train_rows", "test_rows") == split.outputs


def test_ctx_parameter_is_not_an_input() -> None:
    assert ("train_rows",) == fit.inputs
    assert fit.wants_context


def test_bare_decorator_and_explicit_name() -> None:
    @step
    def nothing() -> None:
        return None

    @step("renamed", outputs="x", retries=2, backoff_s=0.5, cache=False, version="v2")
    def original() -> int:
        return 1

    assert ("nothing", ()) == (nothing.name, nothing.outputs)
    assert ("renamed", 2, 0.5, False, "v2") == (
        original.name,
        original.retries,
        original.backoff_s,
        original.cache,
        original.version,
    )
    assert 1 == original()


def test_pipeline_orders_steps_topologically_keeping_listed_order() -> None:
    pipeline = Pipeline("demo", [fit, split, load], params=["n_rows"])

    assert ["load", "split", "fit"] == [s.name for s in pipeline.steps]
    assert ("split",) == pipeline.upstream("fit")
    assert {"data": "load", "train_rows": "split", "test_rows": "split", "model": "fit"} == (
        pipeline.producers
    )


def test_unknown_input_is_named() -> None:
    @step(outputs="score")
    def evaluate(model: int, holdout: list[int]) -> float:
        return 0.0

    with pytest.raises(
        InvalidInputError, match=r"step 'evaluate' reads unknown inputs \['holdout'\]"
    ) as e:
        Pipeline("demo", [load, split, fit, evaluate], params=["n_rows"])

    assert "invalid_input" == e.value.code
    assert {"evaluate": ["holdout"]} == e.value.details["unknown_inputs"]


def test_undeclared_parameter_is_an_unknown_input() -> None:
    with pytest.raises(InvalidInputError, match="'n_rows'"):
        Pipeline("demo", [load])


def test_duplicate_outputs_are_named() -> None:
    @step("load_again", outputs="data")
    def load2() -> list[int]:
        return []

    with pytest.raises(InvalidInputError, match="output 'data' is produced by steps") as e:
        Pipeline("demo", [load, load2], params=["n_rows"])

    assert {"data": ["load", "load_again"]} == e.value.details["duplicate_outputs"]


def test_duplicate_step_names_are_named() -> None:
    @step("load", outputs="other")
    def other() -> int:
        return 1

    with pytest.raises(InvalidInputError, match=r"duplicate step names \['load'\]"):
        Pipeline("demo", [load, other], params=["n_rows"])


def test_output_shadowing_a_parameter_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="have the names of pipeline parameters"):
        Pipeline("demo", [load], params=["n_rows", "data"])


def test_cycle_is_named() -> None:
    @step(outputs="a")
    def first(c: int) -> int:
        return c

    @step(outputs="b")
    def second(a: int) -> int:
        return a

    @step(outputs="c")
    def third(b: int) -> int:
        return b

    with pytest.raises(InvalidInputError, match="cycle") as e:
        Pipeline("loop", [first, second, third])

    cycle = e.value.details["cycle"]
    assert cycle[0] == cycle[-1]
    assert {"first", "second", "third"} == set(cycle)


def test_step_reading_its_own_output_is_a_cycle() -> None:
    @step(outputs="x")
    def grow(x: int) -> int:
        return x + 1

    with pytest.raises(InvalidInputError, match="cycle grow → grow"):
        Pipeline("self", [grow])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"outputs": "not an identifier"}, "output of step"),
        ({"outputs": "ctx"}, "output of step"),
        ({"outputs": ("a", "a")}, "distinct names"),
        ({"retries": -1}, "retries"),
        ({"backoff_s": -1.0}, "backoff_s"),
        ({"outputs": "a", "checks": {"b": print}}, "checks"),
    ],
)
def test_bad_step_options_are_rejected(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        step("x", **kwargs)(lambda: 1)  # type: ignore[call-overload]


def test_var_args_are_rejected() -> None:
    def loose(*rows: int) -> int:
        return 0

    with pytest.raises(InvalidInputError, match="named parameters only"):
        step(loose)


def test_bad_pipeline_name_and_empty_steps() -> None:
    with pytest.raises(InvalidInputError, match="pipeline name"):
        Pipeline("no spaces", [load], params=["n_rows"])
    with pytest.raises(InvalidInputError, match="non-empty list"):
        Pipeline("empty", [])


def test_context_collects_what_the_step_reports() -> None:
    import pandas as pd

    ctx = StepContext("fit", "run", "step-run")
    ctx.log_metrics({"auc": 0.9}, step=3)
    ctx.log_params({"depth": 4})
    ctx.set_tags({"note": "x"})
    ds = ctx.log_dataset(pd.DataFrame({"a": [1, 2]}), name="train")

    assert [("auc", 0.9, 3)] == ctx.metrics
    assert {"depth": "4"} == ctx.params
    assert {"note": "x"} == ctx.tags
    assert [ds] == ctx.datasets
    assert 2 == ds.num_rows
    with pytest.raises(InvalidInputError, match="real number"):
        ctx.log_metrics({"bad": "high"})  # type: ignore[dict-item]
