"""Data quality of a window versus the reference and the model signature.

Per column: missing rate (and the reference's), values outside the reference's
``[min, max]``, categories the reference never saw, type errors (text in a numeric
column), infinities, and a column stuck at one value. Per table: columns added or
missing versus the registered signature (or, without one, versus the reference).

Each problem is a :class:`~bascule.monitoring.report.Finding`; the figures behind them are
in :meth:`QualityReport.to_frame`. Tolerances keep random noise quiet: a missing-rate rise
must exceed ``missing_tolerance`` and be significant (z > 3 against the reference rate);
out-of-range values must exceed ``range_tolerance`` of the window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from bascule.core.errors import InvalidInputError
from bascule.core.schema import ModelSignature
from bascule.monitoring.detectors import as_frame
from bascule.monitoring.reference import (
    NumericReference,
    ReferenceSummary,
    read_categories,
    read_numeric,
)
from bascule.monitoring.report import Finding, clean_json

__all__ = ["ColumnQuality", "QualityReport", "quality_report"]


@dataclass(frozen=True)
class ColumnQuality:
    """The quality figures of one column in the current window."""

    column: str
    kind: str
    rows: int
    missing: int
    missing_rate: float
    reference_missing_rate: float
    type_errors: int
    non_finite: int
    out_of_range: int
    out_of_range_rate: float
    unseen: int
    unseen_rate: float
    single_value: bool
    """Whether every present value is the same (a stuck feature)."""


@dataclass(frozen=True)
class QualityReport:
    """Data quality of one window: per-column figures and findings."""

    columns: tuple[ColumnQuality, ...]
    findings: tuple[Finding, ...]
    rows: int
    missing_columns: tuple[str, ...]
    new_columns: tuple[str, ...]

    @property
    def has_errors(self) -> bool:
        """Whether a finding has severity ``error``."""
        return any(f.severity == "error" for f in self.findings)

    def to_frame(self) -> pd.DataFrame:
        """One row per column present in both the reference and the window."""
        names = list(ColumnQuality.__dataclass_fields__)
        return pd.DataFrame([asdict(c) for c in self.columns], columns=names)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict."""
        return {
            "rows": self.rows,
            "missing_columns": list(self.missing_columns),
            "new_columns": list(self.new_columns),
            "columns": [clean_json(asdict(c)) for c in self.columns],
            "findings": [f.to_dict() for f in self.findings],
        }


def _summary(reference: Any, signature: ModelSignature | None, categorical: Any) -> Any:
    if isinstance(reference, ReferenceSummary):
        return reference
    if isinstance(reference, dict):
        return ReferenceSummary.from_profile(reference)
    forced = set(categorical or ())
    if signature is not None:
        forced |= {c.name for c in signature.columns if c.kind == "categorical"}
    frame = as_frame(reference, "reference")
    forced &= {str(c) for c in frame.columns}
    return ReferenceSummary.fit(frame, categorical=sorted(forced), sample_size=0)


def quality_report(
    reference: Any,
    current: pd.DataFrame,
    *,
    signature: ModelSignature | None = None,
    categorical: Sequence[str] | None = None,
    missing_tolerance: float = 0.05,
    range_tolerance: float = 0.01,
) -> QualityReport:
    """Check a window's data quality against the reference (and the signature if given).

    Args:
        reference: Reference rows, a ``ReferenceSummary`` or a ``bascule.profile/1`` dict.
        current: The window.
        signature: The model's registered signature; columns it names that the window
            lacks (or extra ones) are a ``schema_mismatch``.
        categorical: Columns to treat as categorical (reference rows only).
        missing_tolerance: Rise of the missing rate (absolute) that is reported.
        range_tolerance: Share of values outside the reference range that is reported.

    Returns:
        The report; nothing in the data raises.

    Raises:
        InvalidInputError: ``current`` is not a table, or the reference is empty or not
            a profile.
    """
    summary = _summary(reference, signature, categorical)
    frame = as_frame(current, "current")
    if not 0 <= missing_tolerance < 1 or not 0 <= range_tolerance < 1:
        raise InvalidInputError.for_field(
            "tolerance", (missing_tolerance, range_tolerance), "numbers in [0, 1)"
        )
    present = [str(c) for c in frame.columns]
    expected = signature.column_names if signature is not None else summary.names
    missing = tuple(c for c in expected if c not in present)
    added = tuple(c for c in present if c not in expected)
    findings: list[Finding] = []
    if signature is not None and (missing or added):
        msg = f"Versus the signature, the window lacks {list(missing)} and adds {list(added)}."
        findings.append(Finding.of("schema_mismatch", msg, None, missing=missing, added=added))
    else:
        for name in missing:
            msg = f"Column '{name}' is missing from the current window."
            findings.append(Finding.of("missing_column", msg, name))
        for name in added:
            msg = f"Column '{name}' is not in the reference."
            findings.append(Finding.of("new_column", msg, name))
    if len(frame) == 0:
        findings.append(Finding.of("empty_window", "The current window has no rows."))
        return QualityReport((), tuple(findings), 0, missing, added)
    columns = []
    for name, ref in summary.columns.items():
        if name in present:
            figures, found = _column(ref, frame[name], summary.row_count, missing_tolerance)
            columns.append(figures)
            findings += found
            if figures.out_of_range_rate > range_tolerance:
                msg = (
                    f"{figures.out_of_range_rate:.1%} of column '{name}' lies outside the "
                    f"reference range [{_num(ref, 'minimum')}, {_num(ref, 'maximum')}]."
                )
                share = figures.out_of_range_rate
                findings.append(Finding.of("out_of_range", msg, name, share=share))
    return QualityReport(tuple(columns), tuple(findings), len(frame), missing, added)


def _num(ref: Any, attr: str) -> str:
    return f"{getattr(ref, attr):.4g}"


def _column(
    ref: Any, series: pd.Series, ref_rows: int, tolerance: float
) -> tuple[ColumnQuality, list[Finding]]:
    name, rows, findings = ref.name, len(series), []
    ref_missing = ref.missing / ref_rows if ref_rows else 0.0
    type_errors = non_finite = out = unseen = 0
    if isinstance(ref, NumericReference):
        values = read_numeric(series)
        type_errors, non_finite = values.type_errors, values.infinite
        missing, usable = values.missing, values.finite
        if ref.count > 0:
            out = int(np.sum((usable < ref.minimum) | (usable > ref.maximum)))
        single = bool(usable.size and usable.min() == usable.max())
        if type_errors:
            example = values.example
            msg = f"Column '{name}' holds {type_errors} non-numeric value(s), e.g. {example!r}."
            findings.append(Finding.of("type_error", msg, name, count=type_errors))
        if non_finite:
            msg = f"Column '{name}' holds {non_finite} infinite value(s)."
            findings.append(Finding.of("non_finite", msg, name, count=non_finite))
        present = usable.size
    else:
        counts, missing = read_categories(series)
        single, present = len(counts) == 1, sum(counts.values())
        if ref.other == 0:
            known = set(ref.categories)
            new = {k: v for k, v in counts.items() if k not in known}
            unseen = sum(new.values())
            if unseen:
                shown = sorted(new, key=lambda k: -new[k])[:10]
                msg = f"Column '{name}' has {unseen} value(s) in new categories {shown}."
                findings.append(Finding.of("unseen_categories", msg, name, count=unseen))
    rate = missing / rows if rows else 0.0
    if present == 0 and rows > 0:
        msg = f"Every value of column '{name}' is missing."
        findings.append(Finding.of("all_missing", msg, name, rows=rows))
    else:
        sd = math.sqrt(max(ref_missing, 1.0 / rows) * (1.0 - ref_missing) / rows)
        if rate - ref_missing > tolerance and (rate - ref_missing) / max(sd, 1e-12) > 3.0:
            msg = f"Column '{name}' is {rate:.1%} missing (reference {ref_missing:.1%})."
            findings.append(Finding.of("missing_rate", msg, name, rate=rate, reference=ref_missing))
        if single and not ref.constant and present >= 30:
            msg = f"Column '{name}' holds a single value in the window; the reference varied."
            findings.append(Finding.of("constant_current", msg, name))
    figures = ColumnQuality(
        name, ref.kind, rows, missing, rate, ref_missing, type_errors, non_finite,
        out, out / present if present else 0.0, unseen, unseen / present if present else 0.0,
        single,
    )  # fmt: skip
    return figures, findings
