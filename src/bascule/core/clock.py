"""Time, injected: services take a :class:`Clock` so tests can use ``bascule.testing.FakeClock``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "SystemClock", "now_ms"]


class Clock(Protocol):
    """Source of time for services."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for timeouts and intervals)."""
        ...

    def now_utc(self) -> datetime:
        """Wall-clock time, timezone-aware UTC (for records)."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now_utc(self) -> datetime:
        return datetime.now(UTC)


def now_ms(clock: Clock) -> int:
    """Milliseconds since the epoch, as MLflow stores timestamps."""
    return int(clock.now_utc().timestamp() * 1000)
