"""FeedbackIngester: labels that arrive late, checked and joined to the prediction log.

A request id is **known** when the prediction log holds an answer with that id and row in
``[now - lookback, now + 1 day)`` (``monitoring.feedback_lookback``, 30 days by default; the
day allows for clocks of other hosts),
in the model the record names or, when it names none, in any registered model. Known
feedback is checked against the version that answered (a class of a classifier, a number
for a regressor) and stored with that model and version. Unknown feedback is stored as
given — it joins if the prediction shows up later — and counted and listed in the result.
Ingest cost grows with the lookback (the log is scanned once per call): send feedback in
batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from bascule.core.clock import Clock
from bascule.core.errors import InvalidInputError
from bascule.core.monitoring_records import FeedbackEntry
from bascule.core.schema import ModelSignature
from bascule.monitoring.feedback import (
    SAMPLE_SIZE,
    Feedback,
    FeedbackResult,
    coerce_label,
    encode_label,
    parse_feedback,
)
from bascule.monitoring.windows import to_ms

if TYPE_CHECKING:
    from bascule.registry.service import RegistryService
    from bascule.store.db.monitoring import MonitoringRepository

__all__ = ["FeedbackIngester"]

_ROUTE_RANK = {"champion": 0, "": 1, "challenger": 2, "shadow": 3}
_WRITE_CHUNK = 5000
_SKEW = timedelta(days=1)  # answers logged "after now" still count (clocks of other hosts)
Answer = tuple[str, int, int]
"""``(model, version, time in ms)`` of a logged answer."""


class FeedbackIngester:
    """Checks feedback records, finds their predictions, and stores them idempotently.

    Args:
        predictions: ``(model, start, end)`` → logged rows.
        repository: Where feedback is stored.
        registry: Signatures of the versions that answered.
        clock: Source of "now".
        lookback: How far back the log is searched for a request id.
    """

    def __init__(
        self,
        predictions: Callable[[str, datetime, datetime], pd.DataFrame],
        repository: MonitoringRepository,
        registry: RegistryService,
        clock: Clock,
        *,
        lookback: timedelta,
    ) -> None:
        self._read = predictions
        self._repo = repository
        self._registry = registry
        self._clock = clock
        self.lookback = lookback
        self._signatures: dict[tuple[str, int], ModelSignature] = {}

    def ingest(
        self,
        records: Iterable[Mapping[str, Any] | Feedback],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> FeedbackResult:
        """Check and store feedback records.

        Args:
            records: Dicts with ``request_id``, ``label`` and optionally ``row``, ``model``,
                ``outcome``, ``timestamp`` (or :class:`~bascule.monitoring.feedback.Feedback`).
            progress: Called with the number of records written after each chunk.

        Returns:
            Counts of accepted (new), updated, unknown and invalid records, with samples.

        Raises:
            StorageError: The database or the prediction log cannot be read or written.
        """
        now = self._clock.now_utc()
        parsed: list[Feedback] = []
        invalid: list[str] = []
        received = 0
        for i, raw in enumerate(records):
            received += 1
            item = raw if isinstance(raw, Feedback) else parse_feedback(raw, i)
            if isinstance(item, Feedback):
                parsed.append(item)
            else:
                invalid.append(item)
        index = self._answered(parsed, now - self.lookback, now)
        entries: list[FeedbackEntry] = []
        unknown: list[str] = []
        for i, fb in enumerate(parsed):
            entry = self._entry(fb, index.get((fb.request_id, fb.row)))
            if isinstance(entry, str):
                invalid.append(f"record {i} (request_id {fb.request_id!r}): {entry}")
                continue
            if entry.model_version is None:
                unknown.append(fb.request_id)
            entries.append(entry)
        inserted = updated = 0
        labelled: dict[str, int] = {}
        groups: dict[tuple[str | None, bool], list[FeedbackEntry]] = {}
        for entry in entries:  # written per model, so new labelled rows count per model
            groups.setdefault((entry.model_name, entry.model_version is not None), []).append(entry)
        for (model, known), group in groups.items():
            for start in range(0, len(group), _WRITE_CHUNK):
                chunk = group[start : start + _WRITE_CHUNK]
                new, changed = self._repo.upsert_feedback(chunk, now=to_ms(now))
                inserted, updated = inserted + new, updated + changed
                if known and model is not None and new:
                    labelled[model] = labelled.get(model, 0) + new
                if progress is not None:
                    progress(len(chunk))
        return FeedbackResult(
            received, inserted, updated, len(unknown), unknown[:SAMPLE_SIZE], len(invalid),
            invalid[:SAMPLE_SIZE], _shown(self.lookback), labelled,
        )  # fmt: skip

    def _entry(self, fb: Feedback, hit: Answer | None) -> FeedbackEntry | str:
        label, model, version, predicted_at = fb.label, fb.model, None, None
        if hit is not None:
            model, version, predicted_at = hit
            try:
                label = coerce_label(label, self._signature(model, version), f"{model}:{version}")
            except InvalidInputError as exc:
                return exc.message
        text, kind = encode_label(label)
        stamp = None if fb.timestamp is None else to_ms(fb.timestamp)
        return FeedbackEntry(
            fb.request_id, fb.row, text, kind, model, version, fb.outcome, stamp, predicted_at
        )

    def _answered(
        self, feedback: Sequence[Feedback], start: datetime, now: datetime
    ) -> dict[tuple[str, int], Answer]:
        """(request id, row) → the logged answer (the champion's first, then unrouted ones)."""
        if not feedback:
            return {}
        named = {fb.model for fb in feedback if fb.model is not None}
        if any(fb.model is None for fb in feedback):
            named |= {m.name for m in self._registry.list_models()}
        wanted = {(fb.request_id, fb.row) for fb in feedback}
        found: dict[tuple[str, int], tuple[int, Answer]] = {}
        for model in sorted(named):
            frame = self._read(model, start, now + _SKEW)
            if frame.empty:
                continue
            ids = frame["request_id"].astype(str).tolist()
            rows = frame["row"].astype(int).tolist()
            versions = frame["model_version"].astype(int).tolist()
            routes = frame["route"].fillna("").astype(str).tolist()
            since_epoch = frame["timestamp"] - pd.Timestamp(0, tz="UTC")
            times = (since_epoch // pd.Timedelta(milliseconds=1)).astype(int).tolist()
            for rid, row, version, route, ms in zip(
                ids, rows, versions, routes, times, strict=True
            ):
                key = (rid, row)
                if key not in wanted:
                    continue
                rank = _ROUTE_RANK.get(route, 9)
                if key not in found or rank < found[key][0]:
                    found[key] = (rank, (model, version, ms))
        return {k: v for k, (_, v) in found.items()}

    def _signature(self, model: str, version: int) -> ModelSignature:
        key = (model, version)
        if key not in self._signatures:
            mv = self._registry.resolve(f"{model}:{version}")
            self._signatures[key] = ModelSignature.model_validate(mv.signature)
        return self._signatures[key]


def _shown(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
