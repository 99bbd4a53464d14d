"""Alert rules: the figure a rule watches, "for N windows", de-duplication and resolve."""

from __future__ import annotations

import pytest

from bascule.core.monitoring_records import Alert, MonitoringResult, RuleState
from bascule.core.monitoring_settings import AlertRule
from bascule.monitoring.alerts import (
    WindowFigure,
    alert_message,
    evaluate_rule,
    resolve_message,
    rule_value,
)

HOUR = 3_600_000


def rule(**kw) -> AlertRule:
    base = {"name": "r", "metric": "accuracy", "comparison": "<", "threshold": 0.9}
    return AlertRule(**(base | kw))


def figures(*values: float | None) -> list[WindowFigure]:
    return [WindowFigure(i * HOUR, (i + 1) * HOUR, v) for i, v in enumerate(values)]


def result(metric: str, value: float | None, **kw) -> MonitoringResult:
    return MonitoringResult(0, HOUR, metric, value, **kw)


def test_fires_once_after_n_consecutive_breaches_and_not_again_while_firing() -> None:
    r = rule(for_windows=3)

    state, moves = evaluate_rule(r, RuleState(), figures(0.8, 0.8, 0.95, 0.8, 0.8, 0.8, 0.7, 0.6))

    assert ["fire"] == [m.kind for m in moves]
    assert (6 * HOUR, 0.8, 3) == (moves[0].window_end, moves[0].value, moves[0].consecutive)
    assert 5 == state.consecutive
    assert -1 == state.firing_alert_id
    assert 8 * HOUR == state.last_window_end


def test_a_good_window_resolves_a_firing_alert_and_resets_the_count() -> None:
    r = rule(for_windows=2)
    state, _ = evaluate_rule(r, RuleState(), figures(0.8, 0.8))

    state, moves = evaluate_rule(
        r, RuleState(state.consecutive, state.last_window_end, 7), figures(0.8, 0.8, 0.85, 0.95)
    )

    assert [("resolve", 0.95)] == [(m.kind, m.value) for m in moves]
    assert RuleState(0, 4 * HOUR, None) == state


def test_windows_without_the_figure_keep_the_count() -> None:
    state, moves = evaluate_rule(rule(for_windows=2), RuleState(), figures(0.8, None, 0.8))

    assert ["fire"] == [m.kind for m in moves]
    assert 2 == state.consecutive


def test_a_window_without_its_figure_yet_is_evaluated_when_it_arrives() -> None:
    r = rule()
    state, moves = evaluate_rule(r, RuleState(), figures(0.95, None))  # labels: window 0 only

    later, fired = evaluate_rule(r, state, figures(0.95, 0.8))  # window 1's labels came in

    assert [] == moves
    assert HOUR == state.last_window_end
    assert [("fire", 2 * HOUR)] == [(m.kind, m.window_end) for m in fired]
    assert 2 * HOUR == later.last_window_end


def test_windows_already_seen_are_skipped_so_a_rerun_never_fires_twice() -> None:
    r = rule()
    state, first = evaluate_rule(r, RuleState(), figures(0.8))
    stored = RuleState(state.consecutive, state.last_window_end, 1)

    state, again = evaluate_rule(r, stored, figures(0.8))

    assert ["fire"] == [m.kind for m in first]
    assert [] == again
    assert stored == state


def test_fire_and_resolve_in_one_batch_of_windows() -> None:
    _, moves = evaluate_rule(rule(), RuleState(), figures(0.8, 0.95, 0.7))

    assert ["fire", "resolve", "fire"] == [m.kind for m in moves]


@pytest.mark.parametrize(
    ("comparison", "value", "breach"),
    [(">", 0.5, False), (">", 0.51, True), (">=", 0.5, True), ("<", 0.5, False), ("<=", 0.5, True)],
)
def test_comparisons(comparison: str, value: float, breach: bool) -> None:
    _, moves = evaluate_rule(
        rule(comparison=comparison, threshold=0.5), RuleState(), figures(value)
    )

    assert breach == bool(moves)


def test_rule_value_takes_the_worst_feature_for_star_rules() -> None:
    results = [
        result("feature_drift", 0.05, feature="age"),
        result("feature_drift", 0.4, feature="amount"),
        result("feature_drift", None, feature="city"),
        result("drifted_features", 1.0),
    ]

    assert (0.4, "amount") == rule_value(
        rule(metric="feature_drift", feature="*", comparison=">", threshold=0.1), results
    )
    assert (1.0, None) == rule_value(rule(metric="drifted_features", comparison=">="), results)
    assert rule_value(rule(metric="feature_drift", feature="zip"), results) is None


def test_rule_value_reads_all_rows_unless_a_segment_is_named() -> None:
    results = [
        result("accuracy", 0.95),
        result("accuracy", 0.7, segment="fr"),
        result("accuracy", 0.99, segment="de"),
    ]

    assert (0.95, None) == rule_value(rule(), results)
    assert (0.7, None) == rule_value(rule(segment="fr"), results)


def test_rule_value_takes_the_smallest_for_less_than_rules_across_versions() -> None:
    results = [result("accuracy", 0.95, model_version=1), result("accuracy", 0.85, model_version=2)]

    assert 0.85 == rule_value(rule(), results)[0]  # type: ignore[index]


def test_messages_name_the_model_metric_value_threshold_and_windows() -> None:
    r = rule(name="acc", for_windows=2, severity="critical")
    _, moves = evaluate_rule(r, RuleState(), figures(0.8, 0.7))
    fired = alert_message("fraud", r, moves[0])
    alert = Alert(
        1, "fraud", "acc", "accuracy", None, "critical", "resolved", "<", 0.9, 0.7, 0, HOUR,
        HOUR, fired, resolved_at=3 * HOUR, resolved_value=0.95,
    )  # fmt: skip

    assert fired.startswith("[critical] fraud: accuracy = 0.7 < 0.9 for 2 consecutive window(s)")
    assert "rule 'acc'" in fired
    assert "[resolved] fraud: accuracy = 0.95, no longer < 0.9 (rule 'acc'" in resolve_message(
        alert
    )
