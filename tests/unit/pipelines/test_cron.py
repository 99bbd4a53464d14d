"""CronSchedule: five-field cron matching and next fire times, as Vixie cron."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bascule.core.errors import InvalidInputError
from bascule.pipelines import CronSchedule


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "when", "expected"),
    [
        ("* * * * *", at(2026, 3, 1, 12, 34), True),
        ("*/15 * * * *", at(2026, 3, 1, 12, 45), True),
        ("*/15 * * * *", at(2026, 3, 1, 12, 46), False),
        ("5-10 * * * *", at(2026, 3, 1, 0, 10), True),
        ("5-10 * * * *", at(2026, 3, 1, 0, 11), False),
        ("0-30/10 * * * *", at(2026, 3, 1, 0, 30), True),
        ("0-30/10 * * * *", at(2026, 3, 1, 0, 40), False),
        ("10/20 * * * *", at(2026, 3, 1, 0, 50), True),
        ("10/20 * * * *", at(2026, 3, 1, 0, 0), False),
        ("0 9,12,18 * * *", at(2026, 3, 1, 12, 0), True),
        ("0 9,12,18 * * *", at(2026, 3, 1, 13, 0), False),
        ("1,2,40-42 * * * *", at(2026, 3, 1, 0, 41), True),
        ("0 0 * * 0", at(2026, 3, 1, 0, 0), True),  # 2026-03-01 is a Sunday
        ("0 0 * * 7", at(2026, 3, 1, 0, 0), True),  # 7 is Sunday too
        ("0 0 * * sun", at(2026, 3, 1, 0, 0), True),
        ("0 0 * * MON-fri", at(2026, 3, 1, 0, 0), False),
        ("0 0 * * mon-fri", at(2026, 3, 2, 0, 0), True),
        ("0 0 * * 5-7", at(2026, 3, 1, 0, 0), True),  # Fri..Sun wraps to 0
        ("0 0 1 jan,jul *", at(2026, 7, 1, 0, 0), True),
        ("0 0 1 jan,jul *", at(2026, 6, 1, 0, 0), False),
        # both day fields restricted: either matches (the 13th, or any Friday)
        ("0 0 13 * 5", at(2026, 3, 13, 0, 0), True),  # a Friday the 13th
        ("0 0 13 * 5", at(2026, 4, 13, 0, 0), True),  # a Monday the 13th
        ("0 0 13 * 5", at(2026, 4, 17, 0, 0), True),  # a Friday
        ("0 0 13 * 5", at(2026, 4, 14, 0, 0), False),
        # day of month starts with '*': both must match
        ("0 0 */2 * 5", at(2026, 4, 17, 0, 0), True),  # 17th, odd day, Friday
        ("0 0 */2 * 5", at(2026, 4, 10, 0, 0), False),  # a Friday on an even day
        ("@hourly", at(2026, 3, 1, 7, 0), True),
        ("@daily", at(2026, 3, 1, 0, 1), False),
        ("@weekly", at(2026, 3, 1, 0, 0), True),
        ("@monthly", at(2026, 3, 1, 0, 0), True),
        ("@yearly", at(2027, 1, 1, 0, 0), True),
    ],
)
def test_matches(expression: str, when: datetime, expected: bool) -> None:
    assert expected == CronSchedule.parse(expression).matches(when)


def test_seconds_are_ignored() -> None:
    assert CronSchedule.parse("30 * * * *").matches(datetime(2026, 1, 1, 5, 30, 59, tzinfo=UTC))


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/15 * * * *", at(2026, 1, 1, 0, 0), at(2026, 1, 1, 0, 15)),
        ("*/15 * * * *", at(2026, 1, 1, 23, 50), at(2026, 1, 2, 0, 0)),
        ("0 0 1 * *", at(2026, 12, 15, 8, 0), at(2027, 1, 1, 0, 0)),
        ("*/15 9-17 * * mon-fri", at(2026, 1, 2, 17, 50), at(2026, 1, 5, 9, 0)),
        ("0 0 29 2 *", at(2026, 3, 1, 0, 0), at(2028, 2, 29, 0, 0)),
        ("30 2 31 * *", at(2026, 4, 1, 0, 0), at(2026, 5, 31, 2, 30)),
        ("* * * * *", at(2026, 1, 1, 0, 0), at(2026, 1, 1, 0, 1)),
    ],
)
def test_next_after(expression: str, after: datetime, expected: datetime) -> None:
    assert expected == CronSchedule.parse(expression).next_after(after)


def test_next_after_is_strictly_after_even_mid_minute() -> None:
    schedule = CronSchedule.parse("0 * * * *")

    assert at(2026, 1, 1, 1, 0) == schedule.next_after(datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC))


@pytest.mark.parametrize(
    ("expression", "match"),
    [
        ("* * * *", "5 fields"),
        ("60 * * * *", "minute '60'"),
        ("* 24 * * *", "hour '24'"),
        ("* * 0 * *", "day of month '0'"),
        ("* * * 13 *", "month '13'"),
        ("* * * * 8", "day of week '8'"),
        ("*/0 * * * *", "step of at least 1"),
        ("10-5 * * * *", "range from low to high"),
        ("1,,2 * * * *", "empty list items"),
        ("* * * foo *", "month 'foo'"),
        ("0 0 30 2 *", "a day that exists"),
        ("@reboot", "5 fields"),
    ],
)
def test_bad_expressions_name_the_field(expression: str, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match) as e:
        CronSchedule.parse(expression)

    assert "invalid_input" == e.value.code
    assert "cron" == e.value.field
