"""The demo's feature definitions, declared in Python as a Feast user would.

* entity ``customer`` (join key ``customer_id``);
* feature view ``customer_stats``: spend and count over 7 days, average amount over 30, as
  of the end of each day, from Parquet files, valid for 3 days (TTL);
* on-demand view ``amount_ratio`` (:func:`bascule.demo.features.amount_ratio_frame`);
* feature service ``fraud_features``: what the fraud model reads from the store.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bascule.demo.features import FEATURE_SERVICE, amount_ratio_frame

__all__ = ["definitions"]


def definitions(source: str) -> list[Any]:
    """The entity, views and service, reading the aggregates from ``source`` (a glob)."""
    from bascule.features import (
        Entity,
        FeatureService,
        FeatureView,
        FileSource,
        Float64,
        OnDemandFeatureView,
        RequestSource,
    )

    customer = Entity(name="customer", join_keys=("customer_id",))
    stats = FeatureView(
        name="customer_stats",
        entities=[customer],
        schema={"spend_7d": Float64, "tx_count_7d": Float64, "avg_amount_30d": Float64},
        source=FileSource(path=source, timestamp_field="event_timestamp"),
        ttl=timedelta(days=3),
        description="A customer's card spending over the last 7 and 30 days, as of each day's end",
    )
    request = RequestSource(name="transaction", schema={"amount": Float64})
    ratio = OnDemandFeatureView(
        name="amount_ratio",
        sources=[stats, request],
        schema={"amount_ratio": Float64},
        function=amount_ratio_frame,
        description="This amount against the customer's 30-day average",
    )
    service = FeatureService(
        name=FEATURE_SERVICE,
        features=[stats, ratio],
        description="What the fraud model reads from the feature store",
    )
    return [customer, stats, ratio, service]
