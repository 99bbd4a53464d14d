"""How pipeline and step runs are written to tracking: metrics, tags, data sets, failures."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

from bascule.core.clock import Clock, now_ms
from bascule.core.records import DatasetInput, Run
from bascule.pipelines.cache import Encoded, Uncacheable
from bascule.pipelines.results import CacheStatus, StepError, StepRecord
from bascule.pipelines.steps import StepContext
from bascule.tracking.service import TrackingService

__all__ = ["TAG_KIND", "TAG_PIPELINE", "TAG_STEP", "RunRecorder", "describe_value"]

TAG_KIND = "bascule.kind"
TAG_PIPELINE = "bascule.pipeline"
TAG_STEP = "bascule.step"
_BAD_KEY_CHARS = re.compile(r"[^\w\-. /:]")
_MAX_TAG = 2000


def _key(text: str) -> str:
    return _BAD_KEY_CHARS.sub("_", text)[:250]


def describe_value(value: Any, enc: Encoded | Uncacheable) -> str:
    if value is None or isinstance(value, str | int | float | bool):
        return str(value)[:6000]
    if isinstance(enc, Encoded):
        shape = getattr(value, "shape", None)
        size = f" shape={list(shape)}" if shape is not None else ""
        return f"{type(value).__name__}{size} sha256:{enc.digest}"[:6000]
    return type(value).__name__


class RunRecorder:
    """Writes what happened to a step (or a failed pipeline) on its tracked runs."""

    def __init__(self, tracking: TrackingService, clock: Clock) -> None:
        self._tracking = tracking
        self._clock = clock

    def finish_step(
        self,
        run: Run,
        step_run: Run,
        ctx: StepContext,
        started: float,
        attempts: int,
        cache: CacheStatus,
        key: str | None,
        reason: str | None,
        error: StepError | None,
        datasets: list[DatasetInput],
    ) -> StepRecord:
        duration = self._clock.monotonic() - started
        now = now_ms(self._clock)
        user = [(_key(k), v, st, now) for k, v, st in ctx.metrics]
        own = [("duration_s", duration, 0, now), ("attempts", float(attempts), 0, now)]
        own.append(("cache_hit", 1.0 if cache == "hit" else 0.0, 0, now))
        tags = {_key(k): v[:_MAX_TAG] for k, v in ctx.tags.items()}
        tags["bascule.cache"] = cache
        if key:
            tags["bascule.cache_key"] = key
        if reason:
            tags["bascule.cache_reason"] = reason[:_MAX_TAG]
        params = {_key(k): v[:6000] for k, v in ctx.params.items()}
        self._tracking.log_batch(step_run.id, metrics=user + own, params=params, tags=tags)
        pipeline_metrics = [(_key(f"{ctx.step_name}.{k}"), v, st, t) for k, v, st, t in user]
        if pipeline_metrics:
            self._tracking.log_batch(run.id, metrics=pipeline_metrics)
        for ds in ctx.datasets:
            self._tracking.log_dataset(step_run.id, ds)
            self._tracking.log_dataset(run.id, ds)
            datasets.append(ds)
        record = StepRecord(
            name=ctx.step_name,
            run_id=step_run.id,
            status="FAILED" if error else "FINISHED",
            attempts=attempts,
            duration_s=duration,
            cache=cache,
            cache_key=key,
            cache_reason=reason,
            metrics={k: v for k, v, _, _ in user},
            error=error,
        )
        if error is not None:
            self.record_failure(step_run.id, record, step_failed=False)
        self._tracking.end_run(step_run.id, status=record.status)
        return record

    def record_failure(self, run_id: str, record: StepRecord, *, step_failed: bool) -> None:
        error = record.error
        if error is None:
            return
        tags = {
            "bascule.error_type": error.type,
            "bascule.error": error.message[:_MAX_TAG],
            "bascule.error_code": error.code or "",
        }
        if step_failed:
            tags["bascule.failed_step"] = record.name
        self._tracking.set_tags(run_id, tags)
        body = {
            "step": record.name,
            "type": error.type,
            "message": error.message,
            "code": error.code,
            "details": error.details,
            "attempts": record.attempts,
        }
        with tempfile.TemporaryDirectory(prefix="bascule-step-error-") as tmp:
            folder = Path(tmp)
            (folder / "traceback.txt").write_text(error.traceback, encoding="utf-8")
            (folder / "error.json").write_text(
                json.dumps(body, indent=2, default=str), encoding="utf-8"
            )
            for name in ("traceback.txt", "error.json"):
                self._tracking.log_artifact(run_id, folder / name, artifact_path="error")
