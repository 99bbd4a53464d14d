"""Materialisation writes each entity's latest row in the window whole: a null in the latest
row stays null (an older value never shows through), with one or two join keys."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from bascule.features import Entity, FeatureStore, FeatureView, Field, FileSource
from bascule.testing import FakeClock, make_services

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FeatureStore]:
    services = make_services(tmp_path / "home", clock=FakeClock(T0 + timedelta(days=3)))
    yield services.features
    services.close()


def _view(tmp_path: Path, name: str, keys: tuple[str, ...], rows: pd.DataFrame) -> FeatureView:
    rows.to_parquet(tmp_path / f"{name}.parquet")
    return FeatureView(
        name=name,
        entities=[Entity(name + "_entity", keys)],
        schema=[Field("spend", "float64"), Field("n_txn", "int64"), Field("segment", "string")],
        source=FileSource(str(tmp_path / f"{name}.parquet")),
    )


def test_the_latest_row_is_written_whole_even_where_it_holds_nulls(
    store: FeatureStore, tmp_path: Path
) -> None:
    hour = timedelta(hours=1)
    rows = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2, 2, 3],
            "event_timestamp": [T0, T0 + hour, T0 + 2 * hour, T0 + 2 * hour, T0, T0 + 30 * hour],
            "spend": [10.0, 11.0, None, 20.0, 21.0, 30.0],
            "n_txn": pd.array([1, None, 3, 4, 5, 6], dtype="Int64"),
            "segment": ["a", "b", None, "c", "d", "e"],
        }
    )
    store.apply([_view(tmp_path, "stats", ("customer_id",), rows)])

    store.materialize(T0, T0 + 24 * hour)  # customer 3's only row is outside the window
    got = store.get_online_features({"customer_id": [1, 2, 3]}, ["stats"])

    assert [None, 20.0, None] == got.features["spend"].values
    assert [3, 4, None] == got.features["n_txn"].values
    assert [None, "c", None] == got.features["segment"].values
    assert ["NULL_VALUE", "PRESENT", "NOT_FOUND"] == got.features["spend"].statuses
    assert T0 + 2 * hour == got.features["n_txn"].event_timestamps[0]


def test_two_join_keys_pick_the_latest_row_per_pair(store: FeatureStore, tmp_path: Path) -> None:
    hour = timedelta(hours=1)
    rows = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2],
            "merchant": ["m", "m", "n", "m"],
            "event_timestamp": [T0 + hour, T0, T0, T0],
            "spend": [None, 2.0, 3.0, 4.0],
            "n_txn": [1, 2, 3, 4],
            "segment": ["a", "b", "c", "d"],
        }
    )
    store.apply([_view(tmp_path, "pairs", ("customer_id", "merchant"), rows)])

    written = store.materialize(T0, T0 + 24 * hour)[0].rows
    got = store.get_online_features(
        {"customer_id": [1, 1, 2, 2], "merchant": ["m", "n", "m", "n"]}, ["pairs"]
    )

    assert 3 == written
    assert [None, 3.0, 4.0, None] == got.features["spend"].values
    assert [1, 3, 4, None] == got.features["n_txn"].values
    assert ["a", "c", "d", None] == got.features["segment"].values
