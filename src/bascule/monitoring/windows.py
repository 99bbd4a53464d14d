"""Durations (``15m``, ``1h``, ``7d``) and the windows a monitoring run covers.

A run without bounds covers one window, the last ``window`` before now (a sliding window:
scheduled runs closer together than the window overlap). With ``since`` and ``until`` the
range is cut into consecutive windows of ``window`` from ``since``; the last one may be
shorter. With ``since`` alone the range ends now; with ``until`` alone it is one window
ending at ``until``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from bascule.core.errors import InvalidInputError
from bascule.core.monitoring_settings import DURATION_PATTERN

__all__ = ["Window", "parse_duration", "plan_windows", "to_ms"]

Window = tuple[datetime, datetime]
"""``(start, end)``: the rows with ``start <= timestamp < end``."""

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(value: str | timedelta, *, field: str = "window") -> timedelta:
    """A positive duration from ``90s``, ``15m``, ``1h``, ``7d``, ``2w`` (or a timedelta).

    Raises:
        InvalidInputError: Not such a duration, or not positive.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    else:
        match = re.match(DURATION_PATTERN, str(value))
        if match is None:
            raise InvalidInputError.for_field(field, value, "a duration such as 15m, 1h or 7d")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise InvalidInputError.for_field(field, value, "a positive duration")
    return timedelta(seconds=seconds)


def to_ms(at: datetime) -> int:
    """Milliseconds since the epoch of a timezone-aware time."""
    return int(at.timestamp() * 1000)


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.utcoffset() is None:
        raise InvalidInputError.for_field(field, value, "a timezone-aware time (e.g. ...Z)")
    return value


def plan_windows(
    *,
    now: datetime,
    window: timedelta,
    since: datetime | None = None,
    until: datetime | None = None,
    max_windows: int = 1000,
) -> list[Window]:
    """The windows of one run, oldest first (see the module docstring).

    Raises:
        InvalidInputError: A bound is naive, ``since`` is not before ``until``, or the range
            needs more than ``max_windows`` windows.
    """
    since, until = _aware(since, "since"), _aware(until, "until")
    if since is None:
        end = until or now
        return [(end - window, end)]
    end = until or now
    if since >= end:
        raise InvalidInputError(
            f"invalid range: since {since.isoformat()} is not before until {end.isoformat()}",
            field="since",
            value=since.isoformat(),
            expected="since < until",
        )
    count = -(-(end - since) // window)  # ceiling division of timedeltas
    if count > max_windows:
        raise InvalidInputError.for_field(
            "window",
            f"{count} windows of {window} from {since.isoformat()} to {end.isoformat()}",
            f"at most {max_windows} windows (monitoring.max_windows); use a longer --window",
        )
    out: list[Window] = []
    start = since
    while start < end:
        out.append((start, min(start + window, end)))
        start += window
    return out
