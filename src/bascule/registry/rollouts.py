"""Recorded rollout states: where a challenger's rollout stands, on the model's history.

A rollout state is recorded as a ``rollout`` event of the model's history whose details are
the state (:meth:`RolloutState.to_dict`). States are recorded when the stage changes, so the
latest ``rollout`` event is the one that started the current stage
(:func:`latest_rollout` gives it with its time).

This is the registry's part of a rollout, read by the inference server (which routes by
:attr:`RolloutState.mode`) and by the pipelines (``bascule.pipelines.rollout`` moves the
state machine on, ``bascule.pipelines.supervision`` measures both routes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from bascule.core.records import ModelEvent
from bascule.registry.service import RegistryService

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "ROLLOUT_EVENT",
    "RecordedRollout",
    "RolloutStage",
    "RolloutState",
    "current_rollout",
    "latest_rollout",
    "record_rollout",
]

CHAMPION: Final = "champion"
"""The alias of the version answering clients."""
CHALLENGER: Final = "challenger"
"""The alias of the version being rolled out."""
ROLLOUT_EVENT: Final = "rollout"
"""Kind of the history events holding rollout states."""
RolloutStage = Literal["shadow", "canary", "full", "rolled_back"]
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RolloutState:
    """Where one challenger's rollout stands; recorded as the details of a ``rollout`` event."""

    model: str
    challenger_version: int
    champion_version: int | None
    """The champion serving when the rollout started."""
    stage: RolloutStage
    requests: int = 0
    """Requests the challenger was given in the current stage (answered or failed; shadow
    copies in the shadow stage), as last measured."""
    shadow_requests: int = 0
    canary_percent: float = 10.0
    canary_requests: int = 1
    reason: str = ""

    @property
    def active(self) -> bool:
        """Whether the rollout is still going (shadow or canary)."""
        return self.stage in ("shadow", "canary")

    @property
    def mode(self) -> Literal["shadow", "canary"] | None:
        """The traffic policy a server applies to the challenger now (None: champion only)."""
        if self.stage == "shadow":
            return "shadow"
        if self.stage == "canary":
            return "canary"
        return None

    def to_dict(self) -> dict[str, Any]:
        """The state as JSON-friendly values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutState:
        """Rebuild a state from :meth:`to_dict` (unknown keys are ignored)."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass(frozen=True)
class RecordedRollout:
    """The latest recorded rollout state of a model and when it was recorded."""

    state: RolloutState
    recorded_at: datetime
    """When the state was recorded: the start of its stage (timezone-aware UTC)."""
    event_id: int
    """Id of the history event holding it."""


def record_rollout(
    registry: RegistryService, state: RolloutState, *, actor: str | None = None
) -> ModelEvent:
    """Append ``state`` to the model's history (event ``rollout``).

    Raises:
        ModelNotFoundError: no such model.
    """
    return registry.record_event(
        state.model,
        ROLLOUT_EVENT,
        version=state.challenger_version,
        reason=f"{state.stage}: {state.reason}" if state.reason else state.stage,
        details=state.to_dict(),
        actor=actor,
    )


def latest_rollout(registry: RegistryService, name: str) -> RecordedRollout | None:
    """The latest recorded rollout state of ``name`` with its time; None if none ever.

    Raises:
        ModelNotFoundError: no such model.
    """
    for event in reversed(registry.history(name)):
        if event.kind == ROLLOUT_EVENT and event.details:
            return RecordedRollout(
                RolloutState.from_dict(event.details),
                _EPOCH + timedelta(milliseconds=event.at),
                event.id,
            )
    return None


def current_rollout(registry: RegistryService, name: str) -> RolloutState | None:
    """The latest recorded rollout state of ``name`` (check ``active``); None if none ever.

    Raises:
        ModelNotFoundError: no such model.
    """
    found = latest_rollout(registry, name)
    return None if found is None else found.state
