"""Pipelines: steps with declared inputs and outputs, cached, retried and tracked; data
validation; the triggers that start retraining; and a project's standard retraining
pipeline with its promotion gate, rollout plan and compute cost.

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
    from bascule.pipelines.automation import RetrainAutomation
    from bascule.pipelines.cache import StepCache
    from bascule.pipelines.costs import (
        ComputeCost,
        compute_cost,
        cost_per_1000_predictions,
    )
    from bascule.pipelines.cron import CronSchedule
    from bascule.pipelines.fingerprint import code_fingerprint
    from bascule.pipelines.gate import (
        GateDecision,
        decide,
    )
    from bascule.pipelines.project import (
        check_project,
        load_entrypoint,
        read_project_data,
    )
    from bascule.pipelines.ray import RayRunner
    from bascule.pipelines.results import (
        CacheStatus,
        PipelineFailed,
        PipelineResult,
        StepError,
        StepRecord,
    )
    from bascule.pipelines.retrain import (
        Retrainer,
        RetrainOutcome,
    )
    from bascule.pipelines.retraining import build_retraining_pipeline
    from bascule.pipelines.rollout import (
        RolloutPlan,
        RolloutState,
        advance_rollout,
        current_rollout,
        evaluate_canary,
        promote,
        rollback,
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
        run_inline,
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
    "ComputeCost",
    "CoordinatorEvent",
    "CronSchedule",
    "DataValidationError",
    "GateDecision",
    "LocalRunner",
    "NotFittedModelError",
    "Pipeline",
    "PipelineFailed",
    "PipelineResult",
    "PipelineRunner",
    "RayRunner",
    "RetrainAutomation",
    "RetrainCoordinator",
    "RetrainOutcome",
    "RetrainRecord",
    "RetrainRequest",
    "Retrainer",
    "RolloutPlan",
    "RolloutState",
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
    "advance_rollout",
    "build_retraining_pipeline",
    "build_runner",
    "check_project",
    "check_schema",
    "code_fingerprint",
    "compute_cost",
    "cost_per_1000_predictions",
    "current_rollout",
    "decide",
    "evaluate_canary",
    "load_entrypoint",
    "promote",
    "read_project_data",
    "require_fitted",
    "rollback",
    "run_inline",
    "schema_from_profile",
    "schema_from_signature",
    "step",
    "value_skew",
]

_MODULES = {
    "automation": ("RetrainAutomation",),
    "costs": ("ComputeCost", "compute_cost", "cost_per_1000_predictions"),
    "gate": ("GateDecision", "decide"),
    "project": ("check_project", "load_entrypoint", "read_project_data"),
    "retrain": ("RetrainOutcome", "Retrainer"),
    "retraining": ("build_retraining_pipeline",),
    "rollout": (
        "RolloutPlan",
        "RolloutState",
        "advance_rollout",
        "current_rollout",
        "evaluate_canary",
        "promote",
        "rollback",
    ),
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
        "run_inline",
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
