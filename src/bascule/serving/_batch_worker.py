"""The thread an :class:`~bascule.serving.batching.AdaptiveBatcher` runs its batches in.

A batch goes to the thread through a queue and its result comes back to the event loop with
one ``call_soon_threadsafe``: no ``concurrent.futures`` future, lock and chaining to an
asyncio future, which ``run_in_executor`` would add to every batch.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["BatchWorker"]

T = TypeVar("T")
R = TypeVar("R")


def _deliver(future: asyncio.Future[R], result: R) -> None:
    if not future.done():  # the awaiting batch may have been cancelled
        future.set_result(result)


def _deliver_error(future: asyncio.Future[R], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


_Job = tuple[Callable[[list[T]], list[R]], list[T], asyncio.Future[list[R]]]


class BatchWorker(Generic[T, R]):
    """One thread running ``fn`` on the batches it is handed, answering on the batcher's loop.

    The thread ends on :meth:`stop`, or when the worker is garbage collected.

    Args:
        loop: The event loop the results are delivered on.
        name: The thread's name.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str) -> None:
        self._loop = loop
        self._jobs: queue.SimpleQueue[_Job[T, R] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=_serve, args=(self._jobs, loop), name=name, daemon=True
        )
        self._thread.start()
        weakref.finalize(self, self._jobs.put, None)

    def run(self, fn: Callable[[list[T]], list[R]], items: list[T]) -> asyncio.Future[list[R]]:
        """Hand ``fn(items)`` to the thread; the future resolves on the loop."""
        future: asyncio.Future[list[R]] = self._loop.create_future()
        self._jobs.put((fn, items, future))
        return future

    def stop(self) -> None:
        """Let the thread end once the batch in hand (if any) is done."""
        self._jobs.put(None)


def _serve(jobs: queue.SimpleQueue[_Job[T, R] | None], loop: asyncio.AbstractEventLoop) -> None:
    """The worker thread (holds the queue and the loop, not the worker object)."""
    while (job := jobs.get()) is not None:
        fn, items, future = job
        outcome: tuple[Callable[..., None], Any]
        try:
            outcome = (_deliver, fn(items))
        except BaseException as exc:  # noqa: BLE001 - fn's error goes to the awaiting batch
            outcome = (_deliver_error, exc)
        try:
            loop.call_soon_threadsafe(outcome[0], future, outcome[1])
        except RuntimeError:  # the loop is closed: nobody waits for the answer any more
            return
        del job, fn, items, future, outcome  # hold no batch while idle
