"""Checking and splitting a project's rows by time (pure functions of DataFrames).

:func:`check_rows` stops on schema skew (declared columns and the champion's inputs, with
their kinds), keeps the labelled rows with a valid timestamp, and measures value skew
against the champion's reference profile. :func:`split_rows` splits the result by time:

* **holdout**: the newest ``holdout_days`` days (else the newest ``holdout_fraction`` of
  rows), keeping only rows newer than the champion's training data: neither model saw them;
* **validation**: the newest ``validation_fraction`` of the rows older than the holdout
  (``validation_split: newest``), or that share drawn at random from them with a fixed seed
  (``random``: the newest rows stay in training, which matters when the world just
  changed); the decision threshold is chosen there;
* **train**: the rest.

``spec`` is the plain-JSON form of the ``project.data`` settings (:func:`data_spec`), so
the steps that call these functions are cached by value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from bascule.core.errors import InvalidInputError
from bascule.core.project_settings import DataSettings
from bascule.pipelines.validation import SchemaReport, check_schema, value_skew

__all__ = ["check_rows", "data_spec", "split_rows"]

_SPLIT_SEED = 20_240_601
"""Seed of the random validation split: the same rows give the same split (and cache hits)."""


def data_spec(data: DataSettings, extra_columns: list[str]) -> dict[str, Any]:
    """The settings the checks and splits need, as JSON values (a pipeline parameter)."""
    return {
        "label": data.label,
        "timestamp": data.timestamp,
        "features": list(data.features),
        "categorical": list(data.categorical),
        "extra": [c for c in extra_columns if c not in data.features],
        "holdout_days": data.holdout_days,
        "holdout_fraction": data.holdout_fraction,
        "validation_fraction": data.validation_fraction,
        "validation_split": data.validation_split,
    }


def _timestamps(series: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        out = (
            series.dt.tz_convert("UTC")
            if series.dt.tz is not None
            else series.dt.tz_localize("UTC")
        )
    else:
        out = pd.to_datetime(series, utc=True, errors="coerce", format="mixed")
    converted: pd.Series = out.astype("datetime64[ns, UTC]")
    return converted


def check_rows(
    data: pd.DataFrame, spec: Mapping[str, Any], champion: Mapping[str, Any]
) -> tuple[pd.DataFrame, dict[str, float]]:
    """The rows fit to train on, and the metrics of what was checked.

    Args:
        data: The rows as read.
        spec: :func:`data_spec`.
        champion: ``schema`` (column → kind) and ``profile`` of the champion; ``{}`` if none.

    Returns:
        The feature, label, timestamp and price columns of the labelled rows with a valid
        timestamp, oldest first; and metrics: rows read, dropped, and value skew
        (``skew.*``) against the champion's profile.

    Raises:
        DataValidationError: missing columns or columns of the wrong kind (the report
            lists every one).
        InvalidInputError: no timestamp parses, or the label has not exactly two values.
    """
    label, ts = str(spec["label"]), str(spec["timestamp"])
    features = [str(f) for f in spec["features"]]
    categorical = set(spec["categorical"])
    expected = {f: "categorical" if f in categorical else "numeric" for f in features}
    for column, kind in dict(champion.get("schema") or {}).items():
        expected.setdefault(str(column), str(kind))
    report = check_schema(data, expected, allow_extra=True)
    absent = [c for c in (label, ts, *spec.get("extra", [])) if c not in data.columns]
    if absent:
        report = SchemaReport([*report.missing, *absent], report.unexpected, report.wrong_types)
    report.raise_for_skew()

    times = _timestamps(data[ts])
    if len(data) and times.isna().all():
        raise InvalidInputError.for_field(
            f"timestamp column {ts!r}", str(data[ts].dtype), "timestamps (or text that parses)"
        )
    keep = data[label].notna().to_numpy() & times.notna().to_numpy()
    columns = list(dict.fromkeys([*features, *expected, label, ts, *spec.get("extra", [])]))
    rows = data.loc[keep, columns].copy()
    rows[ts] = times[keep]
    values = rows[label]
    if (
        pd.api.types.is_float_dtype(values.dtype)
        and len(values)
        and np.all(values == np.round(values))
    ):
        rows[label] = values.astype(np.int64)
    distinct = rows[label].nunique()
    if distinct != 2:
        raise InvalidInputError.for_field(
            f"label column {label!r}",
            f"{distinct} distinct value(s) among {len(rows)} labelled rows",
            "exactly two classes (the pipeline trains binary classifiers)",
        )
    rows = rows.sort_values(ts, kind="stable").reset_index(drop=True)
    metrics = {
        "rows_read": float(len(data)),
        "rows_unlabelled": float(data[label].isna().sum()),
        "rows_bad_timestamp": float(times.isna().sum()),
        "rows_kept": float(len(rows)),
    }
    profile = champion.get("profile")
    if profile and profile.get("columns"):
        metrics |= value_skew(rows, profile).metrics()
    return rows, metrics


def split_rows(
    rows: pd.DataFrame, spec: Mapping[str, Any], champion: Mapping[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Split checked rows (oldest first) into train, validation and holdout by time.

    Args:
        rows: The result of :func:`check_rows`.
        spec: :func:`data_spec`.
        champion: ``data_until`` (ISO time the champion's training data ends) if any.

    Returns:
        ``(train, validation, holdout, info)``; ``info`` holds the row counts, the holdout
        start and ``data_until``: the newest time of train and validation (stored with the
        new version, it bounds the next run's holdout).

    Raises:
        InvalidInputError: too few rows older than the holdout to train and validate on.
    """
    ts = str(spec["timestamp"])
    times = rows[ts]
    n = len(rows)
    if spec.get("holdout_days"):
        start = times.iloc[-1] - pd.Timedelta(days=float(spec["holdout_days"]))
        in_holdout = (times > start).to_numpy()
    else:
        first = min(n - 1, int(np.floor(n * (1.0 - float(spec["holdout_fraction"])))))
        in_holdout = (times >= times.iloc[first]).to_numpy() if n else np.zeros(0, bool)
    until = champion.get("data_until")
    champion_until = pd.Timestamp(until).tz_convert("UTC") if until else None
    if champion_until is not None:  # both conditions are "newer than": a suffix in time
        in_holdout = in_holdout & (times > champion_until).to_numpy()
    holdout = rows[in_holdout].reset_index(drop=True)
    rest = rows[~in_holdout].reset_index(drop=True)
    cut = int(np.floor(len(rest) * (1.0 - float(spec["validation_fraction"]))))
    if cut < 2 or len(rest) - cut < 1:
        raise InvalidInputError.for_field(
            "rows older than the holdout",
            len(rest),
            "enough rows to train and to choose the decision threshold on (more data, or a "
            "smaller holdout_days / holdout_fraction)",
        )
    if spec.get("validation_split", "newest") == "random":
        picked = np.zeros(len(rest), dtype=bool)
        order = np.random.default_rng(_SPLIT_SEED).permutation(len(rest))
        picked[order[cut:]] = True
        train, validation = (
            rest[~picked].reset_index(drop=True),
            rest[picked].reset_index(drop=True),
        )
    else:
        train, validation = (
            rest.iloc[:cut].reset_index(drop=True),
            rest.iloc[cut:].reset_index(drop=True),
        )
    info = {
        "train_rows": len(train),
        "validation_rows": len(validation),
        "holdout_rows": len(holdout),
        "holdout_start": None if holdout.empty else holdout[ts].iloc[0].isoformat(),
        "data_until": rest[ts].iloc[-1].isoformat(),
        "champion_data_until": None if champion_until is None else champion_until.isoformat(),
    }
    return train, validation, holdout, info
