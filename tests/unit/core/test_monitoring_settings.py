"""The monitoring section of the settings: defaults, and mistakes explained."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bascule.core.settings import Settings


def test_defaults_are_off_with_a_log_notifier() -> None:
    m = Settings().monitoring

    assert (None, "1h", "30d") == (m.schedule, m.window, m.feedback_lookback)
    assert ["log"] == [n.kind for n in m.notifiers]
    assert {} == m.models


def test_a_full_section_is_accepted() -> None:
    m = Settings(
        monitoring={
            "schedule": "*/15 * * * *",
            "models": {
                "fraud": {
                    "segment_column": "country",
                    "cost": {"fp_cost": 5, "fn_cost_column": "amount", "positive_label": 1},
                    "alerts": [
                        {
                            "name": "drift",
                            "metric": "drifted_features",
                            "comparison": ">=",
                            "threshold": 1,
                        },
                        {
                            "name": "acc",
                            "metric": "accuracy",
                            "comparison": "<",
                            "threshold": 0.9,
                            "for_windows": 3,
                            "severity": "critical",
                        },
                    ],
                }
            },
            "notifiers": [{"kind": "webhook", "url": "http://127.0.0.1:9/hook", "retries": 5}],
        }
    ).monitoring

    assert "*/15 * * * *" == m.schedule
    assert 3 == m.models["fraud"].alerts[1].for_windows
    assert 5 == m.notifiers[0].retries  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("section", "where"),
    [
        ({"schedule": "often"}, "monitoring.schedule"),
        ({"window": "an hour"}, "monitoring.window"),
        ({"notifiers": [{"kind": "webhook", "url": "ftp://x"}]}, "notifiers.0.webhook.url"),
        ({"notifiers": [{"kind": "pager"}]}, "monitoring.notifiers.0"),
        ({"models": {"m": {"alerts": [{"name": "a", "metric": "x", "threshold": 1,
                                        "comparison": "=="}]}}}, "comparison"),
        ({"models": {"m": {"alerts": [{"name": "a", "metric": "x", "threshold": 1}] * 2}}},
         "unique"),
        ({"models": {"m": {"cost": {"fp_cost": "cheap"}}}}, "fp_cost"),
        ({"models": {"m": {"segmnt_column": "x"}}}, "segmnt_column"),
    ],
)  # fmt: skip
def test_mistakes_are_explained(section: dict, where: str) -> None:
    with pytest.raises(ValidationError) as e:
        Settings(monitoring=section)

    assert where in str(e.value)
