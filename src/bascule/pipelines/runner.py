"""Running pipelines: in-process (:class:`LocalRunner`) or as Ray tasks (``bascule.pipelines.ray``).

Every pipeline run is a tracked run (tag ``bascule.kind=pipeline``) with one nested run per
step (``bascule.kind=step``) holding the step's status, duration, attempts, cache hit or
miss (tags ``bascule.cache``, ``bascule.cache_key``, ``bascule.cache_reason``) and the
metrics, params, tags and data sets the step reported. The step metrics are also logged
on the pipeline run as ``<step>.<metric>``.

A step that raises is retried, if it may be (see :class:`~bascule.pipelines.StepError`),
after ``backoff_s``, ``2 * backoff_s``, ``4 * backoff_s``... (at most ``max_backoff_s``),
waiting through the injected ``sleep``. A step that still fails, returns the wrong shape
of outputs or fails an output check stops the pipeline: the step name, exception type and
message are recorded as tags, the traceback and details as artifacts (``error/``), both
runs are marked FAILED, and :meth:`PipelineRunner.run` returns a
:class:`~bascule.pipelines.PipelineFailed`. Runners never move model aliases.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

from bascule.core.clock import Clock, SystemClock, now_ms
from bascule.core.errors import (
    ArtifactNotFoundError,
    BasculeError,
    IntegrityError,
    InvalidInputError,
)
from bascule.core.records import DatasetInput, Run
from bascule.core.settings import PipelineSettings
from bascule.pipelines._execution import Attempt, collect_outputs, execute_step
from bascule.pipelines._recording import (
    TAG_KIND,
    TAG_PIPELINE,
    TAG_STEP,
    RunRecorder,
    describe_value,
)
from bascule.pipelines.cache import Encoded, StepCache, Uncacheable, encode_value, step_key
from bascule.pipelines.fingerprint import code_fingerprint
from bascule.pipelines.results import CacheStatus, PipelineFailed, PipelineResult, StepRecord
from bascule.pipelines.steps import Pipeline, Step, StepContext
from bascule.store.artifacts.base import ArtifactStore
from bascule.tracking.service import TrackingService

__all__ = ["LocalRunner", "PipelineRunner", "build_runner"]


class PipelineRunner(ABC):
    """Runs pipelines step by step with caching, retries and tracking; subclasses say where."""

    def __init__(
        self,
        tracking: TrackingService,
        artifacts: ArtifactStore,
        *,
        clock: Clock | None = None,
        sleep: Callable[[float], None] | None = None,
        max_retries: int = 0,
        backoff_s: float = 1.0,
        max_backoff_s: float = 300.0,
    ) -> None:
        """Build a runner.

        Args:
            tracking: Where runs are recorded.
            artifacts: Where the step cache lives.
            clock: Measures durations; default: the system clock.
            sleep: Waits between retries; default ``time.sleep`` (tests pass
                ``FakeClock.advance``).
            max_retries: Retries of a step that does not set its own.
            backoff_s: First wait of a step that does not set its own.
            max_backoff_s: Upper bound of any wait.
        """
        self._tracking = tracking
        self._cache = StepCache(artifacts)
        self._clock: Clock = clock or SystemClock()
        self._recorder = RunRecorder(tracking, self._clock)
        self._sleep = sleep or time.sleep
        self._max_retries = max_retries
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s

    @abstractmethod
    def _execute(self, step: Step, kwargs: dict[str, Any], ctx: StepContext) -> Attempt:
        """Call the step's function once, somewhere."""

    def run(
        self,
        pipeline: Pipeline,
        params: Mapping[str, Any] | None = None,
        *,
        experiment: str = "pipelines",
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> PipelineResult:
        """Run ``pipeline`` with ``params``, reusing cached step results.

        Args:
            pipeline: The pipeline.
            params: Values of the pipeline's declared parameters.
            experiment: The experiment of the tracked run (created if new).
            run_name: The run's name; default: the pipeline's name.
            tags: Extra tags of the pipeline run (e.g. what triggered it).

        Returns:
            A :class:`PipelineResult`, or a :class:`PipelineFailed` when a step failed.

        Raises:
            InvalidInputError: unknown parameters, or missing ones that a step needs
                (checked before anything is recorded).
            StorageError: the tracking store failed (the run is then marked FAILED).
        """
        values = self._check_params(pipeline, dict(params or {}))
        started = self._clock.monotonic()
        run = self._tracking.start_run(
            experiment=experiment,
            name=run_name or pipeline.name,
            tags={
                TAG_KIND: "pipeline",
                TAG_PIPELINE: pipeline.name,
                "bascule.steps": ",".join(s.name for s in pipeline.steps),
                **(tags or {}),
            },
        )
        try:
            return self._run(pipeline, run, values, started)
        except Exception:
            self._tracking.end_run(run.id, status="FAILED")
            raise
        except BaseException:  # KeyboardInterrupt, SystemExit: the run was stopped
            self._tracking.end_run(run.id, status="KILLED")
            raise

    @staticmethod
    def _check_params(pipeline: Pipeline, params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - set(pipeline.params))
        if unknown:
            raise InvalidInputError.for_field(
                f"parameters of pipeline {pipeline.name!r}",
                unknown,
                f"names among {list(pipeline.params)}",
            )
        missing = sorted(
            {
                f"{name} (step {s.name!r})"
                for s in pipeline.steps
                for name in s.inputs
                if name in pipeline.params and name not in params and name not in s.optional
            }
        )
        if missing:
            raise InvalidInputError.for_field(
                f"parameters of pipeline {pipeline.name!r}", missing, "a value for each"
            )
        return params

    def _run(
        self, pipeline: Pipeline, run: Run, values: dict[str, Any], started: float
    ) -> PipelineResult:
        digests: dict[str, str | None] = {}
        why: dict[str, str] = {}
        logged: dict[str, str] = {}
        for name, value in values.items():
            enc = encode_value(value)
            digests[name] = enc.digest if isinstance(enc, Encoded) else None
            if isinstance(enc, Uncacheable):
                why[name] = enc.reason
            logged[name] = describe_value(value, enc)
        if logged:
            self._tracking.log_params(run.id, logged)
        records: list[StepRecord] = []
        datasets: list[DatasetInput] = []
        outputs: dict[str, Any] = {}
        for index, s in enumerate(pipeline.steps):
            record, produced = self._run_step(pipeline, run, s, values, digests, why, datasets)
            records.append(record)
            if record.error is not None:
                self._recorder.record_failure(run.id, record, step_failed=True)
                self._tracking.end_run(run.id, status="FAILED")
                return PipelineFailed(
                    pipeline=pipeline.name,
                    run_id=run.id,
                    experiment_id=run.experiment_id,
                    status="FAILED",
                    steps=tuple(records),
                    outputs=outputs,
                    datasets=tuple(datasets),
                    duration_s=self._clock.monotonic() - started,
                    failed_step=s.name,
                    error=record.error,
                    skipped=tuple(x.name for x in pipeline.steps[index + 1 :]),
                )
            values.update(produced)
            outputs.update(produced)
        duration = self._clock.monotonic() - started
        self._tracking.log_metrics(run.id, {"duration_s": duration}, timestamp=self._now())
        self._tracking.end_run(run.id, status="FINISHED")
        return PipelineResult(
            pipeline=pipeline.name,
            run_id=run.id,
            experiment_id=run.experiment_id,
            status="FINISHED",
            steps=tuple(records),
            outputs=outputs,
            datasets=tuple(datasets),
            duration_s=duration,
        )

    def _now(self) -> int:
        return now_ms(self._clock)

    def _run_step(
        self,
        pipeline: Pipeline,
        run: Run,
        s: Step,
        values: dict[str, Any],
        digests: dict[str, str | None],
        why: dict[str, str],
        datasets: list[DatasetInput],
    ) -> tuple[StepRecord, dict[str, Any]]:
        step_run = self._tracking.start_run(
            experiment_id=run.experiment_id,
            name=f"{pipeline.name}.{s.name}",
            parent_run_id=run.id,
            tags={TAG_KIND: "step", TAG_PIPELINE: pipeline.name, TAG_STEP: s.name},
        )
        started = self._clock.monotonic()
        kwargs = {name: values[name] for name in s.inputs if name in values}
        key: str | None = None
        reason: str | None = None
        if not s.cache:
            reason = "caching is off for this step (cache=False)"
        else:
            blocked = [n for n in s.inputs if n in kwargs and digests.get(n) is None]
            if blocked:
                reason = f"input {blocked[0]!r} is not cacheable: {why.get(blocked[0], '?')}"
            else:
                inputs = {n: str(digests[n]) for n in s.inputs if n in kwargs}
                key = step_key(s.name, code_fingerprint(s.fn), s.version, inputs)
        if key is not None and (entry := self._cache.lookup(key)) is not None:
            try:
                produced = self._cache.load(entry)
            except (ArtifactNotFoundError, IntegrityError, InvalidInputError) as exc:
                reason = f"cache entry unreadable ({exc}); the step ran again"
            else:
                ctx = StepContext(s.name, run.id, step_run.id, attempt=0)
                ctx.metrics.extend(entry.metrics)
                ctx.params.update(entry.params)
                ctx.tags.update(entry.tags)
                ctx.datasets.extend(entry.datasets)
                for name, (_, digest) in entry.outputs.items():
                    digests[name] = digest
                record = self._recorder.finish_step(
                    run, step_run, ctx, started, 0, "hit", key, None, None, datasets
                )
                return record, produced

        attempts = 0
        delays: list[float] = []
        retries = s.retries if s.retries is not None else self._max_retries
        backoff = s.backoff_s if s.backoff_s is not None else self._backoff_s
        while True:
            attempts += 1
            ctx = StepContext(s.name, run.id, step_run.id, attempt=attempts)
            attempt = self._execute(s, kwargs, ctx)
            ctx = attempt.context
            error = attempt.error
            produced = {}
            if error is None:
                produced, error = collect_outputs(s, attempt.value)
            if error is None:
                break
            if not error.retryable or attempts > retries:
                ctx.set_tags({"bascule.retry_delays_s": ",".join(f"{d:g}" for d in delays)})
                failed: CacheStatus = "off" if not s.cache else "miss" if key else "uncacheable"
                record = self._recorder.finish_step(
                    run, step_run, ctx, started, attempts, failed, key, reason, error, datasets
                )
                return record, {}
            delay = min(backoff * 2 ** (attempts - 1), self._max_backoff_s)
            delays.append(delay)
            self._sleep(delay)
        if delays:
            ctx.set_tags({"bascule.retry_delays_s": ",".join(f"{d:g}" for d in delays)})

        encoded: dict[str, Encoded] = {}
        for name, value in produced.items():
            enc = encode_value(value)
            if isinstance(enc, Encoded):
                encoded[name] = enc
                digests[name] = enc.digest
            else:
                digests[name] = None
                why[name] = f"output of step {s.name!r}: {enc.reason}"
                if reason is None:
                    reason = f"output {name!r} is not cacheable: {enc.reason}"
        status: CacheStatus
        if not s.cache:
            status = "off"
        elif key is None or len(encoded) < len(produced):
            status, key = "uncacheable", None
        else:
            status = "miss"
            try:
                self._cache.save(
                    key,
                    step=s.name,
                    created_at=self._now(),
                    outputs=encoded,
                    metrics=ctx.metrics,
                    params=ctx.params,
                    tags={k: v for k, v in ctx.tags.items() if not k.startswith("bascule.")},
                    datasets=ctx.datasets,
                )
            except BasculeError as exc:
                reason = f"result not stored in the cache: {exc}"
        record = self._recorder.finish_step(
            run, step_run, ctx, started, attempts, status, key, reason, None, datasets
        )
        return record, produced


class LocalRunner(PipelineRunner):
    """Runs every step in this process, one after the other (the default)."""

    def _execute(self, step: Step, kwargs: dict[str, Any], ctx: StepContext) -> Attempt:
        return execute_step(step, kwargs, ctx)


def build_runner(
    settings: PipelineSettings,
    *,
    tracking: TrackingService,
    artifacts: ArtifactStore,
    clock: Clock | None = None,
    sleep: Callable[[float], None] | None = None,
) -> PipelineRunner:
    """The runner the settings select: Ray when ``runner: ray`` or a Ray address is set.

    Meant for the composition root (``wiring``) and the CLI's ``--runner`` option.

    Raises:
        ConfigError: (when the Ray runner first runs a step) Ray is missing or unreachable.
    """
    if settings.use_ray:
        from bascule.pipelines.ray import RayRunner

        return RayRunner(
            tracking,
            artifacts,
            address=settings.ray_address,
            clock=clock,
            sleep=sleep,
            max_retries=settings.max_retries,
            backoff_s=settings.backoff_s,
        )
    return LocalRunner(
        tracking,
        artifacts,
        clock=clock,
        sleep=sleep,
        max_retries=settings.max_retries,
        backoff_s=settings.backoff_s,
    )
