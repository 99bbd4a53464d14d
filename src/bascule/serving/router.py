"""Traffic policies between a champion and a challenger: canary split and shadow copies.

* **canary**: the challenger answers ``percent`` % of requests. The split hashes the
  request id with a keyed BLAKE2b, so it is deterministic (a retried request with the same
  id takes the same route), independent of arrival order and across worker processes, and
  its share converges on ``percent`` over many requests.
* **shadow**: the client gets the champion's answer; a copy of the request goes through a
  bounded queue to the challenger. Offering a copy never waits: when the queue is full the
  copy is dropped and counted, so shadow traffic can never delay or fail a client request.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal

from bascule.core.errors import InvalidInputError

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "SHADOW",
    "CanarySplit",
    "Policy",
    "ShadowQueue",
]

log = logging.getLogger("bascule.serving")

CHAMPION: Final = "champion"
"""Route of a request answered by the champion (or naming the champion's version)."""
CHALLENGER: Final = "challenger"
"""Route of a request answered by the challenger (canary, or naming its version)."""
SHADOW: Final = "shadow"
"""Route of a shadow copy answered by the challenger (the client never sees it)."""

_SCALE: Final = 2**64


@dataclass(frozen=True)
class Policy:
    """How traffic of one model is shared with its challenger.

    Attributes:
        mode: ``None`` (champion only), ``"canary"`` or ``"shadow"``.
        percent: Share of requests the challenger answers in canary mode.
    """

    mode: Literal["canary", "shadow"] | None = None
    percent: float = 0.0

    @property
    def name(self) -> str:
        """The policy as recorded in the prediction log: ``canary``, ``shadow`` or ``""``."""
        return self.mode or ""


class CanarySplit:
    """Decides from a request id whether the challenger answers it.

    Args:
        percent: Share of requests for the challenger, 0 to 100.
        seed: Key of the hash; another seed gives another (equally fair) split.

    Raises:
        InvalidInputError: ``percent`` is outside [0, 100].
    """

    def __init__(self, percent: float, *, seed: str = "bascule") -> None:
        if not 0 <= percent <= 100:
            raise InvalidInputError.for_field("canary percent", percent, "a number in [0, 100]")
        self.percent = percent
        self._threshold = int(_SCALE * percent / 100)
        self._key = seed.encode()[:64]

    def to_challenger(self, request_id: str) -> bool:
        """Whether the challenger answers the request with this id."""
        if self._threshold <= 0:
            return False
        if self._threshold >= _SCALE:
            return True
        digest = hashlib.blake2b(request_id.encode(), digest_size=8, key=self._key).digest()
        return int.from_bytes(digest, "little") < self._threshold


Job = Callable[[], Awaitable[None]]


class ShadowQueue:
    """A bounded queue of shadow jobs run by a few worker tasks.

    Args:
        maxsize: Jobs waiting at most; more are dropped (and counted).
        workers: Jobs running at once.
    """

    def __init__(self, *, maxsize: int = 1024, workers: int = 4) -> None:
        self._queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=maxsize)
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self.offered = 0
        """Jobs offered."""
        self.dropped = 0
        """Jobs dropped because the queue was full (or closed)."""
        self.failed = 0
        """Jobs that raised."""
        self._closed = False

    @property
    def depth(self) -> int:
        """Jobs waiting."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start the workers (inside the running event loop)."""
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._work(), name=f"bascule-shadow-{i}")
                for i in range(self._workers)
            ]

    def offer(self, job: Job) -> bool:
        """Queue a job without waiting; False (and counted) when the queue is full."""
        self.offered += 1
        if self._closed:
            self.dropped += 1
            return False
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await job()
            except Exception:  # a failing shadow job must never stop the workers (logged)
                self.failed += 1
                log.exception("shadow request failed")
            finally:
                self._queue.task_done()

    async def close(self, *, timeout_s: float = 10.0) -> None:
        """Stop taking jobs, let queued ones finish (up to ``timeout_s``), stop the workers."""
        self._closed = True
        if self._tasks:
            try:
                await asyncio.wait_for(self._queue.join(), timeout_s)
            except TimeoutError:
                log.warning("shadow queue: %d jobs left unfinished at shutdown", self.depth)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
