"""Alert rules over stored monitoring results: "for N consecutive windows", de-duplication, resolve.

Pure logic, no I/O: :func:`rule_value` picks the figure a rule watches in one window's
results, :func:`evaluate_rule` walks windows oldest first from a rule's stored
:class:`~bascule.core.monitoring_records.RuleState` and returns the new state and the
transitions to act on.

The rules, in order of the windows:

* a window whose figure breaches the threshold adds one to ``consecutive``; when
  ``consecutive`` reaches ``for_windows`` and no alert is firing, the alert **fires** —
  once: while it keeps firing, further breaches notify nobody (de-duplication);
* a window whose figure does not breach sets ``consecutive`` to 0 and, if the alert is
  firing, **resolves** it;
* a window without the figure (no labels yet, the feature absent) is no evidence either
  way: the count and the alert stay as they are;
* windows that end at or before the last window a rule has seen are skipped, so running
  a monitor again over the same range never fires or resolves twice.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from bascule.core.monitoring_records import Alert, MonitoringResult, RuleState
from bascule.core.monitoring_settings import AlertRule

__all__ = [
    "ALL_SEGMENTS",
    "COMPARISONS",
    "Transition",
    "WindowFigure",
    "alert_message",
    "breaches",
    "evaluate_rule",
    "resolve_message",
    "rule_value",
]

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
"""Comparison symbol → the test ``value <op> threshold`` that means a breach."""

ALL_SEGMENTS = "(all)"
"""Segment name of the figures over every row."""


@dataclass(frozen=True)
class WindowFigure:
    """The figure a rule watches in one window (``value`` None: no figure this window)."""

    window_start: int
    window_end: int
    value: float | None
    feature: str | None = None
    """The feature the value is about (the worst one for ``feature: "*"`` rules)."""


@dataclass(frozen=True)
class Transition:
    """An alert to fire or resolve, with the window and value that caused it."""

    kind: Literal["fire", "resolve"]
    window_start: int
    window_end: int
    value: float | None
    consecutive: int
    feature: str | None = None


def breaches(rule: AlertRule, value: float) -> bool:
    """Whether ``value`` breaches the rule's threshold."""
    return COMPARISONS[rule.comparison](value, rule.threshold)


def _segment_matches(rule: AlertRule, segment: str | None) -> bool:
    if rule.segment is None:
        return segment is None or segment == ALL_SEGMENTS
    return segment == rule.segment


def _feature_matches(rule: AlertRule, feature: str | None) -> bool:
    if rule.feature == "*":
        return feature is not None
    return feature == rule.feature


def rule_value(
    rule: AlertRule, results: Iterable[MonitoringResult]
) -> tuple[float, str | None] | None:
    """The figure ``rule`` watches among one window's results: the worst matching one.

    Matching: same metric, same feature (``*``: any feature), same segment (unset: all rows),
    a finite value. Worst is the largest for ``>``/``>=`` and the smallest for ``<``/``<=``,
    so with several features or versions a breach anywhere counts.

    Returns:
        ``(value, feature)``, or None when no result matches.
    """
    found = [
        (float(r.value), r.feature)
        for r in results
        if r.metric == rule.metric
        and _feature_matches(rule, r.feature)
        and _segment_matches(rule, r.segment)
        and r.value is not None
        and math.isfinite(r.value)
    ]
    if not found:
        return None
    sign = 1.0 if rule.comparison in (">", ">=") else -1.0
    return max(found, key=lambda vf: sign * vf[0])


def evaluate_rule(
    rule: AlertRule, state: RuleState, figures: Sequence[WindowFigure]
) -> tuple[RuleState, list[Transition]]:
    """Walk the windows oldest first and return the rule's new state and transitions.

    Args:
        rule: The rule.
        state: Its stored state (``RuleState()`` for a rule never evaluated).
        figures: The rule's figure per window, in any order.

    Returns:
        The new state (``firing_alert_id`` is kept from ``state``, or set to ``-1`` for an
        alert fired here that has no id yet, or None once resolved) and the transitions.
    """
    consecutive, last = state.consecutive, state.last_window_end
    firing = state.firing_alert_id
    out: list[Transition] = []
    for fig in sorted(figures, key=lambda f: (f.window_end, f.window_start)):
        if last is not None and fig.window_end <= last:
            continue
        if fig.value is None or not math.isfinite(fig.value):
            # Not measurable yet (no labels in the window so far): the window is not "seen",
            # so a later run evaluates it once its feedback has arrived.
            continue
        last = fig.window_end
        kind: Literal["fire", "resolve"] | None = None
        if breaches(rule, fig.value):
            consecutive += 1
            if consecutive >= rule.for_windows and firing is None:
                firing, kind = -1, "fire"
        else:
            consecutive = 0
            if firing is not None:
                firing, kind = None, "resolve"
        if kind is not None:
            start, end = fig.window_start, fig.window_end
            out.append(Transition(kind, start, end, fig.value, consecutive, fig.feature))
    return RuleState(consecutive, last, firing), out


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _what(rule: AlertRule, feature: str | None) -> str:
    where = f" of '{feature}'" if feature is not None else ""
    seg = f" (segment '{rule.segment}')" if rule.segment is not None else ""
    return f"{rule.metric}{where}{seg}"


def alert_message(model: str, rule: AlertRule, move: Transition) -> str:
    """The text of a firing alert: model, what breached, how, for how long, and when."""
    value = "-" if move.value is None else f"{move.value:.4g}"
    return (
        f"[{rule.severity}] {model}: {_what(rule, move.feature)} = {value} {rule.comparison} "
        f"{rule.threshold:g} for {move.consecutive} consecutive window(s); "
        f"last window {_when(move.window_start)} to {_when(move.window_end)} (rule '{rule.name}')"
    )


def resolve_message(alert: Alert) -> str:
    """The text sent when ``alert`` resolves."""
    value = "-" if alert.resolved_value is None else f"{alert.resolved_value:.4g}"
    feature = f" of '{alert.feature}'" if alert.feature else ""
    return (
        f"[resolved] {alert.model}: {alert.metric}{feature} = {value}, no longer "
        f"{alert.comparison} {alert.threshold:g} "
        f"(rule '{alert.rule}', fired {_when(alert.fired_at)})"
    )
