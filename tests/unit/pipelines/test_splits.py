"""Checking rows (schema skew stops, value skew is measured) and splitting them by time."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from bascule.core.errors import InvalidInputError
from bascule.core.project_settings import DataSettings
from bascule.pipelines import DataValidationError
from bascule.pipelines.splits import check_rows, data_spec, split_rows


def rows(n: int = 100, *, start: str = "2026-01-01", days: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    times = pd.date_range(start, periods=n, freq=pd.Timedelta(days=days) / n, tz="UTC")
    return pd.DataFrame(
        {
            "ts": times,
            "amount": rng.random(n) * 100,
            "channel": rng.choice(["web", "shop"], size=n).astype(object),
            "y": (np.arange(n) % 4 == 0).astype(np.int64),
        }
    )


def spec(**overrides: Any) -> dict[str, Any]:
    data = DataSettings(
        source="x.parquet",
        label="y",
        timestamp="ts",
        features=["amount", "channel"],
        categorical=["channel"],
        **overrides,
    )
    return data_spec(data, [])


def test_check_rows_keeps_labelled_rows_in_time_order() -> None:
    data = rows().sample(frac=1.0, random_state=1)
    data.loc[data.index[:5], "y"] = np.nan

    kept, metrics = check_rows(data, spec(), {})

    assert 95 == len(kept)
    assert kept["ts"].is_monotonic_increasing
    assert "int64" == str(kept["y"].dtype)
    assert 5.0 == metrics["rows_unlabelled"]


def test_missing_and_mistyped_columns_stop_with_every_problem() -> None:
    data = rows().drop(columns=["y"]).assign(amount="lots")

    with pytest.raises(DataValidationError) as e:
        check_rows(data, spec(), {})

    assert "invalid_input" == e.value.code
    assert ["y"] == e.value.report.missing
    assert "amount" in e.value.report.wrong_types


def test_the_champions_inputs_are_required_too() -> None:
    with pytest.raises(DataValidationError, match="missing columns"):
        check_rows(rows(), spec(), {"schema": {"amount": "numeric", "hour": "numeric"}})


def test_a_single_class_label_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="exactly two classes"):
        check_rows(rows().assign(y=0), spec(), {})


def test_text_timestamps_are_parsed() -> None:
    data = rows().assign(ts=lambda f: f["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S"))

    kept, _ = check_rows(data, spec(), {})

    assert "datetime64[ns, UTC]" == str(kept["ts"].dtype)


def test_value_skew_against_the_champion_profile_is_measured() -> None:
    profile = {
        "row_count": 100,
        "columns": {"amount": {"kind": "numeric", "min": 0.0, "max": 50.0, "missing": 0}},
    }

    _, metrics = check_rows(rows(), spec(), {"profile": profile})

    assert 0.3 < metrics["skew.amount.out_of_range_share"] < 0.7


def test_split_holds_out_the_newest_fraction_and_validates_on_the_next() -> None:
    kept, _ = check_rows(rows(100), spec(), {})

    train, validation, holdout, info = split_rows(kept, spec(), {})

    assert (64, 16, 20) == (len(train), len(validation), len(holdout))
    assert (
        train["ts"].max() < validation["ts"].min() <= validation["ts"].max() < holdout["ts"].min()
    )
    assert validation["ts"].max().isoformat() == info["data_until"]


def test_a_random_validation_split_keeps_the_newest_rows_in_training() -> None:
    random_spec = spec(validation_split="random")
    kept, _ = check_rows(rows(100), random_spec, {})

    train, validation, holdout, info = split_rows(kept, random_spec, {})
    again = split_rows(kept, random_spec, {})[1]

    assert (64, 16, 20) == (len(train), len(validation), len(holdout))
    newest = kept["ts"].iloc[64]  # where a "newest" validation would start
    assert (train["ts"] >= newest).sum() > 0  # recent rows train
    assert (validation["ts"] < newest).sum() > 0  # and older ones validate
    assert max(train["ts"].max(), validation["ts"].max()) < holdout["ts"].min()
    assert validation["ts"].tolist() == again["ts"].tolist()  # seeded: same rows, same split
    assert kept["ts"].iloc[79].isoformat() == info["data_until"]


def test_split_by_days_keeps_only_rows_newer_than_the_champions_data() -> None:
    kept, _ = check_rows(rows(100, days=10), spec(holdout_days=5), {})
    cutoff = kept["ts"].iloc[79].isoformat()

    _, _, holdout, info = split_rows(kept, spec(holdout_days=5), {"data_until": cutoff})

    assert 20 == len(holdout)
    assert (holdout["ts"] > pd.Timestamp(cutoff)).all()
    assert cutoff == info["champion_data_until"]


def test_no_new_rows_means_an_empty_holdout() -> None:
    kept, _ = check_rows(rows(), spec(), {})
    newest = kept["ts"].iloc[-1].isoformat()

    train, _, holdout, info = split_rows(kept, spec(), {"data_until": newest})

    assert 0 == len(holdout)
    assert info["holdout_start"] is None
    assert 80 == len(train)


def test_too_few_rows_to_train_is_refused() -> None:
    kept, _ = check_rows(rows(4), spec(), {})

    with pytest.raises(InvalidInputError, match="enough rows to train"):
        split_rows(kept, spec(holdout_fraction=0.5), {})
