"""Point-in-time correctness against a brute-force answer, lineage, materialisation, online.

Runs on the metadata DBs of the ``services`` fixture (SQLite, and PostgreSQL when available).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bascule.core.errors import InvalidInputError, NotFoundError
from bascule.features import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    RequestSource,
    SqlSource,
    on_demand_feature_view,
)
from bascule.testing import FakeClock
from bascule.wiring import Services

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CUSTOMER = Entity("customer", ["customer_id"])
MERCHANT = Entity("merchant", ["merchant"])


def _events(path: Path, *, seed: int, n: int = 3000, keys: int = 60) -> pd.DataFrame:
    """Events at whole seconds over 10 days; (key, time) pairs are unique."""
    rng = np.random.default_rng(seed)
    secs = rng.choice(10 * 86400, size=n, replace=False)
    df = pd.DataFrame(
        {
            "customer_id": rng.integers(0, keys, n),
            "event_timestamp": [T0 + timedelta(seconds=int(s)) for s in secs],
            "spend": rng.normal(100, 20, n).round(3),
            "n_txn": rng.integers(0, 50, n),
        }
    )
    df.to_parquet(path)
    return df


def _entity_rows(events: pd.DataFrame, *, seed: int, n: int = 400) -> pd.DataFrame:
    """Entity rows: random times, rows exactly at event times, unknown ids and duplicates."""
    rng = np.random.default_rng(seed)
    ids = list(rng.integers(0, 70, n))  # ids 60..69 have no events
    times = [T0 + timedelta(seconds=int(s)) for s in rng.integers(0, 12 * 86400, n)]
    exact = events.sample(50, random_state=seed)
    ids += list(exact["customer_id"])
    times += list(exact["event_timestamp"])
    just_after_ttl = events.sample(20, random_state=seed + 1)
    ids += list(just_after_ttl["customer_id"])
    times += [t + timedelta(days=1) for t in just_after_ttl["event_timestamp"]]  # exactly TTL
    ids += list(just_after_ttl["customer_id"])
    times += [t + timedelta(days=1, seconds=1) for t in just_after_ttl["event_timestamp"]]
    rows = pd.DataFrame({"customer_id": ids, "event_timestamp": times})
    return pd.concat([rows, rows.iloc[:30]], ignore_index=True)  # duplicate rows stay


def _brute(
    events: pd.DataFrame, rows: pd.DataFrame, feature: str, ttl: timedelta | None
) -> list[Any]:
    out: list[Any] = []
    by_key = {k: g.sort_values("event_timestamp") for k, g in events.groupby("customer_id")}
    for k, t in zip(rows["customer_id"], rows["event_timestamp"], strict=True):
        g = by_key.get(k)
        if g is None:
            out.append(None)
            continue
        before = g[g["event_timestamp"] <= t]
        if before.empty:
            out.append(None)
            continue
        last = before.iloc[-1]
        if ttl is not None and last["event_timestamp"] < t - ttl:
            out.append(None)
            continue
        out.append(last[feature])
    return out


def _same(expected: list[Any], actual: list[Any]) -> list[int]:
    def null(v: Any) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v))

    bad = []
    for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
        if null(e) != null(a) or (not null(e) and not math.isclose(float(e), float(a))):
            bad.append(i)
    return bad


def _views(tmp_path: Path, seed: int = 1) -> tuple[pd.DataFrame, FeatureView, FeatureView]:
    events = _events(tmp_path / "events.parquet", seed=seed)
    with_ttl = FeatureView(
        name="stats_1d",
        entities=[CUSTOMER],
        schema=[Field("spend", "float64"), Field("n_txn", "int64")],
        source=FileSource(str(tmp_path / "events.parquet")),
        ttl=timedelta(days=1),
    )
    forever = FeatureView(
        name="stats_all",
        entities=[CUSTOMER],
        schema={"spend": "float64"},
        source=SqlSource(f"SELECT * FROM read_parquet('{tmp_path / 'events.parquet'}')"),
    )
    return events, with_ttl, forever


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0 + timedelta(days=10))


@pytest.fixture
def svc(make_svc: Callable[..., Services], clock: FakeClock) -> Services:
    return make_svc(clock=clock)


def test_training_set_matches_brute_force_with_ttl_and_exact_times(
    svc: Services, tmp_path: Path
) -> None:
    events, with_ttl, forever = _views(tmp_path)
    rows = _entity_rows(events, seed=2)
    fs = svc.features
    fs.apply([with_ttl, forever])

    got = fs.get_historical_features(
        rows, ["stats_1d:spend", "stats_1d:n_txn", "stats_all:spend"], full_feature_names=True
    ).to_df()

    assert len(rows) == len(got)
    assert list(rows["customer_id"]) == list(got["customer_id"])
    assert [] == _same(
        _brute(events, rows, "spend", timedelta(days=1)), list(got["stats_1d__spend"])
    )
    assert [] == _same(
        _brute(events, rows, "n_txn", timedelta(days=1)), list(got["stats_1d__n_txn"])
    )
    assert [] == _same(_brute(events, rows, "spend", None), list(got["stats_all__spend"]))
    exact = rows.iloc[400:450]
    assert all(v is not None for v in _brute(events, exact, "spend", timedelta(days=1)))


def test_every_entity_row_comes_back_with_nulls_for_unknown_keys_and_times(
    svc: Services, tmp_path: Path
) -> None:
    _, with_ttl, _ = _views(tmp_path)
    fs = svc.features
    fs.apply([with_ttl])
    rows = pd.DataFrame(
        {
            "customer_id": pd.array([1, None, 999, 1, 1], dtype="Int64"),
            "event_timestamp": [T0 + timedelta(days=5), T0, T0, pd.NaT, T0 + timedelta(days=5)],
            "label": ["a", "b", "c", "d", "e"],
        }
    )

    got = fs.get_historical_features(rows, ["stats_1d:spend"]).to_df()

    assert ["a", "b", "c", "d", "e"] == list(got["label"])
    assert got["spend"].iloc[1:4].isna().all()
    assert got["spend"].iloc[0] == got["spend"].iloc[4]


def test_naive_entity_timestamps_are_taken_as_utc(svc: Services, tmp_path: Path) -> None:
    events, with_ttl, _ = _views(tmp_path)
    fs = svc.features
    fs.apply([with_ttl])
    rows = _entity_rows(events, seed=3).iloc[:100]
    naive = rows.assign(event_timestamp=rows["event_timestamp"].dt.tz_localize(None))

    aware = fs.get_historical_features(rows, ["stats_1d:spend"]).to_df()
    plain = fs.get_historical_features(naive, ["stats_1d:spend"]).to_df()

    assert [] == _same(list(aware["spend"]), list(plain["spend"]))


def test_lineage_names_view_versions_and_data_fingerprints(svc: Services, tmp_path: Path) -> None:
    events, with_ttl, _ = _views(tmp_path)
    fs = svc.features
    fs.apply([with_ttl])
    rows = _entity_rows(events, seed=4)
    first = fs.get_historical_features(rows, ["stats_1d:spend"]).lineage

    fs.apply([FeatureView(**{**with_ttl.__dict__, "ttl": timedelta(days=2)})])
    second = fs.get_historical_features(rows, ["stats_1d:spend"]).lineage
    _events(tmp_path / "events.parquet", seed=99)  # the data changes
    third = fs.get_historical_features(rows, ["stats_1d:spend"]).lineage

    assert ("stats_1d", 1) == (first.views[0].name, first.views[0].version)
    assert 2 == second.views[0].version
    assert first.views[0].fingerprint != second.views[0].fingerprint
    assert second.views[0].data_fingerprint != third.views[0].data_fingerprint
    assert len(rows) == first.entity_rows
    assert "stats_1d@v2" == third.tags()["features.views"]
    assert len({first.digest, second.digest, third.digest}) == 3


def test_to_parquet_streams_the_same_rows(svc: Services, tmp_path: Path) -> None:
    events, with_ttl, forever = _views(tmp_path)
    fs = svc.features
    fs.apply([with_ttl, forever])
    rows = _entity_rows(events, seed=5)
    job = fs.get_historical_features(
        rows, ["stats_1d:spend", "stats_all:spend"], full_feature_names=True
    )

    n = job.to_parquet(tmp_path / "train.parquet")

    back = pd.read_parquet(tmp_path / "train.parquet")
    df = job.to_df()
    assert len(rows) == n
    assert list(df.columns) == list(back.columns)
    assert list(df["customer_id"]) == list(back["customer_id"])
    for col in ("stats_1d__spend", "stats_all__spend"):
        assert [] == _same(list(df[col]), list(back[col]))


def test_bad_requests_name_what_is_missing_and_what_exists(svc: Services, tmp_path: Path) -> None:
    events, with_ttl, _ = _views(tmp_path)
    fs = svc.features
    fs.apply([with_ttl])
    rows = _entity_rows(events, seed=6)

    with pytest.raises(InvalidInputError, match="'event_timestamp'") as e:
        fs.get_historical_features(rows.drop(columns=["event_timestamp"]), ["stats_1d:spend"])
    assert "invalid_input" == e.value.code
    with pytest.raises(InvalidInputError, match="'customer_id'"):
        fs.get_historical_features(rows.rename(columns={"customer_id": "id"}), ["stats_1d:spend"])
    with pytest.raises(NotFoundError, match="feature view 'nope' not found; available: 'stats_1d'"):
        fs.get_historical_features(rows, ["nope:spend"])
    with pytest.raises(NotFoundError, match="'stats_1d:n_txn', 'stats_1d:spend'") as nf:
        fs.get_historical_features(rows, ["stats_1d:spendd"])
    assert "not_found" == nf.value.code


def test_apply_rejects_types_that_differ_from_the_source(svc: Services, tmp_path: Path) -> None:
    _, with_ttl, _ = _views(tmp_path)
    bad = FeatureView(
        name="stats_1d",
        entities=[CUSTOMER],
        schema={"spend": "int64", "n_txn": "string", "missing": "float64"},
        source=with_ttl.source,
    )

    with pytest.raises(InvalidInputError) as e:
        svc.features.apply([bad])
    assert "'spend' is declared int64 but the source column is DOUBLE" in e.value.message
    assert "'n_txn' is declared string but the source column is BIGINT" in e.value.message
    assert "'missing' is not a column of the source" in e.value.message
    assert [] == svc.features.definitions()


def test_online_values_equal_the_training_set_at_materialisation_time(
    svc: Services, tmp_path: Path, clock: FakeClock
) -> None:
    _, with_ttl, forever = _views(tmp_path)
    fs = svc.features
    fs.apply([with_ttl, forever, FeatureService("model", ["stats_1d:spend", "stats_all"])])
    now = clock.now_utc()
    fs.materialize(T0 - timedelta(days=1), now)
    ids = list(range(70))

    online = fs.get_online_features({"customer_id": ids}, "model", full_feature_names=True)
    offline = fs.get_historical_features(
        pd.DataFrame(
            {"customer_id": ids, "event_timestamp": [now - timedelta(microseconds=1)] * 70}
        ),
        "model",
        full_feature_names=True,
    ).to_df()

    for name in ("stats_1d__spend", "stats_all__spend"):
        assert [] == _same(list(offline[name]), online.features[name].values)
    statuses = online.features["stats_all__spend"].statuses
    assert ["NOT_FOUND"] * 10 == statuses[60:]
    expired = [
        i
        for i, s in enumerate(online.features["stats_1d__spend"].statuses)
        if s == "OUTSIDE_MAX_AGE"
    ]
    assert all(online.features["stats_1d__spend"].values[i] is None for i in expired)


@on_demand_feature_view(
    sources=[RequestSource("txn", {"amount": "float64"}), "stats_all"],
    schema={"amount_over_spend": "float64"},
)
def amount_ratio(inputs: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"amount_over_spend": inputs["amount"] / inputs["spend"]})


def test_on_demand_features_are_the_same_offline_and_online(
    svc: Services, tmp_path: Path, clock: FakeClock
) -> None:
    _, _, forever = _views(tmp_path)
    fs = svc.features
    fs.apply([forever, amount_ratio])
    now = clock.now_utc()
    fs.materialize(T0 - timedelta(days=1), now)
    rows = {"customer_id": [1, 2, 65], "amount": [10.0, 20.0, 30.0]}

    online = fs.get_online_features(rows, ["amount_ratio:amount_over_spend"])
    offline = fs.get_historical_features(
        pd.DataFrame({**rows, "event_timestamp": [now] * 3}), ["amount_ratio:amount_over_spend"]
    ).to_df()

    assert [] == _same(
        list(offline["amount_over_spend"]), online.features["amount_over_spend"].values
    )
    assert ["PRESENT", "PRESENT", "NULL_VALUE"] == online.features["amount_over_spend"].statuses
    with pytest.raises(InvalidInputError, match="'amount'"):
        fs.get_online_features({"customer_id": [1]}, ["amount_ratio:amount_over_spend"])


def test_materialisation_is_idempotent_and_resumes_after_an_interruption(
    make_svc: Callable[..., Services], tmp_path: Path, clock: FakeClock
) -> None:
    _, _, forever = _views(tmp_path)
    svc = make_svc(clock=clock, features={"materialize_batch_rows": 7})
    fs = svc.features
    fs.apply([forever])
    window = (T0 - timedelta(days=1), T0 + timedelta(days=5))

    class Stop(Exception):
        pass

    def stop_after_two_batches(view: str, done: int, total: int) -> None:
        if done >= 14:
            raise Stop

    with pytest.raises(Stop):
        fs.materialize(*window, progress=stop_after_two_batches)
    partial = fs.online_store.count("stats_all")
    resumed = fs.materialize(*window)[0]
    again = fs.materialize(*window)[0]

    assert 14 == partial
    assert resumed.resumed
    assert 60 == resumed.rows
    assert not again.resumed
    assert 60 == again.rows
    assert 60 == fs.online_store.count("stats_all")
    assert fs.watermark("stats_all") is not None


def test_incremental_materialisation_continues_from_the_watermark(
    svc: Services, tmp_path: Path, clock: FakeClock
) -> None:
    events, with_ttl, _ = _views(tmp_path)
    fs = svc.features
    fs.apply([with_ttl])
    first = fs.materialize_incremental(T0 + timedelta(days=5))[0]
    second = fs.materialize_incremental(T0 + timedelta(days=10))[0]
    nothing = fs.materialize_incremental(T0 + timedelta(days=10))

    assert T0 + timedelta(days=4) == first.start
    assert T0 + timedelta(days=5) == second.start
    assert [] == nothing
    last = events.sort_values("event_timestamp").groupby("customer_id").last()
    got = fs.get_online_features({"customer_id": list(last.index)}, ["stats_1d:n_txn"])
    assert list(last["n_txn"]) == got.features["n_txn"].values


@pytest.mark.redis
def test_redis_online_store_serves_what_was_materialised(
    make_svc: Callable[..., Services], tmp_path: Path, clock: FakeClock, redis_url: str
) -> None:
    events, _, forever = _views(tmp_path)
    svc = make_svc(clock=clock, online_store=redis_url)
    fs = svc.features
    fs.apply([forever])
    fs.materialize(T0 - timedelta(days=1), clock.now_utc())
    last = events.sort_values("event_timestamp").groupby("customer_id").last()

    got = fs.get_online_features({"customer_id": [*last.index, 12345]}, ["stats_all:spend"])

    assert [*last["spend"], None] == got.features["spend"].values
    assert "NOT_FOUND" == got.features["spend"].statuses[-1]
    assert got.features["spend"].event_timestamps[0] == last["event_timestamp"].iloc[0]
