"""Five-field cron expressions (minute hour day-of-month month day-of-week), as Vixie cron.

Each field is ``*``, a number, a range ``a-b``, a step ``*/n``, ``a-b/n`` or ``a/n``
(from ``a`` to the field's maximum), or a comma-separated list of those. Months and days
of the week also take English abbreviations (``jan``…``dec``, ``sun``…``sat``); day of
the week ``0`` and ``7`` are both Sunday. As in Vixie cron, when both the day of the
month and the day of the week are restricted (neither field starts with ``*``), a day
matches when *either* matches; otherwise both must. The macros ``@yearly``
(``@annually``), ``@monthly``, ``@weekly``, ``@daily`` (``@midnight``) and ``@hourly``
are accepted. Times are matched in the time zone of the datetime given (bascule passes
UTC) at minute resolution.

Example::

    >>> from datetime import UTC, datetime
    >>> office_hours = CronSchedule.parse("*/15 9-17 * * mon-fri")
    >>> office_hours.next_after(datetime(2026, 1, 2, 17, 50, tzinfo=UTC))  # a Friday
    datetime.datetime(2026, 1, 5, 9, 0, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta

from bascule.core.errors import InvalidInputError

__all__ = ["CronSchedule"]

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
# (name, low, high, names)
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_SEARCH_DAYS = 366 * 9  # the next 29 February can be 8 years away (2096 → 2104)


def _bad(expression: str, what: str, value: str, expected: str) -> InvalidInputError:
    return InvalidInputError(
        f"invalid cron expression {expression!r}: {what} {value!r}, expected {expected}",
        field="cron",
        value=expression,
        expected=expected,
    )


def _number(expr: str, what: str, text: str, low: int, high: int, names: dict[str, int]) -> int:
    value = names.get(text.lower())
    if value is None:
        if not text.isdigit():
            spelled = f" or a name ({', '.join(names)})" if names else ""
            raise _bad(expr, what, text, f"a number {low}-{high}{spelled}")
        value = int(text)
    if not low <= value <= high:
        raise _bad(expr, what, text, f"a number {low}-{high}")
    return value


def _parse_field(
    expr: str, text: str, what: str, low: int, high: int, names: dict[str, int]
) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise _bad(expr, what, text, "no empty list items")
        base, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise _bad(expr, what, item, "a step of at least 1 after '/'")
            step = int(step_text)
        if base == "*":
            start, stop = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            start = _number(expr, what, a, low, high, names)
            stop = _number(expr, what, b, low, high, names)
            if start > stop:
                raise _bad(expr, what, item, "a range from low to high")
        else:
            start = _number(expr, what, base, low, high, names)
            stop = high if step_text else start
        values.update(range(start, stop + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression; see the module docstring for the syntax."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 = Sunday … 6 = Saturday."""
    day_restricted: bool
    weekday_restricted: bool

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        """Parse a five-field expression or a macro.

        Raises:
            InvalidInputError: naming the field, the bad value and what was expected, or
                saying that the expression never matches (e.g. ``0 0 30 2 *``).
        """
        if not isinstance(expression, str):
            raise InvalidInputError.for_field("cron", expression, "a cron expression string")
        text = _MACROS.get(expression.strip().lower(), expression)
        parts = text.split()
        if len(parts) != 5:
            raise _bad(
                expression,
                "expression",
                expression,
                "5 fields 'minute hour day-of-month month day-of-week' or a macro "
                f"({', '.join(_MACROS)})",
            )
        sets = [
            _parse_field(expression, part, what, low, high, names)
            for part, (what, low, high, names) in zip(parts, _FIELDS, strict=True)
        ]
        weekdays = frozenset(d % 7 for d in sets[4])
        schedule = cls(
            expression=expression,
            minutes=sets[0],
            hours=sets[1],
            days=sets[2],
            months=sets[3],
            weekdays=weekdays,
            day_restricted=not parts[2].startswith("*"),
            weekday_restricted=not parts[4].startswith("*"),
        )
        if schedule.day_restricted and not schedule.weekday_restricted:
            longest = {m: 29 if m == 2 else calendar.monthrange(2001, m)[1] for m in range(1, 13)}
            if not any(d <= longest[m] for m in schedule.months for d in schedule.days):
                raise _bad(expression, "expression", expression, "a day that exists in the months")
        return schedule

    def _day_matches(self, at: datetime) -> bool:
        day = at.day in self.days
        weekday = (at.weekday() + 1) % 7 in self.weekdays
        if self.day_restricted and self.weekday_restricted:
            return day or weekday
        return day and weekday

    def matches(self, at: datetime) -> bool:
        """Whether the minute of ``at`` is one the schedule fires at (seconds are ignored)."""
        return (
            at.minute in self.minutes
            and at.hour in self.hours
            and at.month in self.months
            and self._day_matches(at)
        )

    def next_after(self, after: datetime) -> datetime:
        """The first matching minute strictly after ``after`` (same time zone).

        Raises:
            InvalidInputError: the schedule never matches within nine years.
        """
        t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        hours = sorted(self.hours)
        minutes = sorted(self.minutes)
        for _ in range(_SEARCH_DAYS):
            if t.month in self.months and self._day_matches(t):
                for h in hours:
                    if h < t.hour:
                        continue
                    for m in minutes:
                        if h > t.hour or m >= t.minute:
                            return t.replace(hour=h, minute=m)
            t = (t + timedelta(days=1)).replace(hour=0, minute=0)
        raise _bad(self.expression, "expression", self.expression, "a schedule that fires")
