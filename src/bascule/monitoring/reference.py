"""Compact reference summaries: what drift tests need from the reference, computed once.

A :class:`ReferenceSummary` holds, per column:

* numeric — count, missing, infinite, mean, std, min, max; the reference CDF on a grid of
  its quantiles (``P(X < g)`` and ``P(X <= g)`` at 1,001 quantiles when fitted from rows,
  at the 101 quantiles of a registry profile) for KS and Wasserstein; and bin counts for
  PSI and Jensen-Shannon (deciles from rows; a profile's 5 % histogram merged in pairs);
* categorical — the counts of the 100 most frequent values plus an ``__other__`` bucket.

It is built either from reference rows (:meth:`ReferenceSummary.fit`) or from the profile
kept with a model version (:meth:`ReferenceSummary.from_profile`, see
:mod:`bascule.registry.profile`), and optionally keeps a bounded sample of rows for the
multivariate domain classifier. A current window is then read once per column by
``column.observe(values)``; every test works from that observation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bascule.core.errors import InvalidInputError
from bascule.registry.profile import OTHER, sample_rows

__all__ = [
    "UNSEEN",
    "CategoricalObservation",
    "CategoricalReference",
    "ColumnReference",
    "NumericObservation",
    "NumericReference",
    "NumericValues",
    "Observation",
    "ReferenceSummary",
    "infer_kind",
    "read_categories",
    "read_numeric",
]

UNSEEN = "__unseen__"
GRID_POINTS = 1001
N_BINS = 10
MAX_CATEGORIES = 100
SAMPLE_ROWS = 10_000


def infer_kind(series: pd.Series) -> str | None:
    """``"numeric"`` for numbers, ``"categorical"`` for text, booleans and categories.

    Returns:
        The kind, or None for a dtype drift tests do not take (dates, durations…).
    """
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        return "numeric"
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        return "categorical"
    return None


@dataclass(frozen=True, eq=False)
class NumericValues:
    """A column read as numbers: the finite values and what was set aside."""

    finite: np.ndarray
    missing: int
    infinite: int
    type_errors: int
    """Values present but not numbers (a string in a numeric column); counted as missing."""
    example: object = None
    """One offending value, for the message."""


def read_numeric(series: pd.Series) -> NumericValues:
    """Read a column as float64: NaN is missing, ±inf is infinite, text is a type error."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or (
        pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype)
    ):
        values = np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
        bad, example = 0, None
    else:
        present = series.notna().to_numpy()
        coerced = pd.to_numeric(series.astype(object), errors="coerce")
        values = np.asarray(coerced.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
        wrong = present & np.isnan(values)
        bad = int(wrong.sum())
        example = series.iloc[int(np.flatnonzero(wrong)[0])] if bad else None
    nan = np.isnan(values)
    finite = values[np.isfinite(values)]
    return NumericValues(
        finite=finite,
        missing=int(nan.sum()),
        infinite=int(values.size - nan.sum() - finite.size),
        type_errors=bad,
        example=example,
    )


def read_categories(series: pd.Series) -> tuple[dict[str, int], int]:
    """Count each distinct value (as text) of a column.

    Returns:
        The counts by value and the number of missing values.
    """
    counts = series.value_counts(dropna=True, sort=False)
    merged: dict[str, int] = {}
    for key, count in zip(counts.index, counts.to_numpy(), strict=True):
        text = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        merged[text] = merged.get(text, 0) + int(count)
    return merged, int(len(series) - sum(merged.values()))


# ---------------------------------------------------------------- observations


@dataclass(frozen=True, eq=False)
class NumericObservation:
    """A current numeric column seen through its reference's grid and bins."""

    n: int
    cdf_left: np.ndarray
    cdf_right: np.ndarray
    below_sum: float
    """Sum of ``grid[0] - x`` over current values below the reference minimum."""
    above_sum: float
    """Sum of ``x - grid[-1]`` over current values above the reference maximum."""
    ref_bins: np.ndarray
    cur_bins: np.ndarray
    below: int
    above: int


@dataclass(frozen=True, eq=False)
class CategoricalObservation:
    """Current category counts aligned with the reference's (``labels`` name the bins)."""

    n: int
    labels: tuple[str, ...]
    ref_bins: np.ndarray
    cur_bins: np.ndarray
    unseen: dict[str, int]
    """Current values the reference never saw, with their counts (most frequent 20)."""
    unseen_total: int


Observation = NumericObservation | CategoricalObservation


@dataclass(frozen=True, eq=False)
class NumericReference:
    """The reference of one numeric column (see the module docstring)."""

    name: str
    count: int
    """Finite values summarised; the ``n`` of every test."""
    missing: int
    infinite: int
    mean: float
    std: float
    minimum: float
    maximum: float
    grid: np.ndarray
    cdf_left: np.ndarray
    cdf_right: np.ndarray
    bin_edges: np.ndarray
    """Interior edges: bin i holds ``bin_edges[i-1] <= x < bin_edges[i]``."""
    bin_counts: np.ndarray
    kind: str = field(default="numeric", init=False)

    @property
    def constant(self) -> bool:
        """Whether the reference holds a single value."""
        return self.count > 0 and self.grid.size == 1

    def observe(self, values: np.ndarray) -> NumericObservation:
        """Place the current column's finite values on the grid and in the bins."""
        m = int(values.size)
        k = self.grid.size
        if m == 0 or k == 0:
            zeros = np.zeros(k)
            return NumericObservation(
                0, zeros, zeros, 0.0, 0.0, self.bin_counts, np.zeros_like(self.bin_counts), 0, 0
            )
        x = np.sort(values)  # one sort; then only the grid is searched (cache-friendly)
        lo, hi = self.grid[0], self.grid[-1]
        n_below = int(np.searchsorted(x, lo, side="left"))
        n_above = m - int(np.searchsorted(x, hi, side="right"))
        at_edges = np.searchsorted(x, self.bin_edges, side="left")
        return NumericObservation(
            n=m,
            cdf_left=np.searchsorted(x, self.grid, side="left") / m,
            cdf_right=np.searchsorted(x, self.grid, side="right") / m,
            below_sum=float(np.sum(lo - x[:n_below])),
            above_sum=float(np.sum(x[m - n_above :] - hi)),
            ref_bins=self.bin_counts,
            cur_bins=np.diff(np.concatenate([[0], at_edges, [m]])),
            below=n_below,
            above=n_above,
        )

    @classmethod
    def fit(cls, name: str, col: NumericValues) -> NumericReference:
        """Summarise a column's values exactly (sorted once)."""
        x = np.sort(col.finite)
        if x.size == 0:
            return cls._empty(name, col.missing, col.infinite)
        grid = np.unique(np.quantile(x, np.linspace(0.0, 1.0, GRID_POINTS)))
        n = x.size
        cdf_left = np.searchsorted(x, grid, side="left") / n
        cdf_right = np.searchsorted(x, grid, side="right") / n
        edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, N_BINS + 1)[1:-1]))
        if grid.size == 1:
            edges = np.array([grid[0], np.nextafter(grid[0], np.inf)])
        counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=edges.size + 1)
        return cls(
            name, n, col.missing, col.infinite, float(x.mean()), float(x.std()),
            float(x[0]), float(x[-1]), grid, cdf_left, cdf_right, edges, counts,
        )  # fmt: skip

    @classmethod
    def from_profile(cls, name: str, entry: Mapping[str, Any]) -> NumericReference:
        """Rebuild from a ``bascule.profile/1`` numeric entry (CDF from its 101 quantiles)."""
        missing, infinite = int(entry["missing"]), int(entry.get("infinite", 0))
        finite = int(entry["count"]) - infinite
        if not entry.get("quantiles") or finite <= 0:
            return cls._empty(name, missing, infinite)
        q = np.asarray(entry["quantiles"], dtype=np.float64)
        grid = np.unique(q)
        steps = q.size - 1
        cdf_left = np.searchsorted(q, grid, side="left") / steps
        cdf_right = (np.searchsorted(q, grid, side="right") - 1) / steps
        hist_edges = np.asarray(entry["histogram"]["edges"], dtype=np.float64)
        hist_counts = np.asarray(entry["histogram"]["counts"], dtype=np.int64)
        if hist_counts.size == 1:
            edges = np.array([hist_edges[0], np.nextafter(hist_edges[0], np.inf)])
            counts = np.array([0, int(hist_counts[0]), 0])
        else:
            edges, counts = hist_edges[1:-1], hist_counts
            while counts.size > N_BINS:  # merge neighbours in pairs
                edges = edges[1::2]
                counts = np.add.reduceat(counts, np.arange(0, counts.size, 2))
        return cls(
            name, finite, missing, infinite, float(entry["mean"]), float(entry["std"]),
            float(entry["min"]), float(entry["max"]), grid, cdf_left, cdf_right, edges, counts,
        )  # fmt: skip

    @classmethod
    def _empty(cls, name: str, missing: int, infinite: int) -> NumericReference:
        nothing = np.zeros(0)
        nan = float("nan")
        return cls(
            name, 0, missing, infinite, nan, nan, nan, nan,
            nothing, nothing, nothing, nothing, np.zeros(1, dtype=np.int64),
        )  # fmt: skip


@dataclass(frozen=True, eq=False)
class CategoricalReference:
    """The reference of one categorical column: top categories, their counts, the rest."""

    name: str
    count: int
    missing: int
    categories: tuple[str, ...]
    counts: np.ndarray
    other: int
    """Values beyond the top categories; a current value not in ``categories`` is
    counted as *unseen* only when this is 0 (else it may be one of these)."""
    kind: str = field(default="categorical", init=False)

    @property
    def constant(self) -> bool:
        """Whether the reference holds a single category."""
        return len(self.categories) == 1 and self.other == 0

    def observe(self, counts: Mapping[str, int]) -> CategoricalObservation:
        """Align the current counts (from :func:`read_categories`) with the reference's."""
        index = {c: i for i, c in enumerate(self.categories)}
        cur = np.zeros(len(self.categories) + 2, dtype=np.int64)  # + other + unseen
        unseen: dict[str, int] = {}
        for value, count in counts.items():
            i = index.get(value)
            if i is not None:
                cur[i] += count
            elif self.other > 0:
                cur[-2] += count
            else:
                cur[-1] += count
                unseen[value] = count
        top = dict(sorted(unseen.items(), key=lambda kv: (-kv[1], kv[0]))[:20])
        return CategoricalObservation(
            n=int(cur.sum()),
            labels=(*self.categories, OTHER, UNSEEN),
            ref_bins=np.concatenate([self.counts, [self.other, 0]]),
            cur_bins=cur,
            unseen=top,
            unseen_total=int(cur[-1]),
        )

    @classmethod
    def fit(cls, name: str, counts: Mapping[str, int], missing: int) -> CategoricalReference:
        """Keep the ``MAX_CATEGORIES`` most frequent values (ties by value), sum the rest."""
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        top = ranked[:MAX_CATEGORIES]
        return cls(
            name=name,
            count=sum(counts.values()),
            missing=missing,
            categories=tuple(k for k, _ in top),
            counts=np.array([v for _, v in top], dtype=np.int64),
            other=sum(v for _, v in ranked[MAX_CATEGORIES:]),
        )

    @classmethod
    def from_profile(cls, name: str, entry: Mapping[str, Any]) -> CategoricalReference:
        """Rebuild from a ``bascule.profile/1`` categorical entry."""
        counts = {str(k): int(v) for k, v in entry["counts"].items() if k != OTHER}
        ref = cls.fit(name, counts, int(entry["missing"]))
        other = int(entry["counts"].get(OTHER, 0))
        return cls(name, ref.count + other, ref.missing, ref.categories, ref.counts, other)


ColumnReference = NumericReference | CategoricalReference


@dataclass(frozen=True, eq=False)
class ReferenceSummary:
    """Everything the monitors keep about the reference: per-column summaries and a sample.

    ``unsupported`` maps the columns that could not be summarised to their dtype, so
    reports can name them instead of skipping them silently.
    """

    columns: Mapping[str, ColumnReference]
    row_count: int
    sample: pd.DataFrame | None = None
    unsupported: Mapping[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """The summarised columns, in reference order."""
        return list(self.columns)

    def select(self, names: Iterable[str], *, unsupported: bool = False) -> ReferenceSummary:
        """The same summary restricted to ``names`` (which must be columns of it).

        ``unsupported`` keeps the record of the columns that could not be summarised.
        """
        keep = list(names)
        sample = None if self.sample is None else self.sample.loc[:, self._raw(keep)]
        dropped = dict(self.unsupported) if unsupported else {}
        return ReferenceSummary({k: self.columns[k] for k in keep}, self.row_count, sample, dropped)

    def _raw(self, names: list[str]) -> list[Any]:
        if self.sample is None:
            return []
        by_text = {str(c): c for c in self.sample.columns}
        return [by_text[n] for n in names if n in by_text]

    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        *,
        categorical: Iterable[str] | None = None,
        sample_size: int = SAMPLE_ROWS,
        seed: int = 0,
    ) -> ReferenceSummary:
        """Summarise reference rows.

        Args:
            frame: The reference rows (at least one).
            categorical: Columns to treat as categorical whatever their dtype; the others
                follow :func:`infer_kind`.
            sample_size: Rows kept for the multivariate test (0 keeps none).
            seed: Seed of the sample.

        Returns:
            The summary.

        Raises:
            InvalidInputError: ``frame`` is not a DataFrame, is empty, or a column named
                in ``categorical`` does not exist.
        """
        if not isinstance(frame, pd.DataFrame):
            raise InvalidInputError.for_field("reference", type(frame).__name__, "a DataFrame")
        if len(frame) == 0 or frame.shape[1] == 0:
            raise InvalidInputError.for_field(
                "reference", f"{frame.shape[0]} rows x {frame.shape[1]} columns",
                "at least one row and one column",
            )  # fmt: skip
        forced = set(categorical or ())
        absent = sorted(forced - {str(c) for c in frame.columns})
        if absent:
            raise InvalidInputError.for_field("categorical", absent, "columns of the reference")
        columns: dict[str, ColumnReference] = {}
        unsupported: dict[str, str] = {}
        for raw_name in frame.columns:
            name, series = str(raw_name), frame[raw_name]
            kind = "categorical" if name in forced else infer_kind(series)
            if kind == "numeric":
                columns[name] = NumericReference.fit(name, read_numeric(series))
            elif kind == "categorical":
                columns[name] = CategoricalReference.fit(name, *read_categories(series))
            else:
                unsupported[name] = str(series.dtype)
        sample = sample_rows(frame, sample_size, seed) if sample_size > 0 else None
        return cls(columns, len(frame), sample, unsupported)

    @classmethod
    def from_profile(
        cls, profile: object, *, sample: pd.DataFrame | None = None
    ) -> ReferenceSummary:
        """Rebuild from the profile stored with a model version (``bascule.profile/1``).

        Args:
            profile: The profile dict (see :mod:`bascule.registry.profile`).
            sample: Reference rows for the multivariate test, if the version kept some.

        Returns:
            The summary.

        Raises:
            InvalidInputError: The dict is not a ``bascule.profile/1`` profile.
        """
        if not isinstance(profile, Mapping) or profile.get("format") != "bascule.profile/1":
            shown = profile.get("format") if isinstance(profile, Mapping) else profile
            raise InvalidInputError.for_field("profile", shown, "a 'bascule.profile/1' dict")
        columns: dict[str, ColumnReference] = {}
        try:
            for name, entry in profile["columns"].items():
                if entry["kind"] == "numeric":
                    columns[str(name)] = NumericReference.from_profile(str(name), entry)
                else:
                    columns[str(name)] = CategoricalReference.from_profile(str(name), entry)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError.for_field(
                "profile", f"malformed entry ({exc!r})", "a 'bascule.profile/1' dict"
            ) from exc
        return cls(columns, int(profile["row_count"]), sample)
