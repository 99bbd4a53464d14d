"""FeatureLookup: requests with entity ids completed from a (fake) online feature source."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from bascule.core.errors import (
    ConfigError,
    FeatureInputError,
    FeatureStoreUnavailableError,
    FeaturesUnavailableError,
    InvalidInputError,
    StorageError,
)
from bascule.core.feature_binding import FeatureServiceBinding
from bascule.core.tensors import Tensor
from bascule.features.online import FeatureValues, OnlineFeatures
from bascule.registry.converters import convert
from bascule.registry.predictor import OnnxPredictor
from bascule.serving.features import FeatureLookup
from bascule.serving.runtime import ServedModel
from bascule.testing import FakeClock

pytestmark = pytest.mark.anyio

COLUMNS = ["spend", "n_txn", "amount"]
SEEN = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeFeatures:
    """An online feature source holding ``{customer_id: {feature: value}}``."""

    def __init__(self, rows: Mapping[int, Mapping[str, Any]], *, down: bool = False) -> None:
        self.rows = rows
        self.down = down
        self.calls: list[dict[str, list[Any]]] = []

    def get_online_features(
        self, entity_rows: Mapping[str, Sequence[Any]], features: Sequence[str]
    ) -> OnlineFeatures:
        if self.down:
            raise StorageError("online store redis://127.0.0.1:1/0: ping failed: refused")
        self.calls.append({k: list(v) for k, v in entity_rows.items()})
        out = {}
        for ref in features:
            name = ref.partition(":")[2]
            values, statuses, stamps = [], [], []
            for key in entity_rows["customer_id"]:
                row = self.rows.get(key)
                value = None if row is None else row.get(name)
                values.append(value)
                if row is None:
                    statuses.append("NOT_FOUND")
                else:
                    statuses.append("PRESENT" if value is not None else "NULL_VALUE")
                stamps.append(None if row is None else SEEN)
            out[name] = FeatureValues(values, statuses, stamps)
        return OnlineFeatures({k: list(v) for k, v in entity_rows.items()}, out)


def binding(missing: str = "refuse") -> FeatureServiceBinding:
    return FeatureServiceBinding(
        service="stats",
        version=1,
        refs=("customer:spend", "customer:n_txn"),
        views=("customer@v1",),
        entity_keys=("customer_id",),
        missing=missing,
    )


def served(features: FeatureServiceBinding | None) -> ServedModel:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "spend": rng.gamma(2, 10, 100),
            "n_txn": rng.integers(0, 9, 100),
            "amount": rng.gamma(2, 10, 100),
        }
    )
    model = LogisticRegression().fit(frame, (frame.amount > frame.spend).astype(int))
    converted = convert(model, frame)
    predictor = OnnxPredictor(converted.onnx_bytes, converted.signature, name="m", version=1)
    return ServedModel(predictor, feature_binding=features)


def ids(customers: list[int], amounts: list[float]) -> list[Tensor]:
    return [
        Tensor("customer_id", "INT64", np.array(customers, dtype=np.int64)),
        Tensor("amount", "FP64", np.array(amounts)),
    ]


async def test_entity_ids_are_completed_in_signature_order_with_one_bulk_lookup() -> None:
    source = FakeFeatures({1: {"spend": 10.0, "n_txn": 3}, 2: {"spend": 4.5, "n_txn": 0}})
    lookup = FeatureLookup(source, clock=FakeClock(SEEN + timedelta(minutes=2)))
    model = served(binding())

    feeds, used = await lookup.feeds(model, ids([2, 1, 2], [1.0, 2.0, 3.0]))

    full = model.feeds(
        [
            Tensor("spend", "FP64", np.array([4.5, 10.0, 4.5])),
            Tensor("n_txn", "INT64", np.array([0, 3, 0])),
            Tensor("amount", "FP64", np.array([1.0, 2.0, 3.0])),
        ]
    )
    assert full.keys() == feeds.keys()
    for key in full:
        np.testing.assert_array_equal(full[key], feeds[key])
    assert [{"customer_id": [2, 1, 2]}] == source.calls
    assert used is not None
    assert "stats" == used.service
    assert {"customer_id": [2, 1, 2]} == used.entities
    assert {"customer": [SEEN, SEEN, SEEN]} == used.event_times
    assert {"m": 1} == lookup.stats().lookups
    assert {"m": 3} == lookup.stats().rows
    assert {("m", "customer"): (3, 360.0)} == lookup.stats().ages


async def test_a_request_with_every_input_is_not_looked_up() -> None:
    source = FakeFeatures({})
    lookup = FeatureLookup(source)
    model = served(binding())
    sent = [Tensor(c, "FP64", np.array([1.0])) for c in COLUMNS]

    _, used = await lookup.feeds(model, sent)

    assert used is None
    assert [] == source.calls


async def test_a_null_value_is_refused_by_default_and_a_missing_value_with_null_policy() -> None:
    source = FakeFeatures({1: {"spend": None, "n_txn": 3}})

    with pytest.raises(FeaturesUnavailableError, match="null: spend") as e:
        await FeatureLookup(source).feeds(served(binding()), ids([1], [5.0]))
    feeds, _ = await FeatureLookup(source).feeds(served(binding("null")), ids([1], [5.0]))

    assert "features_unavailable" == e.value.code
    assert [{"row": 0, "entity": {"customer_id": 1}, "features": {"spend": "NULL_VALUE"}}] == (
        e.value.details["rows"]
    )
    assert np.isnan(next(iter(feeds.values()))[0, 0])


async def test_null_policy_gives_an_unknown_entity_missing_values_as_in_training() -> None:
    model = served(binding("null"))

    feeds, _ = await FeatureLookup(FakeFeatures({})).feeds(model, ids([7], [5.0]))
    with pytest.raises(FeaturesUnavailableError, match="customer_id=7") as e:
        await FeatureLookup(FakeFeatures({})).feeds(served(binding()), ids([7], [5.0]))

    matrix = next(iter(feeds.values()))
    assert [True, True, False] == np.isnan(matrix[0]).tolist()
    assert "not in the online store: spend, n_txn" in e.value.message


async def test_missing_entity_key_names_what_to_send() -> None:
    lookup = FeatureLookup(FakeFeatures({}))
    sent = [Tensor("amount", "FP64", np.array([1.0]))]

    with pytest.raises(FeatureInputError, match="lacks input\\(s\\) 'customer_id'") as e:
        await lookup.feeds(served(binding()), sent)

    assert "invalid_input" == e.value.code
    assert ["customer_id"] == e.value.details["missing"]
    assert ["customer_id", "amount"] == e.value.details["required"]
    assert {("m", "invalid_input"): 1} == lookup.stats().errors


async def test_a_looked_up_feature_sent_beside_the_ids_is_refused() -> None:
    sent = [*ids([1], [1.0]), Tensor("spend", "FP64", np.array([3.0]))]

    with pytest.raises(InvalidInputError, match="'spend' is looked up in feature service"):
        await FeatureLookup(FakeFeatures({})).feeds(served(binding()), sent)


async def test_inputs_of_different_lengths_are_refused() -> None:
    sent = [
        Tensor("customer_id", "INT64", np.array([1, 2])),
        Tensor("amount", "FP64", np.array([1.0])),
    ]

    with pytest.raises(InvalidInputError, match="the same number"):
        await FeatureLookup(FakeFeatures({})).feeds(served(binding()), sent)


async def test_a_store_that_is_down_is_unavailable_and_counted() -> None:
    lookup = FeatureLookup(FakeFeatures({}, down=True))

    with pytest.raises(FeatureStoreUnavailableError, match="cannot be reached") as e:
        await lookup.feeds(served(binding()), ids([1], [1.0]))

    assert "storage_error" == e.value.code
    assert {("m", "store_unavailable"): 1} == lookup.stats().errors


async def test_no_feature_store_is_a_config_error_and_the_factory_runs_once() -> None:
    made: list[FakeFeatures] = []

    def factory() -> FakeFeatures:
        made.append(FakeFeatures({1: {"spend": 1.0, "n_txn": 1}}))
        return made[-1]

    lazy = FeatureLookup(factory)
    await lazy.feeds(served(binding()), ids([1], [1.0]))
    await lazy.feeds(served(binding()), ids([1], [1.0]))

    with pytest.raises(ConfigError, match="has no feature store"):
        await FeatureLookup().feeds(served(binding()), ids([1], [1.0]))
    assert 1 == len(made)


def test_binding_round_trips_through_version_tags() -> None:
    b = binding("null")

    assert b == FeatureServiceBinding.from_tags({**b.to_tags(), "other": "x"})
    assert FeatureServiceBinding.from_tags({"other": "x"}) is None
    assert ("customer_id", "amount") == b.required_inputs(COLUMNS)
    assert ("amount",) == b.passthrough(COLUMNS)
