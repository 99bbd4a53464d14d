"""Monitoring records returned by the store and the monitoring service: frozen dataclasses.

Times are integers of milliseconds since the epoch (UTC), as in :mod:`bascule.core.records`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Alert",
    "AlertState",
    "FeedbackEntry",
    "MonitoringResult",
    "MonitoringRun",
    "ResultStatus",
    "RuleState",
]

ResultStatus = Literal["ok", "warn", "alert", "finding"]
"""``ok``: within bounds; ``warn``: a quality problem; ``alert``: drift or a rule breached;
``finding``: a named problem with the input (empty window, missing column…)."""
AlertState = Literal["firing", "resolved"]


@dataclass(frozen=True)
class FeedbackEntry:
    """The label (and business outcome) of one predicted row, as stored.

    ``label`` is kept as text with its JSON kind (``int``, ``float``, ``str``, ``bool``) so it
    can be turned back into the model's class type. ``model_name`` is None while the request
    id is unknown to the prediction log.
    """

    request_id: str
    row: int
    label: str
    label_kind: str
    model_name: str | None = None
    model_version: int | None = None
    outcome: float | None = None
    timestamp: int | None = None
    predicted_at: int | None = None
    received_at: int = 0


@dataclass(frozen=True)
class MonitoringResult:
    """One figure of one window: a metric about a feature (or the model) and a segment."""

    window_start: int
    window_end: int
    metric: str
    value: float | None
    status: ResultStatus = "ok"
    feature: str | None = None
    segment: str | None = None
    threshold: float | None = None
    model_version: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    run_id: int | None = None
    model: str = ""


@dataclass(frozen=True)
class MonitoringRun:
    """A monitoring run over ``[window_start, window_end)``, split in ``windows`` windows."""

    id: int
    model: str
    versions: list[int]
    window_start: int
    window_end: int
    windows: int
    rows: int
    labelled_rows: int
    trigger: str
    created_at: int
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Alert:
    """An alert fired by a rule in a window, and its resolution."""

    id: int
    model: str
    rule: str
    metric: str
    feature: str | None
    severity: str
    state: AlertState
    comparison: str
    threshold: float
    value: float | None
    window_start: int
    window_end: int
    fired_at: int
    message: str
    resolved_at: int | None = None
    resolved_value: float | None = None
    notified: bool = False
    resolve_notified: bool = False
    attempts: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class RuleState:
    """Where an alert rule stands for a model.

    ``consecutive`` breaching windows ending at ``last_window_end``; ``firing_alert_id`` the
    alert firing now (None when none).
    """

    consecutive: int = 0
    last_window_end: int | None = None
    firing_alert_id: int | None = None
