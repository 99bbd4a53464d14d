"""A bank's card transactions, generated: amounts, merchants, times, customers and fraud labels.

Fraud follows a hidden logistic rule over the features, so a model can learn it and the
rule can be changed (``shift``) to make the world drift.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

__all__ = ["CATEGORICAL", "FEATURES", "NUMERIC", "generate_transactions"]

MERCHANTS = ("grocery", "fuel", "restaurant", "online", "electronics", "travel", "jewelry")
_MERCHANT_P = np.array([0.30, 0.15, 0.18, 0.20, 0.08, 0.06, 0.03])
_MERCHANT_RISK = {
    "grocery": -1.0,
    "fuel": -0.6,
    "restaurant": -0.8,
    "online": 0.6,
    "electronics": 0.9,
    "travel": 0.5,
    "jewelry": 1.3,
}
CHANNELS = ("chip", "contactless", "online", "swipe")
NUMERIC = [
    "amount",
    "hour",
    "distance_km",
    "customer_avg_amount",
    "amount_ratio",
    "tx_last_24h",
    "account_age_days",
]
CATEGORICAL = ["merchant_category", "channel"]
FEATURES = NUMERIC + CATEGORICAL


def generate_transactions(
    n: int,
    *,
    seed: int = 0,
    start: datetime | None = None,
    days: int = 1,
    shift: float = 0.0,
) -> pd.DataFrame:
    """``n`` transactions spread over ``days`` days from ``start``.

    ``shift`` in [0, 1] moves the world towards a holiday rush: bigger baskets, more online
    and electronics, and a new fraud pattern (mid-size online electronics and jewelry
    purchases at night) that a model trained on the old world under-scores.

    Columns: transaction_id, timestamp, customer_id, the FEATURES, and is_fraud (0/1).
    """
    rng = np.random.default_rng(seed)
    start = start or datetime(2026, 11, 1, tzinfo=UTC)
    p = _MERCHANT_P.copy()
    if shift:
        p = p + shift * np.array([-0.10, -0.05, -0.03, 0.10, 0.06, 0.00, 0.02])
        p = np.clip(p, 0.01, None)
        p /= p.sum()
    merchant = rng.choice(MERCHANTS, size=n, p=p)
    customer = rng.integers(0, max(50, n // 20), size=n)
    cust_avg = np.exp(3.4 + 0.6 * np.sin(customer * 0.37)) * (1 + 0.25 * shift)
    base = rng.lognormal(mean=np.log(cust_avg), sigma=0.7)
    amount = np.round(base * (1 + 0.5 * shift * rng.random(n)), 2)
    hour = (rng.normal(14, 4.5, size=n) % 24).astype(int)
    channel = np.where(
        merchant == "online",
        "online",
        rng.choice(["chip", "contactless", "swipe"], size=n, p=[0.5, 0.42, 0.08]),
    )
    distance = np.round(rng.exponential(8 + 10 * (merchant == "travel"), size=n), 1)
    tx24 = rng.poisson(2.0 + 1.5 * shift, size=n)
    age = rng.integers(5, 4000, size=n)
    ratio = amount / cust_avg

    risk = np.array([_MERCHANT_RISK[m] for m in merchant])
    logit = (
        -6.0
        + 1.8 * np.log1p(ratio)
        + 1.4 * risk
        + 1.6 * ((hour < 5) | (hour > 22))
        + 0.05 * np.minimum(distance, 100)
        + 0.8 * (channel == "swipe")
        + 0.3 * np.maximum(tx24 - 3, 0)
        - 0.0006 * age
    )
    if shift:
        new_pattern = (
            (np.isin(merchant, ["online", "electronics", "jewelry"]))
            & ((hour < 7) | (hour > 20))
            & (ratio > 0.6)
            & (ratio < 3)
        )
        logit = logit + shift * 3.2 * new_pattern
    fraud = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    offsets = np.sort(rng.random(n)) * days * 86400
    timestamps = [start + timedelta(seconds=float(s)) for s in offsets]
    return pd.DataFrame(
        {
            "transaction_id": [f"tx-{seed}-{i}" for i in range(n)],
            "timestamp": pd.to_datetime(timestamps, utc=True),
            "customer_id": customer.astype(np.int64),
            "amount": amount,
            "hour": hour.astype(np.int64),
            "distance_km": distance,
            "customer_avg_amount": np.round(cust_avg, 2),
            "amount_ratio": np.round(ratio, 4),
            "tx_last_24h": tx24.astype(np.int64),
            "account_age_days": age.astype(np.int64),
            "merchant_category": pd.Series(merchant, dtype="object"),
            "channel": pd.Series(channel, dtype="object"),
            "is_fraud": fraud,
        }
    )
