"""The step cache: safe serialisation (no pickle) and code fingerprints."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from bascule.core.records import DatasetInput, Metric, Run
from bascule.pipelines import code_fingerprint
from bascule.pipelines.cache import (
    Encoded,
    StepCache,
    Uncacheable,
    decode_value,
    encode_value,
)
from bascule.testing import InMemoryArtifactStore


def roundtrip(value: object) -> object:
    enc = encode_value(value)
    assert isinstance(enc, Encoded), enc
    return decode_value(enc.format, enc.data)


def test_dataframe_roundtrips_through_parquet() -> None:
    frame = pd.DataFrame(
        {"x": [1.5, np.nan, 3.0], "n": [1, 2, 3], "s": ["a", None, "c"], "b": [True, False, True]}
    )
    frame["cat"] = pd.Categorical(["u", "v", "u"])

    back = roundtrip(frame)

    assert "parquet" == encode_value(frame).format  # type: ignore[union-attr]
    pd.testing.assert_frame_equal(frame, back)  # type: ignore[arg-type]


def test_arrays_and_numpy_scalars_roundtrip_without_pickle() -> None:
    arr = np.arange(12, dtype=np.int32).reshape(3, 4)
    back = roundtrip(arr)
    scalar = roundtrip(np.int64(7))

    np.testing.assert_array_equal(arr, back)
    assert np.int32 == back.dtype  # type: ignore[attr-defined]
    assert np.int64(7) == scalar
    assert isinstance(scalar, np.int64)


def test_json_values_and_records_roundtrip() -> None:
    value = {"auc": 0.91, "classes": [0, 1], "name": "x", "ok": True, "none": None}
    ds = DatasetInput("train", "a" * 64, 10, {"x": "float64"})
    run = Run(
        id="r",
        experiment_id=1,
        name="n",
        status="FINISHED",
        start_time=1,
        end_time=2,
        parent_run_id=None,
        user="u",
        metrics={"auc": Metric("auc", 0.9, 0, 5)},
        datasets=[ds],
    )

    assert value == roundtrip(value)
    assert ds == roundtrip(ds)
    assert run == roundtrip(run)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (object(), "no safe serialisation"),
        ((1, 2), "no safe serialisation"),
        ({1: "int key"}, "no safe serialisation"),
        (np.array([object(), 1], dtype=object), "Python objects"),
        (pd.DataFrame({"x": [object()]}), "Parquet"),
    ],
)
def test_other_values_are_not_cacheable_with_a_reason(value: object, reason: str) -> None:
    enc = encode_value(value)

    assert isinstance(enc, Uncacheable)
    assert reason in enc.reason


def test_fitted_estimator_is_not_cacheable() -> None:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    enc = encode_value(model)

    assert isinstance(enc, Uncacheable)
    assert "LogisticRegression" in enc.reason


def test_same_code_gives_same_fingerprint_and_changes_are_seen() -> None:
    def a(x: int) -> int:
        return x * 2

    def same(x: int) -> int:
        return x * 2

    def other_constant(x: int) -> int:
        return x * 3

    def other_name(x: int) -> int:
        return abs(x) * 2

    assert code_fingerprint(a) == code_fingerprint(same)
    assert code_fingerprint(a) != code_fingerprint(other_constant)
    assert code_fingerprint(a) != code_fingerprint(other_name)


def test_nested_code_and_defaults_are_part_of_the_fingerprint() -> None:
    def outer1(xs: list[int]) -> list[int]:
        return [x + 1 for x in xs]

    def outer2(xs: list[int]) -> list[int]:
        return [x + 2 for x in xs]

    def d1(x: int, k: int = 1) -> int:
        return x + k

    def d2(x: int, k: int = 2) -> int:
        return x + k

    assert code_fingerprint(outer1) != code_fingerprint(outer2)
    assert code_fingerprint(d1) != code_fingerprint(d2)


def test_closure_values_are_included_by_value() -> None:
    def make(factor: int, helper: object) -> object:
        def scaled(x: int) -> int:
            return x * factor + (0 if helper is None else 1)

        return scaled

    def helper_a() -> int:
        return 1

    def helper_b() -> int:
        return 2

    assert code_fingerprint(make(2, None)) == code_fingerprint(make(2, None))  # type: ignore[arg-type]
    assert code_fingerprint(make(2, None)) != code_fingerprint(make(3, None))  # type: ignore[arg-type]
    assert code_fingerprint(make(2, helper_a)) != code_fingerprint(make(2, helper_b))  # type: ignore[arg-type]


def test_fingerprint_is_stable_across_processes_and_hash_seeds() -> None:
    code = textwrap.dedent(
        """
        from bascule.pipelines import code_fingerprint
        def f(x):
            return x in {"alpha", "beta", "gamma", "delta"}
        print(code_fingerprint(f))
        """
    )
    prints = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout.strip()
        for seed in ("1", "2", "3")
    }

    assert 1 == len(prints)


def test_cache_entry_is_written_after_its_blobs_and_verified_on_read() -> None:
    store = InMemoryArtifactStore()
    cache = StepCache(store)
    enc = encode_value({"a": 1})
    assert isinstance(enc, Encoded)

    entry = cache.save(
        "k" * 64,
        step="s",
        created_at=1,
        outputs={"out": enc},
        metrics=[("m", 1.0, 0)],
        params={},
        tags={},
        datasets=[],
    )

    assert entry == cache.lookup("k" * 64)
    assert {"out": {"a": 1}} == cache.load(entry)
    assert cache.lookup("z" * 64) is None
    cache.forget("k" * 64)
    assert cache.lookup("k" * 64) is None


def test_mutable_closure_values_are_included_by_type_only() -> None:
    state: list[int] = []

    def step_fn(x: int) -> int:
        state.append(x)
        return x

    before = code_fingerprint(step_fn)
    state.extend([1, 2, 3])

    assert before == code_fingerprint(step_fn)


def test_keyword_only_defaults_are_part_of_the_fingerprint() -> None:
    def k1(x: int, *, k: int = 1) -> int:
        return x + k

    def k2(x: int, *, k: int = 2) -> int:
        return x + k

    assert code_fingerprint(k1) != code_fingerprint(k2)
