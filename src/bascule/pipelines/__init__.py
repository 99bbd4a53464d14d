"""Pipelines: steps with declared inputs and outputs, cached, retried and tracked; data
validation; and the triggers that start retraining.

Importing this package is cheap: names load their module on first use.

Example::

    from bascule.pipelines import LocalRunner, Pipeline, step

    @step(outputs="data")
    def load(n_rows: int) -> pd.DataFrame: ...

    @step(outputs="model", retries=2)
    def train(data: pd.DataFrame) -> Model: ...

    result = LocalRunner(services.tracking, services.artifacts).run(
        Pipeline("fraud", [load, train], params=["n_rows"]), {"n_rows": 1000}, experiment="fraud"
    )
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bascule.pipelines.cache import StepCache
    from bascule.pipelines.cron import CronSchedule
    from bascule.pipelines.fingerprint import code_fingerprint
    from bascule.pipelines.ray import RayRunner
    from bascule.pipelines.results import (
        CacheStatus,
        PipelineFailed,
        PipelineResult,
        StepError,
        StepRecord,
    )
    from bascule.pipelines.runner import LocalRunner, PipelineRunner, build_runner
    from bascule.pipelines.steps import Pipeline, Step, StepContext, step
    from bascule.pipelines.triggers import (
        CoordinatorEvent,
        RetrainCoordinator,
        RetrainRecord,
        RetrainRequest,
        Scheduler,
        SubmitOutcome,
        Trigger,
        TriggerKind,
    )
    from bascule.pipelines.validation import (
        ColumnSkew,
        DataValidationError,
        NotFittedModelError,
        SchemaReport,
        ValueSkewReport,
        check_schema,
        require_fitted,
        schema_from_profile,
        schema_from_signature,
        value_skew,
    )

__all__ = [
    "CacheStatus",
    "ColumnSkew",
    "CoordinatorEvent",
    "CronSchedule",
    "DataValidationError",
    "LocalRunner",
    "NotFittedModelError",
    "Pipeline",
    "PipelineFailed",
    "PipelineResult",
    "PipelineRunner",
    "RayRunner",
    "RetrainCoordinator",
    "RetrainRecord",
    "RetrainRequest",
    "Scheduler",
    "SchemaReport",
    "Step",
    "StepCache",
    "StepContext",
    "StepError",
    "StepRecord",
    "SubmitOutcome",
    "Trigger",
    "TriggerKind",
    "ValueSkewReport",
    "build_runner",
    "check_schema",
    "code_fingerprint",
    "require_fitted",
    "schema_from_profile",
    "schema_from_signature",
    "step",
    "value_skew",
]

_MODULES = {
    "cache": ("StepCache",),
    "fingerprint": ("code_fingerprint",),
    "cron": ("CronSchedule",),
    "ray": ("RayRunner",),
    "results": ("CacheStatus", "PipelineFailed", "PipelineResult", "StepError", "StepRecord"),
    "runner": ("LocalRunner", "PipelineRunner", "build_runner"),
    "steps": ("Pipeline", "Step", "StepContext", "step"),
    "triggers": (
        "CoordinatorEvent",
        "RetrainCoordinator",
        "RetrainRecord",
        "RetrainRequest",
        "Scheduler",
        "SubmitOutcome",
        "Trigger",
        "TriggerKind",
    ),
    "validation": (
        "ColumnSkew",
        "DataValidationError",
        "NotFittedModelError",
        "SchemaReport",
        "ValueSkewReport",
        "check_schema",
        "require_fitted",
        "schema_from_profile",
        "schema_from_signature",
        "value_skew",
    ),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'bascule.pipelines' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"bascule.pipelines.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
