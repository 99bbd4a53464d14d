"""Serving with online features: a version declaring a feature service answers requests that
send only entity ids (and request fields), looked up in the online store."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry
from sklearn.linear_model import LogisticRegression

from bascule.core.clock import SystemClock
from bascule.core.errors import FeatureServiceNotFoundError, InvalidInputError
from bascule.core.settings import ServingSettings
from bascule.core.v2 import MetadataModelResponse
from bascule.features import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    Float64,
    Int64,
    RequestSource,
    on_demand_feature_view,
)
from bascule.http.inference.app import InferenceApp, create_app
from bascule.http.inference.metrics import InferenceMetrics
from bascule.monitoring.evaluation import input_frame
from bascule.serving.assembly import build_dataplane
from bascule.serving.dataplane import DataPlane
from bascule.store.predictions import read_predictions
from bascule.testing import InMemoryArtifactStore, make_services
from bascule.wiring import Services

pytestmark = pytest.mark.anyio

COLUMNS = ["spend_7d", "n_txn_7d", "amount_ratio", "amount"]
N_CUSTOMERS = 40
STALE = 1000
"""A customer whose only stats row is older than the view's TTL."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


customer = Entity(name="customer", join_keys=["customer_id"])
transaction = RequestSource(name="transaction", schema=[Field("amount", Float64)])


def _stats_view(path: str) -> FeatureView:
    return FeatureView(
        name="customer_stats",
        entities=[customer],
        ttl=timedelta(days=30),
        schema=[Field("spend_7d", Float64), Field("n_txn_7d", Int64)],
        source=FileSource(path=path, timestamp_field="event_timestamp"),
    )


def amount_features(df: pd.DataFrame) -> pd.DataFrame:
    """The amount against the customer's spend (an on-demand feature)."""
    return pd.DataFrame({"amount_ratio": df["amount"] / (df["spend_7d"] + 1.0)})


@dataclass
class World:
    """Services with a registered model whose version declares the feature service."""

    home: Path
    services: Services
    stats: pd.DataFrame
    train: pd.DataFrame
    model: Any
    definitions: list[Any]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("online-features")
    services = make_services(root / "home")
    rng = np.random.default_rng(7)
    now = datetime.now(UTC).replace(microsecond=0)
    ids = np.arange(1, N_CUSTOMERS + 1)
    stats = pd.DataFrame(
        {
            "customer_id": np.concatenate([ids, ids, [STALE]]),
            "event_timestamp": [now - timedelta(days=10)] * N_CUSTOMERS
            + [now - timedelta(days=1)] * N_CUSTOMERS
            + [now - timedelta(days=60)],
            "spend_7d": rng.gamma(2.0, 50.0, 2 * N_CUSTOMERS + 1).round(2),
            "n_txn_7d": rng.integers(0, 30, 2 * N_CUSTOMERS + 1),
        }
    )
    stats_path = root / "stats.parquet"
    stats.to_parquet(stats_path, index=False)
    view = _stats_view(str(stats_path))
    ratio = on_demand_feature_view(
        sources=[view, transaction], schema=[Field("amount_ratio", Float64)]
    )(amount_features)
    service = FeatureService(
        name="fraud_features",
        features=["customer_stats:spend_7d", "customer_stats:n_txn_7d", "amount_features"],
    )
    store = services.features
    store.apply([customer, view, ratio, service])
    entity_df = pd.DataFrame(
        {
            "customer_id": rng.choice(ids, 400),
            "event_timestamp": [now - timedelta(hours=int(h)) for h in rng.integers(1, 200, 400)],
            "amount": rng.gamma(2.0, 40.0, 400).round(2),
        }
    )
    training = store.get_historical_features(entity_df, "fraud_features")
    train = training.to_df()
    label = (train.amount_ratio > 0.8).astype(int)
    model = LogisticRegression(max_iter=500).fit(train[COLUMNS], label)
    services.registry.register(
        "fraud",
        model,
        sample=train[COLUMNS],
        feature_service="fraud_features",
        feature_lineage=training.lineage,
    )
    store.materialize(now - timedelta(days=90), now + timedelta(minutes=1))
    yield World(root / "home", services, stats, train, model, [customer, view, ratio, service])
    services.close()


@dataclass
class Served:
    app: InferenceApp
    dataplane: DataPlane
    log: InMemoryArtifactStore

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://bascule.test"
        )


@pytest.fixture
async def serve(world: World) -> AsyncIterator[Callable[..., Awaitable[Served]]]:
    made: list[DataPlane] = []

    async def factory(
        services: Services | None = None, refs: tuple[str, ...] = ("fraud:1",), **serving: Any
    ) -> Served:
        features = services or world.services
        settings = ServingSettings(refs=list(refs), **serving)
        metrics = InferenceMetrics(CollectorRegistry())
        log = InMemoryArtifactStore()
        dataplane = build_dataplane(
            world.services.registry,
            log,
            settings,
            clock=SystemClock(),
            observer=metrics,
            features=lambda: features.features,
        )
        made.append(dataplane)
        await dataplane.start()
        return Served(create_app(dataplane, settings, metrics=metrics), dataplane, log)

    yield factory
    for dataplane in made:
        await dataplane.close()


def _tensor(name: str, values: list[Any], datatype: str) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": [len(values)], "data": values}


def ids_request(customers: list[int], amounts: list[float]) -> dict[str, Any]:
    return {
        "inputs": [
            _tensor("customer_id", customers, "INT64"),
            _tensor("amount", amounts, "FP64"),
        ]
    }


def latest(stats: pd.DataFrame, customer_id: int) -> pd.Series:
    rows = stats[stats.customer_id == customer_id].sort_values("event_timestamp")
    return rows.iloc[-1]


def full_request(stats: pd.DataFrame, customers: list[int], amounts: list[float]) -> dict:
    rows = [latest(stats, c) for c in customers]
    spend = [float(r.spend_7d) for r in rows]
    return {
        "inputs": [
            _tensor("spend_7d", spend, "FP64"),
            _tensor("n_txn_7d", [int(r.n_txn_7d) for r in rows], "INT64"),
            _tensor(
                "amount_ratio", [a / (s + 1.0) for a, s in zip(amounts, spend, strict=True)], "FP64"
            ),
            _tensor("amount", amounts, "FP64"),
        ]
    }


async def test_entity_ids_only_answers_like_the_full_features(world: World, serve: Any) -> None:
    served = await serve()
    customers, amounts = [3, 17, 3, 40], [12.5, 250.0, 900.0, 60.0]
    async with served.client() as c:
        by_ids = await c.post("/v2/models/fraud/infer", json=ids_request(customers, amounts))
        full = await c.post(
            "/v2/models/fraud/infer", json=full_request(world.stats, customers, amounts)
        )
        metrics = (await c.get("/metrics")).text

    assert 200 == by_ids.status_code, by_ids.text
    assert 200 == full.status_code, full.text
    ids_out = {o["name"]: o["data"] for o in by_ids.json()["outputs"]}
    full_out = {o["name"]: o["data"] for o in full.json()["outputs"]}
    assert full_out["label"] == ids_out["label"]
    np.testing.assert_allclose(full_out["probabilities"], ids_out["probabilities"], rtol=1e-6)
    sent = full_request(world.stats, customers, amounts)["inputs"]
    expected = world.model.predict_proba(pd.DataFrame({t["name"]: t["data"] for t in sent}))
    np.testing.assert_allclose(
        expected.ravel(), np.asarray(ids_out["probabilities"]).ravel(), atol=1e-5
    )
    assert 'bascule_feature_lookups_total{model="fraud"} 1.0' in metrics
    assert 'bascule_feature_lookup_rows_total{model="fraud"} 4.0' in metrics
    assert 'bascule_feature_age_seconds_count{model="fraud",view="customer_stats"} 4.0' in metrics
    age_sum = next(
        line for line in metrics.splitlines() if line.startswith("bascule_feature_age_seconds_sum")
    )
    assert 4 * 86400 <= float(age_sum.split()[-1]) < 4 * 86400 + 600  # stats of a day ago


async def test_metadata_lists_the_inputs_a_request_must_send(serve: Any) -> None:
    served = await serve()
    async with served.client() as c:
        response = await c.get("/v2/models/fraud")

    meta = MetadataModelResponse.model_validate(response.json())
    features = (meta.parameters or {})["feature_service"]
    assert "fraud_features" == features["name"]
    assert ["customer_id", "amount"] == features["required_inputs"]
    assert ["customer_id"] == features["entity_keys"]
    assert ["amount"] == features["request_fields"]
    assert [
        "customer_stats:spend_7d",
        "customer_stats:n_txn_7d",
        "amount_features:amount_ratio",
    ] == features["refs"]
    assert COLUMNS == [c["name"] for c in (meta.parameters or {})["columns"]]
    assert ["amount"] == features["passthrough"]


async def test_missing_join_key_is_a_400_naming_it(serve: Any) -> None:
    served = await serve()
    async with served.client() as c:
        response = await c.post(
            "/v2/models/fraud/infer", json={"inputs": [_tensor("amount", [1.0], "FP64")]}
        )

    assert 400 == response.status_code
    assert "invalid_input" == response.json()["code"]
    assert "'customer_id'" in response.json()["error"]
    assert "['customer_id', 'amount']" in response.json()["error"]


async def test_unknown_or_expired_entity_is_refused_naming_keys_and_features(
    serve: Any,
) -> None:
    served = await serve()
    async with served.client() as c:
        response = await c.post(
            "/v2/models/fraud/infer", json=ids_request([5, 99999, STALE], [10.0, 20.0, 30.0])
        )
        metrics = await c.get("/metrics")

    body = response.json()
    assert 422 == response.status_code
    assert "features_unavailable" == body["code"]
    assert "2 of 3 row(s)" in body["error"]
    assert "customer_id=99999" in body["error"]
    assert "not in the online store" in body["error"]
    assert f"customer_id={STALE}" in body["error"]
    assert "older than the view's TTL" in body["error"]
    assert "spend_7d" in body["error"]
    assert (
        'bascule_feature_lookup_errors_total{model="fraud",reason="features_unavailable"} 1.0'
        in metrics.text
    )


async def test_prediction_log_holds_the_looked_up_values_and_the_service(
    world: World, serve: Any
) -> None:
    served = await serve()
    async with served.client() as c:
        response = await c.post("/v2/models/fraud/infer", json=ids_request([8, 9], [40.0, 80.0]))
    await served.dataplane.close()

    assert 200 == response.status_code, response.text
    logged = read_predictions(
        served.log,
        "fraud",
        start=datetime.now(UTC) - timedelta(hours=1),
        end=datetime.now(UTC) + timedelta(hours=1),
    )
    assert ["fraud_features", "fraud_features"] == logged.features_from.tolist()
    assert COLUMNS == list(input_frame(logged).columns)  # what monitoring reads as inputs
    stats8, stats9 = latest(world.stats, 8), latest(world.stats, 9)
    np.testing.assert_allclose([stats8.spend_7d, stats9.spend_7d], logged.spend_7d)
    assert [stats8.n_txn_7d, stats9.n_txn_7d] == logged.n_txn_7d.tolist()
    np.testing.assert_allclose(
        [40.0 / (stats8.spend_7d + 1), 80.0 / (stats9.spend_7d + 1)], logged.amount_ratio
    )


async def test_full_inputs_are_served_without_a_lookup(world: World, serve: Any) -> None:
    served = await serve()
    async with served.client() as c:
        response = await c.post(
            "/v2/models/fraud/infer", json=full_request(world.stats, [2], [30.0])
        )

    assert 200 == response.status_code
    assert {} == served.dataplane.features.stats().lookups


async def test_a_challenger_in_canary_and_in_shadow_looks_its_features_up_too(
    world: World, serve: Any
) -> None:
    frame = world.train[COLUMNS]
    challenger = LogisticRegression(C=0.05, max_iter=500).fit(
        frame, (frame.amount > 60).astype(int)
    )
    v2 = world.services.registry.register(
        "fraud", challenger, sample=frame, feature_service="fraud_features"
    )
    answers = {}
    for mode in ("canary", "shadow"):
        policy = {"challenger": f"fraud:{v2.version}", "mode": mode, "canary_percent": 100.0}
        served = await serve(models={"fraud": policy})
        async with served.client() as c:
            answers[mode] = await c.post(
                "/v2/models/fraud/infer", json=ids_request([6, 7], [20.0, 300.0])
            )
        await served.dataplane.close()
        answers[f"{mode}_log"] = read_predictions(
            served.log,
            "fraud",
            start=datetime.now(UTC) - timedelta(hours=1),
            end=datetime.now(UTC) + timedelta(hours=1),
        )

    assert str(v2.version) == answers["canary"].json()["model_version"]
    assert "1" == answers["shadow"].json()["model_version"]
    shadow_log = answers["shadow_log"]
    assert {"champion", "shadow"} == set(shadow_log.route)
    assert {"fraud_features"} == set(shadow_log.features_from)
    assert {"fraud_features"} == set(answers["canary_log"].features_from)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_online_store_down_is_a_503_counted_in_metrics(world: World, serve: Any) -> None:
    down = make_services(
        world.home,
        online_store=f"redis://127.0.0.1:{_closed_port()}/0",
    )
    try:
        served = await serve(down)
        async with served.client() as c:
            response = await c.post("/v2/models/fraud/infer", json=ids_request([1], [5.0]))
            metrics = await c.get("/metrics")
    finally:
        down.close()

    assert 503 == response.status_code
    assert "storage_error" == response.json()["code"]
    assert "online feature store cannot be reached" in response.json()["error"]
    assert "Traceback" not in response.text
    assert (
        'bascule_feature_lookup_errors_total{model="fraud",reason="store_unavailable"} 1.0'
        in metrics.text
    )


@pytest.mark.redis
async def test_entity_ids_are_looked_up_in_redis_too(
    world: World, serve: Any, redis_url: str
) -> None:
    services = make_services(world.home, online_store=redis_url)
    try:
        store = services.features
        store.apply(world.definitions)  # unchanged: no new version; the function is known here
        now = datetime.now(UTC)
        store.materialize(now - timedelta(days=90), now + timedelta(minutes=1))
        served = await serve(services)
        customers, amounts = [4, 21], [70.0, 15.0]
        async with served.client() as c:
            by_ids = await c.post("/v2/models/fraud/infer", json=ids_request(customers, amounts))
            full = await c.post(
                "/v2/models/fraud/infer", json=full_request(world.stats, customers, amounts)
            )
            unknown = await c.post("/v2/models/fraud/infer", json=ids_request([424242], [1.0]))
    finally:
        services.close()

    assert 200 == by_ids.status_code, by_ids.text
    assert full.json()["outputs"] == by_ids.json()["outputs"]
    assert 422 == unknown.status_code
    assert "customer_id=424242" in unknown.json()["error"]


def test_registering_with_an_unknown_feature_service_lists_the_services(world: World) -> None:
    frame = world.train[COLUMNS]
    with pytest.raises(FeatureServiceNotFoundError, match="'fraud_featurs'") as e:
        world.services.registry.register(
            "fraud", world.model, sample=frame, feature_service="fraud_featurs"
        )

    assert "not_found" == e.value.code
    assert "available: 'fraud_features'" in e.value.message


def test_registering_records_the_service_and_the_training_lineage(world: World) -> None:
    mv = world.services.registry.resolve("fraud:1")

    assert "fraud_features" == mv.tags["bascule.feature_service"]
    assert "customer_stats@v1,amount_features@v1" == mv.tags["bascule.feature_service.views"]
    assert "customer_id" == mv.tags["bascule.feature_service.entity_keys"]
    assert mv.tags["features.digest"] == mv.dataset_digest


def test_a_service_giving_none_of_the_inputs_is_refused(world: World) -> None:
    frame = world.train[COLUMNS].rename(columns=lambda c: f"x_{c}")
    model = LogisticRegression().fit(frame, (frame.x_amount > 50).astype(int))
    with pytest.raises(InvalidInputError, match="provides none of the inputs"):
        world.services.registry.register(
            "other", model, sample=frame, feature_service="fraud_features"
        )


def test_a_training_set_of_other_features_than_the_service_serves_is_refused(
    world: World,
) -> None:
    store = world.services.features
    entity_df = pd.DataFrame(
        {
            "customer_id": [1, 2],
            "event_timestamp": [datetime.now(UTC) - timedelta(hours=1)] * 2,
            "amount": [5.0, 6.0],
        }
    )
    other = store.get_historical_features(entity_df, ["customer_stats:n_txn_7d"])

    with pytest.raises(InvalidInputError, match="other features than it was trained on") as e:
        world.services.registry.register(
            "fraud",
            world.model,
            sample=world.train[COLUMNS],
            feature_service="fraud_features",
            feature_lineage=other.lineage,
        )

    assert "'spend_7d' (customer_stats:spend_7d served, absent in training)" in e.value.message
