"""What the demo's feature definitions compute (``bascule.cli.demo.definitions`` declares them).

* entity ``customer`` (join key ``customer_id``);
* feature view ``customer_stats``: :data:`~bascule.demo.world.AGGREGATES` as of the end of
  each day, from Parquet files, valid for 3 days (TTL);
* on-demand view ``amount_ratio``: this amount against the customer's 30-day average,
  computed from the request and the stored aggregate, the same way in training sets and
  in the server;
* feature service ``fraud_features``: what the fraud model reads from the store.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["FEATURE_SERVICE", "amount_ratio_frame", "model_features"]

FEATURE_SERVICE = "fraud_features"


def amount_ratio_frame(frame: Any) -> Any:
    """``amount_ratio`` = amount / avg_amount_30d (1.0 when the customer has no history)."""
    import pandas as pd

    avg = pd.to_numeric(frame["avg_amount_30d"], errors="coerce").to_numpy(dtype=np.float64)
    amount = pd.to_numeric(frame["amount"], errors="coerce").to_numpy(dtype=np.float64)
    ratio = np.where(np.isfinite(avg) & (avg > 0), amount / np.where(avg > 0, avg, 1.0), 1.0)
    return pd.DataFrame({"amount_ratio": np.round(ratio, 4)}, index=frame.index)


def model_features() -> tuple[list[str], list[str]]:
    """The fraud model's input columns in order, and which of them are categorical."""
    from bascule.demo.world import AGGREGATES, REQUEST_FIELDS

    categorical = ["merchant_category", "channel"]
    numeric = [c for c in REQUEST_FIELDS if c not in categorical]
    return [*numeric, *AGGREGATES, "amount_ratio", *categorical], categorical
