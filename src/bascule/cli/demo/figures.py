"""The demo's closing figures: cost before, during and after, against keeping v1.

The counterfactual is computed on the same traffic: every transaction clients were answered
for is read back from the prediction log — the inputs the server actually used, with the
customer aggregates it looked up — and scored by v1 at v1's decision threshold. What the
loop recovered is the share of the extra cost the shift caused under v1 (v1 after the
takeover minus v1 before the shift) that the new champion did not pay.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bascule.business.costs import CostMatrix
from bascule.cli.demo.scenario import MODEL
from bascule.cli.demo.story import cost_per_1000
from bascule.monitoring.evaluation import input_frame

if TYPE_CHECKING:
    from bascule.cli.demo.story import Story

__all__ = ["Figures", "counterfactual_decisions", "daily_costs", "summarise"]

CLIENT_ROUTES = ("champion", "challenger", "")


@dataclass(frozen=True)
class Figures:
    """What ``bascule demo`` prints at the end."""

    shift_day: int
    drift_alert_day: int | None
    cost_alert_day: int | None
    promotion_day: int | None
    before: float | None
    during: float | None
    after: float | None
    v1_during: float | None
    v1_after: float | None
    recovered: float | None
    """Share of the extra cost the shift caused under v1 that the loop recovered."""
    currency: str = "EUR"
    versions: list[dict[str, Any]] = field(default_factory=list)
    """Per version: business cost per 1,000 of the transactions it answered, beside its
    measured compute cost per 1,000 predictions (serving CPU seconds times the price per
    core-hour)."""

    def to_dict(self) -> dict[str, Any]:
        """The figures as a dict (``--json``)."""
        return asdict(self)


def counterfactual_decisions(story: Story, version: int) -> pd.DataFrame:
    """``version``'s decisions on every transaction clients were answered for.

    Returns:
        request_id, row, decision_cf (0/1), from the inputs the server logged.
    """
    services = story.services
    from bascule.registry.decision import TAG_THRESHOLD

    first = story.bank.midnight(story.scenario.history_days)
    last = story.bank.midnight(story.scenario.bank_day(max(story.answers)) + 1)
    log = services.read_predictions(MODEL, first, last)
    log = log[log["route"].fillna("").isin(CLIENT_ROUTES)]
    log = log.drop_duplicates(["request_id", "row"], keep="first")
    predictor = services.registry.load(f"{MODEL}:{version}")
    mv = services.registry.resolve(f"{MODEL}:{version}")
    threshold = float(mv.tags[TAG_THRESHOLD])
    inputs = input_frame(log)[predictor.signature.column_names]
    proba = predictor.predict_proba(inputs)
    positive = list(predictor.classes or [0, 1]).index(1)
    decision = (proba[:, positive] >= threshold).astype(np.int64)
    return pd.DataFrame(
        {
            "request_id": log["request_id"].astype(str).to_numpy(),
            "row": log["row"].astype(np.int64).to_numpy(),
            "decision_cf": decision,
        }
    )


def daily_costs(story: Story, costs: CostMatrix, counterfactual: pd.DataFrame) -> pd.DataFrame:
    """Per replayed day: cost per 1,000 of what was served, and of keeping v1."""
    served = story.served_frame().merge(counterfactual, on=["request_id", "row"], how="left")
    rows = []
    for day in sorted(served["day"].unique()):
        part = served[served["day"] == day]
        known = part[part["decision_cf"].notna()]
        rows.append(
            {
                "day": int(day),
                "served": _per_1000(costs, part, "decision"),
                "keep_v1": _per_1000(costs, known, "decision_cf") if len(known) else math.nan,
                "no_model": _per_1000(costs, part.assign(none=0), "none"),
            }
        )
    return pd.DataFrame(rows)


def _per_1000(costs: CostMatrix, frame: pd.DataFrame, column: str) -> float:
    return cost_per_1000(frame.assign(**{column: frame[column].astype(np.int64)}), costs, column)


def _mean(frame: pd.DataFrame, column: str, days: range) -> float | None:
    part = frame[frame["day"].isin(list(days))][column]
    return None if part.empty else float(part.mean())


def summarise(story: Story, daily: pd.DataFrame, *, currency: str) -> Figures:
    """The closing figures from the per-day costs and the events of the days."""
    s = story.scenario
    events = [e for d in story.days for e in d.events]
    drift = next((e.day for e in events if e.kind == "alert" and "drift" in e.text), None)
    cost = next((e.day for e in events if e.kind == "alert" and "cost" in e.text), None)
    promotion = next(
        (
            e.day
            for e in events
            if e.kind == "alias_set" and e.alias == "champion" and e.version != story.first_version
        ),
        None,
    )
    last = max(story.answers)
    takeover = (promotion + 1) if promotion is not None else last + 1
    before = _mean(daily, "served", range(1, s.shift_day))
    during = _mean(daily, "served", range(s.shift_day, takeover))
    after = _mean(daily, "served", range(takeover, last + 1))
    v1_before = _mean(daily, "keep_v1", range(1, s.shift_day))
    v1_during = _mean(daily, "keep_v1", range(s.shift_day, takeover))
    v1_after = _mean(daily, "keep_v1", range(takeover, last + 1))
    recovered = _recovered(v1_before, v1_after, after)
    return Figures(
        s.shift_day, drift, cost, promotion, before, during, after, v1_during, v1_after,
        recovered, currency,
    )  # fmt: skip


def _recovered(
    v1_before: float | None, v1_after: float | None, after: float | None
) -> float | None:
    """Share of the extra cost under v1 (after minus before) that the new champion saved."""
    if v1_before is None or v1_after is None or after is None or v1_after <= v1_before:
        return None
    return (v1_after - after) / (v1_after - v1_before)


def version_figures(
    story: Story, costs: CostMatrix, price_per_core_hour: float | None
) -> list[dict[str, Any]]:
    """Business and compute cost per 1,000 predictions of each version that served clients."""
    from bascule.pipelines.costs import usage_compute_costs, version_costs

    served = story.served_frame()
    business = {
        int(v): _per_1000(costs, served[served["version"] == v], "decision")
        for v in sorted(served["version"].unique())
    }
    first = story.bank.midnight(story.scenario.history_days)
    last = story.bank.midnight(story.scenario.bank_day(max(story.answers)) + 1)
    usage = story.services.read_usage(MODEL, first, last)
    compute = (
        usage_compute_costs(usage, price_per_core_hour, currency=costs.currency)
        if price_per_core_hour is not None
        else {}
    )
    rows = []
    for row in version_costs(business, compute, currency=costs.currency):
        measured = compute.get(row.version)
        rows.append(
            {
                **row.to_dict(),
                "answered": int((served["version"] == row.version).sum()),
                "cpu_us_per_prediction": (
                    None if measured is None else measured.cpu_seconds_per_prediction * 1e6
                ),
            }
        )
    return rows
