"""What a pipeline run returns: one record per step, and the run's outcome.

A run that succeeded returns a :class:`PipelineResult`; a run that stopped at a failed step
returns a :class:`PipelineFailed` (a subclass) carrying the step, the exception type and
message, and the traceback (also stored as an artifact of the tracked runs).
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bascule.core.errors import BasculeError, ConfigError, InvalidInputError
from bascule.core.records import DatasetInput

__all__ = ["CacheStatus", "PipelineFailed", "PipelineResult", "StepError", "StepRecord"]

CacheStatus = Literal["hit", "miss", "off", "uncacheable"]
"""``hit``: reused from the cache; ``miss``: ran and stored; ``off``: the step has
``cache=False``; ``uncacheable``: ran, but an input or output cannot be cached (see the
record's ``cache_reason``)."""

_MAX_MESSAGE = 4000


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


@dataclass(frozen=True)
class StepError:
    """Why a step failed: the exception's type, message, bascule code, details and traceback."""

    type: str
    message: str
    code: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    traceback: str = ""
    retryable: bool = True
    """Whether another attempt may succeed: bad input (``InvalidInputError`` and its
    subclasses, ``ConfigError``) fails the same way again, so it is not retried."""

    @classmethod
    def from_exception(cls, exc: BaseException) -> StepError:
        """Describe ``exc`` in plain, transportable values (it may come from a Ray worker)."""
        kind = type(exc)
        name = kind.__qualname__ if kind.__module__ == "builtins" else kind.__name__
        details = _json_safe(exc.details) if isinstance(exc, BasculeError) else {}
        return cls(
            type=name,
            message=(str(exc) or repr(exc))[:_MAX_MESSAGE],
            code=exc.code if isinstance(exc, BasculeError) else None,
            details=details,
            traceback="".join(traceback.format_exception(exc)),
            retryable=not isinstance(exc, InvalidInputError | ConfigError),
        )


@dataclass(frozen=True)
class StepRecord:
    """What happened to one step of a pipeline run."""

    name: str
    run_id: str
    status: Literal["FINISHED", "FAILED"]
    attempts: int
    """How many times the function was called (0 on a cache hit)."""
    duration_s: float
    cache: CacheStatus
    cache_key: str | None = None
    cache_reason: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: StepError | None = None

    @property
    def cache_hit(self) -> bool:
        """Whether the step's outputs were reused from the cache."""
        return self.cache == "hit"


@dataclass(frozen=True, kw_only=True)
class PipelineResult:
    """The outcome of a pipeline run that finished: every output, and how each step went."""

    pipeline: str
    run_id: str
    experiment_id: int
    status: Literal["FINISHED", "FAILED"]
    steps: tuple[StepRecord, ...]
    outputs: Mapping[str, Any]
    """Every output produced by the steps that ran or were reused, by name."""
    datasets: tuple[DatasetInput, ...] = ()
    """Fingerprints of the data sets the steps logged (lineage: data → run → model)."""
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether every step finished."""
        return self.status == "FINISHED"

    def step(self, name: str) -> StepRecord:
        """The record of step ``name``.

        Raises:
            InvalidInputError: the step did not run (the message lists those that did).
        """
        for record in self.steps:
            if record.name == name:
                return record
        raise InvalidInputError.for_field(
            "step", name, f"one of the steps that ran: {[s.name for s in self.steps]}"
        )

    @property
    def cached_steps(self) -> list[str]:
        """Names of the steps whose outputs came from the cache."""
        return [s.name for s in self.steps if s.cache_hit]


@dataclass(frozen=True, kw_only=True)
class PipelineFailed(PipelineResult):
    """A pipeline run that stopped at a failed step; the run is marked FAILED."""

    failed_step: str
    error: StepError
    skipped: tuple[str, ...] = ()
    """Steps that did not run because of the failure."""

    @property
    def reason(self) -> str:
        """One line: which step failed, with which exception and message."""
        return f"step {self.failed_step!r} failed: {self.error.type}: {self.error.message}"
