"""Removing feature definitions: ``apply(..., objects_to_delete=..., partial=False)``.

Runs on the metadata DBs of the ``make_svc`` fixture (SQLite, and PostgreSQL when available)
and on both online stores (SQLite; Redis when available).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from bascule.core.errors import FeatureServiceNotFoundError, InvalidInputError, NotFoundError
from bascule.features import Entity, FeatureService, FeatureView, Field, FileSource
from bascule.testing import FakeClock
from bascule.wiring import Services

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CUSTOMER = Entity("customer", ["customer_id"])


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def svc(
    request: pytest.FixtureRequest, make_svc: Callable[..., Services], tmp_path: Path
) -> Services:
    overrides: dict[str, object] = {"clock": FakeClock(T0 + timedelta(days=3))}
    if request.param == "redis":
        overrides["online_store"] = request.getfixturevalue("redis_url")
    pd.DataFrame(
        {
            "customer_id": [1, 2, 1],
            "event_timestamp": [T0, T0, T0 + timedelta(days=1)],
            "spend": [10.0, 5.0, 20.0],
            "n_txn": [1, 2, 3],
        }
    ).to_parquet(tmp_path / "stats.parquet")
    return make_svc(**overrides)


def _defs(tmp_path: Path) -> tuple[FeatureView, FeatureView, FeatureService]:
    source = FileSource(str(tmp_path / "stats.parquet"))
    spend = FeatureView(
        name="spend", entities=[CUSTOMER], schema=[Field("spend", "float64")], source=source
    )
    counts = FeatureView(
        name="counts", entities=[CUSTOMER], schema=[Field("n_txn", "int64")], source=source
    )
    return spend, counts, FeatureService("fraud", ["spend:spend"])


def _materialize(svc: Services) -> None:
    svc.features.materialize(T0 - timedelta(days=1), T0 + timedelta(days=2))


def test_apply_keeps_what_it_is_not_given_as_feast_does(svc: Services, tmp_path: Path) -> None:
    spend, counts, fraud = _defs(tmp_path)
    fs = svc.features
    fs.apply([spend, counts, fraud])

    changes = fs.apply([spend])

    assert {"unchanged"} == {c.status for c in changes}
    assert ["counts", "spend"] == [v.name for v in fs.list_feature_views()]
    assert ["fraud"] == [s.name for s in fs.list_feature_services()]


def test_removing_a_view_and_its_service_drops_them_everywhere(
    svc: Services, tmp_path: Path
) -> None:
    spend, counts, fraud = _defs(tmp_path)
    fs = svc.features
    fs.apply([spend, counts, fraud])
    _materialize(svc)
    assert 2 == fs.online_store.count("spend")
    assert fs.watermark("spend") is not None

    stale = fs.undeclared([counts])
    changes = fs.apply([counts], objects_to_delete=stale, partial=False)

    assert [("FeatureService", "fraud"), ("FeatureView", "spend")] == [
        (type(o).__name__, o.name) for o in stale
    ]
    assert {("service", "fraud", 2), ("view", "spend", 2)} == {
        (c.kind, c.name, c.version) for c in changes if c.status == "removed"
    }
    assert ["counts"] == [v.name for v in fs.list_feature_views()]
    assert [] == fs.list_feature_services()
    assert ["counts", "customer"] == sorted(d.name for d in fs.definitions())
    assert 0 == fs.online_store.count("spend")
    assert fs.watermark("spend") is None
    assert 2 == fs.online_store.count("counts")  # what stays is untouched
    shown = fs.describe("spend")
    assert shown["removed"] is True
    assert [False, True] == [v.removed for v in shown["versions"]]
    with pytest.raises(NotFoundError, match=r"feature view 'spend' was removed .* v1") as view:
        fs.get_online_features([{"customer_id": 1}], ["spend:spend"])
    assert view.value.details["removed"] is True
    with pytest.raises(NotFoundError, match="feature service 'fraud' was removed"):
        fs.get_online_features([{"customer_id": 1}], "fraud")
    with pytest.raises(FeatureServiceNotFoundError, match=r"'fraud' was removed .* v1"):
        fs.bind_service("fraud")
    with pytest.raises(NotFoundError, match="feature view 'spend' was removed"):
        fs.materialize(T0, T0 + timedelta(days=1), views=["spend"])


def test_a_removed_view_applied_again_starts_afresh(svc: Services, tmp_path: Path) -> None:
    spend, counts, fraud = _defs(tmp_path)
    fs = svc.features
    fs.apply([spend, counts, fraud])
    fs.apply([counts], objects_to_delete=[spend, fraud], partial=False)

    again = fs.apply([spend])
    online = fs.get_online_features([{"customer_id": 1}], ["spend:spend"])

    assert [("customer", "unchanged", 1), ("spend", "created", 3)] == [
        (c.name, c.status, c.version) for c in again
    ]
    assert [None] == online.features["spend"].values  # nothing materialised since
    _materialize(svc)
    assert [20.0] == fs.get_online_features([{"customer_id": 1}], ["spend"]).features[
        "spend"
    ].values
    assert [1, 2, 3] == [v.version for v in fs.describe("spend")["versions"]]


def test_a_removal_that_would_break_what_stays_changes_nothing(
    svc: Services, tmp_path: Path
) -> None:
    spend, counts, fraud = _defs(tmp_path)
    fs = svc.features
    fs.apply([spend, counts, fraud])
    _materialize(svc)
    changed_counts = FeatureView(
        name="counts", entities=[CUSTOMER], schema=[Field("n_txn", "float64")], source=spend.source
    )

    with pytest.raises(InvalidInputError) as err:
        fs.apply([changed_counts, fraud], objects_to_delete=[spend, CUSTOMER], partial=False)

    problems = err.value.details["problems"]
    assert any("feature view 'spend': feature service 'fraud' still uses it" in p for p in problems)
    assert any("entity 'customer': feature view 'counts' still uses it" in p for p in problems)
    assert ["counts", "spend"] == [v.name for v in fs.list_feature_views()]
    assert [1] == [v.version for v in fs.describe("counts")["versions"]]
    assert 2 == fs.online_store.count("spend")


def test_bad_removals_are_refused(svc: Services, tmp_path: Path) -> None:
    spend, counts, fraud = _defs(tmp_path)
    fs = svc.features
    fs.apply([spend, counts, fraud])
    never = FeatureView(
        name="never", entities=[CUSTOMER], schema=[Field("spend", "float64")], source=spend.source
    )

    with pytest.raises(InvalidInputError, match="partial"):
        fs.apply([spend], objects_to_delete=[counts])
    with pytest.raises(InvalidInputError, match="cannot remove feature view 'never'"):
        fs.apply([spend], objects_to_delete=[never], partial=False)
    with pytest.raises(InvalidInputError, match="'fraud' is both applied and removed"):
        fs.apply([fraud], objects_to_delete=[fraud], partial=False)
    assert ["counts", "spend"] == [v.name for v in fs.list_feature_views()]
    assert ["fraud"] == [s.name for s in fs.list_feature_services()]
