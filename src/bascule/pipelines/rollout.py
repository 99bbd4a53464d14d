"""Rollout of a challenger that passed the gate: shadow → canary → full, or rolled back.

The plan is a small state machine over :class:`RolloutState`:

* ``shadow``: the challenger gets a copy of every request (clients get the champion's
  answer) until it has answered ``shadow_requests`` of them; skipped when that is 0;
* ``canary``: it answers ``canary_percent`` % of requests; once it has answered
  ``canary_requests``, :func:`evaluate_canary` promotes it (``full``: alias ``champion``
  moves to it) or rolls it back (``rolled_back``: alias ``challenger`` is removed, the
  champion never moved). A challenger whose error rate already exceeds the champion's by
  more than ``max_error_rate_increase`` after a tenth of the requests is rolled back early.

Every state is recorded on the model's history as a ``rollout`` event whose details are
the state (:meth:`RolloutState.to_dict`); :func:`current_rollout` reads the latest one.
Those recorded states live in the registry layer (:mod:`bascule.registry.rollouts`, re-
exported here) so that the inference server, below the pipelines, can follow them: it
routes by :attr:`RolloutState.mode`, and the rollout supervisor
(:mod:`bascule.pipelines.supervision`) measures both routes from what the server logged
and reports their KPIs to :func:`advance_rollout`. A state is recorded when the stage
changes (not at every request).

:func:`promote` and :func:`rollback` move the champion alias by hand (``bascule models
rollback``); the move, its reason and the version it left are on the history.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Literal

from bascule.core.errors import AliasNotFoundError, ConflictError
from bascule.core.project_settings import RolloutSettings
from bascule.core.records import ModelEvent
from bascule.registry.rollouts import (
    CHALLENGER,
    CHAMPION,
    ROLLOUT_EVENT,
    RecordedRollout,
    RolloutStage,
    RolloutState,
    current_rollout,
    latest_rollout,
    record_rollout,
)
from bascule.registry.service import RegistryService

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "ROLLOUT_EVENT",
    "CanaryVerdict",
    "RecordedRollout",
    "RolloutPlan",
    "RolloutStage",
    "RolloutState",
    "advance_rollout",
    "current_rollout",
    "evaluate_canary",
    "latest_rollout",
    "previous_champion",
    "promote",
    "record_rollout",
    "rollback",
]

CanaryVerdict = Literal["continue", "promote", "rollback"]
_EARLY_SHARE = 0.1


def _rate(kpis: Mapping[str, float]) -> float:
    if "error_rate" in kpis:
        return float(kpis["error_rate"])
    requests = float(kpis.get("requests", 0))
    return float(kpis.get("errors", 0)) / requests if requests > 0 else 0.0


def _finite(kpis: Mapping[str, float], key: str) -> float | None:
    raw = kpis.get(key)
    if raw is None or isinstance(raw, bool):
        return None
    value = float(raw)
    return value if math.isfinite(value) else None


def _errors_breach(
    champion: Mapping[str, float], challenger: Mapping[str, float], settings: RolloutSettings
) -> bool:
    return _rate(challenger) - _rate(champion) > settings.max_error_rate_increase + 1e-12


def evaluate_canary(
    champion_kpis: Mapping[str, float],
    challenger_kpis: Mapping[str, float],
    settings: RolloutSettings,
) -> CanaryVerdict:
    """Decide a canary from both routes' KPIs over the canary so far (pure).

    Args:
        champion_kpis: ``requests``, ``errors`` (or ``error_rate``) and, when labels
            have arrived, ``cost_per_1000`` (net business cost per 1,000 predictions).
        challenger_kpis: The same for the challenger's answers.
        settings: The rollout plan.

    Returns:
        ``rollback`` when the challenger's error rate exceeds the champion's by more than
        ``max_error_rate_increase`` (checked from a tenth of ``canary_requests`` on) or,
        at the end, its business cost exceeds the champion's by more than
        ``max_cost_increase`` (relative; skipped when either is unknown); ``continue``
        until it has answered ``canary_requests``; then ``promote``.
    """
    served = float(challenger_kpis.get("requests", 0))
    early = max(1.0, math.ceil(settings.canary_requests * _EARLY_SHARE))
    if served >= early and _errors_breach(champion_kpis, challenger_kpis, settings):
        return "rollback"
    if served < settings.canary_requests:
        return "continue"
    old, new = _finite(champion_kpis, "cost_per_1000"), _finite(challenger_kpis, "cost_per_1000")
    if old is not None and new is not None:
        rise = (new - old) / abs(old) if old != 0 else (math.inf if new > old else 0.0)
        if rise > settings.max_cost_increase + 1e-12:
            return "rollback"
    return "promote"


class RolloutPlan:
    """The rollout state machine of one project's settings (pure: nothing is recorded).

    Args:
        settings: Request counts, canary share and rollback thresholds.
    """

    def __init__(self, settings: RolloutSettings) -> None:
        self.settings = settings

    def start(
        self, model: str, *, challenger_version: int, champion_version: int | None
    ) -> RolloutState:
        """The first state: shadow, or canary when ``shadow_requests`` is 0."""
        s = self.settings
        return RolloutState(
            model=model,
            challenger_version=challenger_version,
            champion_version=champion_version,
            stage="shadow" if s.shadow_requests > 0 else "canary",
            shadow_requests=s.shadow_requests,
            canary_percent=s.canary_percent,
            canary_requests=s.canary_requests,
            reason=f"v{challenger_version} passed the gate",
        )

    def observe(
        self,
        state: RolloutState,
        champion_kpis: Mapping[str, float],
        challenger_kpis: Mapping[str, float],
    ) -> RolloutState:
        """The next state given both routes' KPIs over the current stage.

        Raises:
            ConflictError: the rollout is over (``full`` or ``rolled_back``).
        """
        if not state.active:
            raise ConflictError(
                f"the rollout of {state.model} v{state.challenger_version} is over ({state.stage})",
                stage=state.stage,
            )
        served = int(challenger_kpis.get("requests", 0))
        s = self.settings
        if state.stage == "shadow":
            if served > 0 and _errors_breach(champion_kpis, challenger_kpis, s):
                rate = _rate(challenger_kpis)
                why = f"shadow error rate {rate:.2%} exceeds the champion's by more than allowed"
                return replace(state, stage="rolled_back", requests=served, reason=why)
            if served >= state.shadow_requests:
                why = f"shadow done after {served} requests"
                return replace(state, stage="canary", requests=0, reason=why)
            return replace(state, requests=served)
        verdict = evaluate_canary(champion_kpis, challenger_kpis, s)
        if verdict == "promote":
            return replace(state, stage="full", requests=served, reason="canary passed")
        if verdict == "rollback":
            why = (
                f"canary rolled back after {served} requests: error rate "
                f"{_rate(challenger_kpis):.2%} vs {_rate(champion_kpis):.2%}, cost per 1,000 "
                f"{challenger_kpis.get('cost_per_1000')} vs {champion_kpis.get('cost_per_1000')}"
            )
            return replace(state, stage="rolled_back", requests=served, reason=why)
        return replace(state, requests=served)


def _alias(registry: RegistryService, name: str, alias: str) -> int | None:
    return registry.get_model(name).aliases.get(alias)


def _drop_challenger(registry: RegistryService, name: str, version: int, reason: str) -> None:
    if _alias(registry, name, CHALLENGER) == version:
        registry.delete_alias(name, CHALLENGER, reason=reason)


def advance_rollout(
    registry: RegistryService,
    plan: RolloutPlan,
    name: str,
    champion_kpis: Mapping[str, float],
    challenger_kpis: Mapping[str, float],
) -> RolloutState | None:
    """Move the active rollout of ``name`` on, record the new state, and apply its end.

    ``full`` moves ``champion`` to the challenger (:func:`promote`); ``rolled_back``
    removes the ``challenger`` alias, leaving the champion as it was.

    Returns:
        The new state, or None when no rollout is active.

    Raises:
        ModelNotFoundError: no such model.
    """
    state = current_rollout(registry, name)
    if state is None or not state.active:
        return None
    new = plan.observe(state, champion_kpis, challenger_kpis)
    if new.stage != state.stage:
        record_rollout(registry, new)
    if new.stage == "full":
        promote(registry, name, reason=new.reason, version=new.challenger_version)
    elif new.stage == "rolled_back":
        _drop_challenger(registry, name, new.challenger_version, f"rollout: {new.reason}")
    return new


def promote(
    registry: RegistryService,
    name: str,
    *,
    reason: str = "",
    version: int | None = None,
    actor: str | None = None,
) -> ModelEvent:
    """Move ``champion`` to the challenger (or ``version``), then drop alias ``challenger``.

    The previous champion stays in the history (the alias move records it), which is
    where :func:`rollback` finds it. An active rollout of that version ends as ``full``.

    Raises:
        ModelNotFoundError: no such model.
        AliasNotFoundError: no ``version`` given and no ``challenger`` alias.
        VersionNotFoundError: no such version.
    """
    target = version
    if target is None:
        target = _alias(registry, name, CHALLENGER)
        if target is None:
            known = list(registry.get_model(name).aliases)
            raise AliasNotFoundError(CHALLENGER, available=known, model=name)
    before = _alias(registry, name, CHAMPION)
    event = registry.set_alias(
        name,
        CHAMPION,
        target,
        reason=f"promoted: {reason}" if reason else "promoted",
        actor=actor,
        details={"promotion": True, "previous_champion": before},
    )
    state = current_rollout(registry, name)
    if state is not None and state.active and state.challenger_version == target:
        done = replace(state, stage="full", reason=f"promoted: {reason}" if reason else "promoted")
        record_rollout(registry, done, actor=actor)
    _drop_challenger(registry, name, target, f"v{target} promoted to champion")
    return event


def previous_champion(registry: RegistryService, name: str) -> tuple[int, int | None]:
    """The current champion and the one before it, from the alias moves on the history.

    The one before is the version the champion alias left when it last moved forward to
    the current champion (rollbacks are skipped, so rolling back twice goes two steps back).

    Returns:
        ``(current, previous)``; previous is None when the current one was the first.

    Raises:
        ModelNotFoundError: no such model.
        AliasNotFoundError: the model has no champion.
    """
    current = _alias(registry, name, CHAMPION)
    if current is None:
        raise AliasNotFoundError(
            CHAMPION, available=list(registry.get_model(name).aliases), model=name
        )
    for event in reversed(registry.history(name)):
        if event.kind != "alias_set" or event.alias != CHAMPION or event.version != current:
            continue
        if event.details.get("rollback"):
            continue
        return current, event.previous_version
    return current, None


def rollback(
    registry: RegistryService, name: str, *, reason: str = "", actor: str | None = None
) -> ModelEvent:
    """Move ``champion`` back to the previous champion (from the history); audited.

    An active rollout is ended as ``rolled_back`` and its ``challenger`` alias removed.

    Raises:
        ModelNotFoundError: no such model.
        AliasNotFoundError: the model has no champion.
        ConflictError: the champion has no predecessor to go back to.
    """
    current, previous = previous_champion(registry, name)
    if previous is None:
        raise ConflictError(
            f"model {name!r} has no previous champion to roll back to: champion v{current} "
            "was the first",
            model=name,
            champion=current,
        )
    why = reason or "rolled back by hand"
    event = registry.set_alias(
        name,
        CHAMPION,
        previous,
        reason=f"rollback: {why}",
        actor=actor,
        details={"rollback": True, "rolled_back_from": current},
    )
    state = current_rollout(registry, name)
    if state is not None and state.active:
        ended = replace(state, stage="rolled_back", reason=f"champion rolled back: {why}")
        record_rollout(registry, ended, actor=actor)
        _drop_challenger(registry, name, state.challenger_version, f"rollback: {why}")
    return event
