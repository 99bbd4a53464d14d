"""What serving reports as it works, for whoever measures it (the HTTP layer's Prometheus metrics).

Serving never imports a metrics library: it calls a :class:`ServingObserver` given to it.
Calls come from the event loop and from batcher threads, so implementations must be
thread-safe (prometheus_client's are) and fast (they run on the request path).
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["NullObserver", "ServingObserver"]


class ServingObserver(Protocol):
    """Receives serving events."""

    def batch_done(self, model: str, version: str, rows: int, seconds: float) -> None:
        """One onnxruntime call over ``rows`` rows took ``seconds``."""
        ...

    def model_event(self, model: str, event: str, ok: bool) -> None:
        """A version was loaded (``event="load"``) or swapped in (``"swap"``), or failed to."""
        ...

    def rejected(self, model: str, reason: str) -> None:
        """A request was refused before running (``queue_full``, ``not_ready``)."""
        ...

    def shadow_done(self, model: str, version: str, outcome: str) -> None:
        """A shadow copy was answered (``ok``), failed (``error``) or dropped (``dropped``)."""
        ...


class NullObserver:
    """An observer that ignores everything (tests, embedded use)."""

    def batch_done(self, model: str, version: str, rows: int, seconds: float) -> None:
        """Ignore."""

    def model_event(self, model: str, event: str, ok: bool) -> None:
        """Ignore."""

    def rejected(self, model: str, reason: str) -> None:
        """Ignore."""

    def shadow_done(self, model: str, version: str, outcome: str) -> None:
        """Ignore."""
