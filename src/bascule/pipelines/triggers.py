"""Retraining triggers: at most one retraining per model at a time, the rest coalesced.

Four kinds of :class:`Trigger` start a retraining: an ``alert`` from monitoring (drift,
performance drop, KPI breach), a ``schedule`` (cron, fired by :class:`Scheduler`),
``new_labels`` (enough newly labelled rows, counted by
:meth:`RetrainCoordinator.add_labels`) and ``manual`` (``bascule retrain MODEL``).

:class:`RetrainCoordinator` runs the retraining function for a model in a worker (a
thread by default). Triggers for that model that arrive while it runs are coalesced:
when the run ends, *one* follow-up run starts with all of them. Everything it does is
observable: :meth:`~RetrainCoordinator.events`, :meth:`~RetrainCoordinator.history`,
:meth:`~RetrainCoordinator.is_running` and :meth:`~RetrainCoordinator.wait_idle`.
:meth:`~RetrainCoordinator.close` stops it for a shutdown: triggers are refused, pending
follow-ups are dropped, the running retraining finishes.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from bascule.core.clock import Clock, SystemClock
from bascule.core.errors import InvalidInputError
from bascule.core.refs import check_name
from bascule.pipelines.cron import CronSchedule

__all__ = [
    "CoordinatorEvent",
    "RetrainCoordinator",
    "RetrainRecord",
    "RetrainRequest",
    "Scheduler",
    "SubmitOutcome",
    "Trigger",
    "TriggerKind",
    "run_inline",
]

TriggerKind = Literal["alert", "schedule", "new_labels", "manual"]
TRIGGER_KINDS: tuple[str, ...] = ("alert", "schedule", "new_labels", "manual")
SubmitOutcome = Literal["started", "coalesced", "closed"]
Spawn = Callable[[Callable[[], None], str], None]
log = logging.getLogger("bascule.pipelines.triggers")
_MAX_EVENTS = 1000
_MAX_HISTORY = 1000
_MAX_MISSED_COUNTED = 10_000


@dataclass(frozen=True)
class Trigger:
    """A reason to retrain ``model``: what kind, why, when, with machine-readable details."""

    model: str
    kind: TriggerKind
    reason: str
    at: datetime
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RetrainRequest:
    """What the retraining function receives: the model and the triggers it answers.

    The first trigger started the run; the others arrived during the previous run and
    were coalesced into this one.
    """

    model: str
    triggers: tuple[Trigger, ...]

    @property
    def kinds(self) -> list[str]:
        """The distinct trigger kinds, in arrival order."""
        return list(dict.fromkeys(t.kind for t in self.triggers))


@dataclass(frozen=True)
class RetrainRecord:
    """One retraining that ran: its triggers, times, outcome and what the function returned.

    ``status`` is ``finished``, ``failed`` (the function returned a result whose ``ok`` is
    false, e.g. a ``PipelineFailed``) or ``error`` (the function raised; see ``error``).
    """

    model: str
    triggers: tuple[Trigger, ...]
    started_at: datetime
    finished_at: datetime
    status: Literal["finished", "failed", "error"]
    result: Any = None
    error: str | None = None


EventKind = Literal["started", "coalesced", "finished", "failed", "error", "dropped"]


@dataclass(frozen=True)
class CoordinatorEvent:
    """Something the coordinator did.

    ``started`` (a retraining began with ``triggers``), ``coalesced`` (a trigger waits for
    the follow-up run), ``finished``, ``failed`` or ``error`` (a retraining ended; ``record``
    holds it), ``dropped`` (pending triggers dropped because the coordinator was closed).
    """

    kind: EventKind
    model: str
    at: datetime
    triggers: tuple[Trigger, ...]
    record: RetrainRecord | None = None


def _thread_spawn(fn: Callable[[], None], name: str) -> None:
    threading.Thread(target=fn, name=name, daemon=True).start()


def run_inline(fn: Callable[[], None], name: str) -> None:
    """A ``spawn`` for :class:`RetrainCoordinator` that runs the retraining in the caller's
    thread: deterministic, for simulations and scripts (``name`` is unused)."""
    fn()


class RetrainCoordinator:
    """Runs retrainings: one per model at a time, triggers during a run coalesced; thread-safe."""

    def __init__(
        self,
        retrain: Callable[[RetrainRequest], Any],
        *,
        clock: Clock | None = None,
        spawn: Spawn | None = None,
        on_event: Callable[[CoordinatorEvent], None] | None = None,
        max_history: int = _MAX_HISTORY,
    ) -> None:
        """Build a coordinator.

        Args:
            retrain: Retrains one model (runs the pipeline, the gate...); its return value
                is kept in the :class:`RetrainRecord`.
            clock: Stamps triggers and records; default: the system clock.
            spawn: Starts ``fn`` in a worker named ``name``; default: a daemon thread.
                ``run_inline`` runs it in the caller's thread (the trigger returns when
                the retraining, and its follow-ups, are done).
            on_event: Called with every :class:`CoordinatorEvent`, outside any lock (an
                exception it raises is logged); a retraining's end is told before
                :meth:`wait_idle` returns.
            max_history: Finished retrainings kept for :meth:`history` (the oldest go).
        """
        self._retrain = retrain
        self._clock: Clock = clock or SystemClock()
        self._spawn = spawn or _thread_spawn
        self._on_event = on_event
        self._cond = threading.Condition()
        self._running: set[str] = set()
        self._pending: dict[str, list[Trigger]] = {}
        self._history: deque[RetrainRecord] = deque(maxlen=max_history)
        self._events: deque[CoordinatorEvent] = deque(maxlen=_MAX_EVENTS)
        self._labels: dict[str, int] = {}
        self._thresholds: dict[str, int] = {}
        self._closed = False

    # -- triggers ---------------------------------------------------------------------------

    def submit(self, trigger: Trigger) -> SubmitOutcome:
        """Start a retraining for ``trigger.model``, or coalesce into the next one if running.

        Returns:
            ``"started"``, ``"coalesced"``, or ``"closed"`` (after :meth:`close`: ignored).

        Raises:
            InvalidInputError: a bad model name or trigger kind.
        """
        check_name(trigger.model, field="model name")
        if trigger.kind not in TRIGGER_KINDS:
            raise InvalidInputError.for_field(
                "trigger kind", trigger.kind, f"one of {TRIGGER_KINDS}"
            )
        model = trigger.model
        with self._cond:
            if self._closed:
                return "closed"
            if model in self._running:
                self._pending.setdefault(model, []).append(trigger)
                event = self._event("coalesced", model, (trigger,))
                outcome: SubmitOutcome = "coalesced"
            else:
                self._running.add(model)
                self._labels[model] = 0
                event = self._event("started", model, (trigger,))
                outcome = "started"
        self._emit([event])
        if outcome == "started":
            self._spawn(lambda: self._work(model, (trigger,)), f"bascule-retrain-{model}")
        return outcome

    def trigger(self, model: str, kind: TriggerKind, reason: str, **details: Any) -> SubmitOutcome:
        """Build a :class:`Trigger` stamped with the clock's time and :meth:`submit` it.

        Raises:
            InvalidInputError: a bad model name or trigger kind.
        """
        at = self._clock.now_utc()
        return self.submit(Trigger(model, kind, reason, at, dict(details)))

    def watch_labels(self, model: str, threshold: int) -> None:
        """Retrain ``model`` once ``threshold`` new labelled rows have arrived since its last run.

        Raises:
            InvalidInputError: a bad model name or a threshold below 1.
        """
        check_name(model, field="model name")
        if isinstance(threshold, bool) or threshold < 1:
            raise InvalidInputError.for_field("new labels threshold", threshold, "an integer >= 1")
        with self._cond:
            self._thresholds[model] = threshold
            self._labels.setdefault(model, 0)

    def add_labels(self, model: str, count: int) -> SubmitOutcome | None:
        """Count ``count`` newly labelled rows of ``model``; trigger when the threshold is met.

        Returns:
            The outcome when a ``new_labels`` trigger was submitted, else None.

        Raises:
            InvalidInputError: a negative count.
        """
        if isinstance(count, bool) or count < 0:
            raise InvalidInputError.for_field("label count", count, "an integer >= 0")
        with self._cond:
            total = self._labels.get(model, 0) + count
            threshold = self._thresholds.get(model)
            fire = threshold is not None and total >= threshold
            self._labels[model] = 0 if fire else total
        if not fire:
            return None
        reason = f"{total} new labelled rows (threshold {threshold})"
        return self.trigger(model, "new_labels", reason, rows=total, threshold=threshold)

    def labels_since_last_run(self, model: str) -> int:
        """New labelled rows counted for ``model`` since its last retraining started."""
        with self._cond:
            return self._labels.get(model, 0)

    # -- the worker -------------------------------------------------------------------------

    def _work(self, model: str, triggers: tuple[Trigger, ...]) -> None:
        while True:
            started = self._clock.now_utc()
            result: Any = None
            error: str | None = None
            try:
                result = self._retrain(RetrainRequest(model, triggers))
            except Exception as exc:  # noqa: BLE001 - recorded; the coordinator keeps going
                error = f"{type(exc).__name__}: {exc}"
            if error is not None:
                status: Literal["finished", "failed", "error"] = "error"
            else:
                status = "failed" if getattr(result, "ok", True) is False else "finished"
            record = RetrainRecord(
                model, triggers, started, self._clock.now_utc(), status, result, error
            )
            with self._cond:
                self._history.append(record)
                ended = self._event(status, model, triggers, record)
            # still running while the end is told: wait_idle() returns after it, and a
            # trigger submitted meanwhile is coalesced into the follow-up below
            self._emit([ended])
            with self._cond:
                pending = self._pending.pop(model, [])  # close() leaves none behind
                if not pending:
                    self._running.discard(model)
                    self._cond.notify_all()
                    return
                triggers = tuple(pending)
                self._labels[model] = 0
                started_again = self._event("started", model, triggers)
            self._emit([started_again])

    def _event(
        self,
        kind: EventKind,
        model: str,
        triggers: tuple[Trigger, ...],
        record: RetrainRecord | None = None,
    ) -> CoordinatorEvent:  # called with the lock held
        event = CoordinatorEvent(kind, model, self._clock.now_utc(), triggers, record)
        self._events.append(event)
        return event

    def _emit(self, events: list[CoordinatorEvent]) -> None:
        if self._on_event is not None:
            for event in events:
                try:
                    self._on_event(event)
                except Exception:  # a listener's bug must not wedge the model's retraining
                    log.exception("retraining event listener failed on %s", event.kind)

    def close(self, timeout: float | None = None) -> bool:
        """Stop for a shutdown: refuse new triggers, drop pending follow-ups, let the running
        retrainings finish (waiting up to ``timeout`` seconds for them; 0: not at all).

        Returns:
            True when no retraining runs any more.
        """
        with self._cond:
            self._closed = True
            dropped = [
                self._event("dropped", model, tuple(triggers))
                for model, triggers in sorted(self._pending.items())
            ]
            self._pending.clear()
        self._emit(dropped)
        return self.wait_idle(timeout)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        with self._cond:
            return self._closed

    # -- observation ------------------------------------------------------------------------

    def is_running(self, model: str) -> bool:
        """Whether a retraining of ``model`` is in progress."""
        with self._cond:
            return model in self._running

    def running(self) -> list[str]:
        """The models being retrained, sorted."""
        with self._cond:
            return sorted(self._running)

    def pending(self, model: str) -> tuple[Trigger, ...]:
        """Triggers of ``model`` waiting for the follow-up run."""
        with self._cond:
            return tuple(self._pending.get(model, ()))

    def history(self, model: str | None = None) -> list[RetrainRecord]:
        """Finished retrainings, oldest first (of one model, or all)."""
        with self._cond:
            return [r for r in self._history if model is None or r.model == model]

    def events(self) -> list[CoordinatorEvent]:
        """The last 1000 events, oldest first."""
        with self._cond:
            return list(self._events)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no retraining runs (or ``timeout`` seconds pass); True when idle."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._running, timeout=timeout)


@dataclass
class _Entry:
    model: str
    cron: CronSchedule
    next_due: datetime


class Scheduler:
    """Fires ``schedule`` triggers when cron schedules come due, by the injected clock.

    Call :meth:`tick` periodically (or :meth:`run` in a thread). A schedule that came due
    several times since the last tick fires once (the trigger's details count the missed
    times); the coordinator coalesces it with a retraining already running.
    """

    def __init__(
        self,
        coordinator: RetrainCoordinator,
        *,
        clock: Clock | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        """Build a scheduler.

        Args:
            coordinator: Receives the ``schedule`` triggers.
            clock: Says what time it is (UTC); default: the system clock.
            sleep: Waits between ticks in :meth:`run` (tests pass ``FakeClock.advance``);
                default: waiting on the stop event.
        """
        self._coordinator = coordinator
        self._clock: Clock = clock or SystemClock()
        self._sleep = sleep
        self._lock = threading.Lock()
        self._entries: list[_Entry] = []

    def add(self, model: str, cron: str | CronSchedule) -> CronSchedule:
        """Retrain ``model`` on a cron schedule (UTC); adding the same pair again does nothing.

        Raises:
            InvalidInputError: a bad model name or cron expression.
        """
        check_name(model, field="model name")
        schedule = cron if isinstance(cron, CronSchedule) else CronSchedule.parse(cron)
        with self._lock:
            for e in self._entries:
                if e.model == model and e.cron.expression == schedule.expression:
                    return e.cron
            nxt = schedule.next_after(self._clock.now_utc())
            self._entries.append(_Entry(model, schedule, nxt))
        return schedule

    def remove(self, model: str) -> None:
        """Drop every schedule of ``model``."""
        with self._lock:
            self._entries = [e for e in self._entries if e.model != model]

    def schedules(self) -> list[tuple[str, str, datetime]]:
        """``(model, expression, next due time)`` of every schedule."""
        with self._lock:
            return [(e.model, e.cron.expression, e.next_due) for e in self._entries]

    def tick(self) -> list[tuple[str, SubmitOutcome]]:
        """Submit a trigger for every schedule that is due now.

        Returns:
            ``(model, outcome)`` for each trigger submitted.
        """
        now = self._clock.now_utc()
        due: list[tuple[_Entry, datetime, int]] = []
        with self._lock:
            for e in self._entries:
                if e.next_due <= now:
                    first, missed = e.next_due, 0
                    nxt = e.cron.next_after(first)
                    while nxt <= now and missed < _MAX_MISSED_COUNTED:
                        missed += 1
                        nxt = e.cron.next_after(nxt)
                    if nxt <= now:
                        nxt = e.cron.next_after(now)
                    e.next_due = nxt
                    due.append((e, first, missed))
        fired: list[tuple[str, SubmitOutcome]] = []
        for e, first, missed in due:
            outcome = self._coordinator.submit(
                Trigger(
                    e.model,
                    "schedule",
                    f"schedule {e.cron.expression!r} due at {first.isoformat()}",
                    now,
                    {"cron": e.cron.expression, "due_at": first.isoformat(), "missed": missed},
                )
            )
            fired.append((e.model, outcome))
        return fired

    def run(
        self, stop: threading.Event, *, interval_s: float = 30.0, max_ticks: int | None = None
    ) -> int:
        """Tick every ``interval_s`` until ``stop`` is set or ``max_ticks`` ticks were made.

        Returns:
            How many ticks were made.
        """
        ticks = 0
        while not stop.is_set() and (max_ticks is None or ticks < max_ticks):
            self.tick()
            ticks += 1
            if self._sleep is not None:
                self._sleep(interval_s)
            else:
                stop.wait(interval_s)
        return ticks
