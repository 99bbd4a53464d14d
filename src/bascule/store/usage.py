"""The serving usage log: per model version and time window, what the server did with it.

The prediction log holds every answer; it cannot hold what has no answer. The inference
server therefore also counts, per model version, traffic policy and window of time (a few
seconds, cut when the policy changes):

* per route (``champion``, ``challenger``, ``shadow``): requests answered, their rows, and
  requests that **failed** (the version could not read the inputs, onnxruntime refused
  them, its queue was full);
* the **CPU seconds** spent running the version's batches.

Each window is a :class:`UsageRecord`; the server writes them with :meth:`UsageLog.write`
as one small JSON-lines file per model and write, under::

    {prefix}/model={name}/date={YYYY-MM-DD}/hour={HH}/part-{uuid}.jsonl

(the hour of the window's end; the model name percent-encoded). :func:`read_usage` reads
the windows overlapping a time range back: the rollout supervisor counts requests and
errors of both routes from them, and compute costs come from their CPU seconds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from bascule.core.errors import InvalidInputError
from bascule.store._prediction_parquet import model_prefix
from bascule.store._prediction_query import hour_of
from bascule.store.artifacts.base import ArtifactStore, check_key

__all__ = ["RouteUsage", "UsageLog", "UsageRecord", "read_usage"]

_HOUR: Final = timedelta(hours=1)
_MAX_LISTED_DAYS: Final = 62


@dataclass(frozen=True)
class RouteUsage:
    """What one route of one version did in a window."""

    requests: int = 0
    """Requests answered."""
    rows: int = 0
    """Rows of the answered requests."""
    errors: int = 0
    """Requests the version failed to answer."""

    def __add__(self, other: RouteUsage) -> RouteUsage:
        return RouteUsage(
            self.requests + other.requests, self.rows + other.rows, self.errors + other.errors
        )


@dataclass(frozen=True)
class UsageRecord:
    """One model version's usage over ``[start_at, end_at)`` under one traffic policy.

    Attributes:
        model_name: The served model.
        model_version: The version.
        policy: The model's traffic policy then (``""``, ``canary`` or ``shadow``).
        start_at: Start of the window (timezone-aware UTC).
        end_at: End of the window.
        cpu_seconds: CPU seconds spent running the version's batches.
        batches: onnxruntime calls.
        batch_rows: Rows of those calls (answered or not).
        routes: Route → what the version did on it.
    """

    model_name: str
    model_version: int
    policy: str
    start_at: datetime
    end_at: datetime
    cpu_seconds: float = 0.0
    batches: int = 0
    batch_rows: int = 0
    routes: Mapping[str, RouteUsage] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        """Requests answered on every route."""
        return sum(r.requests for r in self.routes.values())

    @property
    def rows(self) -> int:
        """Rows answered on every route."""
        return sum(r.rows for r in self.routes.values())

    @property
    def errors(self) -> int:
        """Failed requests on every route."""
        return sum(r.errors for r in self.routes.values())

    def route(self, name: str) -> RouteUsage:
        """What the version did on one route (zeros if nothing)."""
        return self.routes.get(name, RouteUsage())

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly values (times as ISO 8601)."""
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "policy": self.policy,
            "start_at": self.start_at.isoformat(),
            "end_at": self.end_at.isoformat(),
            "cpu_seconds": self.cpu_seconds,
            "batches": self.batches,
            "batch_rows": self.batch_rows,
            "routes": {
                k: {"requests": r.requests, "rows": r.rows, "errors": r.errors}
                for k, r in self.routes.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UsageRecord:
        """Rebuild a record from :meth:`to_dict`.

        Raises:
            KeyError, TypeError, ValueError: the data is not such a record.
        """
        return cls(
            model_name=str(data["model_name"]),
            model_version=int(data["model_version"]),
            policy=str(data.get("policy", "")),
            start_at=datetime.fromisoformat(data["start_at"]),
            end_at=datetime.fromisoformat(data["end_at"]),
            cpu_seconds=float(data.get("cpu_seconds", 0.0)),
            batches=int(data.get("batches", 0)),
            batch_rows=int(data.get("batch_rows", 0)),
            routes={
                str(k): RouteUsage(int(v["requests"]), int(v["rows"]), int(v["errors"]))
                for k, v in dict(data.get("routes", {})).items()
            },
        )


class UsageLog:
    """Writes usage records to an artifact store, one file per model and write.

    Args:
        store: Where the files go (``store.write`` is atomic).
        prefix: Key prefix of the usage log in the store.

    Raises:
        InvalidInputError: ``prefix`` is not a valid key.
    """

    def __init__(self, store: ArtifactStore, *, prefix: str = "usage") -> None:
        self._store = store
        self._prefix = check_key(prefix.rstrip("/"))
        self.files_written = 0
        """Files written so far."""

    def __repr__(self) -> str:
        return f"UsageLog({self._store!r}, prefix={self._prefix!r})"

    def write(self, records: Sequence[UsageRecord]) -> int:
        """Write the records (blocking), one JSON-lines file per model and hour.

        Raises:
            StorageError: the store failed.

        Returns:
            The files written.
        """
        groups: dict[tuple[str, str], list[str]] = {}
        for r in records:
            end = r.end_at.astimezone(UTC)
            folder = f"{model_prefix(self._prefix, r.model_name)}date={end:%Y-%m-%d}/hour={end:%H}/"
            groups.setdefault((r.model_name, folder), []).append(json.dumps(r.to_dict()))
        for (_, folder), lines in groups.items():
            key = f"{folder}part-{uuid.uuid4().hex}.jsonl"
            self._store.write(key, ("\n".join(lines) + "\n").encode())
            self.files_written += 1
        return len(groups)


def _check(name: str, value: datetime | None) -> None:
    if value is not None and value.utcoffset() is None:
        raise InvalidInputError.for_field(
            name, value, "a timezone-aware datetime (for example datetime(…, tzinfo=UTC))"
        )


def read_usage(
    store: ArtifactStore,
    model: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    prefix: str = "usage",
) -> list[UsageRecord]:
    """The usage windows of ``model`` overlapping ``[start, end)``, ordered by their end.

    A window overlaps when it ends after ``start`` and starts before ``end``. Lines that are
    not usage records are skipped.

    Args:
        store: The store the server writes to.
        model: The model name (an unknown model gives no records).
        start: Inclusive lower bound (timezone-aware); None for no bound.
        end: Exclusive upper bound (timezone-aware); None for no bound.
        prefix: Key prefix of the usage log in the store.

    Raises:
        InvalidInputError: a naive bound.
        StorageError: the store failed.
    """
    _check("start", start)
    _check("end", end)
    folder = model_prefix(check_key(prefix.rstrip("/")), model)
    if start is not None and end is not None and end - start <= timedelta(days=_MAX_LISTED_DAYS):
        # a window ending in the next hour lands in that hour's folder
        day, last = start.astimezone(UTC).date(), (end + _HOUR).astimezone(UTC).date()
        prefixes = []
        while day <= last:
            prefixes.append(f"{folder}date={day:%Y-%m-%d}/")
            day += timedelta(days=1)
    else:
        prefixes = [folder]
    out: list[UsageRecord] = []
    for p in prefixes:
        for key in store.list(p):
            hour = hour_of(key, folder, ".jsonl")
            if hour is None:
                continue
            if (start is not None and hour + _HOUR <= start) or (
                end is not None and hour > end + _HOUR
            ):
                continue
            for line in store.read(key).decode().splitlines():
                try:
                    record = UsageRecord.from_dict(json.loads(line))
                except (KeyError, TypeError, ValueError):
                    continue
                if (start is None or record.end_at > start) and (
                    end is None or record.start_at < end
                ):
                    out.append(record)
    out.sort(key=lambda r: (r.end_at, r.model_version))
    return out
