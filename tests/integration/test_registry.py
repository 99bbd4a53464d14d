"""The registry on SQLite and PostgreSQL: ONNX versions, aliases, audit, failures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from bascule.core.errors import (
    AliasNotFoundError,
    IntegrityError,
    InvalidInputError,
    ModelNotFoundError,
    UnsupportedModelError,
    VersionNotFoundError,
)
from bascule.wiring import Services


def _mixed_frame(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "amount": rng.lognormal(3, 1, n),
            "age": rng.integers(18, 90, n).astype("int64"),
            "city": rng.choice(["paris", "lyon", "nice"], n).astype(object),
            "score": np.where(rng.random(n) < 0.1, np.nan, rng.normal(0, 1, n)),
        }
    )
    y = ((df["amount"] > 25) ^ (df["city"] == "nice")).astype(int).to_numpy()
    return df, y


def _pipeline(estimator) -> Pipeline:
    pre = ColumnTransformer(
        [
            (
                "num",
                Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]),
                ["amount", "age", "score"],
            ),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ]
    )
    return Pipeline([("pre", pre), ("clf", estimator)])


def test_pipeline_with_mixed_columns_round_trips_through_the_registry(services: Services) -> None:
    df, y = _mixed_frame()
    model = _pipeline(LogisticRegression(max_iter=500)).fit(df, y)

    mv = services.registry.register("churn", model, sample=df, metrics={"auc": 0.91})
    loaded = services.registry.load("churn:1")

    new = _mixed_frame(50, seed=1)[0]
    np.testing.assert_allclose(model.predict_proba(new), loaded.predict_proba(new), atol=1e-4)
    assert (model.predict(new) == loaded.predict(new)).all()
    assert 1 == mv.version
    assert "churn" == loaded.name
    assert 1 == loaded.version
    assert {"auc": 0.91} == mv.metrics
    assert "columns" == mv.signature["layout"]
    assert ["amount", "age", "city", "score"] == [c["name"] for c in mv.signature["columns"]]


def test_profile_and_sample_are_stored_with_the_version(services: Services) -> None:
    df, y = _mixed_frame(300)
    mv = services.registry.register("m", _pipeline(LogisticRegression()).fit(df, y), sample=df)

    profile = services.registry.profile(mv)
    sample = services.registry.reference_sample(mv)

    assert 300 == len(sample)
    assert {"amount", "age", "city", "score"} == set(profile["columns"])
    assert 300 == profile["row_count"]


def test_versions_are_numbered_per_model_and_immutable(services: Services) -> None:
    X = np.random.default_rng(0).normal(size=(100, 4))
    y = (X[:, 0] > 0).astype(int)
    reg = services.registry
    v1 = reg.register("a", LogisticRegression().fit(X, y), sample=X)
    v2 = reg.register(
        "a", RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y), sample=X
    )
    b1 = reg.register("b", LogisticRegression().fit(X, y), sample=X)

    assert (1, 2, 1) == (v1.version, v2.version, b1.version)
    assert v1.digest == reg.resolve("a:1").digest
    assert v2.version == reg.resolve("a").version


def test_alias_moves_are_atomic_and_audited(services: Services) -> None:
    X = np.random.default_rng(0).normal(size=(100, 3))
    y = (X[:, 1] > 0).astype(int)
    reg = services.registry
    for _ in range(3):
        reg.register("fraud", LogisticRegression().fit(X, y), sample=X)

    reg.set_alias("fraud", "champion", 1, reason="first")
    reg.set_alias("fraud", "champion", 3, reason="better cost")
    reg.set_alias("fraud", "challenger", 2)

    assert 3 == reg.resolve("fraud@champion").version
    assert ["champion"] == reg.resolve("fraud:3").aliases
    moves = [
        (e.alias, e.previous_version, e.version, e.reason)
        for e in reg.history("fraud")
        if e.kind == "alias_set"
    ]
    assert [
        ("champion", None, 1, "first"),
        ("champion", 1, 3, "better cost"),
        ("challenger", None, 2, ""),
    ] == moves
    registered = [e.version for e in reg.history("fraud") if e.kind == "registered"]
    assert [1, 2, 3] == registered


def test_not_found_errors_say_what_exists(services: Services) -> None:
    X = np.random.default_rng(0).normal(size=(50, 2))
    reg = services.registry
    reg.register("fraud", LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), sample=X)
    reg.set_alias("fraud", "champion", 1)

    with pytest.raises(ModelNotFoundError, match=r"'frud'.*'fraud'") as e1:
        reg.resolve("frud@champion")
    with pytest.raises(VersionNotFoundError, match=r"7.*available: 1"):
        reg.resolve("fraud:7")
    with pytest.raises(AliasNotFoundError, match=r"'champ'.*'champion'"):
        reg.load("fraud@champ")
    with pytest.raises(VersionNotFoundError):
        reg.set_alias("fraud", "champion", 2)

    assert "not_found" == e1.value.code
    assert 1 == reg.resolve("fraud@champion").version


def test_unsupported_model_names_its_type_and_what_is_supported(services: Services) -> None:
    class MyModel:
        def predict(self, X):
            return X

    with pytest.raises(UnsupportedModelError, match="MyModel") as e:
        services.registry.register("x", MyModel(), sample=np.zeros((3, 2)))

    assert "unsupported_model" == e.value.code
    assert "LogisticRegression" in str(e.value) or "scikit-learn" in str(e.value)
    with pytest.raises(ModelNotFoundError):
        services.registry.resolve("x")


def test_empty_sample_is_refused(services: Services) -> None:
    X = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(InvalidInputError, match="sample"):
        services.registry.register(
            "x", LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), sample=X[:0]
        )


def test_hist_gradient_boosting_with_missing_values_registers(services: Services) -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 5))
    X[rng.random(X.shape) < 0.15] = np.nan
    y = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) > 0).astype(int)

    mv = services.registry.register(
        "hgb", HistGradientBoostingClassifier(max_iter=20).fit(X, y), sample=X
    )

    assert "classification" == mv.task


def test_corrupted_model_blob_is_refused_on_load(services: Services, tmp_path) -> None:
    X = np.random.default_rng(0).normal(size=(50, 2))
    mv = services.registry.register(
        "x", LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), sample=X
    )
    blob = next((tmp_path / "home" / "artifacts").rglob(mv.digest))
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))

    with pytest.raises(IntegrityError, match=mv.digest) as e:
        services.registry.load("x:1")

    assert "integrity_error" == e.value.code


def test_onnx_file_registers_with_a_signature_from_the_graph(services: Services, tmp_path) -> None:
    X = np.random.default_rng(0).normal(size=(80, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    services.registry.register("src", LogisticRegression().fit(X, y), sample=X)
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(services.registry.model_bytes(services.registry.resolve("src:1")))
    sample = tmp_path / "rows.parquet"
    pd.DataFrame(X, columns=["a", "b", "c"]).to_parquet(sample)

    mv = services.registry.register_onnx_file("imported", onnx_file, sample=sample)
    out = services.registry.load("imported").predict_proba(pd.DataFrame(X, columns=["a", "b", "c"]))

    assert "onnx" == mv.flavor
    assert ["a", "b", "c"] == [c["name"] for c in mv.signature["columns"]]
    assert (80, 2) == out.shape
