"""The promotion gate, as a pure function of the figures of two models on the same holdout.

:func:`decide` compares the challenger's figures with the champion's (both measured on the
same labelled holdout: rows newer than the champion's training data):

1. no champion → **pass** (``"no champion"``): the first model has nothing to beat;
2. fewer holdout rows than ``min_holdout_rows`` → fail: too little evidence;
3. the gate ``metric`` (business cost per 1,000 predictions first) must improve by at
   least ``margin`` relative to the champion's value, and strictly;
4. no ``guard_metrics`` may regress by more than its allowed amount (in its own units).

Every failed check is listed in :attr:`GateDecision.failures`; the decision carries both
models' figures so it can be recorded as it is on the model's history.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from bascule.core.project_settings import GateSettings

__all__ = ["HIGHER_IS_BETTER", "LOWER_IS_BETTER", "GateDecision", "decide", "regression"]

LOWER_IS_BETTER = frozenset({"business_cost", "log_loss", "calibration_error"})
"""Figures where less is better; every other gate figure is better when higher."""
HIGHER_IS_BETTER = frozenset({"roc_auc", "accuracy", "precision", "recall", "f1"})
ROWS = "rows"
"""The figure holding the number of labelled holdout rows."""


def _value(figures: Mapping[str, Any] | None, key: str) -> float:
    if figures is None:
        return math.nan
    raw = figures.get(key)
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return math.nan
    return float(raw)


def regression(metric: str, champion: float, challenger: float) -> float:
    """How much worse the challenger is on ``metric``, in its units (negative: better)."""
    if metric in LOWER_IS_BETTER:
        return challenger - champion
    return champion - challenger


def _fmt(value: float) -> str:
    return f"{value:.6g}"


@dataclass(frozen=True)
class GateDecision:
    """Whether the challenger may be promoted, why, and the figures it was decided on."""

    passed: bool
    reason: str
    """One line: what passed, or every check that failed."""
    metric: str
    margin: float
    challenger: dict[str, float]
    """The challenger's holdout figures (``rows``, ``business_cost``, ``roc_auc``...)."""
    champion: dict[str, float] | None
    """The champion's figures on the same holdout; None when there is no champion."""
    champion_version: int | None = None
    improvement: float | None = None
    """Relative improvement on ``metric`` (0.05: 5 % better); None without a champion or
    when the champion's value is 0."""
    guards: dict[str, dict[str, float | bool]] = field(default_factory=dict)
    """Guard metric → ``{challenger, champion, regression, allowed, ok}``."""
    holdout_rows: int = 0
    min_holdout_rows: int = 0
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The decision as JSON-friendly values (NaN figures become None)."""
        return dict(_clean(asdict(self)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateDecision:
        """Rebuild a decision from :meth:`to_dict` (missing figures become NaN)."""

        def figures(raw: Any) -> dict[str, float]:
            return {str(k): math.nan if v is None else float(v) for k, v in dict(raw).items()}

        champion = data.get("champion")
        return cls(
            passed=bool(data["passed"]),
            reason=str(data["reason"]),
            metric=str(data["metric"]),
            margin=float(data["margin"]),
            challenger=figures(data.get("challenger") or {}),
            champion=None if champion is None else figures(champion),
            champion_version=data.get("champion_version"),
            improvement=data.get("improvement"),
            guards={str(k): dict(v) for k, v in (data.get("guards") or {}).items()},
            holdout_rows=int(data.get("holdout_rows", 0)),
            min_holdout_rows=int(data.get("min_holdout_rows", 0)),
            failures=[str(f) for f in data.get("failures") or []],
        )


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def decide(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    settings: GateSettings,
    *,
    champion_version: int | None = None,
) -> GateDecision:
    """Decide whether the challenger beats the champion (see the module docstring).

    Args:
        challenger: The challenger's holdout figures; ``rows`` is the number of labelled
            holdout rows, the others are metrics (``business_cost`` per 1,000 predictions,
            ``roc_auc``...). A missing or NaN figure cannot pass a check.
        champion: The champion's figures on the same rows; None when there is no champion.
        settings: The gate's metric, margin, guard metrics and minimum holdout size.
        champion_version: Recorded with the decision.

    Returns:
        The decision, with every figure it used.
    """
    chall = {str(k): float(v) for k, v in challenger.items()}
    champ = None if champion is None else {str(k): float(v) for k, v in champion.items()}
    metric, margin = settings.metric, float(settings.margin)
    rows_value = _value(chall, ROWS)
    rows = int(rows_value) if math.isfinite(rows_value) else 0
    base: dict[str, Any] = {
        "metric": metric,
        "margin": margin,
        "challenger": chall,
        "champion": champ,
        "champion_version": champion_version,
        "holdout_rows": rows,
        "min_holdout_rows": settings.min_holdout_rows,
    }
    if champ is None:
        return GateDecision(passed=True, reason="no champion", **base)

    failures: list[str] = []
    if rows < settings.min_holdout_rows:
        failures.append(
            f"too few holdout rows: {rows} labelled rows newer than the champion's training "
            f"data, fewer than min_holdout_rows {settings.min_holdout_rows}"
        )
    new, old = _value(chall, metric), _value(champ, metric)
    improvement: float | None = None
    if not (math.isfinite(new) and math.isfinite(old)):
        failures.append(
            f"{metric} cannot be compared (challenger {_fmt(new)}, champion {_fmt(old)})"
        )
    else:
        better = -regression(metric, old, new) + 0.0  # + 0.0: no "-0.00%" for a tie
        needed = margin * abs(old)
        improvement = better / abs(old) if old != 0 else None
        if better <= 0 or better < needed:
            shown = f"{improvement:+.2%}" if improvement is not None else f"{better:+.6g}"
            failures.append(
                f"{metric} {_fmt(new)} vs champion {_fmt(old)}: improvement {shown}, "
                f"needs at least {margin:.2%}"
                if margin
                else f"{metric} {_fmt(new)} is not better than the champion's {_fmt(old)}"
            )
    guards: dict[str, dict[str, float | bool]] = {}
    for name, allowed in settings.guard_metrics.items():
        g_new, g_old = _value(chall, name), _value(champ, name)
        worse = regression(name, g_old, g_new)
        ok = math.isfinite(worse) and worse <= allowed + 1e-12
        guards[name] = {
            "challenger": g_new,
            "champion": g_old,
            "regression": worse,
            "allowed": float(allowed),
            "ok": ok,
        }
        if not ok:
            failures.append(
                f"guard {name} regressed by {_fmt(worse)} ({_fmt(g_old)} → {_fmt(g_new)}), "
                f"more than the {_fmt(allowed)} allowed"
                if math.isfinite(worse)
                else f"guard {name} cannot be compared ({_fmt(g_new)} vs {_fmt(g_old)})"
            )
    if failures:
        return GateDecision(
            passed=False,
            reason="; ".join(failures),
            improvement=improvement,
            guards=guards,
            failures=failures,
            **base,
        )
    shown = f"{improvement:.2%}" if improvement is not None else "an absolute gain"
    reason = (
        f"beats champion v{champion_version} on {metric} by {shown} (margin {margin:.2%})"
        if champion_version is not None
        else f"beats the champion on {metric} by {shown} (margin {margin:.2%})"
    )
    if guards:
        reason += f"; guards {sorted(guards)} within their allowed regressions"
    return GateDecision(passed=True, reason=reason, improvement=improvement, guards=guards, **base)
