"""Background work of the control-plane server: scheduled monitors and automatic retraining.

The app's lifespan starts one task per periodic job. Each task runs the job's ``tick`` in a
worker thread (so the work never blocks requests), then sleeps until the job says it is
due again — at most a minute at a time, so a clock change is noticed — and never less than
a second. The jobs:

* the monitors of ``monitoring.schedule`` (:class:`~bascule.monitoring.MonitorScheduler`),
  when a schedule is set;
* the project's :class:`~bascule.pipelines.RetrainAutomation`, when a project is
  configured: its task fires ``retraining.schedule``; alerts and feedback ingests reach it
  by themselves (it subscribes to the monitoring service), and a retraining runs in its
  own thread. The app's ``state.retraining`` holds it while the server runs;
* the :class:`~bascule.pipelines.supervision.RolloutSupervisor`, every
  ``server.rollout_interval_s`` seconds: it moves every active rollout on (shadow, canary,
  promotion or rollback) from what the inference servers logged.

Another periodic job is one more :class:`Periodic` in :func:`control_lifespan`'s list;
:class:`Every` makes one of a plain function and an interval.

At shutdown the tasks are cancelled, then the automation is closed: it refuses triggers,
drops pending follow-ups, and the running retraining gets ``retrain_shutdown_s`` seconds
to finish (after that it stops with the process; a later run resumes from its cached steps).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Protocol

import anyio.to_thread
from fastapi import FastAPI

from bascule.core.clock import Clock, SystemClock
from bascule.pipelines.supervision import RolloutSupervisor
from bascule.wiring import Services, build_retrain_automation

__all__ = ["Every", "Periodic", "control_lifespan", "run_schedule"]

log = logging.getLogger("bascule.http.control")
_MAX_SLEEP_S = 60.0
_MIN_SLEEP_S = 1.0
_RETRAIN_SHUTDOWN_S = 30.0


class Periodic(Protocol):
    """A job the server ticks: ``tick`` does what is due; ``seconds_until_due`` says when
    to tick again (None: nothing planned; the loop checks again within a minute)."""

    def tick(self) -> object: ...

    def seconds_until_due(self) -> float | None: ...


class Every:
    """A :class:`Periodic` that calls ``fn`` every ``interval_s`` seconds (the first time at
    once), measured on ``clock``'s monotonic time."""

    def __init__(
        self, fn: Callable[[], object], interval_s: float, *, clock: Clock | None = None
    ) -> None:
        self._fn = fn
        self.interval_s = interval_s
        self._clock: Clock = clock or SystemClock()
        self._last: float | None = None

    def tick(self) -> object:
        """Call the function (whether due or not) and start a new interval."""
        self._last = self._clock.monotonic()
        return self._fn()

    def seconds_until_due(self) -> float:
        """Seconds until the interval is over (0 before the first call)."""
        if self._last is None:
            return 0.0
        return max(self._last + self.interval_s - self._clock.monotonic(), 0.0)


async def run_schedule(
    job: Periodic,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    name: str = "scheduled monitoring",
) -> None:
    """Tick ``job`` whenever it is due, forever (until cancelled); a failed tick is logged."""
    while True:
        try:
            await anyio.to_thread.run_sync(job.tick)
        except Exception:  # the loop must outlive one failed run
            log.exception("%s failed; the schedule keeps running", name)
        due = job.seconds_until_due()
        wait = _MAX_SLEEP_S if due is None else min(max(due, _MIN_SLEEP_S), _MAX_SLEEP_S)
        await sleep(wait)


def control_lifespan(
    services: Services,
    *,
    project_dir: Path | None = None,
    retrain_shutdown_s: float = _RETRAIN_SHUTDOWN_S,
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """The app lifespan that runs the monitoring schedule, the retraining automation and
    the rollout supervisor.

    Args:
        services: The services.
        project_dir: Where the project's relative paths start (default: the current folder).
        retrain_shutdown_s: How long shutdown waits for a running retraining.

    Raises:
        InvalidInputError: ``monitoring.schedule`` or ``project.retraining.schedule`` is not
            a valid interval or cron expression (when the app starts).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        jobs: list[tuple[str, Periodic]] = []
        scheduler = services.monitor_scheduler()
        if scheduler is not None:
            jobs.append(("scheduled monitoring", scheduler))
        automation = build_retrain_automation(services, base_dir=project_dir or Path.cwd())
        if automation is not None:
            jobs.append(("scheduled retraining", automation))
            policy = automation.policy
            log.info(
                "retraining of %r automated: alerts %s, schedule %s, min_new_labels %s",
                automation.model, policy.on_alerts, policy.schedule, policy.min_new_labels,
            )  # fmt: skip
        app.state.retraining = automation
        supervisor = RolloutSupervisor.from_services(services)
        interval = services.settings.server.rollout_interval_s
        jobs.append(("rollout supervision", Every(supervisor.tick, interval, clock=services.clock)))
        tasks = [asyncio.create_task(run_schedule(job, name=name)) for name, job in jobs]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if automation is not None:
                await anyio.to_thread.run_sync(automation.close, retrain_shutdown_s)
            app.state.retraining = None

    return lifespan
