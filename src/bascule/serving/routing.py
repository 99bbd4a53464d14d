"""What the data plane serves under one model name, and how it follows recorded rollouts.

A :class:`ModelEntry` holds the champion's slot and the model's current :class:`Routing`
(the challenger's slot, the policy, the canary split and the shadow queue). A routing is
immutable and replaced as a whole, with one assignment on the event loop: a request reads
it once and is routed, logged and shadowed under that one routing even if it changes while
the request runs, and requests holding a version finish on it.

A model served by alias (``fraud@champion``) with no challenger in the settings follows the
rollout recorded on its history (:mod:`bascule.registry.rollouts`):
:meth:`RolloutFollower.apply`, run after every registry poll, loads and warms the
challenger version of an active rollout, then switches the routing to the state's policy
(shadow copies, or a canary at the state's percent); once the rollout has ended (promoted:
the champion alias moved, which the hot swap follows; rolled back) the routing goes back
to champion only and the challenger is unloaded once its requests are answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from bascule.core.errors import BasculeError, NotReadyError, VersionNotFoundError
from bascule.core.refs import ModelRef
from bascule.registry.rollouts import RolloutState
from bascule.serving.manager import LoadedVersion, ModelManager, ModelSlot
from bascule.serving.router import CHALLENGER, CHAMPION, CanarySplit, Policy, ShadowQueue

__all__ = ["ModelEntry", "RolloutFollower", "Routing"]

log = logging.getLogger("bascule.serving")

SINGLE: Final = Policy()


@dataclass(frozen=True, eq=False)
class Routing:
    """How one model's traffic is shared now (replaced as a whole, never changed)."""

    challenger: ModelSlot | None = None
    policy: Policy = SINGLE
    split: CanarySplit | None = None
    shadow: ShadowQueue | None = None

    @classmethod
    def of(cls, challenger: ModelSlot | None, policy: Policy, *, shadow_queue: int) -> Routing:
        """The routing of ``policy`` (champion only without a challenger)."""
        if challenger is None or policy.mode is None:
            return cls()
        return cls(
            challenger,
            policy,
            CanarySplit(policy.percent) if policy.mode == "canary" else None,
            ShadowQueue(maxsize=shadow_queue) if policy.mode == "shadow" else None,
        )


@dataclass(eq=False)
class ModelEntry:
    """One served model name: its champion slot and its current routing."""

    name: str
    champion: ModelSlot
    routing: Routing
    follows_rollout: bool = False
    """Whether the routing follows the rollout recorded on the model's history."""
    shadow_queue: int = 1024
    rollout_slot: ModelSlot | None = None
    """The followed rollout's challenger (loaded or not) while a rollout is active."""
    retiring: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def challenger(self) -> ModelSlot | None:
        """The challenger slot of the current routing."""
        return self.routing.challenger

    @property
    def policy(self) -> Policy:
        """The current policy."""
        return self.routing.policy

    @property
    def shadow(self) -> ShadowQueue | None:
        """The shadow queue of the current routing."""
        return self.routing.shadow

    def slots(self, routing: Routing | None = None) -> list[ModelSlot]:
        """The champion's slot, then the challenger's if there is one."""
        challenger = (routing or self.routing).challenger
        return [self.champion] if challenger is None else [self.champion, challenger]

    def pinned(self, version: str, routing: Routing | None = None) -> tuple[LoadedVersion, str]:
        """The loaded version a request naming ``version`` goes to, and its route.

        Raises:
            NotReadyError: the version is not loaded and a slot is still loading.
            VersionNotFoundError: no slot serves it.
        """
        slots = self.slots(routing)
        for slot, route in zip(slots, (CHAMPION, CHALLENGER), strict=False):
            current = slot.current
            if current is not None and str(current.version) == version:
                return current, route
        if not all(s.ready for s in slots):
            raise NotReadyError(
                f"model {self.name!r} is not ready; version {version!r} may be served once "
                "loading finishes",
                model=self.name,
            )
        served = [str(s.current.version) for s in slots if s.current is not None]
        raise VersionNotFoundError(
            version, available=served, model=self.name, hint="versions this server serves"
        )


def _wanted(entry: ModelEntry, state: RolloutState | None) -> RolloutState | None:
    """The rollout to follow: active, with a challenger that is not the champion now."""
    if state is None or not state.active or state.mode is None:
        return None
    champion = entry.champion.current
    if champion is not None and champion.version == state.challenger_version:
        return None
    return state


class RolloutFollower:
    """Applies recorded rollout states to the routing of the entries that follow them.

    Args:
        manager: Loads the challengers and reads the recorded states.
        on_switch: Called before a model's policy changes (the data plane closes its usage
            window there), then the routing is replaced.
    """

    def __init__(
        self,
        manager: ModelManager,
        *,
        on_switch: Callable[[ModelEntry, Routing], Awaitable[None]],
    ) -> None:
        self._manager = manager
        self._on_switch = on_switch

    async def apply_all(self, entries: list[ModelEntry]) -> None:
        """Read and apply the recorded rollout of every following entry (failures logged)."""
        for entry in entries:
            if not entry.follows_rollout:
                continue
            try:
                state = await self._manager.read_rollout(entry.name)
            except BasculeError as exc:
                log.warning("cannot read the rollout of %r: %s", entry.name, exc.message)
                continue
            await self.apply(entry, state)

    async def apply(self, entry: ModelEntry, state: RolloutState | None) -> None:
        """Make the entry's routing that of ``state`` (champion only when none is active)."""
        wanted = _wanted(entry, state)
        if wanted is None:
            await self._end(entry)
            return
        slot = entry.rollout_slot
        if slot is None or slot.ref.version != wanted.challenger_version:
            if slot is not None and slot is not entry.routing.challenger:
                await self._manager.unload(slot)
            slot = ModelSlot(ModelRef(entry.name, version=wanted.challenger_version))
            entry.rollout_slot = slot
        if slot.current is None:
            await self._manager.refresh(slot)  # loads and warms; not retried if it failed
            if slot.current is None:
                return  # the current routing stays; the slot keeps the error
        percent = wanted.canary_percent if wanted.mode == "canary" else 0.0
        policy = Policy(wanted.mode, percent)
        current = entry.routing
        if current.challenger is slot and current.policy == policy:
            return
        routing = Routing.of(slot, policy, shadow_queue=entry.shadow_queue)
        await self._switch(entry, routing)
        log.info(
            "%s: following the rollout of version %d (%s%s)",
            entry.name,
            wanted.challenger_version,
            wanted.stage,
            f", {percent:g} %" if wanted.mode == "canary" else "",
        )
        if current.challenger is not None and current.challenger is not slot:
            await self._manager.unload(current.challenger)

    async def _end(self, entry: ModelEntry) -> None:
        old = entry.routing
        slot, entry.rollout_slot = entry.rollout_slot, None
        if old.challenger is not None:
            await self._switch(entry, Routing())
            log.info("%s: rollout over, champion only", entry.name)
            await self._manager.unload(old.challenger)
        if slot is not None and slot is not old.challenger:
            await self._manager.unload(slot)

    async def _switch(self, entry: ModelEntry, routing: Routing) -> None:
        await self._on_switch(entry, routing)
        old, entry.routing = entry.routing, routing  # the switch: one assignment
        if routing.shadow is not None:
            routing.shadow.start()
        if old.shadow is not None:
            task = asyncio.create_task(old.shadow.close())  # queued copies still run
            entry.retiring.add(task)
            task.add_done_callback(entry.retiring.discard)

    async def close(self, entries: list[ModelEntry]) -> None:
        """Unload the followed challengers (after the shadow queues are closed)."""
        for entry in entries:
            await asyncio.gather(*entry.retiring, return_exceptions=True)
            for slot in {entry.rollout_slot, entry.routing.challenger} - {None}:
                if entry.follows_rollout and slot is not None:
                    await self._manager.unload(slot)
