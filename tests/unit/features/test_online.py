from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bascule.core.errors import InvalidInputError, StorageError
from bascule.features import Entity, FeatureView, FileSource
from bascule.features.catalog import Catalog
from bascule.features.online import entity_columns, online_key, read_online
from bascule.store.online.base import OnlineRow

NOW = datetime(2026, 3, 1, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


class DictStore:
    """A tiny in-memory online store: table → key → (ms, {feature: value})."""

    url = "memory://"

    def __init__(self, rows: dict[str, dict[str, tuple[int, dict[str, Any]]]]) -> None:
        self.rows = rows
        self.asked: list[list[str]] = []

    def read(
        self, table: str, keys: Sequence[str], features: Sequence[str]
    ) -> list[OnlineRow | None]:
        self.asked.append(list(keys))
        out: list[OnlineRow | None] = []
        for k in keys:
            found = self.rows.get(table, {}).get(k)
            out.append(
                None if found is None else (found[0], tuple(found[1].get(f) for f in features))
            )
        return out


class DownStore:
    url = "redis://127.0.0.1:1/0"

    def read(
        self, table: str, keys: Sequence[str], features: Sequence[str]
    ) -> list[OnlineRow | None]:
        raise StorageError(f"online store {self.url}: reading failed: connection refused")


def _selection(features: Sequence[str]) -> Any:
    view = FeatureView(
        name="v",
        entities=["customer"],
        schema={"x": "float64", "s": "string"},
        source=FileSource("v.parquet"),
        ttl=timedelta(days=1),
    )
    return Catalog([(Entity("customer", ["customer_id"]), 1, ""), (view, 1, "")]).select(features)


def _read(store: Any, cols: Mapping[str, list[Any]]) -> Any:
    n = len(next(iter(cols.values())))
    return read_online(store, _selection(["v:x", "v:s"]), n, cols, NOW_MS)


def test_statuses_say_present_null_missing_and_expired() -> None:
    fresh = NOW_MS - 1000
    stale = NOW_MS - 2 * 86_400_000
    store = DictStore(
        {
            "v": {
                "1": (fresh, {"x": 1.5, "s": "a"}),
                "2": (fresh, {"x": None, "s": "b"}),
                "3": (stale, {"x": 9.0, "s": "old"}),
            }
        }
    )

    got = _read(store, {"customer_id": [1, 2, 3, 4, None]})

    x = got.features["x"]
    assert [1.5, None, None, None, None] == x.values
    assert ["PRESENT", "NULL_VALUE", "OUTSIDE_MAX_AGE", "NOT_FOUND", "NOT_FOUND"] == x.statuses
    assert datetime.fromtimestamp(fresh / 1000, UTC) == x.event_timestamps[0]
    assert x.event_timestamps[2] is not None
    assert [None, None] == x.event_timestamps[3:]
    assert [["1", "2", "3", "4"]] == store.asked  # a null key is never looked up
    assert {
        "customer_id": [1, 2, 3, 4, None],
        "x": x.values,
        "s": ["a", "b", None, None, None],
    } == got.to_dict()


def test_missing_join_key_names_it_and_what_was_given() -> None:
    with pytest.raises(
        InvalidInputError, match="lack join key\\(s\\) 'customer_id'; they have: 'id'"
    ):
        _read(DictStore({}), {"id": [1]})


def test_a_store_that_is_down_raises_storage_error_never_nulls() -> None:
    with pytest.raises(StorageError, match="connection refused") as e:
        _read(DownStore(), {"customer_id": [1]})
    assert "storage_error" == e.value.code


def test_entity_rows_as_rows_or_columns() -> None:
    assert (2, {"a": [1, 2]}) == entity_columns([{"a": 1}, {"a": 2}])
    assert (2, {"a": [1, 2]}) == entity_columns({"a": [1, 2]})
    assert (0, {}) == entity_columns([])
    with pytest.raises(InvalidInputError, match="row 1"):
        entity_columns([{"a": 1}, {"b": 2}])
    with pytest.raises(InvalidInputError, match="differ in length"):
        entity_columns({"a": [1, 2], "b": [1]})


def test_online_keys_match_duckdb_text_of_the_join_keys() -> None:
    assert "42" == online_key([42])
    assert "42" == online_key([42.0])  # an id that came through JSON as a float
    assert "4.5" == online_key([4.5])
    assert "a\x1f7" == online_key(["a", 7])
    assert online_key([1, None]) is None
