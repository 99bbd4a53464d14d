"""AdaptiveBatcher: merge concurrent requests into one model call, with a bounded queue.

The contract is Ray Serve's: ``fn`` takes a list of items and returns a list of results of
the same length, in order. ``fn`` runs in another thread (one of its own by default), so
the event loop keeps parsing requests while onnxruntime, which releases the GIL, computes.

Dispatch rule (one consumer task; ``rows(item)`` rows per item):

1. **Idle → dispatch at once.** When ``fn`` is idle and an item arrives, the consumer runs
   a batch of whatever is queued at that instant, without a timer. A lone request (the
   whole of concurrency 1) never waits: the batcher adds no latency there.
2. **Busy → natural batching.** While a batch computes, arrivals queue; when it finishes,
   the queued items (FIFO, up to ``max_batch_size`` rows; an item larger than that runs
   alone) form the next batch. Under load batches grow by themselves to about
   ``arrival rate x compute time`` with no waiting at all.
3. **Wait only for callers known to be coming.** Right after a batch of ``P`` items
   finished, its ``P`` callers are answered and, under closed-loop load (clients that send
   the next request when the previous one returns), most of them are about to come back.
   If the queue then holds some items but fewer than half of ``P`` (and fewer than
   ``max_batch_size`` rows), more than half of that demand is in flight, and dispatching
   now would split it into a tiny batch and a large one (the 1 / 63 oscillation of a purely
   greedy batcher behind HTTP). Only then the consumer waits, at most ``max_wait_s``, until
   ``P`` items or ``max_batch_size`` rows are queued, dispatching as soon as that happens.
   A batch of one caller never causes a wait, and after a timed-out wait the next batch is
   small, so the estimate decays at once when load drops. Closing ends any wait.

4. **A full batch goes ahead.** When ``max_batch_size`` rows are queued while a batch
   computes, they are handed to ``fn``'s thread at once, to run right after it: waiting
   cannot make a full batch bigger, and the thread then goes from one batch to the next
   without idling for the event loop's turn (at most one batch waits ahead like this).
   With requests of many rows, which fill a batch by themselves, the model and the event
   loop work side by side instead of in turns.

``max_batch_size=1`` turns batching off (each item runs alone; rule 3 never applies), and
``max_wait_s=0`` keeps rules 1 and 2 only.

Time is read from the injected :class:`~bascule.core.clock.Clock`; the ``max_wait_s`` timer is
the injected ``sleep`` (``asyncio.sleep`` by default, ``FakeClock.sleep`` in tests).

By default ``fn`` runs in a thread of the batcher's own
(:class:`~bascule.serving._batch_worker.BatchWorker`), handed each batch through a queue and
answering with one ``call_soon_threadsafe``. That hop is paid once per batch: with requests
of many rows (each a batch of its own), it is paid by every request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import operator
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from bascule.core.clock import Clock
from bascule.core.errors import InvalidInputError, NotReadyError, OverloadedError
from bascule.serving._batch_worker import BatchWorker

__all__ = ["AdaptiveBatcher", "BatcherStats"]

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("bascule.serving")

_EWMA_ALPHA = 0.2
_MIN_RETRY_AFTER_S = 0.01
_MAX_RETRY_AFTER_S = 60.0


@dataclass(frozen=True)
class BatcherStats:
    """A snapshot of an :class:`AdaptiveBatcher`'s state and counters.

    ``batch_size_counts[i]`` counts batches of at most ``batch_size_buckets[i]`` rows and more
    than the previous bound (not cumulative; Prometheus' ``le`` buckets are the running sum,
    ``rows`` the sum and ``batches`` the count). The last bound is ``inf``.
    """

    name: str
    queued: int
    """Items waiting now (not counting the batch being computed)."""
    queued_rows: int
    """Rows of the waiting items."""
    running: int
    """Items handed to ``fn`` and not answered yet (the batch computing, and a full batch
    waiting ahead of it, rule 4)."""
    batches: int
    """Batches run (successful or not)."""
    items: int
    """Items run in those batches."""
    rows: int
    """Rows run in those batches."""
    errors: int
    """Batches whose ``fn`` raised or returned a list of the wrong length."""
    rejected: int
    """Items refused because the queue was full."""
    waits: int
    """Times the consumer held a batch back for callers known to be coming (rule 3)."""
    batch_size_buckets: tuple[float, ...]
    batch_size_counts: tuple[int, ...]
    closed: bool


class _Pending(Generic[T, R]):
    __slots__ = ("future", "item", "rows", "taken")

    def __init__(self, item: T, rows: int, future: asyncio.Future[R]) -> None:
        self.item = item
        self.rows = rows
        self.future = future
        self.taken = False


def _buckets(max_batch_size: int) -> tuple[float, ...]:
    bounds: list[float] = []
    b = 1
    while b < max_batch_size:
        bounds.append(b)
        b *= 2
    return (*bounds, max_batch_size, math.inf)


class AdaptiveBatcher(Generic[T, R]):
    """Runs ``fn`` on batches of concurrently submitted items; see the module for the rule.

    A batcher belongs to the event loop that first calls :meth:`submit`.

    Args:
        fn: Takes a list of items, returns a list of as many results, in the same order.
        max_batch_size: Most rows in one call of ``fn`` (an item with more rows runs alone).
        max_wait_s: Longest extra wait for callers known to be coming (rule 3); 0 disables it.
        max_queue: Most items waiting; beyond that :meth:`submit` raises ``OverloadedError``.
        rows: Rows of an item (1 by default).
        clock: Source of monotonic time (batch durations, retry hints).
        executor: Where ``fn`` runs; by default a thread of the batcher's own, started by the
            first batch and stopped by ``close``.
        name: Shown in messages and statistics (for example ``"fraud:3"``).
        on_batch: Called on the event loop after each batch with ``(rows, seconds)``.
        sleep: The ``max_wait_s`` timer (``asyncio.sleep``; pass ``FakeClock.sleep`` in tests).

    Raises:
        InvalidInputError: ``max_batch_size`` or ``max_queue`` is below 1, or ``max_wait_s`` is
            negative or not finite.
    """

    def __init__(
        self,
        fn: Callable[[list[T]], list[R]],
        *,
        max_batch_size: int = 64,
        max_wait_s: float = 0.002,
        max_queue: int = 1024,
        rows: Callable[[T], int] = lambda _: 1,
        clock: Clock,
        executor: concurrent.futures.Executor | None = None,
        name: str = "",
        on_batch: Callable[[int, float], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if max_batch_size < 1:
            raise InvalidInputError.for_field("max_batch_size", max_batch_size, "an integer >= 1")
        if max_queue < 1:
            raise InvalidInputError.for_field("max_queue", max_queue, "an integer >= 1")
        if not (max_wait_s >= 0 and math.isfinite(max_wait_s)):
            raise InvalidInputError.for_field("max_wait_s", max_wait_s, "seconds >= 0")
        self._fn = fn
        self._max_batch_size = max_batch_size
        self._max_wait_s = max_wait_s
        self._max_queue = max_queue
        self._rows = rows
        self._clock = clock
        self._executor = executor
        self._worker: BatchWorker[T, R] | None = (
            None  # started by the first batch (without executor)
        )
        self._name = name
        self._thread_name = f"bascule-batch-{name}" if name else "bascule-batch"
        self._on_batch = on_batch
        self._sleep = sleep
        self._queue: deque[_Pending[T, R]] = deque()
        self._queued = 0
        self._queued_rows = 0
        self._running = 0
        self._ahead: tuple[list[_Pending[T, R]], asyncio.Future[list[R]]] | None = None
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._batches = self._items = self._run_rows = self._errors = 0
        self._rejected = self._waits = 0
        self._buckets = _buckets(max_batch_size)
        self._counts = [0] * len(self._buckets)
        self._batch_s: float | None = None

    def __repr__(self) -> str:
        return f"AdaptiveBatcher({self._name!r}, max_batch_size={self._max_batch_size})"

    # -- callers ---------------------------------------------------------------------------------

    async def submit(self, item: T) -> R:
        """Queue ``item``, wait for its batch to run and return its result.

        Raises:
            OverloadedError: ``max_queue`` items are already waiting (``retry_after_s`` estimates
                how long the queue takes to drain).
            NotReadyError: the batcher is closing.
            InvalidInputError: ``rows(item)`` is not an integer >= 0.
            Exception: whatever ``fn`` raised for the batch (the same object for every caller
                of that batch), or ``ValueError`` when ``fn`` broke the one-result-per-item
                contract.
        """
        if self._closing:
            raise NotReadyError(f"batcher {self._name!r} is closed", batcher=self._name)
        if self._queued >= self._max_queue:
            self._rejected += 1
            retry = self._retry_after_s()
            raise OverloadedError(
                f"batcher {self._name!r} has {self._queued} requests waiting (the limit is "
                f"max_queue={self._max_queue}); retry in {retry:.3f} s",
                retry_after_s=retry,
                batcher=self._name,
                queued=self._queued,
            )
        n = self._count_rows(item)
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._consume(), name=f"bascule-batcher-{self._name}")
        pending: _Pending[T, R] = _Pending(item, n, loop.create_future())
        self._queue.append(pending)
        self._queued += 1
        self._queued_rows += n
        if len(self._queue) > 2 * self._max_queue:
            self._compact()
        if self._running:
            self._dispatch_ahead()
        self._wakeup.set()
        try:
            return await pending.future
        except asyncio.CancelledError:
            if not pending.taken:  # still queued: free its place; the consumer skips it
                pending.taken = True
                self._queued -= 1
                self._queued_rows -= n
            raise

    def _count_rows(self, item: T) -> int:
        raw = self._rows(item)
        try:
            n = operator.index(raw)
        except TypeError:
            n = -1
        if n < 0:
            raise InvalidInputError.for_field("rows of the item", raw, "an integer >= 0")
        return n

    def stats(self) -> BatcherStats:
        """A snapshot of the queue and the counters."""
        return BatcherStats(
            name=self._name,
            queued=self._queued,
            queued_rows=self._queued_rows,
            running=self._running,
            batches=self._batches,
            items=self._items,
            rows=self._run_rows,
            errors=self._errors,
            rejected=self._rejected,
            waits=self._waits,
            batch_size_buckets=self._buckets,
            batch_size_counts=tuple(self._counts),
            closed=self._closing,
        )

    async def close(self) -> None:
        """Stop accepting items, run every queued item, then stop the consumer (idempotent).

        New calls of :meth:`submit` raise ``NotReadyError`` from now on. The batcher's own
        thread ends (an executor passed in is left alone).
        """
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await asyncio.shield(self._task)
        if self._worker is not None:
            self._worker.stop()

    # -- the consumer ----------------------------------------------------------------------------

    async def _consume(self) -> None:
        try:
            last_items = 0  # callers of the batch that just finished; 0 once the consumer idled
            while True:
                if self._ahead is not None:  # rule 4: already computing, or next in line
                    batch, result = self._ahead
                    self._ahead = None
                else:
                    if not self._queued:
                        if self._closing:
                            return
                        last_items = 0
                        self._wakeup.clear()
                        await self._wakeup.wait()
                        continue  # rule 1: idle, dispatch what is there at once
                    if self._should_wait(last_items):
                        await self._wait_for(last_items)
                    batch = self._take()
                    if not batch:
                        continue
                    result = self._dispatch(batch)
                    self._running += len(batch)
                await self._run(batch, result)
                last_items = len(batch)
        finally:
            self._fail_ahead()
            self._fail_queued()

    def _dispatch(self, batch: list[_Pending[T, R]]) -> asyncio.Future[list[R]]:
        """Hand the batch to ``fn``'s thread; the future resolves on the loop."""
        items = [p.item for p in batch]
        loop = asyncio.get_running_loop()
        try:
            if self._executor is not None:
                return loop.run_in_executor(self._executor, self._fn, items)
            if self._worker is None:
                self._worker = BatchWorker(loop, self._thread_name)
            return self._worker.run(self._fn, items)
        except Exception as exc:  # noqa: BLE001 - e.g. a shut-down executor: the batch's error
            failed: asyncio.Future[list[R]] = loop.create_future()
            failed.set_exception(exc)
            return failed

    def _dispatch_ahead(self) -> None:
        """Rule 4: a batch is computing and a full one is queued: hand it over now."""
        if (
            self._ahead is None
            and self._queued_rows >= self._max_batch_size
            and not self._closing
            and (batch := self._take())
        ):
            self._ahead = (batch, self._dispatch(batch))
            self._running += len(batch)

    def _should_wait(self, last_items: int) -> bool:
        """Rule 3: most of the last batch's callers are in flight and the queue is short."""
        return (
            self._max_wait_s > 0
            and self._max_batch_size > 1
            and not self._closing
            and 0 < 2 * self._queued < last_items
            and self._queued_rows < self._max_batch_size
        )

    def _filled(self, target_items: int) -> bool:
        return self._queued >= target_items or self._queued_rows >= self._max_batch_size

    async def _wait_for(self, target_items: int) -> None:
        self._waits += 1
        timer = asyncio.ensure_future(self._sleep(self._max_wait_s))
        try:
            while not (self._filled(target_items) or self._closing or timer.done()):
                self._wakeup.clear()
                arrival = asyncio.ensure_future(self._wakeup.wait())
                try:
                    await asyncio.wait((timer, arrival), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    arrival.cancel()
        finally:
            timer.cancel()

    def _take(self) -> list[_Pending[T, R]]:
        batch: list[_Pending[T, R]] = []
        rows = 0
        queue = self._queue
        while queue:
            p = queue[0]
            if p.taken:  # cancelled while waiting; already uncounted
                queue.popleft()
                continue
            if batch and rows + p.rows > self._max_batch_size:
                break
            queue.popleft()
            p.taken = True
            self._queued -= 1
            self._queued_rows -= p.rows
            batch.append(p)
            rows += p.rows
            if rows >= self._max_batch_size:
                break
        return batch

    async def _run(self, batch: list[_Pending[T, R]], result: asyncio.Future[list[R]]) -> None:
        """Wait for a dispatched batch and answer its callers.

        A batch sent ahead (rule 4) is timed from when the one before it was answered, about
        when ``fn`` started on it.
        """
        rows = sum(p.rows for p in batch)
        started = self._clock.monotonic()
        self._dispatch_ahead()  # what queued while the loop was busy elsewhere
        try:
            done = await result
            results = self._check(done, batch)
        except Exception as exc:  # noqa: BLE001 - fn's error goes to every caller of the batch
            self._errors += 1
            self._resolve(batch, exc=exc)
        except BaseException:  # cancelled (or SystemExit): answer the batch, then stop
            self._resolve(batch, exc=NotReadyError(f"batcher {self._name!r} was stopped"))
            raise
        else:
            self._resolve(batch, results=results)
        finally:
            self._running -= len(batch)
        seconds = self._clock.monotonic() - started
        self._account(len(batch), rows, seconds)

    def _check(self, results: Iterable[R], items: list[_Pending[T, R]]) -> list[R]:
        try:
            out = list(results)
        except TypeError as exc:
            raise TypeError(
                f"batcher {self._name!r}: fn returned {type(results).__name__}, expected a list "
                f"of {len(items)} results (one per item, in order)"
            ) from exc
        if len(out) != len(items):
            raise ValueError(
                f"batcher {self._name!r}: fn returned {len(out)} results for a batch of "
                f"{len(items)} items; it must return one result per item, in order"
            )
        return out

    def _resolve(
        self,
        batch: list[_Pending[T, R]],
        *,
        results: list[R] | None = None,
        exc: BaseException | None = None,
    ) -> None:
        for i, p in enumerate(batch):
            if p.future.done():  # the caller was cancelled
                continue
            if results is not None:
                p.future.set_result(results[i])
            elif exc is not None:
                p.future.set_exception(exc)

    def _account(self, items: int, rows: int, seconds: float) -> None:
        self._batches += 1
        self._items += items
        self._run_rows += rows
        for i, bound in enumerate(self._buckets):
            if rows <= bound:
                self._counts[i] += 1
                break
        prev = self._batch_s
        self._batch_s = seconds if prev is None else prev + _EWMA_ALPHA * (seconds - prev)
        if self._on_batch is not None:
            try:
                self._on_batch(rows, seconds)
            except Exception:
                log.exception("on_batch hook of batcher %r failed", self._name)

    def _retry_after_s(self) -> float:
        if self._batch_s is None:
            return 1.0
        batches_ahead = math.ceil(self._queued_rows / self._max_batch_size) + 1
        return min(max(batches_ahead * self._batch_s, _MIN_RETRY_AFTER_S), _MAX_RETRY_AFTER_S)

    def _compact(self) -> None:
        """Drop cancelled entries so the deque stays bounded by about ``2 x max_queue``."""
        self._queue = deque(p for p in self._queue if not p.taken)

    def _fail_ahead(self) -> None:
        """The consumer stopped with a batch sent ahead: nobody will await its answer."""
        if self._ahead is None:
            return
        batch, result = self._ahead
        self._ahead = None
        result.cancel()
        self._running -= len(batch)
        self._resolve(batch, exc=NotReadyError(f"batcher {self._name!r} was stopped"))

    def _fail_queued(self) -> None:
        """The consumer stopped: nobody will run what is still queued."""
        while self._queue:
            p = self._queue.popleft()
            if not p.taken:
                p.taken = True
                self._queued -= 1
                self._queued_rows -= p.rows
                if not p.future.done():
                    p.future.set_exception(
                        NotReadyError(f"batcher {self._name!r} was stopped", batcher=self._name)
                    )
