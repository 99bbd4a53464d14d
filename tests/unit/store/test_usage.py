"""The usage log: windows written per model and hour, read back by time range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bascule.core.errors import InvalidInputError
from bascule.store.usage import RouteUsage, UsageLog, UsageRecord, read_usage
from bascule.testing import InMemoryArtifactStore

T0 = datetime(2026, 3, 1, 9, 59, 50, tzinfo=UTC)


def window(start: datetime, seconds: float, **fields: object) -> UsageRecord:
    values: dict[str, object] = {
        "model_name": "fraud",
        "model_version": 1,
        "policy": "",
        "start_at": start,
        "end_at": start + timedelta(seconds=seconds),
    }
    values.update(fields)
    return UsageRecord(**values)  # type: ignore[arg-type]


def test_usage_windows_round_trip_and_are_read_by_overlap() -> None:
    store = InMemoryArtifactStore()
    log = UsageLog(store)
    first = window(
        T0,
        5,
        cpu_seconds=0.25,
        batches=3,
        batch_rows=12,
        routes={"champion": RouteUsage(10, 12, 1), "shadow": RouteUsage(2, 2, 0)},
    )
    second = window(T0 + timedelta(seconds=10), 10, model_version=2, policy="canary")
    other = window(T0, 10, model_name="churn")

    files = log.write([first, second, other])

    assert 3 == files  # fraud before and after 10:00, churn
    assert [first, second] == read_usage(store, "fraud")
    assert [second] == read_usage(store, "fraud", start=T0 + timedelta(seconds=10))
    assert [first] == read_usage(store, "fraud", end=T0 + timedelta(seconds=10))
    assert [] == read_usage(store, "fraud", start=T0 + timedelta(hours=1))
    assert [other] == read_usage(store, "churn", start=T0, end=T0 + timedelta(minutes=5))
    assert 12 == first.requests
    assert 1 == first.errors
    assert RouteUsage() == first.route("challenger")


def test_usage_log_skips_lines_that_are_not_records() -> None:
    store = InMemoryArtifactStore()
    UsageLog(store).write([window(T0, 5)])
    key = next(iter(store.list("usage/")))
    store.write(key, store.read(key) + b'{"not": "a record"}\n')

    assert 1 == len(read_usage(store, "fraud"))


def test_usage_read_refuses_naive_bounds() -> None:
    with pytest.raises(InvalidInputError, match="start") as e:
        read_usage(InMemoryArtifactStore(), "fraud", start=datetime(2026, 1, 1))

    assert "invalid_input" == e.value.code
