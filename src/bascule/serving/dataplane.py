"""DataPlane: the Open Inference Protocol v2 logic, independent of any transport.

REST routes (``bascule.http.inference``) and a future gRPC servicer only translate payloads
and call it: liveness, readiness, server and model metadata, and inference on parsed
requests (plain dicts from JSON plus the binary part of the body, or a
:class:`~bascule.core.tensors.ParsedRequest` built from numpy arrays).

An inference request goes: model lookup → V2 decoding → route (champion, canary
challenger, or the version the request names) → feeds checked against that version's
signature → the version's adaptive batcher → outputs. Each request's log note (request id,
route, policy) goes with its feeds to the batcher, whose thread hands the batch's answers to
the prediction log's recorder (never blocking; answers reach the log many at a time, see
:mod:`bascule.serving.recording`). In shadow mode a copy is offered to the challenger
through a bounded queue after the answer is ready.

A model's routing (challenger, policy) comes from its spec, or, for a model served by alias
with no challenger in the settings, from the rollout recorded on its history (see
:mod:`bascule.serving.routing`). Answers, failed requests and the CPU seconds of batches
are counted per version by the manager's :class:`~bascule.serving.usage.UsageMeter`; every
``usage_interval_s`` (and at each policy change) the counts are written to the usage log
(:mod:`bascule.serving.usage_writer`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from bascule._version import __version__
from bascule.core.clock import Clock
from bascule.core.errors import (
    BasculeError,
    InvalidInputError,
    ModelNotFoundError,
    NotReadyError,
    OverloadedError,
)
from bascule.core.outputs import OutputTensor
from bascule.core.refs import ModelRef
from bascule.core.tensors import ParsedRequest, parse_request
from bascule.serving.features import FeatureLookup, LookedUp
from bascule.serving.manager import LoadedVersion, ModelManager
from bascule.serving.observer import NullObserver, ServingObserver
from bascule.serving.recording import LogNote, PredictionRecorder, PredictionSink
from bascule.serving.router import CHALLENGER, CHAMPION, SHADOW, Policy
from bascule.serving.routing import ModelEntry, RolloutFollower, Routing
from bascule.serving.usage import VersionTotals
from bascule.serving.usage_writer import UsageSink, UsageWriter

__all__ = ["DataPlane", "InferResult", "ModelSpec", "PredictionSink"]

PLATFORM: Final = "onnxruntime_onnx"
_SINGLE: Final = Policy()
EXTENSIONS: Final = ["binary_tensor_data"]


@dataclass(frozen=True)
class ModelSpec:
    """What the server serves under one model name.

    Attributes:
        ref: The champion (``fraud@champion``, ``fraud:3`` or ``fraud``).
        challenger: The challenger reference, if any.
        policy: How traffic is shared with the challenger.
        shadow_queue: Shadow copies waiting at most (shadow mode).
        follow_rollout: With no challenger: follow the rollout recorded on the model's
            history (challenger version and policy).
    """

    ref: ModelRef
    challenger: ModelRef | None = None
    policy: Policy = _SINGLE
    shadow_queue: int = 1024
    follow_rollout: bool = False


@dataclass(slots=True)
class InferResult:
    """The answer to an inference request, before encoding."""

    model_name: str
    model_version: str
    id: str
    outputs: list[OutputTensor]
    route: str
    policy: str

    def head(self) -> dict[str, Any]:
        """The V2 response fields other than ``outputs``."""
        parameters = {"route": self.route}
        if self.policy:
            parameters["policy"] = self.policy
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "id": self.id,
            "parameters": parameters,
        }


class DataPlane:
    """Live, ready, metadata and infer for the served models.

    Args:
        manager: Loads the versions and follows alias moves.
        specs: The models to serve (one per model name).
        clock: Timestamps and latencies of logged predictions.
        prediction_log: Where answers are recorded; None records nothing.
        observer: Receives rejections and shadow outcomes (batches and model events go
            through the manager).
        features: Looks up the features of versions that declare a feature service, for
            requests that send only entity keys (none: such requests are refused).
        usage_log: Where usage windows (answers, failures, CPU seconds per version) are
            written; None writes nothing (the counts still feed ``/metrics``).
        usage_interval_s: How often a usage window is closed and written.

    Raises:
        ConfigError: two specs serve the same model name.
    """

    def __init__(
        self,
        manager: ModelManager,
        specs: list[ModelSpec],
        *,
        clock: Clock,
        prediction_log: PredictionSink | None = None,
        observer: ServingObserver | None = None,
        features: FeatureLookup | None = None,
        usage_log: UsageSink | None = None,
        usage_interval_s: float = 5.0,
    ) -> None:
        from bascule.core.errors import ConfigError

        self._manager = manager
        self._clock = clock
        self._log = prediction_log
        self._recorder = (
            PredictionRecorder(prediction_log, clock=clock) if prediction_log is not None else None
        )
        self._recorder_task: asyncio.Task[None] | None = None
        manager.recorder = self._recorder  # batches hand over their answers in their thread
        self._observer: ServingObserver = observer or NullObserver()
        self.features = features or FeatureLookup()
        self._usage = manager.usage
        self._usage_writer = UsageWriter(self._usage, usage_log, interval_s=usage_interval_s)
        self._follower = RolloutFollower(manager, on_switch=self._on_switch)
        self._entries: dict[str, ModelEntry] = {}
        for spec in specs:
            name = spec.ref.name
            if name in self._entries:
                raise ConfigError(
                    f"model {name!r} is served twice ({self._entries[name].champion.ref} and "
                    f"{spec.ref}); serve each model name once, with --challenger for a second "
                    "version",
                    model=name,
                )
            challenger = manager.add(spec.challenger) if spec.challenger else None
            routing = Routing.of(challenger, spec.policy, shadow_queue=spec.shadow_queue)
            self._entries[name] = ModelEntry(
                name=name,
                champion=manager.add(spec.ref),
                routing=routing,
                follows_rollout=spec.follow_rollout and challenger is None,
                shadow_queue=spec.shadow_queue,
            )
            self._usage.set_policy(name, routing.policy.name)
        if any(e.follows_rollout for e in self._entries.values()):
            manager.on_poll(self.follow_rollouts)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load every served version (failures are reported by readiness), then follow aliases."""
        if self._log is not None:
            self._log.start()
        if self._recorder is not None and self._recorder_task is None:
            self._recorder_task = asyncio.create_task(
                self._recorder.flush_every_delay(), name="bascule-recorder"
            )
        for entry in self._entries.values():
            if entry.shadow is not None:
                entry.shadow.start()
        await self._manager.load_all()
        await self.follow_rollouts()
        self._manager.start()
        self._usage_writer.start()

    async def close(self) -> None:
        """Finish shadow copies, drain and close the batchers, flush the logs."""
        if self._recorder_task is not None:
            self._recorder_task.cancel()
            await asyncio.gather(self._recorder_task, return_exceptions=True)
            self._recorder_task = None
        for entry in self._entries.values():
            if entry.shadow is not None:
                await entry.shadow.close()
        await self._follower.close(list(self._entries.values()))
        await self._manager.close()
        await self._usage_writer.close()
        if self._recorder is not None:
            self._recorder.flush()
        if self._log is not None:
            await asyncio.to_thread(self._log.close)

    # -- health and metadata ---------------------------------------------------------------------

    @property
    def manager(self) -> ModelManager:
        """The model manager (for ``poll_once`` and load statistics)."""
        return self._manager

    @property
    def model_names(self) -> list[str]:
        """Served model names."""
        return sorted(self._entries)

    def live(self) -> bool:
        """The process is up and its event loop answers."""
        return True

    def ready(self) -> bool:
        """Every served reference has a warmed version."""
        return self._manager.ready

    def server_metadata(self) -> dict[str, Any]:
        """``GET /v2``."""
        return {"name": "bascule", "version": __version__, "extensions": list(EXTENSIONS)}

    def _entry(self, name: str) -> ModelEntry:
        entry = self._entries.get(name)
        if entry is None:
            raise ModelNotFoundError(name, available=self.model_names)
        return entry

    def is_served(self, name: str) -> bool:
        """Whether ``name`` is a served model (cheap; for metric labels)."""
        return name in self._entries

    def model_ready(self, name: str, version: str | None = None) -> bool:
        """Whether the model (or that version of it) is ready.

        Raises:
            ModelNotFoundError: the model is not served.
            VersionNotFoundError: the version is not served (once every version is loaded).
        """
        entry = self._entry(name)
        if version is None:
            return entry.champion.ready
        try:
            entry.pinned(version)
        except NotReadyError:
            return False
        return True

    def model_metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        """``GET /v2/models/{name}[/versions/{v}]``: inputs and outputs from the signature.

        Raises:
            ModelNotFoundError, VersionNotFoundError, NotReadyError.
        """
        entry = self._entry(name)
        loaded = entry.pinned(version)[0] if version is not None else entry.champion.require()
        model = loaded.model
        served = [str(s.current.version) for s in entry.slots() if s.current is not None]
        parameters = model.parameters()
        parameters["policy"] = entry.policy.name or None
        parameters["refs"] = [
            {
                "ref": str(s.ref),
                "version": s.current.version if s.current else None,
                "last_error": s.last_error,
            }
            for s in entry.slots()
        ]
        if entry.policy.mode == "canary":
            parameters["canary_percent"] = entry.policy.percent
        return {
            "name": name,
            "versions": sorted(set(served), key=int),
            "platform": PLATFORM,
            "inputs": model.input_metadata(),
            "outputs": model.output_metadata(),
            "parameters": parameters,
        }

    def model_status(self) -> list[dict[str, Any]]:
        """Per served reference (and followed rollout challenger): version answering,
        readiness and the last load error."""
        slots = self._manager.slots()
        slots += [e.rollout_slot for e in self._entries.values() if e.rollout_slot is not None]
        return [
            {
                "ref": str(slot.ref),
                "version": slot.current.version if slot.current else None,
                "ready": slot.ready,
                "last_error": slot.last_error,
            }
            for slot in slots
        ]

    # -- rollouts and usage ----------------------------------------------------------------------

    async def follow_rollouts(self) -> None:
        """Apply the recorded rollout of every model that follows one (run after each poll)."""
        await self._follower.apply_all(list(self._entries.values()))

    async def _on_switch(self, entry: ModelEntry, routing: Routing) -> None:
        await self.flush_usage()  # a usage window never spans two policies
        self._usage.set_policy(entry.name, routing.policy.name)

    def routing_of(self, name: str) -> tuple[int | None, str, float]:
        """``(challenger version, policy, canary percent)`` of a served model now.

        Raises:
            ModelNotFoundError: the model is not served.
        """
        routing = self._entry(name).routing
        slot = routing.challenger
        version = slot.current.version if slot is not None and slot.current else None
        return version, routing.policy.name, routing.policy.percent

    async def flush_usage(self) -> int:
        """Close the current usage window and write it (nothing without a usage log).

        Returns:
            The records written.
        """
        return await self._usage_writer.flush()

    async def sync(self) -> None:
        """A sync point for a process that drives the server and reads what it wrote (the
        demo): check the registry now (alias moves, the recorded rollout), then hand every
        answer so far to the prediction log, write it, and write the usage window."""
        await self._manager.poll_once()
        if self._recorder is not None:
            self._recorder.flush()
        if self._log is not None:
            await asyncio.to_thread(self._log.flush)
        await self.flush_usage()

    def usage_totals(self) -> list[VersionTotals]:
        """Per model version since start: CPU seconds of its batches, answers and failures."""
        return self._usage.totals()

    # -- inference -------------------------------------------------------------------------------

    async def infer(
        self,
        name: str,
        version: str | None,
        request: Mapping[str, Any] | ParsedRequest,
        *,
        request_id: str,
        binary: memoryview | None = None,
    ) -> InferResult:
        """Answer one inference request.

        Args:
            name: Model name.
            version: The version the request names, or None to let the policy route it.
            request: The parsed JSON body, or an already decoded request.
            request_id: The transport's request id (logged; the answer's ``id`` unless the
                request carries one).
            binary: The binary part of the body (binary tensor data extension).

        Returns:
            The outputs, the version that answered, the route and the policy.

        Raises:
            ModelNotFoundError, VersionNotFoundError: not served (404).
            InvalidInputError: the request or its tensors are wrong (400).
            NotReadyError: nothing loaded yet (503).
            OverloadedError: the version's queue is full (503 with Retry-After).
        """
        started = self._clock.monotonic()
        entry = self._entry(name)
        routing = entry.routing  # read once: the request keeps it even if it changes
        policy = routing.policy.name
        usage = self._usage
        parsed = request if isinstance(request, ParsedRequest) else parse_request(request, binary)
        route = CHAMPION
        loaded: LoadedVersion | None = None
        feeds = None
        used = None
        if version is not None:
            loaded, route = entry.pinned(version, routing)
        elif (
            routing.split is not None
            and routing.challenger is not None
            and routing.split.to_challenger(request_id)
        ):
            candidate = routing.challenger.current
            if candidate is not None:
                try:
                    feeds, used = await self.features.feeds(candidate.model, parsed.inputs)
                    loaded, route = candidate, CHALLENGER
                except InvalidInputError:
                    usage.failed(name, candidate.version, CHALLENGER, policy)
                    feeds = None  # the champion answers what the challenger cannot read
        if loaded is None:
            loaded = entry.champion.current
            if loaded is None:
                self._observer.rejected(name, "not_ready")
                loaded = entry.champion.require()
        model = loaded.model
        try:
            if feeds is None:
                feeds, used = await self.features.feeds(model, parsed.inputs)
            model.check_requested(parsed.outputs)
            note = self._note(request_id, started, route, policy, used)
            try:
                result = await loaded.run(feeds, note)
            except OverloadedError:
                self._observer.rejected(name, "queue_full")
                raise
            outputs = model.outputs(result, parsed.outputs, parsed.binary_output)
        except BasculeError:
            usage.failed(name, loaded.version, route, policy)  # the version failed to answer
            raise
        usage.answered(name, loaded.version, route, policy, _rows(feeds))
        answer_id = parsed.id or request_id
        if routing.shadow is not None and route != CHALLENGER:
            self._offer_shadow(entry, routing, parsed, request_id)
        return InferResult(
            model_name=name,
            model_version=str(loaded.version),
            id=answer_id,
            outputs=outputs,
            route=route,
            policy=policy,
        )

    def _note(
        self, request_id: str, started: float, route: str, policy: str, used: LookedUp | None
    ) -> LogNote | None:
        """How the log records this answer (None without a log)."""
        if self._recorder is None:
            return None
        return (request_id, started, route, policy, used.service if used is not None else "")

    def _offer_shadow(
        self, entry: ModelEntry, routing: Routing, parsed: ParsedRequest, request_id: str
    ) -> None:
        challenger, shadow = routing.challenger, routing.shadow
        if challenger is None or shadow is None:
            return
        observer, usage, policy = self._observer, self._usage, routing.policy.name

        async def job() -> None:
            started = self._clock.monotonic()
            loaded = challenger.current
            if loaded is None:
                observer.shadow_done(entry.name, "", "dropped")
                return
            try:
                feeds, used = await self.features.feeds(loaded.model, parsed.inputs)
                await loaded.run(feeds, self._note(request_id, started, SHADOW, policy, used))
            except BasculeError:
                usage.failed(entry.name, loaded.version, SHADOW, policy)
                observer.shadow_done(entry.name, str(loaded.version), "error")
                return
            usage.answered(entry.name, loaded.version, SHADOW, policy, _rows(feeds))
            observer.shadow_done(entry.name, str(loaded.version), "ok")

        if not shadow.offer(job):
            observer.shadow_done(entry.name, "", "dropped")

    # -- statistics ------------------------------------------------------------------------------

    def queue_depths(self) -> list[tuple[str, str, int]]:
        """``(model, version, requests waiting)`` for every loaded version."""
        out = []
        slots = self._manager.slots()
        slots += [e.rollout_slot for e in self._entries.values() if e.rollout_slot is not None]
        for slot in slots:
            current = slot.current
            if current is not None:
                out.append((slot.name, str(current.version), current.batcher.stats().queued))
        return out

    def prediction_log_counts(self) -> tuple[int, int, int] | None:
        """``(written, dropped, buffered)`` rows of the prediction log, or None without one."""
        log = self._log
        if log is None:
            return None
        return log.written_rows, log.dropped_rows, log.buffered_rows

    def shadow_depths(self) -> list[tuple[str, int]]:
        """``(model, shadow copies waiting)`` for models in shadow mode."""
        return [(e.name, e.shadow.depth) for e in self._entries.values() if e.shadow is not None]


def _rows(feeds: Mapping[str, Any]) -> int:
    return int(next(iter(feeds.values())).shape[0])
