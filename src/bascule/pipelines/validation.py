"""Data validation before training: schema skew stops the pipeline, value skew is recorded.

*Schema skew* is a difference between the columns of the data and an expected schema:
missing columns, unexpected columns, or columns of the wrong type. :func:`check_schema`
reports it and :meth:`SchemaReport.raise_for_skew` raises :class:`DataValidationError`
(an ``InvalidInputError``) whose message lists every problem and whose ``details`` hold
the report, so the failed step's ``error.json`` artifact carries it.

*Value skew* is a difference between the values and a reference profile (the JSON profile
that the registry keeps with every model version, ``bascule.profile/1``): the share of
numeric values outside the reference range, the share of missing values, and the share
of categorical values never seen in the reference. :func:`value_skew` measures it and
:meth:`ValueSkewReport.metrics` turns it into metrics for the step to log.

Expected types are written as a dtype name (``"int64"``, ``"float32"``, ``"str"``,
``"category"``, ``"bool"``, ``"datetime64[ns]"``: the exact ``str(dtype)``, as
:func:`bascule.tracking.datasets.fingerprint` records it) or as a kind that accepts a
family of dtypes: ``"numeric"`` (integers, floats, booleans), ``"integer"``, ``"float"``,
``"boolean"``, ``"categorical"`` (strings, objects, categories, booleans), ``"string"``,
``"datetime"``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from bascule.core.errors import InvalidInputError
from bascule.core.schema import ModelSignature

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ColumnSkew",
    "DataValidationError",
    "NotFittedModelError",
    "SchemaReport",
    "ValueSkewReport",
    "check_schema",
    "require_fitted",
    "schema_from_profile",
    "schema_from_signature",
    "value_skew",
]

_KINDS = ("numeric", "integer", "float", "boolean", "categorical", "string", "datetime")


class DataValidationError(InvalidInputError):
    """The data does not have the expected schema; ``report`` says how, column by column."""

    def __init__(self, report: SchemaReport) -> None:
        super().__init__(
            f"data failed schema validation: {report.summary()}",
            field="data",
            expected="the columns and types of the expected schema",
            **report.to_dict(),
        )
        self.report = report


class NotFittedModelError(InvalidInputError):
    """A training step returned something that is not a fitted model."""


@dataclass(frozen=True)
class SchemaReport:
    """Schema skew between data and an expected schema; ``ok`` when there is none."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    wrong_types: dict[str, dict[str, str]] = field(default_factory=dict)
    """Column → ``{"expected": ..., "actual": ...}``."""

    @property
    def ok(self) -> bool:
        """Whether the data matches the schema."""
        return not (self.missing or self.unexpected or self.wrong_types)

    def summary(self) -> str:
        """Every problem in one line (``"no schema skew"`` when there is none)."""
        parts = []
        if self.missing:
            parts.append(f"missing columns {self.missing}")
        if self.unexpected:
            parts.append(f"unexpected columns {self.unexpected}")
        for col, types in self.wrong_types.items():
            parts.append(f"column {col!r} has type {types['actual']}, expected {types['expected']}")
        return "; ".join(parts) or "no schema skew"

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-friendly values."""
        return asdict(self)

    def raise_for_skew(self) -> None:
        """Raise when there is schema skew.

        Raises:
            DataValidationError: listing every missing, unexpected and mistyped column.
        """
        if not self.ok:
            raise DataValidationError(self)


def _matches(dtype: Any, expected: str) -> bool:
    import pandas as pd

    api = pd.api.types
    if expected not in _KINDS:
        return str(dtype) == expected
    is_bool = api.is_bool_dtype(dtype)
    if expected == "numeric":
        return is_bool or (api.is_numeric_dtype(dtype) and not api.is_complex_dtype(dtype))
    if expected == "integer":
        return api.is_integer_dtype(dtype) and not is_bool
    if expected == "float":
        return api.is_float_dtype(dtype)
    if expected == "boolean":
        return is_bool
    if expected == "datetime":
        return api.is_datetime64_any_dtype(dtype)
    stringy = api.is_string_dtype(dtype) or api.is_object_dtype(dtype)
    if expected == "string":
        return stringy and not isinstance(dtype, pd.CategoricalDtype)
    return stringy or is_bool or isinstance(dtype, pd.CategoricalDtype)  # categorical


def check_schema(
    data: pd.DataFrame, expected: Mapping[str, str], *, allow_extra: bool = False
) -> SchemaReport:
    """Compare the columns of ``data`` with ``expected`` (column → dtype name or kind).

    Args:
        data: The data about to be used for training.
        expected: The expected schema; see the module docstring for the type names.
        allow_extra: Whether columns absent from ``expected`` are acceptable.

    Returns:
        The report; call :meth:`SchemaReport.raise_for_skew` to stop on skew.

    Raises:
        InvalidInputError: ``data`` is not a DataFrame, or ``expected`` is empty.
    """
    import pandas as pd

    if not isinstance(data, pd.DataFrame):
        raise InvalidInputError.for_field("data", type(data).__name__, "a pandas DataFrame")
    if not expected:
        raise InvalidInputError.for_field("expected schema", expected, "at least one column")
    present = [str(c) for c in data.columns]
    missing = [c for c in expected if c not in present]
    unexpected = [] if allow_extra else [c for c in present if c not in expected]
    wrong: dict[str, dict[str, str]] = {}
    for col, want in expected.items():
        if col in present and not _matches(data[col].dtype, want):
            wrong[col] = {"expected": want, "actual": str(data[col].dtype)}
    return SchemaReport(missing=missing, unexpected=unexpected, wrong_types=wrong)


def schema_from_signature(signature: ModelSignature) -> dict[str, str]:
    """The schema a model's inputs imply: ``numeric`` or ``categorical`` per column."""
    return {c.name: c.kind for c in signature.columns}


def schema_from_profile(profile: Mapping[str, Any]) -> dict[str, str]:
    """The schema a reference profile (``bascule.profile/1``) implies, by column kind.

    Raises:
        InvalidInputError: the profile has no ``columns`` mapping.
    """
    columns = profile.get("columns")
    if not isinstance(columns, Mapping):
        raise InvalidInputError.for_field(
            "reference profile", type(columns).__name__, "a bascule.profile/1 with 'columns'"
        )
    return {str(name): str(spec.get("kind", "numeric")) for name, spec in columns.items()}


@dataclass(frozen=True)
class ColumnSkew:
    """Value skew of one column against its reference profile."""

    kind: str
    missing_share: float
    reference_missing_share: float
    out_of_range_share: float = 0.0
    """Numeric columns: share of the finite values below the reference min or above its max."""
    new_category_share: float = 0.0
    """Categorical columns: share of the present values absent from the reference counts."""
    new_categories: list[str] = field(default_factory=list)
    """Up to 20 of the unseen values, most frequent first."""


@dataclass(frozen=True)
class ValueSkewReport:
    """Value skew of every profiled column present in the data."""

    columns: dict[str, ColumnSkew]

    def metrics(self, prefix: str = "skew") -> dict[str, float]:
        """Flat metrics, e.g. ``skew.age.out_of_range_share`` and ``skew.max_missing_share``.

        Column names are cleaned to the characters metric keys allow.
        """
        out: dict[str, float] = {}
        for name, col in self.columns.items():
            key = re.sub(r"[^\w\-. /:]", "_", name)
            out[f"{prefix}.{key}.missing_share"] = col.missing_share
            if col.kind == "numeric":
                out[f"{prefix}.{key}.out_of_range_share"] = col.out_of_range_share
            else:
                out[f"{prefix}.{key}.new_category_share"] = col.new_category_share
        cols = list(self.columns.values())
        out[f"{prefix}.max_missing_share"] = max((c.missing_share for c in cols), default=0.0)
        out[f"{prefix}.max_out_of_range_share"] = max(
            (c.out_of_range_share for c in cols), default=0.0
        )
        out[f"{prefix}.max_new_category_share"] = max(
            (c.new_category_share for c in cols), default=0.0
        )
        return out


def value_skew(data: pd.DataFrame, profile: Mapping[str, Any]) -> ValueSkewReport:
    """Measure value skew of ``data`` against a reference profile (``bascule.profile/1``).

    Columns of the profile missing from the data are left out (that is schema skew).
    When the reference kept only its top categories (``"__other__"`` > 0), values outside
    them count as new: the share is then an upper bound.

    Args:
        data: The data about to be used.
        profile: A reference profile, e.g. ``RegistryService.profile(champion)``.

    Returns:
        The report.

    Raises:
        InvalidInputError: ``data`` is not a DataFrame, the profile has no columns, or a
            numeric column holds non-numbers.
    """
    import numpy as np
    import pandas as pd

    from bascule.registry.profile import OTHER, numeric_column, text_column

    if not isinstance(data, pd.DataFrame):
        raise InvalidInputError.for_field("data", type(data).__name__, "a pandas DataFrame")
    schema = schema_from_profile(profile)
    specs: Mapping[str, Any] = profile["columns"]
    ref_rows = max(int(profile.get("row_count", 0)), 1)
    rows = len(data)
    result: dict[str, ColumnSkew] = {}
    for name, kind in schema.items():
        if name not in data.columns:
            continue
        spec = specs[name]
        series = data[name]
        present = series.notna()
        missing_share = float((~present).mean()) if rows else 0.0
        ref_missing = int(spec.get("missing", 0)) / ref_rows
        if kind == "numeric":
            values = numeric_column(series, name)
            finite = values[np.isfinite(values)]
            lo, hi = spec.get("min"), spec.get("max")
            if finite.size == 0 or lo is None or hi is None:
                share = 0.0 if finite.size == 0 else 1.0
            else:
                share = float(((finite < lo) | (finite > hi)).mean())
            result[name] = ColumnSkew(kind, missing_share, ref_missing, out_of_range_share=share)
        else:
            known = {k for k in spec.get("counts", {}) if k != OTHER}
            texts = pd.Series(text_column(series[present]))
            unseen = texts[~texts.isin(known)]
            share = float(len(unseen) / len(texts)) if len(texts) else 0.0
            top = [str(v) for v in unseen.value_counts().index[:20]]
            result[name] = ColumnSkew(
                kind, missing_share, ref_missing, new_category_share=share, new_categories=top
            )
    return ValueSkewReport(result)


def require_fitted(model: Any) -> None:
    """Check that ``model`` is a fitted estimator (sklearn's ``check_is_fitted`` rules).

    Use it as an output check: ``@step(outputs="model", checks={"model": require_fitted})``.

    Raises:
        NotFittedModelError: ``model`` is None, has no ``predict``, or is not fitted.
    """
    if model is None or not callable(getattr(model, "predict", None)):
        raise NotFittedModelError(
            f"expected a fitted model with a predict() method, got {type(model).__name__}",
            field="model",
            value=type(model).__name__,
            expected="a fitted estimator",
        )
    try:
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted
    except ImportError:  # without scikit-learn, look for fitted attributes ourselves
        fitted = [
            k for k in getattr(model, "__dict__", {}) if k.endswith("_") and not k.startswith("__")
        ]
        if not fitted:
            raise NotFittedModelError(
                f"{type(model).__name__} is not fitted (no fitted attributes ending in '_')",
                field="model",
                value=type(model).__name__,
                expected="a fitted estimator",
            ) from None
        return
    try:
        check_is_fitted(model)
    except (NotFittedError, TypeError) as exc:
        raise NotFittedModelError(
            f"{type(model).__name__} is not fitted: {exc}",
            field="model",
            value=type(model).__name__,
            expected="a fitted estimator",
        ) from None
