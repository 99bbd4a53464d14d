"""RolloutSupervisor: measures both routes of every active rollout and moves it on.

The inference server follows the rollout recorded on a model's history (shadow copies, then
a canary share) and records what it does; the supervisor closes the loop. Each
:meth:`RolloutSupervisor.tick`, for every model with an active rollout, it measures the
**current stage** (everything since the ``rollout`` event that started it, under the
stage's policy) and calls :func:`~bascule.pipelines.rollout.advance_rollout` with:

* ``requests`` and ``errors`` per route, from the server's usage log
  (:mod:`bascule.store.usage`): requests the route was given, answered or failed, and
  those it failed. The challenger's route is ``shadow`` (its copies) in the shadow stage
  and ``challenger`` in the canary; the champion's is ``champion``. The prediction log is
  not counted for this: it holds no failed request, and drops rows under overload;
* ``cost_per_1000``: the net business cost per 1,000 labelled predictions of each route
  under the model's cost matrix (``monitoring.models.<model>.cost``), from the prediction
  log joined with the feedback by request id and row. It is left out while a route has
  fewer than ``min_labelled_rows`` labelled rows; a canary whose model has a cost matrix
  then **waits** for the evidence: it is neither promoted nor judged on cost until both
  routes have it (an error-rate breach still rolls it back).

The supervisor keeps no state between ticks: a long-lived process (the control plane's
background loop) calls :meth:`~RolloutSupervisor.tick` every few seconds, a demo calls it
by hand after moving its simulated clock.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from bascule.business.costs import CostMatrix
from bascule.core.clock import Clock
from bascule.core.errors import BasculeError, InvalidInputError
from bascule.core.monitoring_records import FeedbackEntry
from bascule.core.monitoring_settings import CostSettings
from bascule.core.project_settings import RolloutSettings
from bascule.core.schema import ModelSignature
from bascule.monitoring.evaluation import OUTCOME_COLUMN, cost_column
from bascule.monitoring.feedback import coerce_label, decode_label
from bascule.pipelines.rollout import RolloutPlan, advance_rollout
from bascule.registry.rollouts import RecordedRollout, RolloutState, latest_rollout
from bascule.registry.service import RegistryService
from bascule.store.artifacts.base import ArtifactStore
from bascule.store.predictions import read_predictions
from bascule.store.usage import UsageRecord, read_usage

if TYPE_CHECKING:
    import pandas as pd

    from bascule.core.settings import Settings
    from bascule.store.db.engine import Database

__all__ = ["DEFAULT_MIN_LABELLED_ROWS", "RolloutSupervisor", "RouteKpis", "SupervisedRollout"]

log = logging.getLogger("bascule.pipelines")

DEFAULT_MIN_LABELLED_ROWS = 100
"""Labelled rows a route needs before its business cost counts."""

FeedbackReader = Callable[[list[str]], Sequence[FeedbackEntry]]
"""Request ids → their stored feedback (every row of each)."""


class ServicesLike(Protocol):
    """What :meth:`RolloutSupervisor.from_services` reads (``bascule.wiring.Services``)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def registry(self) -> RegistryService: ...
    @property
    def artifacts(self) -> ArtifactStore: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def db(self) -> Database: ...


@dataclass(frozen=True)
class RouteKpis:
    """What one route did in the current stage."""

    requests: int = 0
    """Requests it was given (answered or failed)."""
    errors: int = 0
    """Requests it failed to answer."""
    rows: int = 0
    """Rows it answered."""
    labelled: int = 0
    """Answered rows with feedback."""
    cost_per_1000: float | None = None
    """Net business cost per 1,000 labelled rows; None below the minimum or without a cost
    matrix."""

    def as_kpis(self) -> dict[str, float]:
        """The mapping :func:`~bascule.pipelines.rollout.evaluate_canary` reads."""
        out = {"requests": float(self.requests), "errors": float(self.errors)}
        if self.cost_per_1000 is not None:
            out["cost_per_1000"] = self.cost_per_1000
        return out


@dataclass(frozen=True)
class SupervisedRollout:
    """What one tick did with one model's rollout."""

    model: str
    before: RolloutState
    """The state at the start of the tick."""
    after: RolloutState | None
    """The state it moved to (None if the tick failed or the rollout ended meanwhile)."""
    stage_started_at: datetime
    champion: RouteKpis = field(default_factory=RouteKpis)
    challenger: RouteKpis = field(default_factory=RouteKpis)
    waiting_for_labels: bool = False
    """The canary had its requests but not the labelled rows its cost check needs."""
    error: str | None = None
    """Why the tick failed for this model (it is retried at the next tick)."""

    @property
    def changed(self) -> bool:
        """Whether the stage changed (a new state was recorded)."""
        return self.after is not None and self.after.stage != self.before.stage

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly values."""
        out = asdict(self)
        out["stage_started_at"] = self.stage_started_at.isoformat()
        out["changed"] = self.changed
        return out


class RolloutSupervisor:
    """Moves every active rollout on from what the servers logged (see the module doc).

    Args:
        registry: Where rollouts are recorded and aliases move.
        artifacts: The store holding the prediction log and the usage log.
        feedback: Reads the stored feedback of request ids.
        clock: Now (the end of the measured stage).
        plans: Model → its rollout plan (the project's); other models use a plan made of
            their recorded state's request counts and canary share, with default
            thresholds.
        costs: Model → its cost settings (``monitoring.models.<model>.cost``).
        min_labelled_rows: Labelled rows a route needs before its business cost counts.
        models: Only these models (default: every registered model).
        predictions_prefix: Key prefix of the prediction log.
        usage_prefix: Key prefix of the usage log.
    """

    def __init__(
        self,
        *,
        registry: RegistryService,
        artifacts: ArtifactStore,
        feedback: FeedbackReader,
        clock: Clock,
        plans: Mapping[str, RolloutPlan] | None = None,
        costs: Mapping[str, CostSettings] | None = None,
        min_labelled_rows: int = DEFAULT_MIN_LABELLED_ROWS,
        models: Sequence[str] | None = None,
        predictions_prefix: str = "predictions",
        usage_prefix: str = "usage",
    ) -> None:
        if isinstance(min_labelled_rows, bool) or min_labelled_rows < 1:
            raise InvalidInputError.for_field(
                "min_labelled_rows", min_labelled_rows, "an integer >= 1"
            )
        self._registry = registry
        self._artifacts = artifacts
        self._feedback = feedback
        self._clock = clock
        self._plans = dict(plans or {})
        self._costs = dict(costs or {})
        self._min_labelled = min_labelled_rows
        self._models = list(models) if models is not None else None
        self._predictions_prefix = predictions_prefix
        self._usage_prefix = usage_prefix

    @classmethod
    def from_services(
        cls,
        services: ServicesLike,
        *,
        min_labelled_rows: int = DEFAULT_MIN_LABELLED_ROWS,
        models: Sequence[str] | None = None,
    ) -> RolloutSupervisor:
        """The supervisor of one installation: its registry, artifact store, feedback,
        clock, the project's rollout plan and the models' cost settings.

        Raises:
            InvalidInputError: ``min_labelled_rows`` is below 1.
        """
        from bascule.store.db.monitoring import MonitoringRepository

        settings = services.settings
        repo = MonitoringRepository(services.db)
        project = settings.project
        plans = {} if project is None else {project.model: RolloutPlan(project.rollout)}
        costs = {
            name: m.cost for name, m in settings.monitoring.models.items() if m.cost is not None
        }
        return cls(
            registry=services.registry,
            artifacts=services.artifacts,
            feedback=repo.feedback_for,
            clock=services.clock,
            plans=plans,
            costs=costs,
            min_labelled_rows=min_labelled_rows,
            models=models,
        )

    # -- the loop --------------------------------------------------------------------------------

    def tick(self) -> list[SupervisedRollout]:
        """Measure and move on every active rollout (one model's failure does not stop the
        others: it is in its result and retried at the next tick).

        Returns:
            One result per model with an active rollout, in name order.
        """
        out = []
        for name in self._names():
            try:
                recorded = latest_rollout(self._registry, name)
            except BasculeError as exc:
                log.warning("rollout supervisor: cannot read %r: %s", name, exc.message)
                continue
            if recorded is None or not recorded.state.active:
                continue
            out.append(self._advance(name, recorded))
        return out

    def _names(self) -> list[str]:
        if self._models is not None:
            return list(self._models)
        return sorted(m.name for m in self._registry.list_models())

    def plan_for(self, name: str, state: RolloutState) -> RolloutPlan:
        """The plan a model's rollout follows (see the constructor's ``plans``)."""
        plan = self._plans.get(name)
        if plan is not None:
            return plan
        return RolloutPlan(
            RolloutSettings(
                shadow_requests=state.shadow_requests,
                canary_percent=state.canary_percent,
                canary_requests=state.canary_requests,
            )
        )

    def _advance(self, name: str, recorded: RecordedRollout) -> SupervisedRollout:
        state = recorded.state
        try:
            champion, challenger = self.measure(name, recorded)
            plan = self.plan_for(name, state)
            waiting = self._waits(name, state, plan, champion, challenger)
            challenger_kpis = challenger.as_kpis()
            if waiting:
                # below canary_requests the canary continues (and is still rolled back on
                # errors): it waits for labels instead of being promoted without its cost
                challenger_kpis["requests"] = float(plan.settings.canary_requests - 1)
            after = advance_rollout(self._registry, plan, name, champion.as_kpis(), challenger_kpis)
            if after is not None and waiting and after.active:
                after = replace(after, requests=challenger.requests)
        except BasculeError as exc:
            log.warning("rollout supervisor: %s: %s", name, exc.message)
            return SupervisedRollout(name, state, None, recorded.recorded_at, error=exc.message)
        if after is not None and after.stage != state.stage:
            log.info("rollout of %s v%d: %s", name, state.challenger_version, after.reason)
        return SupervisedRollout(
            name, state, after, recorded.recorded_at, champion, challenger, waiting
        )

    def _waits(
        self,
        name: str,
        state: RolloutState,
        plan: RolloutPlan,
        champion: RouteKpis,
        challenger: RouteKpis,
    ) -> bool:
        if state.stage != "canary" or name not in self._costs:
            return False
        if challenger.requests < plan.settings.canary_requests:
            return False
        return champion.cost_per_1000 is None or challenger.cost_per_1000 is None

    # -- measuring -------------------------------------------------------------------------------

    def measure(
        self, name: str, recorded: RecordedRollout | None = None
    ) -> tuple[RouteKpis, RouteKpis]:
        """Both routes' KPIs over the current stage of ``name``'s rollout, up to now.

        Returns:
            ``(champion, challenger)``; zeros when no rollout is active.

        Raises:
            ModelNotFoundError: no such model.
            StorageError: a log cannot be read.
        """
        found = recorded or latest_rollout(self._registry, name)
        mode = None if found is None else found.state.mode
        if found is None or mode is None:
            return RouteKpis(), RouteKpis()
        state, start, end = found.state, found.recorded_at, self._clock.now_utc()
        route = "shadow" if mode == "shadow" else "challenger"
        usage = [
            u
            for u in read_usage(
                self._artifacts, name, start=start, end=end, prefix=self._usage_prefix
            )
            if u.policy == mode
        ]
        new = _count(u for u in usage if u.model_version == state.challenger_version)
        old = _count(u for u in usage if u.model_version != state.challenger_version)
        champion = RouteKpis(*old.get("champion", (0, 0, 0)))
        challenger = RouteKpis(*new.get(route, (0, 0, 0)))
        cost = self._costs.get(name)
        if cost is None:
            return champion, challenger
        frame = read_predictions(
            self._artifacts, name, start=start, end=end, prefix=self._predictions_prefix
        )
        if frame.empty:
            return champion, challenger
        frame = frame[frame["policy"] == mode]
        versions = frame["model_version"].astype(int)
        mine = (frame["route"] == route) & (versions == state.challenger_version)
        theirs = (frame["route"] == "champion") & (versions != state.challenger_version)
        joined = self._join(frame[mine | theirs])
        return (
            self._with_cost(name, champion, joined[theirs[mine | theirs]], cost),
            self._with_cost(name, challenger, joined[mine[mine | theirs]], cost),
        )

    def _join(self, frame: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd

        frame = frame.copy()
        ids = frame["request_id"].astype(str)
        stored = self._feedback(sorted(set(ids))) if len(frame) else []
        by_key = {(f.request_id, f.row): f for f in stored}
        hits = [by_key.get(k) for k in zip(ids, frame["row"].astype(int), strict=True)]
        labels = [None if h is None else (h.label, h.label_kind) for h in hits]
        frame["__label__"] = pd.Series(labels, index=frame.index, dtype=object)
        frame[OUTCOME_COLUMN] = [
            np.nan if h is None or h.outcome is None else h.outcome for h in hits
        ]
        return frame

    def _with_cost(
        self, name: str, kpis: RouteKpis, rows: pd.DataFrame, cost: CostSettings
    ) -> RouteKpis:
        labelled = rows[rows["__label__"].notna()]
        n = len(labelled)
        kpis = replace(kpis, labelled=n)
        if n < self._min_labelled or n == 0:
            return kpis
        versions = sorted(set(labelled["model_version"].astype(int)))
        value = self._cost_per_1000(name, versions[-1], labelled, cost)
        return replace(kpis, cost_per_1000=value)

    def _cost_per_1000(
        self, name: str, version: int, labelled: pd.DataFrame, cost: CostSettings
    ) -> float | None:
        mv = self._registry.resolve(f"{name}:{version}")
        signature = ModelSignature.model_validate(mv.signature)
        classes = list(signature.classes or [])
        prediction = "label" if "label" in labelled.columns else "prediction"
        if len(classes) != 2 or prediction not in labelled.columns:
            return None
        wanted = cost.positive_label
        positive = next((c for c in classes if str(c) == str(wanted)), classes[1])
        truth = []
        for label, kind in labelled["__label__"]:
            try:
                truth.append(coerce_label(decode_label(label, kind), signature, name))
            except InvalidInputError:
                truth.append(decode_label(label, kind))
        matrix = CostMatrix.from_settings(cost, column=cost_column)
        prices = labelled.copy()
        for column in matrix.columns:
            if column in prices.columns:  # a missing price counts as 0, as in monitoring
                values = prices[column].astype(object).map(_number)
                prices[column] = values.where(np.isfinite(values.astype(float)), 0.0)
        try:
            result = matrix.evaluate(
                np.array([str(t) == str(positive) for t in truth]),
                np.array([str(p) == str(positive) for p in labelled[prediction]]),
                frame=prices,
            )
        except InvalidInputError as exc:
            log.warning("rollout supervisor: no business cost for %r: %s", name, exc.message)
            return None
        return result.per_1000 if math.isfinite(result.per_1000) else None


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _count(records: Iterable[UsageRecord]) -> dict[str, tuple[int, int, int]]:
    """Route → (requests given, errors, rows answered) summed over the records."""
    out: dict[str, tuple[int, int, int]] = {}
    for r in records:
        for route, u in r.routes.items():
            given, errors, rows = out.get(route, (0, 0, 0))
            out[route] = (given + u.requests + u.errors, errors + u.errors, rows + u.rows)
    return out
