"""The demo's bank, day by day: customers, their card transactions, fraud, and a holiday rush.

A :class:`Bank` holds a fixed population of customers (their usual basket, home distance,
account age, how often they pay) and generates one day of transactions at a time, so the
demo can replay the days in order. Fraud follows a hidden logistic rule over the
transaction and the customer's habits; from ``shift`` onwards (a holiday rush) baskets
grow, online and electronics spending rises, and a new fraud pattern appears — mid-size
online electronics and jewelry purchases at night — that a model trained on the old days
under-scores.

:func:`customer_aggregates` computes what the feature store serves: each customer's spend
and count over the last 7 days and average amount over the last 30 days, as of the end
of each day (the feature view's rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

__all__ = [
    "AGGREGATES",
    "REQUEST_FIELDS",
    "Bank",
    "customer_aggregates",
]

REQUEST_FIELDS = [
    "amount",
    "hour",
    "distance_km",
    "tx_last_24h",
    "account_age_days",
    "merchant_category",
    "channel",
]
"""What the card terminal sends with each transaction (besides the customer id)."""
AGGREGATES = ["spend_7d", "tx_count_7d", "avg_amount_30d"]
"""The customer aggregates the feature store keeps (feature view ``customer_stats``)."""

_MERCHANTS = ("grocery", "fuel", "restaurant", "online", "electronics", "travel", "jewelry")
_MERCHANT_P = np.array([0.30, 0.15, 0.18, 0.20, 0.08, 0.06, 0.03])
_RUSH_P = np.array([-0.12, -0.06, -0.04, 0.12, 0.07, 0.00, 0.03])
_MERCHANT_RISK = np.array([-1.0, -0.6, -0.8, 0.6, 0.9, 0.5, 1.3])
_NIGHT_RISKY = np.isin(np.array(_MERCHANTS), ["online", "electronics", "jewelry"])


@dataclass(frozen=True)
class Bank:
    """A bank's customers; :meth:`day` generates one day of their transactions.

    Args:
        seed: Everything (customers, days) follows from it.
        customers: Number of customers.
        start: Midnight UTC of day 0.
    """

    seed: int = 7
    customers: int = 4000
    start: datetime = datetime(2026, 10, 1, tzinfo=UTC)

    def _people(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, 0])
        n = self.customers
        return {
            "basket": np.exp(rng.normal(3.5, 0.55, n)),
            "activity": rng.gamma(2.0, 0.5, n),
            "home_km": rng.gamma(1.5, 4.0, n),
            "age": rng.integers(5, 4000, n),
        }

    def midnight(self, day: int) -> datetime:
        """Start of ``day`` (day 0 is ``start``)."""
        return self.start + timedelta(days=day)

    def day(self, day: int, n: int, *, shift: float = 0.0) -> pd.DataFrame:
        """``n`` transactions of ``day``, in time order, with their hidden fraud label.

        Args:
            day: Day number (0 = ``start``); also seeds the day.
            n: Transactions that day.
            shift: 0 (ordinary days) to 1 (full holiday rush).

        Columns: transaction_id, timestamp, customer_id, the :data:`REQUEST_FIELDS`,
        is_fraud (0/1).
        """
        people = self._people()
        rng = np.random.default_rng([self.seed, 1, day])
        weights = people["activity"] / people["activity"].sum()
        customer = rng.choice(self.customers, size=n, p=weights)
        p = np.clip(_MERCHANT_P + shift * _RUSH_P, 0.01, None)
        merchant_ix = rng.choice(len(_MERCHANTS), size=n, p=p / p.sum())
        merchant = np.array(_MERCHANTS, dtype=object)[merchant_ix]
        basket = people["basket"][customer]
        amount = np.round(rng.lognormal(np.log(basket), 0.7) * (1 + 0.15 * shift), 2)
        amount = np.maximum(amount, 0.5)
        hour = (rng.normal(14, 4.5, n) % 24).astype(np.int64)
        channel = np.where(
            merchant == "online",
            "online",
            rng.choice(["chip", "contactless", "swipe"], size=n, p=[0.5, 0.42, 0.08]),
        ).astype(object)
        distance = np.round(
            rng.exponential(people["home_km"][customer] + 12 * (merchant == "travel")), 1
        )
        tx24 = rng.poisson(1.5 + 1.5 * people["activity"][customer] + shift, n).astype(np.int64)
        age = people["age"][customer].astype(np.int64)
        ratio = amount / basket
        night = (hour < 6) | (hour > 21)
        logit = (
            -6.2
            + 1.9 * np.log1p(ratio)
            + 1.3 * _MERCHANT_RISK[merchant_ix]
            + 1.5 * night
            + 0.04 * np.minimum(distance, 100)
            + 0.8 * (channel == "swipe")
            + 0.3 * np.maximum(tx24 - 4, 0)
            - 0.0005 * age
        )
        if shift:
            pattern = (
                _NIGHT_RISKY[merchant_ix] & ((hour < 7) | (hour > 19)) & (ratio > 0.5) & (ratio < 4)
            )
            logit = logit + shift * (4.0 * pattern - 0.8)
        fraud = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
        offsets = hour * 3600 + rng.integers(0, 3600, n)
        order = np.argsort(offsets, kind="stable")
        midnight = pd.Timestamp(self.midnight(day))
        return pd.DataFrame(
            {
                "transaction_id": [f"d{day:03d}-{i:05d}" for i in range(n)],
                "timestamp": midnight + pd.to_timedelta(offsets[order], unit="s"),
                "customer_id": customer.astype(np.int64)[order],
                "amount": amount[order],
                "hour": hour[order],
                "distance_km": distance[order],
                "tx_last_24h": tx24[order],
                "account_age_days": age[order],
                "merchant_category": merchant[order],
                "channel": channel[order],
                "is_fraud": fraud[order],
            }
        )


def customer_aggregates(transactions: pd.DataFrame, days: list[datetime]) -> pd.DataFrame:
    """Each customer's aggregates as of each of ``days`` (an end-of-day time).

    For every ``as_of`` in ``days`` and every customer with a transaction in the 30 days
    before it: ``spend_7d`` and ``tx_count_7d`` over the last 7 days, ``avg_amount_30d``
    over the last 30. Columns: customer_id, event_timestamp (= ``as_of``), the
    :data:`AGGREGATES`.
    """
    ts = transactions["timestamp"]
    parts = []
    for as_of in days:
        stamp = pd.Timestamp(as_of)
        month = transactions[(ts < stamp) & (ts >= stamp - pd.Timedelta(days=30))]
        if month.empty:
            continue
        week = month[month["timestamp"] >= stamp - pd.Timedelta(days=7)]
        g30 = month.groupby("customer_id")["amount"].mean().rename("avg_amount_30d")
        g7 = week.groupby("customer_id")["amount"].agg(["sum", "count"])
        frame = g30.to_frame().join(g7, how="left").fillna({"sum": 0.0, "count": 0})
        frame = frame.rename(columns={"sum": "spend_7d", "count": "tx_count_7d"})
        frame["event_timestamp"] = stamp
        parts.append(frame.reset_index())
    out = pd.concat(parts, ignore_index=True)
    out["spend_7d"] = out["spend_7d"].round(2).astype(np.float64)
    out["tx_count_7d"] = out["tx_count_7d"].astype(np.float64)
    out["avg_amount_30d"] = out["avg_amount_30d"].round(2).astype(np.float64)
    return out[["customer_id", "event_timestamp", *AGGREGATES]]
