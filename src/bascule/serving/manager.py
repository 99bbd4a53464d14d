"""ModelManager: loads served versions, keeps them ready, and follows alias moves.

Each served reference (``fraud@champion``, ``fraud:3``, ``fraud``) has a :class:`ModelSlot`
holding the :class:`LoadedVersion` that answers for it: a warmed
:class:`~bascule.serving.runtime.ServedModel` and its own adaptive batcher.

A background task polls the registry every ``poll_interval_s`` (waiting with the injected
``sleep``, ``FakeClock.sleep`` in tests). When a reference now names another version, the
manager loads and warms that version off the event loop, then swaps it in with one
assignment on the event loop:
requests that already hold the old version finish on it; the old batcher is closed once
they are done. A version that fails to load or warm up is not swapped in: the slot keeps
the old one, records the error and does not retry that version until the reference moves
again.

The same poll also runs the hooks given to :meth:`ModelManager.on_poll` (the data plane
follows recorded rollouts that way, reading them with :meth:`ModelManager.read_rollout`), and
slots outside the served references (a rollout's challenger) are loaded with
:meth:`ModelManager.refresh` and let go with :meth:`ModelManager.unload`. Every batch reports
its CPU seconds to the manager's :class:`~bascule.serving.usage.UsageMeter`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bascule.core.clock import Clock
from bascule.core.errors import BasculeError, NotReadyError
from bascule.core.refs import ModelRef
from bascule.serving.batching import AdaptiveBatcher
from bascule.serving.feeds import Feeds
from bascule.serving.observer import NullObserver, ServingObserver
from bascule.serving.recording import LogNote, PredictionRecorder
from bascule.serving.runtime import Outputs, ServedModel, load_served_model
from bascule.serving.usage import UsageMeter

if TYPE_CHECKING:
    from bascule.core.records import ModelVersion
    from bascule.core.settings import BatchingSettings
    from bascule.registry.rollouts import RolloutState
    from bascule.registry.service import RegistryService

__all__ = ["LoadedVersion", "ManagerStats", "ModelManager", "ModelSlot"]

log = logging.getLogger("bascule.serving")

Loader = Callable[["ModelVersion"], ServedModel]
PollHook = Callable[[], Awaitable[None]]


Job = tuple[Feeds, LogNote | None]
"""What a version's batcher runs: a request's feeds, and how the log records its answer."""


@dataclass(eq=False)
class LoadedVersion:
    """A warmed model version and the batcher that runs it."""

    model: ServedModel
    batcher: AdaptiveBatcher[Job, Outputs | BasculeError]
    inflight: int = 0
    """Requests holding this version (submitted and not yet answered)."""

    @property
    def version(self) -> int:
        """The version number."""
        return self.model.version

    async def run(self, feeds: Feeds, note: LogNote | None = None) -> Outputs:
        """Run one request's feeds through the batcher.

        Args:
            feeds: The request's feeds.
            note: How the prediction log records the answer (None: not logged).

        Raises:
            OverloadedError: the batcher's queue is full.
            InvalidInputError: onnxruntime rejected the request.
        """
        self.inflight += 1
        try:
            result = await self.batcher.submit((feeds, note))
        finally:
            self.inflight -= 1
        if isinstance(result, BasculeError):
            raise result
        return result


@dataclass(eq=False)
class ModelSlot:
    """One served reference and the version currently answering for it."""

    ref: ModelRef
    current: LoadedVersion | None = None
    last_error: str | None = None
    """Why the last load or swap failed (None after a success)."""
    failed_version: int | None = None
    """The version that last failed to load; not retried while the reference still names it."""

    @property
    def name(self) -> str:
        """The model name."""
        return self.ref.name

    @property
    def ready(self) -> bool:
        """Whether a warmed version is answering."""
        return self.current is not None

    @property
    def follows(self) -> bool:
        """Whether the reference can move (an alias, or the latest version)."""
        return self.ref.version is None

    def require(self) -> LoadedVersion:
        """The current version.

        Raises:
            NotReadyError: nothing is loaded yet (or loading failed).
        """
        current = self.current
        if current is None:
            why = f": {self.last_error}" if self.last_error else "; it is still loading"
            raise NotReadyError(f"model {str(self.ref)!r} is not ready{why}", model=self.name)
        return current


@dataclass
class ManagerStats:
    """Counters of load and swap events."""

    loads: int = 0
    load_failures: int = 0
    swaps: int = 0
    swap_failures: int = 0


class ModelManager:
    """Loads served references, reports readiness, and hot-swaps versions when aliases move.

    Args:
        registry: Where versions are resolved and read.
        clock: Measures the poll interval (``FakeClock`` in tests).
        batching: Batcher settings for every loaded version.
        poll_interval_s: How often references that can move are resolved again.
        intra_op_threads: onnxruntime threads per session.
        observer: Receives batch and model events.
        loader: Loads and warms a version (default: :func:`load_served_model`); blocking,
            run in the manager's loader thread.
        drain_timeout_s: How long a swapped-out version may take to finish its requests.
        sleep: The poll timer (``asyncio.sleep``; ``FakeClock.sleep`` in tests).
        usage: Receives the CPU seconds of every batch (a new meter if None).
    """

    def __init__(
        self,
        registry: RegistryService,
        *,
        clock: Clock,
        batching: BatchingSettings,
        poll_interval_s: float = 1.0,
        intra_op_threads: int = 1,
        observer: ServingObserver | None = None,
        loader: Loader | None = None,
        drain_timeout_s: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        usage: UsageMeter | None = None,
    ) -> None:
        self._registry = registry
        self._clock = clock
        self._batching = batching
        self._interval = poll_interval_s
        self._threads = intra_op_threads
        self._observer: ServingObserver = observer or NullObserver()
        self._loader = loader or self._load_default
        self._drain_timeout_s = drain_timeout_s
        self._sleep = sleep
        self._slots: dict[str, ModelSlot] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bascule-loader")
        self._poller: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._lock: asyncio.Lock | None = None
        self._hooks: list[PollHook] = []
        self.stats = ManagerStats()
        self.usage = usage or UsageMeter(clock.now_utc)
        """Answers, failures and CPU seconds per version."""
        self.recorder: PredictionRecorder | None = None
        """Takes the answered requests of every batch, in the batch's thread, for requests run
        with a :data:`~bascule.serving.recording.LogNote`; the data plane sets it before any
        version loads (None: nothing is logged)."""

    # -- slots -----------------------------------------------------------------------------------

    def add(self, ref: ModelRef | str) -> ModelSlot:
        """Serve a reference (loaded by :meth:`load_all` or the next poll)."""
        r = ModelRef.parse(ref) if isinstance(ref, str) else ref
        return self._slots.setdefault(str(r), ModelSlot(r))

    def slot(self, ref: ModelRef | str) -> ModelSlot:
        """The slot of a served reference. Raises: KeyError if it is not served."""
        return self._slots[str(ref)]

    def slots(self) -> list[ModelSlot]:
        """Every served reference."""
        return list(self._slots.values())

    @property
    def ready(self) -> bool:
        """Whether every served reference has a warmed version."""
        return all(s.ready for s in self._slots.values())

    # -- loading ---------------------------------------------------------------------------------

    def _load_default(self, mv: ModelVersion) -> ServedModel:
        return load_served_model(
            self._registry,
            mv,
            intra_op_threads=self._threads,
            warm_rows=self._batching.max_batch_size if self._batching.enabled else 1,
        )

    def _batcher(self, model: ServedModel) -> AdaptiveBatcher[Job, Outputs | BasculeError]:
        b = self._batching
        name, version = model.name, str(model.version)
        observer, usage, number, run_batch, recorder = (
            self._observer,
            self.usage,
            model.version,
            model.run_batch,
            self.recorder,
        )

        def run(jobs: list[Job]) -> list[Outputs | BasculeError]:
            feeds = [f for f, _ in jobs]
            # the batcher thread's own CPU time: all of it with one intra-op thread
            before = time.thread_time()
            try:
                results = run_batch(feeds)
            finally:
                cpu = time.thread_time() - before
                usage.batch(name, number, sum(map(_rows, feeds)), cpu)
            if recorder is not None:  # in this thread, off the event loop
                try:
                    recorder.record(model, [n for _, n in jobs], feeds, results)
                except Exception:  # the log must never fail a batch (logged)
                    log.exception("prediction log: cannot record a batch of %d", len(jobs))
            return results

        def on_batch(rows: int, seconds: float) -> None:
            observer.batch_done(name, version, rows, seconds)

        return AdaptiveBatcher(
            run,
            max_batch_size=b.max_batch_size if b.enabled else 1,
            max_wait_s=b.max_wait_ms / 1000 if b.enabled else 0.0,
            max_queue=b.max_queue,
            rows=_job_rows,
            clock=self._clock,
            name=f"{name}:{version}",
            on_batch=on_batch,
        )

    async def _in_loader(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def refresh(self, slot: ModelSlot) -> bool:
        """Resolve the slot's reference; load, warm and swap in a new version if it moved.

        Returns:
            Whether a new version was swapped in.
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            return await self._refresh(slot)

    async def _refresh(self, slot: ModelSlot) -> bool:
        first = slot.current is None
        event = "load" if first else "swap"
        try:
            mv: ModelVersion = await self._in_loader(self._registry.resolve, slot.ref)
        except BasculeError as exc:
            slot.last_error = f"cannot resolve {str(slot.ref)!r}: {exc.message}"
            return False
        if slot.current is not None and slot.current.version == mv.version:
            return False
        if mv.version == slot.failed_version:
            return False
        try:
            model: ServedModel = await self._in_loader(self._loader, mv)
        except Exception as exc:  # noqa: BLE001 - a bad version must never take the server down
            reason = (
                exc.message if isinstance(exc, BasculeError) else f"{type(exc).__name__}: {exc}"
            )
            slot.failed_version = mv.version
            still = (
                f"still serving version {slot.current.version}"
                if slot.current
                else "nothing served"
            )
            slot.last_error = (
                f"version {mv.version} of {str(slot.ref)!r} failed to load or warm up "
                f"({still}): {reason}"
            )
            log.error("%s", slot.last_error)
            if first:
                self.stats.load_failures += 1
            else:
                self.stats.swap_failures += 1
            self._observer.model_event(slot.name, event, False)
            return False
        new = LoadedVersion(model, self._batcher(model))
        old, slot.current = slot.current, new  # the swap: one assignment on the event loop
        slot.last_error = None
        slot.failed_version = None
        if first:
            self.stats.loads += 1
        else:
            self.stats.swaps += 1
        self._observer.model_event(slot.name, event, True)
        log.info(
            "serving %s version %d for %r%s",
            slot.name,
            mv.version,
            str(slot.ref),
            f" (was {old.version})" if old else "",
        )
        if old is not None:
            task = asyncio.create_task(self._retire(old))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return True

    async def unload(self, slot: ModelSlot) -> None:
        """Stop answering with the slot's version (for slots outside the served references);
        requests holding it finish on it, then its batcher is closed in the background."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            old, slot.current = slot.current, None
            slot.failed_version = None
            slot.last_error = None
        if old is not None:
            task = asyncio.create_task(self._retire(old))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def read_rollout(self, name: str) -> RolloutState | None:
        """The latest recorded rollout state of model ``name`` (read off the event loop).

        Raises:
            ModelNotFoundError: no such model.
            StorageError: the registry could not be read.
        """
        from bascule.registry.rollouts import current_rollout

        state: RolloutState | None = await self._in_loader(current_rollout, self._registry, name)
        return state

    def on_poll(self, hook: PollHook) -> None:
        """Run ``hook`` after every poll of the registry (its failures are logged)."""
        self._hooks.append(hook)

    async def _retire(self, old: LoadedVersion) -> None:
        """Close a swapped-out version once its in-flight requests are answered."""
        deadline = self._clock.monotonic() + self._drain_timeout_s
        while old.inflight and self._clock.monotonic() < deadline:
            await asyncio.sleep(0.005)
        await old.batcher.close()

    async def load_all(self) -> None:
        """Load every slot that has no version yet (failures are recorded on the slot)."""
        for slot in self.slots():
            if slot.current is None:
                await self.refresh(slot)

    async def poll_once(self) -> None:
        """Refresh every slot whose reference can move, and retry slots with nothing loaded."""
        for slot in self.slots():
            if slot.follows or slot.current is None:
                await self.refresh(slot)
        for hook in self._hooks:
            try:
                await hook()
            except Exception:  # a hook must never stop the poll (logged)
                log.exception("poll hook failed")

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start polling the registry (inside the running event loop)."""
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll_loop(), name="bascule-alias-poller")

    async def _poll_loop(self) -> None:
        while True:
            await self._sleep(self._interval)
            try:
                await self.poll_once()
            except Exception:  # the poller must outlive any failure (logged)
                log.exception("alias poll failed")

    async def close(self) -> None:
        """Stop polling, let loaded versions finish their requests, close their batchers."""
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        await asyncio.gather(*self._background, return_exceptions=True)
        for slot in self.slots():
            if slot.current is not None:
                await self._retire(slot.current)
                slot.current = None
        self._executor.shutdown(wait=False, cancel_futures=True)


def _rows(feeds: Feeds) -> int:
    return int(next(iter(feeds.values())).shape[0])


def _job_rows(job: Job) -> int:
    return _rows(job[0])
