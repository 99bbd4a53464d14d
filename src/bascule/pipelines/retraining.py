"""The standard retraining pipeline of a project, built from the engine's ``@step``s.

::

    champion ─┐
    load ──► validate ──► split ──► train ──► threshold ──► evaluate ──► gate
                                                            ──► register ──► promote

* ``champion``: what the current champion is (version, input schema, reference profile,
  where its training data ends, its decision threshold); nothing on the first run;
* ``load``: every row of the data source (DuckDB over Parquet, or SQL);
* ``validate``: schema skew against the declared columns and the champion's inputs stops
  the pipeline; value skew against its profile is recorded (``skew.*`` metrics);
* ``split``: train / validation / holdout by time (:mod:`bascule.pipelines.splits`);
* ``train``: the project's entrypoint on the training rows; its result must be a fitted
  binary classifier (``require_fitted``);
* ``threshold``: the decision threshold that minimises the business cost on validation;
* ``evaluate``: challenger and champion on the same holdout: business cost, ML metrics;
* ``gate``: :func:`bascule.pipelines.gate.decide`;
* ``register``: the challenger becomes a new version whatever the gate said, with its
  lineage (pipeline run, training data digest), its figures and its decision threshold
  (tag and metric ``decision_threshold``);
* ``promote``: the gate decision is recorded (``gate_passed`` / ``gate_failed`` with the
  figures); a version that passed gets alias ``challenger`` and a rollout starts; with no
  champion at all, it becomes ``champion`` directly. This step never moves ``champion``
  over an existing one.

A failing step stops the pipeline (the runner records the reason); nothing the later steps
would have written is written, so the champion keeps serving.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import pandas as pd

from bascule.business.costs import CostMatrix
from bascule.core.errors import AliasNotFoundError, ModelNotFoundError
from bascule.core.project_settings import ProjectSettings
from bascule.core.schema import ModelSignature
from bascule.pipelines.gate import GateDecision, decide
from bascule.pipelines.project import load_entrypoint, read_project_data, training_params
from bascule.pipelines.rollout import CHALLENGER, CHAMPION, RolloutPlan, record_rollout
from bascule.pipelines.scoring import (
    choose_threshold,
    classes_of,
    holdout_figures,
    is_positive,
    positive_scores,
)
from bascule.pipelines.splits import check_rows, data_spec, split_rows
from bascule.pipelines.steps import Pipeline, StepContext, step
from bascule.pipelines.validation import require_fitted, schema_from_signature
from bascule.registry.decision import TAG_POSITIVE_LABEL, TAG_THRESHOLD
from bascule.registry.service import RegistryService

__all__ = [
    "METRIC_THRESHOLD",
    "RETRAINING_STEPS",
    "TAG_DATA_UNTIL",
    "TAG_POSITIVE_LABEL",
    "TAG_THRESHOLD",
    "build_retraining_pipeline",
    "observing_steps",
]

METRIC_THRESHOLD = TAG_THRESHOLD
TAG_DATA_UNTIL = "training_data_until"
"""Version tag holding the ISO time its training (and validation) rows end; the next
run's holdout only keeps rows newer than this."""
SAMPLE_ROWS = 5000
RETRAINING_STEPS = (
    "champion",
    "load",
    "validate",
    "split",
    "train",
    "threshold",
    "evaluate",
    "gate",
    "register",
    "promote",
)
"""The steps of the standard pipeline, in the order they run."""

_OBSERVER: ContextVar[Callable[[str], None] | None] = ContextVar("bascule_retrain_observer")


@contextmanager
def observing_steps(callback: Callable[[str], None] | None) -> Iterator[None]:
    """Within the block, ``callback(step_name)`` is called as each step of a retraining
    pipeline starts running in this thread (not for steps reused from the cache)."""
    token = _OBSERVER.set(callback)
    try:
        yield
    finally:
        _OBSERVER.reset(token)


def _started(name: str) -> None:
    callback = _OBSERVER.get(None)
    if callback is not None:
        callback(name)


def _check_classifier(model: Any) -> None:
    require_fitted(model)
    classes_of(model)


def build_retraining_pipeline(
    registry: RegistryService,
    project: ProjectSettings,
    *,
    base_dir: Path,
    costs: CostMatrix | None,
    positive_label: str | int | None = None,
    description: str = "",
) -> tuple[Pipeline, dict[str, Any]]:
    """The standard pipeline for ``project`` and the parameters to run it with.

    Args:
        registry: Where the champion is read and the challenger registered.
        project: The project settings.
        base_dir: Where the project's relative paths start.
        costs: The model's cost matrix (None: threshold 0.5, no business figures).
        positive_label: The positive class (default: the model's second class).
        description: Description of the registered version.

    Returns:
        ``(pipeline, params)`` for ``runner.run(pipeline, params)``.
    """
    name = project.model
    data_settings = project.data
    features = list(data_settings.features)
    label = data_settings.label
    extra = list(costs.columns) if costs is not None else []
    gate_settings = project.gate

    @step(outputs="champion", cache=False)
    def champion() -> dict[str, Any]:
        _started("champion")
        try:
            mv = registry.resolve(f"{name}@{CHAMPION}")
        except (ModelNotFoundError, AliasNotFoundError):
            return {}
        signature = ModelSignature.model_validate(mv.signature)
        return {
            "version": mv.version,
            "schema": schema_from_signature(signature),
            "profile": registry.profile(mv),
            "data_until": mv.tags.get(TAG_DATA_UNTIL),
            "threshold": mv.tags.get(TAG_THRESHOLD),
        }

    @step(outputs="data", cache=False)
    def load(ctx: StepContext) -> pd.DataFrame:
        _started("load")
        frame = read_project_data(data_settings, base_dir=base_dir)
        source = data_settings.source or data_settings.sql or ""
        ctx.log_dataset(frame, name=f"{name}-source", source=source, context="source")
        ctx.log_metrics({"rows": len(frame)})
        return frame

    @step(outputs="checked")
    def validate(
        data: pd.DataFrame, champion: dict[str, Any], spec: dict[str, Any], ctx: StepContext
    ) -> pd.DataFrame:
        _started("validate")
        rows, metrics = check_rows(data, spec, champion)
        ctx.log_metrics(metrics)
        return rows

    @step(outputs=("train_rows", "validation_rows", "holdout_rows", "split_info"))
    def split(
        checked: pd.DataFrame, champion: dict[str, Any], spec: dict[str, Any], ctx: StepContext
    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
        _started("split")
        train, validation, holdout, info = split_rows(checked, spec, champion)
        for part, frame in (("train", train), ("validation", validation), ("holdout", holdout)):
            if len(frame):
                ctx.log_dataset(frame, name=f"{name}-{part}", source="split", context=part)
        ctx.log_metrics({k: v for k, v in info.items() if isinstance(v, int)})
        return train, validation, holdout, info

    @step(outputs="model", cache=False, checks={"model": _check_classifier})
    def train(train_rows: pd.DataFrame, train_params: dict[str, Any], ctx: StepContext) -> Any:
        _started("train")
        fn = load_entrypoint(project.training, base_dir=base_dir)
        ctx.log_params(
            {k: v for k, v in train_params.items() if k not in ("features", "categorical")}
        )
        return fn(train_rows[[*features, label]].copy(), dict(train_params))

    @step(outputs="threshold", cache=False)
    def threshold(model: Any, validation_rows: pd.DataFrame, ctx: StepContext) -> dict[str, Any]:
        _started("threshold")
        scores, positive = positive_scores(model, validation_rows, features, positive_label)
        labels = is_positive(validation_rows[label], positive)
        chosen, cost = choose_threshold(labels, scores, costs, validation_rows)
        ctx.log_metrics({"threshold": chosen, "validation_business_cost": cost})
        return {"threshold": chosen, "validation_business_cost": cost, "positive": positive}

    @step(outputs="figures", cache=False)
    def evaluate(
        model: Any,
        threshold: dict[str, Any],
        holdout_rows: pd.DataFrame,
        validation_rows: pd.DataFrame,
        champion: dict[str, Any],
        ctx: StepContext,
    ) -> dict[str, Any]:
        _started("evaluate")
        positive = threshold["positive"]
        labels = is_positive(holdout_rows[label], positive)
        scores, _ = positive_scores(model, holdout_rows, features, positive)
        new = holdout_figures(labels, scores, threshold["threshold"], costs, holdout_rows)
        out: dict[str, Any] = {"challenger": new, "champion": None, "champion_version": None}
        ctx.log_metrics({f"challenger.{k}": v for k, v in new.items()})
        if champion:
            old_model = registry.load(f"{name}:{champion['version']}")
            stored = champion.get("threshold")
            if stored is not None:
                old_threshold, source = float(stored), "version"
            else:  # registered by other means: choose it on the same validation rows
                old_scores, _ = positive_scores(old_model, validation_rows, features, positive)
                val_labels = is_positive(validation_rows[label], positive)
                old_threshold, _ = choose_threshold(val_labels, old_scores, costs, validation_rows)
                source = "validation"
            old_scores, _ = positive_scores(old_model, holdout_rows, features, positive)
            old = holdout_figures(labels, old_scores, old_threshold, costs, holdout_rows)
            out |= {
                "champion": old,
                "champion_version": champion["version"],
                "champion_threshold": old_threshold,
                "champion_threshold_source": source,
            }
            ctx.log_metrics({f"champion.{k}": v for k, v in old.items()})
        return out

    @step(outputs="decision", cache=False)
    def gate(figures: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
        _started("gate")
        decision = decide(
            figures["challenger"],
            figures["champion"],
            gate_settings,
            champion_version=figures["champion_version"],
        )
        ctx.set_tags({"gate": "passed" if decision.passed else "failed"})
        ctx.set_tags({"gate_reason": decision.reason})
        return decision.to_dict()

    @step(outputs="registered", cache=False)
    def register(
        model: Any,
        train_rows: pd.DataFrame,
        figures: dict[str, Any],
        decision: dict[str, Any],
        threshold: dict[str, Any],
        split_info: dict[str, Any],
        ctx: StepContext,
    ) -> dict[str, Any]:
        _started("register")
        from bascule.tracking.datasets import fingerprint

        sample = train_rows[features]
        if len(sample) > SAMPLE_ROWS:
            sample = sample.sample(SAMPLE_ROWS, random_state=0).sort_index()
        chosen = float(threshold["threshold"])
        metrics = {
            METRIC_THRESHOLD: chosen,
            "validation.business_cost": threshold["validation_business_cost"],
        }
        metrics |= {f"holdout.{k}": v for k, v in figures["challenger"].items()}
        metrics |= {k: float(v) for k, v in split_info.items() if isinstance(v, int)}
        passed = bool(decision["passed"])
        mv = registry.register(
            name,
            model,
            sample=sample,
            run_id=ctx.pipeline_run_id,
            dataset_digest=fingerprint(train_rows, name=f"{name}-train").digest,
            metrics={k: float(v) for k, v in metrics.items() if _finite(v)},
            tags={
                TAG_THRESHOLD: repr(chosen),
                TAG_POSITIVE_LABEL: str(threshold["positive"]),
                TAG_DATA_UNTIL: str(split_info["data_until"]),
                "gate": "passed" if passed else "failed",
                "pipeline_run_id": ctx.pipeline_run_id,
            },
            description=description or f"{name} retrained by the standard pipeline",
            feature_service=project.feature_service,
            missing_features=project.missing_features if project.feature_service else None,
            reason=f"retraining run {ctx.pipeline_run_id}: gate {'passed' if passed else 'failed'}",
        )
        ctx.log_metrics({"version": mv.version})
        return {"version": mv.version, "digest": mv.digest}

    @step(outputs="promotion", cache=False)
    def promote(
        registered: dict[str, Any], decision: dict[str, Any], ctx: StepContext
    ) -> dict[str, Any]:
        _started("promote")
        return _promote(registry, project, registered["version"], decision, ctx.pipeline_run_id)

    steps = [champion, load, validate, split, train, threshold, evaluate, gate, register, promote]
    pipeline = Pipeline(f"retrain-{name}", steps, params=["spec", "train_params"])
    params = {"spec": data_spec(data_settings, extra), "train_params": training_params(project)}
    return pipeline, params


def _finite(value: Any) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return number == number and abs(number) != float("inf")


def _promote(
    registry: RegistryService,
    project: ProjectSettings,
    version: int,
    decision_data: Mapping[str, Any],
    run_id: str,
) -> dict[str, Any]:
    """Record the gate decision on the history, then give a passing version its alias."""
    name = project.model
    decision = GateDecision.from_dict(decision_data)
    details = {**decision.to_dict(), "challenger_version": version, "run_id": run_id}
    kind = "gate_passed" if decision.passed else "gate_failed"
    registry.record_event(name, kind, version=version, reason=decision.reason, details=details)
    if not decision.passed:
        return {"version": version, "alias": None, "gate": kind}
    current = registry.get_model(name).aliases.get(CHAMPION)
    if current != decision.champion_version:  # someone moved the champion meanwhile
        why = (
            f"v{version} passed the gate against champion v{decision.champion_version}, but the "
            f"champion is now {'v' + str(current) if current else 'unset'}; not promoted"
        )
        registry.record_event(name, "promotion_skipped", version=version, reason=why)
        return {"version": version, "alias": None, "gate": kind, "skipped": why}
    if decision.champion is None:
        registry.set_alias(
            name,
            CHAMPION,
            version,
            reason="first model: no champion to beat (gate: no champion)",
            details={"gate": "no champion", "run_id": run_id},
        )
        return {"version": version, "alias": CHAMPION, "gate": kind}
    registry.set_alias(
        name,
        CHALLENGER,
        version,
        reason=f"passed the gate: {decision.reason}",
        details={"run_id": run_id, "champion_version": decision.champion_version},
    )
    state = RolloutPlan(project.rollout).start(
        name, challenger_version=version, champion_version=decision.champion_version
    )
    record_rollout(registry, state)
    return {"version": version, "alias": CHALLENGER, "gate": kind, "rollout": state.stage}
