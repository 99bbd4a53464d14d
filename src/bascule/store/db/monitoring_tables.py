"""SQLAlchemy tables of monitoring, on the metadata DB's ``Base``: feedback, runs, results, alerts.

Times are milliseconds since the epoch (UTC), as in the other tables.

* ``feedback``: one label (and business outcome) per predicted row, keyed by the request id
  the server returned and the row within that request (0 for one-row requests).
* ``monitoring_runs``: one row per ``bascule monitor run`` (or scheduled run) over a time range.
* ``monitoring_results``: one row per window, metric, feature and segment of a run.
* ``alerts``: every alert that fired, and when it resolved.
* ``alert_rule_states``: per model and rule, the consecutive breaching windows seen so far and
  the alert firing now, so "for N windows" and de-duplication survive restarts.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from bascule.store.db.tables import Base

__all__ = [
    "AlertRow",
    "AlertRuleStateRow",
    "FeedbackRow",
    "MonitoringResultRow",
    "MonitoringRunRow",
]


class FeedbackRow(Base):
    """The label that arrived for one predicted row."""

    __tablename__ = "feedback"

    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    row: Mapped[int] = mapped_column(Integer, primary_key=True, default=0)
    model_name: Mapped[str | None] = mapped_column(String(250), index=True)
    model_version: Mapped[int | None] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(Text)
    label_kind: Mapped[str] = mapped_column(String(8))
    outcome: Mapped[float | None] = mapped_column(Float)
    timestamp: Mapped[int | None] = mapped_column(BigInteger)
    predicted_at: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[int] = mapped_column(BigInteger, index=True)


class MonitoringRunRow(Base):
    """One monitoring run over ``[window_start, window_end)``."""

    __tablename__ = "monitoring_runs"
    __table_args__ = (Index("ix_monitoring_runs_model_end", "model", "window_end"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(250))
    versions: Mapped[list[Any]] = mapped_column(JSON)
    window_start: Mapped[int] = mapped_column(BigInteger)
    window_end: Mapped[int] = mapped_column(BigInteger)
    windows: Mapped[int] = mapped_column(Integer)
    rows: Mapped[int] = mapped_column(BigInteger)
    labelled_rows: Mapped[int] = mapped_column(BigInteger)
    trigger: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[int] = mapped_column(BigInteger)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)


class MonitoringResultRow(Base):
    """One figure of one window: a metric, about a feature and a segment, with its verdict."""

    __tablename__ = "monitoring_results"
    __table_args__ = (Index("ix_monitoring_results_model_metric", "model", "metric", "window_end"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("monitoring_runs.id", ondelete="CASCADE"), index=True
    )
    model: Mapped[str] = mapped_column(String(250))
    model_version: Mapped[int | None] = mapped_column(Integer)
    window_start: Mapped[int] = mapped_column(BigInteger)
    window_end: Mapped[int] = mapped_column(BigInteger)
    metric: Mapped[str] = mapped_column(String(128))
    feature: Mapped[str | None] = mapped_column(String(250))
    segment: Mapped[str | None] = mapped_column(String(250))
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)


class AlertRow(Base):
    """An alert: fired by a rule in a window, resolved later (or still firing)."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_model_state", "model", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(250))
    rule: Mapped[str] = mapped_column(String(128))
    metric: Mapped[str] = mapped_column(String(128))
    feature: Mapped[str | None] = mapped_column(String(250))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    comparison: Mapped[str] = mapped_column(String(2))
    threshold: Mapped[float] = mapped_column(Float)
    value: Mapped[float | None] = mapped_column(Float)
    window_start: Mapped[int] = mapped_column(BigInteger)
    window_end: Mapped[int] = mapped_column(BigInteger)
    fired_at: Mapped[int] = mapped_column(BigInteger)
    resolved_at: Mapped[int | None] = mapped_column(BigInteger)
    resolved_value: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    notified: Mapped[bool] = mapped_column(Boolean, default=False)
    resolve_notified: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class AlertRuleStateRow(Base):
    """Where a rule stands for a model: consecutive breaches and the alert firing now."""

    __tablename__ = "alert_rule_states"

    model: Mapped[str] = mapped_column(String(250), primary_key=True)
    rule: Mapped[str] = mapped_column(String(128), primary_key=True)
    consecutive: Mapped[int] = mapped_column(Integer, default=0)
    last_window_end: Mapped[int | None] = mapped_column(BigInteger)
    firing_alert_id: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[int] = mapped_column(BigInteger)
