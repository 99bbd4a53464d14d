"""Reference profile of a feature table, kept with a model version for drift monitoring.

Also the table helpers the predictor and the profile share: turning an array or records
into a DataFrame named after a signature's columns, and reading one column as numbers or
as text with the same rules the ONNX inputs are fed with.

A profile is plain JSON::

    {"format": "bascule.profile/1", "row_count": 1000, "columns": {
        "age":  {"kind": "numeric", "datatype": "FP32", "count": 990, "missing": 10,
                 "infinite": 0, "mean": 41.2, "std": 12.9, "min": 18.0, "max": 90.0,
                 "quantiles": [18.0, ..., 90.0],                    # 101: 0, 0.01, ..., 1
                 "histogram": {"edges": [18.0, ..., 90.0], "counts": [50, ...]}},
        "plan": {"kind": "categorical", "datatype": "BYTES", "count": 1000, "missing": 0,
                 "distinct": 3, "counts": {"basic": 600, "pro": 300, "team": 100,
                                            "__other__": 0}}}}

``count`` is the number of non-missing values and ``count + missing == row_count``.
Numeric statistics are over the finite values (``std`` is the population standard
deviation); ``infinite`` counts the others. Histogram edges are the 0, 5, ..., 100 %
quantiles with duplicates removed (so at most 20 bins; ``[v, v]`` and one bin for a
constant column); the last bin includes its right edge, and the counts sum to the number
of finite values. Categorical counts keep the 100 most frequent values (ties broken by
value) and add the rest up under ``"__other__"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bascule.core.errors import InvalidInputError
from bascule.core.schema import ColumnSpec, ModelSignature

__all__ = [
    "MISSING_TEXT",
    "OTHER",
    "build_profile",
    "numeric_column",
    "sample_rows",
    "text_column",
    "to_frame",
]

PROFILE_FORMAT = "bascule.profile/1"
OTHER = "__other__"
MISSING_TEXT = "nan"
"""How a missing value of a string column is fed to the model: skl2onnx turns a NaN
category of a fitted OneHotEncoder into the string ``"nan"``."""
N_QUANTILES = 101
N_BINS = 20
MAX_CATEGORIES = 100


def to_frame(X: Any, signature: ModelSignature, *, target: str = "the model") -> pd.DataFrame:
    """Return the signature's columns of ``X`` as a DataFrame, in signature order.

    Args:
        X: A DataFrame (columns selected by name, extra ones dropped), a 2-D numpy array
            (one column per signature column, in order) or a list of dicts (one per row).
        signature: The model signature naming the columns.
        target: How messages name the model, e.g. ``"model 'churn:3'"``.

    Returns:
        A DataFrame with exactly the signature's columns.

    Raises:
        InvalidInputError: ``X`` has another type, the array has the wrong shape, or
            columns are missing (the message lists them and the expected ones).
    """
    names = signature.column_names
    if isinstance(X, np.ndarray):
        if X.ndim != 2 or X.shape[1] != len(names):
            raise InvalidInputError(
                f"Input has shape {list(X.shape)} but {target} expects [-1, {len(names)}] "
                f"(columns {names}).",
                field="X",
                value=list(X.shape),
                expected=f"[-1, {len(names)}]",
            )
        return pd.DataFrame(X, columns=names)
    if isinstance(X, Sequence) and not isinstance(X, str | bytes):
        if not all(isinstance(row, Mapping) for row in X):
            raise InvalidInputError.for_field("X", type(X).__name__, "a list of dicts")
        frame = pd.DataFrame.from_records(list(X))
    elif isinstance(X, pd.DataFrame):
        frame = X
    else:
        raise InvalidInputError.for_field(
            "X", type(X).__name__, "a pandas DataFrame, a 2-D numpy array or a list of dicts"
        )
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise InvalidInputError(
            f"Input lacks columns {missing}; {target} expects columns {names}.",
            field="X",
            value=[str(c) for c in frame.columns],
            expected=str(names),
            missing=missing,
        )
    selected = frame.loc[:, names]
    if selected.shape[1] != len(names):
        duplicated = sorted({str(c) for c in selected.columns[selected.columns.duplicated()]})
        raise InvalidInputError(
            f"Input has duplicated columns {duplicated}; {target} expects columns {names}.",
            field="X",
            value=duplicated,
            expected="unique column names",
        )
    return selected


def numeric_column(series: pd.Series, name: str) -> np.ndarray:
    """Read a column as float64, with NaN for missing values.

    Args:
        series: The column.
        name: Its name, for messages.

    Returns:
        A 1-D float64 array.

    Raises:
        InvalidInputError: The column holds something that is not a number (a string,
            a date...); the message names the column, the row and the value.
    """
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or (
        pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype)
    ):
        return np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    values = series.astype(object) if isinstance(dtype, pd.CategoricalDtype) else series
    if pd.api.types.is_object_dtype(values.dtype) or pd.api.types.is_string_dtype(values.dtype):
        present = values.notna().to_numpy()
        numbers = np.array([_is_number(v) for v in values.to_numpy(dtype=object)], dtype=bool)
        bad = np.flatnonzero(present & ~numbers)
        if bad.size == 0:
            return np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
        row = int(bad[0])
        value = values.iloc[row]
        raise InvalidInputError(
            f"Column '{name}' must be numeric but row {row} holds {value!r}.",
            field=name,
            value=value,
            expected="a number",
            row=row,
        )
    raise InvalidInputError(
        f"Column '{name}' must be numeric but has dtype {dtype}.",
        field=name,
        value=str(dtype),
        expected="a number",
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating | np.bool_)


def text_column(series: pd.Series) -> np.ndarray:
    """Read a column as a 1-D object array of ``str``, missing values as ``MISSING_TEXT``.

    Args:
        series: The column (strings, categories, or anything with a text form).

    Returns:
        A 1-D object array of ``str``.
    """
    values = series.astype(object).to_numpy()
    missing = pd.isna(values)
    return np.array(
        [MISSING_TEXT if gone else _as_text(v) for v, gone in zip(values, missing, strict=True)],
        dtype=object,
    )


def _as_text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def sample_rows(df: pd.DataFrame, max_rows: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """Draw up to ``max_rows`` rows uniformly without replacement, keeping their order.

    Args:
        df: The table.
        max_rows: How many rows at most.
        seed: Seed of the random generator, so the same call gives the same rows.

    Returns:
        A copy of ``df`` when it has at most ``max_rows`` rows, else the sampled rows.

    Raises:
        InvalidInputError: ``max_rows`` is smaller than 1.
    """
    if max_rows < 1:
        raise InvalidInputError.for_field("max_rows", max_rows, "an integer >= 1")
    if len(df) <= max_rows:
        return df.copy()
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(df), size=max_rows, replace=False))
    return df.iloc[rows].copy()


def build_profile(df: pd.DataFrame, signature: ModelSignature) -> dict[str, Any]:
    """Summarise each signature column of ``df``; see the module docstring for the format.

    Args:
        df: Reference rows, usually the training data (or a ``sample_rows`` of it).
        signature: Names the columns and says which are numeric or categorical.

    Returns:
        A JSON-serializable dict (no NaN or infinity in it).

    Raises:
        InvalidInputError: Columns are missing, or a numeric column holds non-numbers.
    """
    frame = to_frame(df, signature)
    columns: dict[str, Any] = {}
    for spec in signature.columns:
        series = frame[spec.name]
        if spec.kind == "numeric":
            columns[spec.name] = _numeric_profile(spec, numeric_column(series, spec.name))
        else:
            columns[spec.name] = _categorical_profile(spec, series)
    return {"format": PROFILE_FORMAT, "row_count": len(frame), "columns": columns}


def _numeric_profile(spec: ColumnSpec, values: np.ndarray) -> dict[str, Any]:
    missing = int(np.isnan(values).sum())
    finite = values[np.isfinite(values)]
    profile: dict[str, Any] = {
        "kind": spec.kind,
        "datatype": spec.datatype,
        "count": len(values) - missing,
        "missing": missing,
        "infinite": len(values) - missing - finite.size,
    }
    if finite.size == 0:
        empty = dict.fromkeys(("mean", "std", "min", "max", "quantiles", "histogram"))
        return profile | empty
    quantiles = np.maximum.accumulate(np.quantile(finite, np.linspace(0.0, 1.0, N_QUANTILES)))
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, N_BINS + 1)))
    if edges.size == 1:
        edges = np.repeat(edges, 2)
        counts = np.array([finite.size])
    else:
        counts, _ = np.histogram(finite, bins=edges)
    return profile | {
        "mean": float(np.mean(finite)),
        "std": float(np.std(finite)),
        "min": float(finite.min()),
        "max": float(finite.max()),
        "quantiles": [float(q) for q in quantiles],
        "histogram": {
            "edges": [float(e) for e in edges],
            "counts": [int(c) for c in counts],
        },
    }


def _categorical_profile(spec: ColumnSpec, series: pd.Series) -> dict[str, Any]:
    present = series[series.notna()]
    counts = pd.Series(text_column(present)).value_counts()
    ranked = sorted(((str(k), int(v)) for k, v in counts.items()), key=lambda kv: (-kv[1], kv[0]))
    top = dict(ranked[:MAX_CATEGORIES])
    # A real value spelled "__other__" shares the bucket; the counts still add up.
    top[OTHER] = top.get(OTHER, 0) + sum(count for _, count in ranked[MAX_CATEGORIES:])
    return {
        "kind": spec.kind,
        "datatype": spec.datatype,
        "count": len(present),
        "missing": len(series) - len(present),
        "distinct": len(ranked),
        "counts": top,
    }
