"""The demo's inference server: the real V2 app under uvicorn, on a free loopback port,
in a thread of the demo's process (so there is no server to start by hand)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

import uvicorn

from bascule.core.errors import NotReadyError

__all__ = ["BackgroundServer"]

T = TypeVar("T")


class BackgroundServer:
    """Run an ASGI app (with its lifespan) on ``127.0.0.1:<free port>`` until closed.

    Use as a context manager; :attr:`url` is the base URL once entered, and :meth:`call`
    runs a coroutine on the server's event loop (where the app's objects live).
    """

    def __init__(self, app: Any, *, start_timeout_s: float = 60.0) -> None:
        self._app = app
        self._timeout = start_timeout_s
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> BackgroundServer:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
        self._server = server = uvicorn.Server(config)
        self._loop = loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(server.serve())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="bascule-demo-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self._timeout
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.close()
                raise NotReadyError(
                    f"the demo's inference server on 127.0.0.1:{port} did not start within "
                    f"{self._timeout:.0f} s"
                )
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def call(self, make: Callable[[], Coroutine[Any, Any, T]], *, timeout_s: float = 60.0) -> T:
        """Run ``make()`` on the server's event loop and wait for its result."""
        if self._loop is None:
            raise NotReadyError("the demo's inference server is not running")
        future = asyncio.run_coroutine_threadsafe(make(), self._loop)
        return future.result(timeout=timeout_s)

    def close(self) -> None:
        """Stop the server (drains requests, closes the data plane) and join its thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
