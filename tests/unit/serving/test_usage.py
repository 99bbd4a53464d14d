"""UsageMeter: answers, failures and CPU seconds per version, windows and running totals."""

from __future__ import annotations

from bascule.serving.usage import UsageMeter
from bascule.store.usage import RouteUsage
from bascule.testing import FakeClock


def test_meter_windows_split_by_policy_and_totals_keep_running() -> None:
    clock = FakeClock()
    meter = UsageMeter(clock.now_utc)
    start = clock.now_utc()
    meter.answered("fraud", 1, "champion", "", 3)
    meter.batch("fraud", 1, 3, 0.5)
    meter.set_policy("fraud", "shadow")
    meter.answered("fraud", 2, "shadow", "shadow", 1)
    meter.failed("fraud", 2, "shadow", "shadow")
    meter.batch("fraud", 2, 2, 0.25)
    clock.advance(5)

    first = meter.cut()
    meter.failed("fraud", 2, "shadow", "shadow")
    clock.advance(5)
    second = meter.cut()

    by_key = {(r.model_version, r.policy): r for r in first}
    assert {(1, ""), (2, "shadow")} == set(by_key)
    assert {"champion": RouteUsage(1, 3, 0)} == dict(by_key[(1, "")].routes)
    assert 0.5 == by_key[(1, "")].cpu_seconds
    assert {"shadow": RouteUsage(1, 1, 1)} == dict(by_key[(2, "shadow")].routes)
    assert (0.25, 1, 2) == (
        by_key[(2, "shadow")].cpu_seconds,
        by_key[(2, "shadow")].batches,
        by_key[(2, "shadow")].batch_rows,
    )
    assert {start} == {r.start_at for r in first}
    assert [(2, 0, 1)] == [(r.model_version, r.requests, r.errors) for r in second]
    assert second[0].start_at == first[0].end_at
    assert [] == meter.cut()
    totals = {t.version: t for t in meter.totals()}
    assert (0.5, 1, 0) == (totals[1].cpu_seconds, totals[1].requests, totals[1].errors)
    assert (0.25, 1, 2) == (totals[2].cpu_seconds, totals[2].requests, totals[2].errors)
    assert {"shadow": 2} == totals[2].errors_by_route
