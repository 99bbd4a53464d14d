"""Training sets give the entity rows back as they were given: order, duplicates, every column
and its dtype, with a fresh index; from a DataFrame, an Arrow table or a Parquet file, and
``to_df``, ``to_arrow`` and ``to_parquet`` agree. Feature values are checked against pandas'
``merge_asof`` (latest at or before the time, within the TTL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bascule.features import Entity, FeatureStore, FeatureView, Field, FileSource
from bascule.testing import FakeClock, make_services

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TTL = timedelta(days=1)
FEATURES = ["spend", "n_txn", "segment", "active"]


def _events(path: Path) -> pd.DataFrame:
    """Events at distinct whole seconds over 6 days for 40 customers, with some null spends."""
    rng = np.random.default_rng(11)
    n = 1500
    secs = rng.choice(6 * 86400, size=n, replace=False)
    spend = rng.normal(100, 20, n).round(3)
    spend[rng.random(n) < 0.1] = np.nan
    events = pd.DataFrame(
        {
            "customer_id": rng.integers(0, 40, n),
            "event_timestamp": pd.to_datetime(T0) + pd.to_timedelta(secs, unit="s"),
            "spend": spend,
            "n_txn": rng.integers(0, 50, n),
            "segment": rng.choice(["a", "b", "c"], n),
            "active": rng.random(n) < 0.5,
        }
    )
    events.to_parquet(path)
    return events


def _entity_rows(events: pd.DataFrame) -> pd.DataFrame:
    """Shuffled rows with a non-default index: random times, times exactly at events and
    exactly one TTL after them, unknown customers, duplicates, and columns of several kinds."""
    rng = np.random.default_rng(12)
    n = 300
    exact = events.sample(40, random_state=1)
    ids = np.concatenate(
        [rng.integers(0, 45, n), exact["customer_id"], exact["customer_id"]]  # 40..44 unknown
    )
    times = pd.concat(
        [
            pd.Series(pd.to_datetime(T0) + pd.to_timedelta(rng.integers(0, 7 * 86400, n), "s")),
            exact["event_timestamp"],
            exact["event_timestamp"] + TTL,
        ],
        ignore_index=True,
    )
    rows = pd.DataFrame(
        {
            "label": [f"row{i}" for i in range(len(ids))],
            "customer_id": ids,
            "weight": rng.random(len(ids)),
            "kind": pd.Categorical(rng.choice(["x", "y"], len(ids))),
            "event_timestamp": times,
        }
    )
    rows = pd.concat([rows, rows.iloc[:25]], ignore_index=True)
    rows.index = rng.permutation(len(rows)) * 3 + 1000
    return rows


def _expected(events: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """The features by pandas' merge_asof, in the entity rows' order."""
    left = rows.reset_index(drop=True).assign(_pos=np.arange(len(rows)))
    merged = pd.merge_asof(
        left.sort_values("event_timestamp"),
        events.sort_values("event_timestamp").rename(columns={"event_timestamp": "_ts"}),
        left_on="event_timestamp",
        right_on="_ts",
        by="customer_id",
        direction="backward",
        allow_exact_matches=True,
        tolerance=pd.Timedelta(TTL),
    )
    return merged.sort_values("_pos").reset_index(drop=True)[FEATURES]


def _check_features(expected: pd.DataFrame, got: pd.DataFrame) -> None:
    np.testing.assert_allclose(
        expected["spend"].to_numpy(float), got["spend"].to_numpy(float), equal_nan=True
    )
    np.testing.assert_allclose(
        expected["n_txn"].to_numpy(float), got["n_txn"].to_numpy(float), equal_nan=True
    )
    for name in ("segment", "active"):
        want = [None if pd.isna(v) else v for v in expected[name]]
        assert want == [None if pd.isna(v) else v for v in got[name]]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FeatureStore]:
    services = make_services(tmp_path / "home", clock=FakeClock(T0 + timedelta(days=10)))
    yield services.features
    services.close()


@pytest.fixture
def events(tmp_path: Path, store: FeatureStore) -> pd.DataFrame:
    events = _events(tmp_path / "events.parquet")
    store.apply(
        [
            FeatureView(
                name="stats",
                entities=[Entity("customer", ("customer_id",))],
                schema=[
                    Field("spend", "float64"),
                    Field("n_txn", "int64"),
                    Field("segment", "string"),
                    Field("active", "bool"),
                ],
                source=FileSource(str(tmp_path / "events.parquet")),
                ttl=TTL,
            )
        ]
    )
    return events


def test_entity_rows_come_back_as_given_with_the_features_beside_them(
    store: FeatureStore, events: pd.DataFrame
) -> None:
    rows = _entity_rows(events)

    got = store.get_historical_features(rows, ["stats"]).to_df()

    pd.testing.assert_frame_equal(rows.reset_index(drop=True), got[list(rows.columns)])
    assert [*rows.columns, *FEATURES] == list(got.columns)
    assert got["n_txn"].isna().any()  # expired and unknown rows are there, as nulls
    _check_features(_expected(events, rows), got)


def test_arrow_and_parquet_entity_rows_give_the_same_training_set(
    store: FeatureStore, events: pd.DataFrame, tmp_path: Path
) -> None:
    rows = _entity_rows(events).drop(columns=["kind"])
    table = pa.Table.from_pandas(rows, preserve_index=False)
    pq.write_table(table, tmp_path / "rows.parquet")
    expected = _expected(events, rows)

    from_frame = store.get_historical_features(rows, ["stats"])
    from_table = store.get_historical_features(table, ["stats"])
    from_file = store.get_historical_features(tmp_path / "rows.parquet", ["stats"])
    written = from_frame.to_parquet(tmp_path / "train.parquet")

    frames = {
        "frame.to_df": from_frame.to_df(),
        "frame.to_arrow": from_frame.to_arrow().to_pandas(),
        "table.to_df": from_table.to_df(),
        "table.to_arrow": from_table.to_arrow().to_pandas(),
        "file.to_df": from_file.to_df(),
        "file.to_arrow": from_file.to_arrow().to_pandas(),
        "frame.to_parquet": pd.read_parquet(tmp_path / "train.parquet"),
    }
    assert len(rows) == written
    assert table.column_names == from_table.to_arrow().column_names[: table.num_columns]
    for name, frame in frames.items():
        assert list(rows["label"]) == list(frame["label"]), name
        assert [*rows.columns, *FEATURES] == list(frame.columns), name
        _check_features(expected, frame)


def test_to_df_and_to_arrow_give_the_same_dtypes(store: FeatureStore, events: pd.DataFrame) -> None:
    job = store.get_historical_features(_entity_rows(events), ["stats"])

    pd.testing.assert_frame_equal(job.to_arrow().to_pandas(), job.to_df())


def test_later_edits_of_the_entity_frame_do_not_change_the_training_set(
    store: FeatureStore, events: pd.DataFrame
) -> None:
    rows = _entity_rows(events)
    job = store.get_historical_features(rows, ["stats"])
    before = job.to_df()

    rows.loc[:, "customer_id"] = 0
    rows.loc[:, "label"] = "changed"

    pd.testing.assert_frame_equal(before, job.to_df())


def test_no_entity_rows_give_an_empty_training_set_with_every_column(
    store: FeatureStore, events: pd.DataFrame
) -> None:
    rows = _entity_rows(events).iloc[:0]

    job = store.get_historical_features(rows, ["stats"])

    got = job.to_df()
    assert 0 == len(got) == job.to_arrow().num_rows
    assert [*rows.columns, *FEATURES] == list(got.columns)
