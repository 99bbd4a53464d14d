"""Materialisation: the latest value per entity of a view, from the offline source to the
online store, in bulk.

DuckDB picks the latest row per entity in the window; rows stream out in entity-key order in
Arrow batches, each written in one bulk upsert (the online store encodes the Arrow columns
itself). After each batch the watermark row in the metadata
DB records the last key written, so a run that was interrupted resumes after it when the same
window is asked for again. Writes keep newer stored rows, so re-running is harmless.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bascule.core.clock import Clock, now_ms
from bascule.features.catalog import ViewPart
from bascule.features.offline import DuckDBOfflineStore
from bascule.store.db.features import FeatureRepository, Watermark
from bascule.store.online.base import OnlineStore

__all__ = ["MaterializeResult", "ProgressFn", "materialize_view", "ms_of", "start_for_incremental"]

ProgressFn = Callable[[str, int, int], None]
"""Called as ``progress(view, rows_done, rows_total)`` after each batch."""


@dataclass(frozen=True)
class MaterializeResult:
    """What one view's materialisation did."""

    view: str
    version: int
    start: datetime
    end: datetime
    rows: int
    resumed: bool
    seconds: float
    online_store: str


def ms_of(when: datetime) -> int:
    """Milliseconds since the epoch; a naive datetime is taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def start_for_incremental(mark: Watermark | None, part: ViewPart, end_ms: int) -> int:
    """Where an incremental run starts: the watermark, else ``end - ttl``, else the epoch."""
    if mark is not None and mark.view_version == part.version and mark.materialized_until:
        return mark.materialized_until
    ttl = part.view.ttl
    return 0 if ttl is None else max(0, end_ms - int(ttl.total_seconds() * 1000))


def materialize_view(
    part: ViewPart,
    *,
    start_ms: int,
    end_ms: int,
    online: OnlineStore,
    offline: DuckDBOfflineStore,
    repository: FeatureRepository,
    clock: Clock,
    batch_rows: int,
    progress: ProgressFn | None = None,
) -> MaterializeResult:
    """Write the latest row per entity with ``start <= event time < end`` to the online store.

    Raises:
        InvalidInputError: the source cannot be read.
        StorageError: the online store or the metadata DB failed (the watermark keeps the
            last batch written, so running again resumes).
    """
    began = time.perf_counter()
    view = part.view
    target = online.url
    mark = repository.watermark(view.name, target)
    same_version = mark is not None and mark.view_version == part.version
    resumed = bool(
        mark is not None
        and same_version
        and mark.pending_start == start_ms
        and mark.pending_end == end_ms
        and mark.cursor is not None
    )
    after = mark.cursor if resumed and mark is not None else None
    done = mark.rows_written if resumed and mark is not None else 0
    until = mark.materialized_until if same_version and mark is not None else None

    def save(*, cursor: str | None, pending: bool, until_ms: int | None) -> None:
        repository.save_watermark(
            Watermark(
                view=view.name,
                target=target,
                view_version=part.version,
                materialized_until=until_ms,
                pending_start=start_ms if pending else None,
                pending_end=end_ms if pending else None,
                cursor=cursor,
                rows_written=done,
                updated_at=now_ms(clock),
            )
        )

    online.ensure_table(view.name, {f.name: f.dtype for f in part.features})
    save(cursor=after, pending=True, until_ms=until)
    latest = offline.latest_rows(
        view,
        part.join_keys,
        part.features,
        start_ms=start_ms,
        end_ms=end_ms,
        after_key=after,
        batch_rows=batch_rows,
    )
    total = done + latest.total
    names = [f.name for f in part.features]
    if progress is not None:
        progress(view.name, done, total)
    for batch in latest.batches:
        if not batch.num_rows:
            continue
        # Arrow columns straight from DuckDB: the store encodes them without Python values.
        keys = batch.column(0)
        columns = [batch.column(i + 2) for i in range(len(names))]
        online.write(view.name, names, keys, batch.column(1), columns)
        done += batch.num_rows
        after = keys[batch.num_rows - 1].as_py()
        save(cursor=after, pending=True, until_ms=until)
        if progress is not None:
            progress(view.name, done, total)
    save(cursor=None, pending=False, until_ms=max(until or 0, end_ms))
    return MaterializeResult(
        view=view.name,
        version=part.version,
        start=_dt(start_ms),
        end=_dt(end_ms),
        rows=done,
        resumed=resumed,
        seconds=time.perf_counter() - began,
        online_store=target,
    )
