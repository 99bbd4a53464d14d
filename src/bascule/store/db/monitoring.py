"""MonitoringRepository: all SQL of feedback, monitoring runs and results, and alerts.

Every write is one transaction: a run and all of its results together; a rule's new state with
the alert it fires or resolves. Floats that are not finite are stored as NULL.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, func, insert, or_, select, text, tuple_, update

from bascule.core.monitoring_records import (
    Alert,
    FeedbackEntry,
    MonitoringResult,
    MonitoringRun,
    RuleState,
)
from bascule.store.db._sql import upsert_rows
from bascule.store.db.engine import Database
from bascule.store.db.monitoring_tables import (
    AlertRow,
    AlertRuleStateRow,
    FeedbackRow,
    MonitoringResultRow,
    MonitoringRunRow,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["MonitoringRepository", "RuleChanges"]

T = TypeVar("T", bound="DataclassInstance")
_ALERT_COPY = (
    "metric", "feature", "severity", "comparison", "threshold", "window_start", "window_end",
    "fired_at", "message",
)  # fmt: skip
_CHUNK = 400  # keys per IN (...) query: far below SQLite's and PostgreSQL's parameter limits
_RULES_LOCK_ID = 0x6261_736D  # "basm": advisory lock key for PostgreSQL
RuleChanges = Mapping[str, Sequence["Alert | tuple[int, float | None]"]]
"""Rule name → its alert's changes in order: an alert fired, or ``(at, value)`` resolved."""


def _num(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _record(cls: type[T], row: Any, **overrides: Any) -> T:
    """A record dataclass from a row with the same column names."""
    values = {f.name: getattr(row, f.name) for f in fields(cls) if f.name not in overrides}
    return cls(**values, **overrides)


def _feedback(row: Any) -> FeedbackEntry:
    return _record(FeedbackEntry, row)


def _run(row: Any) -> MonitoringRun:
    return _record(MonitoringRun, row, versions=list(row.versions), summary=dict(row.summary))


def _result(row: Any) -> MonitoringResult:
    return _record(MonitoringResult, row, details=dict(row.details))


def _alert(row: Any) -> Alert:
    return _record(
        Alert, row, notified=bool(row.notified), resolve_notified=bool(row.resolve_notified)
    )


class MonitoringRepository:
    """Feedback, monitoring runs and results, alert rule states and alerts in the metadata DB."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- feedback --------------------------------------------------------------------------------

    def upsert_feedback(self, entries: Sequence[FeedbackEntry], *, now: int) -> tuple[int, int]:
        """Store feedback; a ``(request_id, row)`` seen before gets the new label and outcome.

        Returns:
            ``(inserted, updated)`` counts.

        Raises:
            StorageError: the database failed; nothing was written.
        """
        if not entries:
            return 0, 0
        latest = {(e.request_id, e.row): e for e in entries}  # the last of duplicates wins
        keys = list(latest)
        with self._db.transaction() as conn:
            existing: set[tuple[str, int]] = set()
            for part in _chunks(keys):
                q = select(FeedbackRow.request_id, FeedbackRow.row).where(
                    tuple_(FeedbackRow.request_id, FeedbackRow.row).in_(part)
                )
                existing.update((r.request_id, r.row) for r in conn.execute(q))
            values = [self._feedback_values(e, now) for e in latest.values()]
            upsert_rows(conn, FeedbackRow, values, ["request_id", "row"])
        return len(keys) - len(existing), len(existing)

    @staticmethod
    def _feedback_values(e: FeedbackEntry, now: int) -> dict[str, Any]:
        return {
            "request_id": e.request_id,
            "row": e.row,
            "model_name": e.model_name,
            "model_version": e.model_version,
            "label": e.label,
            "label_kind": e.label_kind,
            "outcome": _num(e.outcome),
            "timestamp": e.timestamp,
            "predicted_at": e.predicted_at,
            "received_at": now,
        }

    def feedback_for(self, request_ids: Iterable[str]) -> list[FeedbackEntry]:
        """The stored feedback of these request ids (every row of each).

        Raises:
            StorageError: the database failed.
        """
        ids = sorted(set(request_ids))
        out: list[FeedbackEntry] = []
        with self._db.transaction(write=False) as conn:
            for part in _chunks(ids):
                q = select(FeedbackRow).where(FeedbackRow.request_id.in_(part))
                out += [_feedback(r) for r in conn.execute(q)]
        return out

    def feedback_count(self, model: str | None = None) -> int:
        """Stored feedback rows (of one model; unknown request ids have no model).

        Raises:
            StorageError: the database failed.
        """
        q = select(func.count()).select_from(FeedbackRow)
        if model is not None:
            q = q.where(FeedbackRow.model_name == model)
        with self._db.transaction(write=False) as conn:
            return int(conn.execute(q).scalar_one())

    # -- runs and results ------------------------------------------------------------------------

    def add_run(
        self,
        run: MonitoringRun,
        results: Sequence[MonitoringResult],
    ) -> tuple[MonitoringRun, list[MonitoringResult]]:
        """Store a run (its ``id`` is ignored) and its results in one transaction.

        Returns:
            The run and results with their new ids.

        Raises:
            StorageError: the database failed; nothing was written.
        """
        with self._db.transaction() as conn:
            run_id = conn.execute(
                insert(MonitoringRunRow)
                .values(
                    model=run.model,
                    versions=list(run.versions),
                    window_start=run.window_start,
                    window_end=run.window_end,
                    windows=run.windows,
                    rows=run.rows,
                    labelled_rows=run.labelled_rows,
                    trigger=run.trigger,
                    created_at=run.created_at,
                    summary=run.summary,
                )
                .returning(MonitoringRunRow.id)
            ).scalar_one()
            rows = [
                {
                    "run_id": run_id,
                    "model": run.model,
                    "model_version": r.model_version,
                    "window_start": r.window_start,
                    "window_end": r.window_end,
                    "metric": r.metric,
                    "feature": r.feature,
                    "segment": r.segment,
                    "value": _num(r.value),
                    "threshold": _num(r.threshold),
                    "status": r.status,
                    "details": r.details,
                }
                for r in results
            ]
            for part in _chunks(rows, 1000):
                conn.execute(insert(MonitoringResultRow), list(part))
            stored = conn.execute(
                select(MonitoringResultRow)
                .where(MonitoringResultRow.run_id == run_id)
                .order_by(MonitoringResultRow.id)
            ).all()
        return replace(run, id=int(run_id)), [_result(r) for r in stored]

    def runs(
        self,
        model: str | None = None,
        *,
        since: int | None = None,
        until: int | None = None,
        limit: int = 100,
    ) -> list[MonitoringRun]:
        """Runs whose range overlaps ``[since, until)``, newest first.

        Raises:
            StorageError: the database failed.
        """
        t = MonitoringRunRow
        q = select(t)
        if model is not None:
            q = q.where(t.model == model)
        if since is not None:
            q = q.where(t.window_end > since)
        if until is not None:
            q = q.where(t.window_start < until)
        with self._db.transaction(write=False) as conn:
            rows = conn.execute(q.order_by(t.id.desc()).limit(limit)).all()
        return [_run(r) for r in rows]

    def results(
        self,
        model: str | None = None,
        *,
        run_id: int | None = None,
        metric: str | None = None,
        feature: str | None = None,
        status: str | None = None,
        since: int | None = None,
        until: int | None = None,
        latest_run: bool = False,
        limit: int = 10_000,
    ) -> list[MonitoringResult]:
        """Stored results, oldest window first; ``latest_run`` keeps each model's newest run.

        Raises:
            StorageError: the database failed.
        """
        t = MonitoringResultRow
        q = select(t)
        if model is not None:
            q = q.where(t.model == model)
        if run_id is not None:
            q = q.where(t.run_id == run_id)
        if metric is not None:
            q = q.where(t.metric == metric)
        if feature is not None:
            q = q.where(t.feature == feature)
        if status is not None:
            q = q.where(t.status == status)
        if since is not None:
            q = q.where(t.window_end > since)
        if until is not None:
            q = q.where(t.window_start < until)
        if latest_run:
            newest = select(func.max(MonitoringRunRow.id)).group_by(MonitoringRunRow.model)
            q = q.where(t.run_id.in_(newest.scalar_subquery()))
        with self._db.transaction(write=False) as conn:
            rows = conn.execute(q.order_by(t.window_start, t.id).limit(limit)).all()
        return [_result(r) for r in rows]

    # -- alerts ----------------------------------------------------------------------------------

    def rule_states(self, model: str) -> dict[str, RuleState]:
        """Each rule's state for ``model`` (rules never evaluated are absent).

        Raises:
            StorageError: the database failed.
        """
        t = AlertRuleStateRow
        with self._db.transaction(write=False) as conn:
            rows = conn.execute(select(t).where(t.model == model)).all()
        return {
            r.rule: RuleState(r.consecutive, r.last_window_end, r.firing_alert_id) for r in rows
        }

    def update_rules(
        self,
        model: str,
        decide: Callable[[dict[str, RuleState]], tuple[dict[str, RuleState], RuleChanges]],
        *,
        now: int,
    ) -> list[tuple[str, Alert]]:
        """Read the rule states, let ``decide`` act on them, and store the outcome atomically.

        The states are read and written in one write transaction (SQLite ``BEGIN IMMEDIATE``,
        a PostgreSQL advisory lock), so two monitors running at once never fire the same
        alert twice.

        Args:
            model: The model.
            decide: Gets rule name → stored state; returns rule name → new state, and rule
                name → its changes in order: an :class:`Alert` to fire (``id`` ignored), or
                ``(resolved_at, value)`` to resolve the rule's firing alert.
            now: Time of the change.

        Returns:
            ``("firing" | "resolved", alert as stored)`` in the order of the changes.

        Raises:
            StorageError: the database failed; nothing was written.
        """
        changed: list[tuple[str, int]] = []
        t = AlertRuleStateRow
        with self._db.transaction() as conn:
            if not self._db.is_sqlite:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _RULES_LOCK_ID})
            stored = {
                r.rule: RuleState(r.consecutive, r.last_window_end, r.firing_alert_id)
                for r in conn.execute(select(t).where(t.model == model))
            }
            states, changes = decide(dict(stored))
            for rule, state in states.items():
                firing = stored[rule].firing_alert_id if rule in stored else None
                for change in changes.get(rule, ()):
                    if isinstance(change, Alert):
                        firing = self._fire(conn, model, rule, change)
                        changed.append(("firing", firing))
                    elif firing is not None:
                        at, value = change
                        conn.execute(
                            update(AlertRow)
                            .where(AlertRow.id == firing, AlertRow.state == "firing")
                            .values(state="resolved", resolved_at=at, resolved_value=_num(value))
                        )
                        changed.append(("resolved", firing))
                        firing = None
                row = {
                    "model": model, "rule": rule, "consecutive": state.consecutive,
                    "last_window_end": state.last_window_end, "firing_alert_id": firing,
                    "updated_at": now,
                }  # fmt: skip
                upsert_rows(conn, t, [row], ["model", "rule"])
            ids = [i for _, i in changed]
            rows = conn.execute(select(AlertRow).where(AlertRow.id.in_(ids))).all()
        by_id = {r.id: _alert(r) for r in rows}
        return [(kind, by_id[i]) for kind, i in changed]

    @staticmethod
    def _fire(conn: Connection, model: str, rule: str, alert: Alert) -> int:
        values = {k: getattr(alert, k) for k in _ALERT_COPY} | {
            "model": model, "rule": rule, "state": "firing", "value": _num(alert.value),
            "notified": False, "resolve_notified": False, "attempts": 0,
        }  # fmt: skip
        stmt = insert(AlertRow).values(**values).returning(AlertRow.id)
        return int(conn.execute(stmt).scalar_one())

    def record_delivery(
        self, alert_id: int, *, resolve: bool, ok: bool, attempts: int, error: str | None
    ) -> None:
        """Record the outcome of notifying an alert's firing (or its resolve).

        Raises:
            StorageError: the database failed.
        """
        values: dict[str, Any] = {"attempts": AlertRow.attempts + attempts, "last_error": error}
        values["resolve_notified" if resolve else "notified"] = ok
        with self._db.transaction() as conn:
            conn.execute(update(AlertRow).where(AlertRow.id == alert_id).values(**values))

    def alerts(
        self,
        model: str | None = None,
        *,
        state: str | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        """Alerts, newest first; ``since``/``until`` keep those active at some time in between.

        Raises:
            StorageError: the database failed.
        """
        t = AlertRow
        q = select(t)
        if model is not None:
            q = q.where(t.model == model)
        if state is not None:
            q = q.where(t.state == state)
        if since is not None:
            q = q.where(or_(t.resolved_at.is_(None), t.resolved_at >= since))
        if until is not None:
            q = q.where(t.fired_at < until)
        with self._db.transaction(write=False) as conn:
            rows = conn.execute(q.order_by(t.id.desc()).limit(limit)).all()
        return [_alert(r) for r in rows]
