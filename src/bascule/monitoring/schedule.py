"""MonitorScheduler: runs every configured model's monitor when the schedule says so.

The control-plane server calls :meth:`MonitorScheduler.tick` from a background task; tests
call it directly with a ``FakeClock``. The schedule is a function from a time to the next
due time (an interval, or a cron expression's ``next_after``), chosen in ``wiring``. The
first tick only plans the first run; each due tick runs the monitor of every model with an
entry under ``monitoring.models`` over the last window, and plans the next run from now
(so a server that was asleep runs once, not once per missed slot).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bascule.core.clock import Clock
from bascule.core.errors import BasculeError

if TYPE_CHECKING:
    from bascule.monitoring.service import MonitoringService, MonitorReport

__all__ = ["MonitorScheduler", "every"]

log = logging.getLogger("bascule.monitoring.schedule")


def every(interval: timedelta) -> Callable[[datetime], datetime]:
    """A schedule that is due ``interval`` after each run."""
    return lambda at: at + interval


class MonitorScheduler:
    """Decides when monitors run, and runs them.

    Args:
        service: The monitoring service.
        clock: Source of "now".
        next_after: The schedule: the first due time after a given time.
        models: Names of the models to monitor (default: those in the service's settings).
    """

    def __init__(
        self,
        service: MonitoringService,
        clock: Clock,
        *,
        next_after: Callable[[datetime], datetime],
        models: Sequence[str] | None = None,
    ) -> None:
        self._service = service
        self._clock = clock
        self._next_after = next_after
        self._models = list(models) if models is not None else list(service.settings.models)
        self._due: datetime | None = None

    @property
    def next_due(self) -> datetime | None:
        """When the next run is due (None before the first tick)."""
        return self._due

    def seconds_until_due(self) -> float:
        """Seconds until the next run is due (0 when due or not planned yet)."""
        if self._due is None:
            return 0.0
        return max((self._due - self._clock.now_utc()).total_seconds(), 0.0)

    def tick(self) -> list[MonitorReport]:
        """Run the monitors if they are due; plan the next run.

        A model whose run fails (not registered, storage down) is logged and skipped; the
        others still run.

        Returns:
            The reports of the runs made now (empty when not due).
        """
        now = self._clock.now_utc()
        if self._due is None:
            self._due = self._next_after(now)
            return []
        if now < self._due:
            return []
        self._due = self._next_after(now)
        reports = []
        for model in self._models:
            try:
                reports.append(self._service.run(model, trigger="schedule"))
            except BasculeError as exc:
                log.warning("scheduled monitor of model %r failed: %s", model, exc)
        return reports
