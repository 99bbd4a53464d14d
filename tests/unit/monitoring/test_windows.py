"""Durations and the windows of a monitoring run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bascule.core.errors import InvalidInputError
from bascule.monitoring.windows import parse_duration, plan_windows

NOW = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", timedelta(seconds=90)), ("15m", timedelta(minutes=15)), ("1h", H),
     ("1.5h", timedelta(minutes=90)), ("7d", timedelta(days=7)), ("2w", timedelta(days=14))],
)  # fmt: skip
def test_durations(text: str, expected: timedelta) -> None:
    assert expected == parse_duration(text)


@pytest.mark.parametrize("text", ["", "1", "h", "1y", "-1h", "0m"])
def test_bad_durations_name_the_field(text: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid window") as e:
        parse_duration(text)

    assert "invalid_input" == e.value.code


def test_without_bounds_one_window_ends_now() -> None:
    assert [(NOW - H, NOW)] == plan_windows(now=NOW, window=H)


def test_a_range_is_cut_into_windows_and_the_last_is_shorter() -> None:
    since = NOW - timedelta(hours=2, minutes=30)

    windows = plan_windows(now=NOW, window=H, since=since)

    assert [(since, since + H), (since + H, since + 2 * H), (since + 2 * H, NOW)] == windows


def test_until_alone_gives_one_window_ending_there() -> None:
    until = NOW - 5 * H

    assert [(until - H, until)] == plan_windows(now=NOW, window=H, until=until)


def test_bad_ranges_are_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"since .* is not before until"):
        plan_windows(now=NOW, window=H, since=NOW, until=NOW - H)
    with pytest.raises(InvalidInputError, match="at most 3 windows"):
        plan_windows(now=NOW, window=H, since=NOW - 5 * H, max_windows=3)
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        plan_windows(now=NOW, window=H, since=datetime(2026, 3, 1))
