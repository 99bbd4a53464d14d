"""Automatic retraining of a project's model: every trigger, one coordinator, on the record.

:class:`RetrainAutomation` feeds one :class:`~bascule.pipelines.RetrainCoordinator` (one
retraining at a time, triggers during a run coalesced into one follow-up) from every
source the project's ``retraining`` policy names:

* ``alert`` — an alert of monitoring (:meth:`MonitoringService.on_alert`) that *fires*
  (a resolve does not) for the model, under a rule named in ``retraining.on_alerts``;
* ``schedule`` — the cron expression ``retraining.schedule`` (UTC), checked by :meth:`tick`;
* ``new_labels`` — ``retraining.min_new_labels`` newly labelled rows of the model, counted
  from every feedback ingest (:meth:`MonitoringService.on_feedback`: the ``labelled``
  count of the ingest result), since the last retraining started;
* ``manual`` — :meth:`retrain_now`.

What the coordinator does is logged (``bascule.pipelines.automation``) and recorded on the
model's history: ``retrain_started`` (its triggers), ``retrain_coalesced`` (a trigger that
waits for the follow-up run), ``retrain_finished`` (version, alias, gate, run id),
``retrain_refused`` (another process holds the model's lock), ``retrain_failed`` when the
retraining function raised, and ``retrain_dropped`` (pending triggers at shutdown). A
pipeline that stops at a failed step is already recorded as ``retrain_failed`` by the
:class:`~bascule.pipelines.retrain.Retrainer`, and the gate decision as ``gate_passed`` /
``gate_failed``: they are not repeated. A model that is not registered yet (the very first
retraining) has no history: its events are only logged.

Two ways to drive it:

* **In a long-lived server** (``bascule server``): keep the default ``spawn`` (a thread per
  retraining), call :meth:`tick` whenever :meth:`seconds_until_due` says the schedule is
  due (the control plane's background loop does, at least once a minute), and
  :meth:`close` at shutdown: triggers are refused from then on, pending follow-ups are
  dropped, and the running retraining gets ``timeout`` seconds to finish (a pipeline killed
  with the process resumes from its cached steps on the next trigger).
* **Synchronously, on a simulated clock** (``bascule demo``): build it on a ``FakeClock``,
  advance the clock, call :meth:`tick` (and let monitoring runs fire alerts, feedback
  ingests count labels), then :meth:`wait_idle`. With ``spawn=run_inline`` every trigger
  runs its retraining before it returns, so nothing happens behind the caller's back.

Example::

    automation = RetrainAutomation(
        "fraud", project.retraining, retrain=Retrainer(...), registry=services.registry,
        monitoring=services.monitoring, clock=clock,
    )
    clock.advance(86_400)
    automation.tick()                 # the cron schedule, if due
    services.monitoring.run("fraud")  # an alert in on_alerts fires: a retraining starts
    automation.wait_idle()
    automation.state()                # running, pending triggers, recent outcomes
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bascule.core.clock import Clock, SystemClock
from bascule.core.errors import BasculeError, ModelNotFoundError
from bascule.core.project_settings import RetrainPolicy
from bascule.pipelines.retrain import RetrainOutcome
from bascule.pipelines.triggers import (
    CoordinatorEvent,
    RetrainCoordinator,
    RetrainRecord,
    RetrainRequest,
    Scheduler,
    Spawn,
    SubmitOutcome,
    Trigger,
)

if TYPE_CHECKING:
    from bascule.monitoring.feedback import FeedbackResult
    from bascule.monitoring.notifiers import AlertEvent
    from bascule.monitoring.service import MonitoringService
    from bascule.registry.service import RegistryService

__all__ = ["RetrainAutomation"]

log = logging.getLogger("bascule.pipelines.automation")
_KEPT = 50  # retrainings kept in memory for state()
_REASON = 2000  # longest reason written to the history


class RetrainAutomation:
    """Starts a project model's retrainings by itself: alerts, schedule, new labels, by hand.

    Args:
        model: The project's model.
        policy: The project's ``retraining`` policy.
        retrain: The retraining function (a :class:`~bascule.pipelines.retrain.Retrainer`).
        registry: Where coordinator events are recorded (None: only logged).
        monitoring: Alerts and feedback ingests to listen to (None: call :meth:`alert` and
            :meth:`feedback` yourself).
        clock: What time it is (the schedule, trigger stamps); default: the system clock.
        spawn: How a retraining is started (default: a daemon thread; ``run_inline`` for a
            synchronous simulation).

    Raises:
        InvalidInputError: a bad model name or ``policy.schedule`` cron expression.
    """

    def __init__(
        self,
        model: str,
        policy: RetrainPolicy,
        *,
        retrain: Callable[[RetrainRequest], Any],
        registry: RegistryService | None = None,
        monitoring: MonitoringService | None = None,
        clock: Clock | None = None,
        spawn: Spawn | None = None,
    ) -> None:
        self.model = model
        self.policy = policy
        self._retrain = retrain
        self._registry = registry
        self._clock: Clock = clock or SystemClock()
        self.coordinator = RetrainCoordinator(
            self._run,
            clock=self._clock,
            spawn=spawn,
            on_event=self._on_event,
            max_history=_KEPT,
        )
        self._scheduler = Scheduler(self.coordinator, clock=self._clock)
        if policy.schedule is not None:
            self._scheduler.add(model, policy.schedule)
        if policy.min_new_labels is not None:
            self.coordinator.watch_labels(model, policy.min_new_labels)
        if monitoring is not None:
            monitoring.on_alert(self._on_alert)
            monitoring.on_feedback(self._on_feedback)

    # -- triggers ---------------------------------------------------------------------------

    def alert(self, event: AlertEvent) -> SubmitOutcome | None:
        """Retrain when ``event`` is a firing alert of the model under a rule in ``on_alerts``.

        Returns:
            The coordinator's outcome, or None when the event is not a trigger.
        """
        alert = event.alert
        if event.status != "firing" or alert.model != self.model:
            return None
        if alert.rule not in self.policy.on_alerts:
            log.debug("alert %r of %r is not in retraining.on_alerts", alert.rule, self.model)
            return None
        return self.coordinator.trigger(
            self.model,
            "alert",
            f"alert {alert.rule!r} fired: {event.message}",
            alert_id=alert.id,
            rule=alert.rule,
            metric=alert.metric,
            feature=alert.feature,
            severity=alert.severity,
            value=_finite(alert.value),
            threshold=_finite(alert.threshold),
        )

    def feedback(self, result: FeedbackResult) -> SubmitOutcome | None:
        """Count the model's newly labelled rows of a feedback ingest (``result.labelled``).

        Returns:
            The outcome when ``min_new_labels`` was reached (a ``new_labels`` trigger was
            submitted), else None.
        """
        return self.add_labels(result.labelled.get(self.model, 0))

    def add_labels(self, count: int) -> SubmitOutcome | None:
        """Count ``count`` newly labelled rows of the model.

        Returns:
            The outcome when ``min_new_labels`` was reached, else None.

        Raises:
            InvalidInputError: a negative count.
        """
        if count == 0 or self.coordinator.closed:
            return None
        return self.coordinator.add_labels(self.model, count)

    def tick(self) -> list[SubmitOutcome]:
        """Fire the cron schedule if it is due by the clock.

        Returns:
            The outcome of the trigger submitted (empty when not due).
        """
        if self.coordinator.closed:
            return []
        return [outcome for _, outcome in self._scheduler.tick()]

    def retrain_now(self, reason: str = "by hand", **details: Any) -> SubmitOutcome:
        """Retrain now (a ``manual`` trigger), or right after the running retraining.

        Returns:
            ``started``, ``coalesced`` or ``closed``.
        """
        return self.coordinator.trigger(self.model, "manual", reason, **details)

    # -- time -------------------------------------------------------------------------------

    def next_due(self) -> datetime | None:
        """When the schedule fires next (None: no schedule, or closed)."""
        due = [at for _, _, at in self._scheduler.schedules()]
        return min(due) if due else None

    def seconds_until_due(self) -> float | None:
        """Seconds until :meth:`tick` has something to do (0 when due; None: never)."""
        due = self.next_due()
        if due is None:
            return None
        return max((due - self._clock.now_utc()).total_seconds(), 0.0)

    # -- life -------------------------------------------------------------------------------

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no retraining runs (or ``timeout`` seconds pass); True when idle."""
        return self.coordinator.wait_idle(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Stop triggering: refuse triggers, drop pending follow-ups, wait up to ``timeout``
        seconds for the running retraining.

        Returns:
            True when no retraining runs any more.
        """
        self._scheduler.remove(self.model)
        idle = self.coordinator.close(timeout)
        if not idle:
            log.warning(
                "a retraining of %r is still running at shutdown; it stops with the process "
                "and a later retraining resumes from its cached steps",
                self.model,
            )
        return idle

    # -- what it does -----------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """What the automation is doing, JSON-friendly: the policy, the next scheduled time,
        the labels counted since the last run, the running retraining and its pending
        triggers, and the recent retrainings (newest first)."""
        coordinator = self.coordinator
        due = self.next_due()
        return {
            "model": self.model,
            "automated": not coordinator.closed,
            "policy": {
                "on_alerts": list(self.policy.on_alerts),
                "schedule": self.policy.schedule,
                "min_new_labels": self.policy.min_new_labels,
            },
            "next_scheduled": None if due is None else due.isoformat(),
            "labels_since_last_run": coordinator.labels_since_last_run(self.model),
            "running": coordinator.is_running(self.model),
            "pending": [_trigger(t) for t in coordinator.pending(self.model)],
            "recent": [_record(r) for r in reversed(coordinator.history(self.model))],
        }

    def _on_alert(self, event: AlertEvent) -> None:
        self.alert(event)

    def _on_feedback(self, result: FeedbackResult) -> None:
        self.feedback(result)

    def _run(self, request: RetrainRequest) -> Any:
        result = self._retrain(request)
        if isinstance(result, RetrainOutcome) and result.result is not None:
            # keep the step records, not the data and model the pipeline produced
            result = replace(result, result=replace(result.result, outputs={}))
        return result

    def _on_event(self, event: CoordinatorEvent) -> None:
        try:
            self._note(event)
        except Exception:  # the coordinator must outlive a failed note
            log.exception("could not record the %s event of %r", event.kind, event.model)

    def _note(self, event: CoordinatorEvent) -> None:
        model = event.model
        reasons = "; ".join(t.reason for t in event.triggers)
        triggers = [_trigger(t) for t in event.triggers]
        if event.kind == "started":
            log.info("retraining of %r started (%s): %s", model, _kinds(event), reasons)
            self._record("retrain_started", reasons, {"triggers": triggers})
        elif event.kind == "coalesced":
            log.info("retraining of %r runs; trigger coalesced: %s", model, reasons)
            self._record("retrain_coalesced", reasons, {"triggers": triggers})
        elif event.kind == "dropped":
            log.warning("pending retraining triggers of %r dropped: %s", model, reasons)
            self._record("retrain_dropped", f"shutting down; dropped: {reasons}", {})
        elif event.record is not None:
            self._ended(event.record)

    def _ended(self, record: RetrainRecord) -> None:
        took = (record.finished_at - record.started_at).total_seconds()
        base = {"triggers": [t.kind for t in record.triggers], "duration_s": round(took, 3)}
        result = record.result
        if record.status == "error":
            log.error("retraining of %r raised: %s", record.model, record.error)
            self._record("retrain_failed", record.error or "error", base)
            return
        if not isinstance(result, RetrainOutcome):
            log.info("retraining of %r %s: %r", record.model, record.status, result)
            kind = "retrain_finished" if record.status == "finished" else "retrain_failed"
            self._record(kind, str(getattr(result, "reason", result)), base)
            return
        summary = {
            **base,
            "status": result.status,
            "run_id": result.run_id,
            "version": result.version,
            "alias": result.alias,
        }
        if result.status == "finished":
            gate = "passed" if result.decision is not None and result.decision.passed else "failed"
            log.info(
                "retraining of %r finished: v%s registered, gate %s (%s)",
                record.model, result.version, gate, result.reason,
            )  # fmt: skip
            summary["gate"] = gate
            reason = f"v{result.version} registered, gate {gate}: {result.reason}"
            self._record("retrain_finished", reason, summary, version=result.version)
        elif result.status == "refused":
            log.warning("retraining of %r refused: %s", record.model, result.reason)
            self._record("retrain_refused", result.reason, summary)
        else:  # the Retrainer recorded retrain_failed with the step and the error
            log.error("retraining of %r failed: %s", record.model, result.reason)

    def _record(
        self, kind: str, reason: str, details: dict[str, Any], *, version: int | None = None
    ) -> None:
        if self._registry is None:
            return
        try:
            with contextlib.suppress(ModelNotFoundError):  # not registered before its 1st run
                self._registry.record_event(
                    self.model, kind, reason=reason[:_REASON], version=version, details=details
                )
        except BasculeError as exc:
            log.warning("could not record %s on the history of %r: %s", kind, self.model, exc)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _kinds(event: CoordinatorEvent) -> str:
    return ", ".join(dict.fromkeys(t.kind for t in event.triggers))


def _trigger(trigger: Trigger) -> dict[str, Any]:
    return {
        "kind": trigger.kind,
        "reason": trigger.reason,
        "at": trigger.at.isoformat(),
        "details": dict(trigger.details),
    }


def _record(record: RetrainRecord) -> dict[str, Any]:
    result = record.result
    outcome: Any = result.to_dict() if isinstance(result, RetrainOutcome) else None
    if outcome is not None:
        outcome.pop("steps", None)
    return {
        "status": record.status,
        "started_at": record.started_at.isoformat(),
        "finished_at": record.finished_at.isoformat(),
        "triggers": [_trigger(t) for t in record.triggers],
        "error": record.error,
        "outcome": outcome,
    }
