"""UsageWriter: closes the usage meter's window on a timer and writes it to the usage log.

Every ``interval_s`` (and whenever the data plane asks, at each policy change and on
shutdown) the :class:`~bascule.serving.usage.UsageMeter`'s current window is cut and handed
to the usage log in a worker thread. A failing write is logged and its window lost: the usage
log must never break serving (the running totals behind ``/metrics`` are kept either way).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from bascule.serving.usage import UsageMeter
from bascule.store.usage import UsageRecord

__all__ = ["UsageSink", "UsageWriter"]

log = logging.getLogger("bascule.serving")


class UsageSink(Protocol):
    """Where usage windows are written (``bascule.store.usage.UsageLog``)."""

    def write(self, records: list[UsageRecord]) -> int:
        """Write the records (blocking)."""
        ...


class UsageWriter:
    """Writes the meter's windows to ``sink`` every ``interval_s`` seconds once started.

    Args:
        meter: The counts to cut into windows.
        sink: The usage log; None writes nothing (the meter's totals still feed ``/metrics``).
        interval_s: How often a window is closed and written.
    """

    def __init__(self, meter: UsageMeter, sink: UsageSink | None, *, interval_s: float) -> None:
        self._meter = meter
        self._sink = sink
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the timer (on the running event loop; nothing without a sink)."""
        if self._sink is not None and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="bascule-usage")

    async def close(self) -> None:
        """Stop the timer, then write what was counted since the last window."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.flush()

    async def flush(self) -> int:
        """Close the current window and write it.

        Returns:
            The records written (0 without a sink, or when the write failed).
        """
        records = self._meter.cut()
        if not records or self._sink is None:
            return 0
        try:
            await asyncio.to_thread(self._sink.write, records)
        except Exception:  # the usage log must never break serving (logged)
            log.exception("usage log: cannot write %d records", len(records))
            return 0
        return len(records)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.flush()
