"""Test helpers that ship with bascule: fakes, settings and services for your own tests too.

Example::

    from bascule.testing import FakeClock, make_services

    def test_my_pipeline(tmp_path):
        services = make_services(tmp_path)
        run = services.tracking.start_run(experiment="x")
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from bascule.core.settings import Settings
from bascule.store.artifacts.checks import check_artifact_store
from bascule.store.artifacts.memory import InMemoryArtifactStore
from bascule.wiring import Services, build_services

__all__ = [
    "FakeClock",
    "InMemoryArtifactStore",
    "check_artifact_store",
    "make_services",
    "make_settings",
    "serve_in_thread",
]


class FakeClock:
    """A clock that moves only when told to (``advance``); thread-safe.

    :meth:`sleep` is an asyncio timer on this clock: pass ``sleep=clock.sleep`` to code that
    waits (``AdaptiveBatcher``), then ``advance`` past the deadline to wake it, with no
    wall-clock wait.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 1000.0
        self._lock = threading.Lock()
        self._sleepers: list[tuple[float, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def now_utc(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move both clocks forward, waking the :meth:`sleep` calls whose deadline has passed."""
        with self._lock:
            self._mono += seconds
            self._now += timedelta(seconds=seconds)
            due = [s for s in self._sleepers if s[0] <= self._mono]
            self._sleepers = [s for s in self._sleepers if s[0] > self._mono]
        for _, loop, fut in due:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_wake, fut)

    @property
    def sleepers(self) -> int:
        """How many :meth:`sleep` calls are waiting for the clock to advance."""
        with self._lock:
            return len(self._sleepers)

    async def sleep(self, seconds: float) -> None:
        """Return once :meth:`advance` has moved ``monotonic()`` by ``seconds`` (asyncio only).

        A delay of 0 or less only yields to the event loop once.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            entry = (self._mono + seconds, loop, fut)
            if seconds > 0:
                self._sleepers.append(entry)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        try:
            await fut
        finally:
            with self._lock:
                if entry in self._sleepers:
                    self._sleepers.remove(entry)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def make_settings(home: Path | str, **overrides: Any) -> Settings:
    """Settings rooted in ``home`` (SQLite and local artifacts there), reading no env or file."""
    return Settings(home=Path(home), **overrides)


def make_services(home: Path | str, **overrides: Any) -> Services:
    """Services on embedded defaults rooted in ``home``.

    ``clock=`` and ``artifact_store=`` replace the real ones; other keywords are settings.
    """
    clock = overrides.pop("clock", None)
    store = overrides.pop("artifact_store", None)
    return build_services(make_settings(home, **overrides), clock=clock, artifacts=store)


@contextmanager
def serve_in_thread(
    app: Any, *, host: str = "127.0.0.1", lifespan: Literal["on", "off", "auto"] = "off"
) -> Iterator[str]:
    """Run an ASGI app with uvicorn on a free loopback port in a thread; yield its base URL.

    ``lifespan="on"`` runs the app's startup and shutdown (the inference app starts and
    closes its data plane there)."""
    import uvicorn

    with socket.socket() as sock:
        sock.bind((host, 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan=lifespan)
    )
    thread = threading.Thread(target=server.run, name="bascule-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"test server on {host}:{port} did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
