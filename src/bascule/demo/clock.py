"""The demo's clock: real monotonic time, and a wall clock the replay sets day by day."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

__all__ = ["ReplayClock"]


class ReplayClock:
    """A :class:`~bascule.core.clock.Clock` whose wall time is the replayed traffic's.

    ``monotonic`` is the real one (timeouts, flush intervals and latencies stay real);
    ``now_utc`` is the time :meth:`set` last gave plus the real time since, so records
    written by the server, the registry and monitoring carry the replayed day's time.
    Safe to read from other threads (the in-process server's).
    """

    def __init__(self, start: datetime) -> None:
        self._lock = threading.Lock()
        self._base = start.astimezone(UTC)
        self._anchor = time.monotonic()

    def set(self, when: datetime) -> None:
        """Make ``when`` the current wall time (it may not go back)."""
        when = when.astimezone(UTC)
        with self._lock:
            now = self._base + timedelta(seconds=time.monotonic() - self._anchor)
            self._base, self._anchor = max(when, now), time.monotonic()

    def monotonic(self) -> float:
        return time.monotonic()

    def now_utc(self) -> datetime:
        with self._lock:
            return self._base + timedelta(seconds=time.monotonic() - self._anchor)
