"""Background work of the control-plane server: monitors run on ``monitoring.schedule``.

The app's lifespan starts one task that sleeps until the scheduler is due (at most a minute
at a time, so a clock change is noticed) and runs :meth:`MonitorScheduler.tick` in a worker
thread, so monitoring never blocks requests. Off when no schedule is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio.to_thread
from fastapi import FastAPI

from bascule.wiring import Services

if TYPE_CHECKING:
    from bascule.monitoring.schedule import MonitorScheduler

__all__ = ["monitor_lifespan", "run_schedule"]

log = logging.getLogger("bascule.http.control")
_MAX_SLEEP_S = 60.0


async def run_schedule(
    scheduler: MonitorScheduler,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Tick ``scheduler`` whenever it is due, forever (until cancelled)."""
    while True:
        try:
            await anyio.to_thread.run_sync(scheduler.tick)
        except Exception:  # the loop must outlive one failed run
            log.exception("scheduled monitoring failed; the schedule keeps running")
        await sleep(min(max(scheduler.seconds_until_due(), 1.0), _MAX_SLEEP_S))


def monitor_lifespan(
    services: Services,
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """The app lifespan that runs the monitoring schedule in the background.

    Raises:
        InvalidInputError: ``monitoring.schedule`` is not a valid interval or cron expression
            (when the app starts).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler = services.monitor_scheduler()
        task = asyncio.create_task(run_schedule(scheduler)) if scheduler is not None else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    return lifespan
