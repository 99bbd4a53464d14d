"""Retraining a project's model: one run of the standard pipeline, one process at a time.

:class:`Retrainer` is the function a :class:`~bascule.pipelines.RetrainCoordinator` calls
(``RetrainCoordinator(Retrainer(...))``): the coordinator keeps one retraining per model
at a time in this process and coalesces triggers; the retrainer adds a file lock under
``BASCULE_HOME`` (``locks/retrain-<model>.lock``) so a second process retraining the same
model is refused (or waits, with ``wait_for_lock``) instead of running beside it. The OS
releases the lock of a process that dies, and a re-run resumes from the step cache.

It returns a :class:`RetrainOutcome`: ``finished`` (the pipeline completed, whatever the
gate decided), ``failed`` (a step failed; the step and reason are also recorded on the
model's history as ``retrain_failed`` when the model exists) or ``refused`` (the lock).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from bascule.business.costs import CostMatrix
from bascule.core.clock import Clock, SystemClock
from bascule.core.errors import InvalidInputError, ModelNotFoundError
from bascule.core.monitoring_settings import CostSettings
from bascule.core.project_settings import ProjectSettings
from bascule.pipelines.gate import GateDecision
from bascule.pipelines.results import PipelineFailed, PipelineResult
from bascule.pipelines.retraining import build_retraining_pipeline, observing_steps
from bascule.pipelines.runner import LocalRunner
from bascule.pipelines.triggers import RetrainRequest
from bascule.registry.service import RegistryService
from bascule.store.artifacts.base import ArtifactStore
from bascule.store.locks import FileLock
from bascule.tracking.service import TrackingService

__all__ = ["RetrainOutcome", "Retrainer", "cost_matrix", "retrain_lock"]


def cost_matrix(cost: CostSettings | None) -> CostMatrix | None:
    """The cost matrix of a model's ``monitoring.models.<model>.cost`` (columns of the data)."""
    return None if cost is None else CostMatrix.from_settings(cost)


def retrain_lock(
    lock_dir: Path, model: str, *, sleep: Callable[[float], None] | None = None
) -> FileLock:
    """The lock that keeps two processes from retraining ``model`` at once (``sleep`` waits
    between attempts to take it)."""
    path = lock_dir / f"retrain-{model}.lock"
    return FileLock(path) if sleep is None else FileLock(path, sleep=sleep)


@dataclass(frozen=True)
class RetrainOutcome:
    """What one retraining did: the pipeline's result, the gate decision, the new version."""

    model: str
    status: Literal["finished", "failed", "refused"]
    reason: str
    """One line: the gate's reason, the failed step and its error, or who holds the lock."""
    run_id: str | None = None
    result: PipelineResult | None = None
    decision: GateDecision | None = None
    version: int | None = None
    """The version registered (finished runs)."""
    alias: str | None = None
    """The alias it got: ``challenger``, ``champion`` (first model) or None."""
    failed_step: str | None = None
    error_type: str | None = None
    error_code: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the pipeline completed (the gate may still have failed)."""
        return self.status == "finished"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (steps included, the pipeline's outputs left out)."""
        steps = []
        if self.result is not None:
            for s in self.result.steps:
                steps.append(
                    {
                        "name": s.name,
                        "status": s.status,
                        "cache": s.cache,
                        "attempts": s.attempts,
                        "duration_s": round(s.duration_s, 3),
                        "error": None if s.error is None else f"{s.error.type}: {s.error.message}",
                    }
                )
        skipped = list(self.result.skipped) if isinstance(self.result, PipelineFailed) else []
        return {
            "model": self.model,
            "status": self.status,
            "reason": self.reason,
            "run_id": self.run_id,
            "version": self.version,
            "alias": self.alias,
            "failed_step": self.failed_step,
            "error_type": self.error_type,
            "error_code": self.error_code,
            "gate": None if self.decision is None else self.decision.to_dict(),
            "steps": steps,
            "skipped": skipped,
        }


class Retrainer:
    """Retrains one project's model with the standard pipeline (a coordinator's function).

    Args:
        registry: The model registry.
        tracking: Where the pipeline run and its steps are recorded.
        artifacts: Where the step cache lives.
        project: The project settings.
        cost: The model's cost settings (``monitoring.models.<model>.cost``).
        base_dir: Where the project's relative paths start.
        lock_dir: Folder of the lock files (``BASCULE_HOME/locks``).
        clock: Measures durations.
        max_retries: Retries of a failed step (``pipelines.max_retries``).
        backoff_s: First wait before a retry (``pipelines.backoff_s``).
        sleep: Waits between step retries and between attempts to take the lock.
        wait_for_lock: Wait for another process's retraining to end instead of refusing.
        on_step: Called with each step's name as it starts (not for cached steps).
    """

    def __init__(
        self,
        *,
        registry: RegistryService,
        tracking: TrackingService,
        artifacts: ArtifactStore,
        project: ProjectSettings,
        cost: CostSettings | None,
        base_dir: Path,
        lock_dir: Path,
        clock: Clock | None = None,
        max_retries: int = 0,
        backoff_s: float = 1.0,
        sleep: Callable[[float], None] | None = None,
        wait_for_lock: bool = False,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        self._registry = registry
        self._project = project
        self._cost = cost
        self._base_dir = base_dir
        self._lock_dir = lock_dir
        self._clock: Clock = clock or SystemClock()
        self._wait = wait_for_lock
        self._on_step = on_step
        self._sleep = sleep
        self._runner = LocalRunner(
            tracking,
            artifacts,
            clock=self._clock,
            sleep=sleep,
            max_retries=max_retries,
            backoff_s=backoff_s,
        )

    def __call__(self, request: RetrainRequest) -> RetrainOutcome:
        """Run the pipeline for ``request.model`` under the lock.

        Raises:
            InvalidInputError: the request is for another model than the project's.
            StorageError: the tracking store or the lock file failed.
        """
        name = self._project.model
        if request.model != name:
            raise InvalidInputError.for_field(
                "model", request.model, f"the project's model {name!r}"
            )
        lock = retrain_lock(self._lock_dir, name, sleep=self._sleep)
        kinds = request.kinds
        holder = {"model": name, "triggers": kinds}
        taken = lock.acquire(holder) if self._wait else lock.try_acquire(holder)
        if not taken:
            return RetrainOutcome(name, "refused", _held_by(name, lock.holder()))
        try:
            return self._run(request)
        finally:
            lock.release()

    def _run(self, request: RetrainRequest) -> RetrainOutcome:
        name = self._project.model
        pipeline, params = build_retraining_pipeline(
            self._registry,
            self._project,
            base_dir=self._base_dir,
            costs=cost_matrix(self._cost),
            positive_label=None if self._cost is None else self._cost.positive_label,
            description=f"{name} retrained by the standard pipeline ({', '.join(request.kinds)})",
        )
        reasons = "; ".join(t.reason for t in request.triggers)[:2000]
        with observing_steps(self._on_step):
            result = self._runner.run(
                pipeline,
                params,
                experiment=name,
                run_name=f"retrain-{name}",
                tags={
                    "bascule.model": name,
                    "bascule.triggers": ",".join(request.kinds),
                    "bascule.trigger_reason": reasons,
                },
            )
        if isinstance(result, PipelineFailed):
            self._record_failure(result)
            return RetrainOutcome(
                name,
                "failed",
                result.reason,
                run_id=result.run_id,
                result=result,
                failed_step=result.failed_step,
                error_type=result.error.type,
                error_code=result.error.code,
            )
        decision = GateDecision.from_dict(result.outputs["decision"])
        promotion = result.outputs["promotion"]
        return RetrainOutcome(
            name,
            "finished",
            decision.reason,
            run_id=result.run_id,
            result=result,
            decision=decision,
            version=int(promotion["version"]),
            alias=promotion.get("alias"),
        )

    def _record_failure(self, result: PipelineFailed) -> None:
        with contextlib.suppress(ModelNotFoundError):  # a first run has no model to note it on
            self._registry.record_event(
                self._project.model,
                "retrain_failed",
                reason=result.reason[:2000],
                details={
                    "run_id": result.run_id,
                    "failed_step": result.failed_step,
                    "error_type": result.error.type,
                    "error_code": result.error.code,
                    "message": result.error.message,
                    "skipped": list(result.skipped),
                },
            )


def _held_by(model: str, holder: dict[str, Any]) -> str:
    who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
    since = holder.get("since")
    if isinstance(since, int | float) and math.isfinite(since):
        who += f" since {datetime.fromtimestamp(since, tz=UTC).strftime('%Y-%m-%d %H:%M:%S')} UTC"
    return f"a retraining of {model!r} is already running ({who}); try again when it ends"
