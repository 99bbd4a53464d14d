"""The load run: closed-loop workers, or an open-loop schedule feeding a pool of connections."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from bascule.core.errors import InvalidInputError
from bascule.loadgen.connection import HttpConnection, parse_target
from bascule.loadgen.results import LoadResult, Progress, RunStats

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Connection", "LoadConfig", "arrival_offsets", "run_load", "run_loadtest"]

_TICK_S: Final = 0.25
_SPIN_S: Final = 0.002  # closer to a scheduled send than this, yield instead of a (1 ms) timer
_BACKOFF_S: Final = (0.0, 0.01, 0.05, 0.2, 0.5)


class Connection(Protocol):
    """One kept-alive connection to the server (:class:`HttpConnection`, or a test fake)."""

    @property
    def closed(self) -> bool:
        """The connection cannot carry another request."""
        ...

    async def request(self, payload: bytes) -> tuple[int, bytes]:
        """Send one prepared request; return the answer's status and body.

        Raises:
            OSError: the connection failed or was closed (``ConnectionError`` included).
        """
        ...

    def close(self) -> None:
        """Close; a request in flight fails with ``ConnectionError``."""
        ...


@dataclass(frozen=True)
class LoadConfig:
    """What to send, how hard and for how long.

    Attributes:
        url: Server base URL, e.g. ``http://127.0.0.1:8080``.
        model: Model name.
        version: Model version to address, or None to let the server route.
        concurrency: Connections: requests in flight (closed loop), or at most (open loop).
        rate: Requests per second to schedule (open loop), or None for a closed loop.
        arrivals: Open-loop arrivals: ``poisson`` (exponential gaps) or ``constant``.
        duration_s: Measured seconds.
        warmup_s: Seconds of the same load before, not measured.
        rows: Rows per request.
        max_requests: Stop after that many measured requests (None: time only).
        timeout_s: An answer taking longer counts as a ``timeout`` failure.
        seed: Seed of random request contents and Poisson arrivals.
        distinct_payloads: Different request bodies to cycle through.
        binary: Send tensors with the V2 binary tensor data extension (and ask for binary
            outputs) instead of JSON ``data``.
    """

    url: str
    model: str
    version: str | None = None
    concurrency: int = 16
    rate: float | None = None
    arrivals: Literal["poisson", "constant"] = "poisson"
    duration_s: float = 10.0
    warmup_s: float = 1.0
    rows: int = 1
    max_requests: int | None = None
    timeout_s: float = 30.0
    seed: int = 0
    distinct_payloads: int = 64
    binary: bool = False

    def __post_init__(self) -> None:
        rate, limit = self.rate, self.max_requests
        checks: list[tuple[str, Any, bool, str]] = [
            ("model", self.model, bool(self.model), "a model name"),
            ("concurrency", self.concurrency, 1 <= self.concurrency <= 10_000, "1 to 10000"),
            ("rate", rate, rate is None or 0 < rate <= 1e6, "0 < requests/s <= 1000000"),
            (
                "arrivals",
                self.arrivals,
                self.arrivals in ("poisson", "constant"),
                "poisson|constant",
            ),
            ("duration", self.duration_s, 0 < self.duration_s <= 86_400, "0 < seconds <= 86400"),
            ("warmup", self.warmup_s, 0 <= self.warmup_s <= 3_600, "0 to 3600 seconds"),
            ("rows", self.rows, 1 <= self.rows <= 1_000_000, "1 to 1000000"),
            ("requests", limit, limit is None or limit >= 1, "at least 1"),
            ("timeout", self.timeout_s, self.timeout_s > 0, "seconds > 0"),
            ("distinct_payloads", self.distinct_payloads, self.distinct_payloads >= 1, ">= 1"),
        ]
        for name, value, ok, expected in checks:
            if not ok:
                raise InvalidInputError.for_field(name, value, expected)

    @property
    def infer_path(self) -> str:
        """The V2 infer route of the model (and version)."""
        version = f"/versions/{self.version}" if self.version else ""
        return f"/v2/models/{self.model}{version}/infer"


def arrival_offsets(
    rate: float, *, poisson: bool, rng: random.Random | None = None
) -> Iterator[float]:
    """Scheduled send times of an open-loop run, in seconds from its start (endless).

    Constant arrivals are ``k / rate``; Poisson arrivals are separated by independent
    exponential gaps of mean ``1 / rate``. A schedule never depends on when requests were
    actually sent or answered.
    """
    if not poisson:
        yield from (k / rate for k in itertools.count())
        return
    draw = (rng or random.Random(0)).expovariate  # noqa: S311 - arrival times, not secrets
    t = 0.0
    while True:
        yield t
        t += draw(rate)


class _Run:
    """One run's state: the phases, the open-loop queue, the stats, requests in flight."""

    def __init__(
        self,
        config: LoadConfig,
        payloads: list[bytes],
        connect: Callable[[], Awaitable[Connection]],
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.config = config
        self.payloads = payloads
        self.connect = connect
        self.clock = clock
        self.sleep = sleep
        self.next_payload = itertools.cycle(payloads).__next__
        self.warm = RunStats()
        self.stats = RunStats()
        self.start = clock()
        self.measure_start = self.start + config.warmup_s
        self.end = self.measure_start + config.duration_s
        self.issued = 0  # measured requests sent (closed loop) or scheduled (open loop)
        self.no_more = False  # the schedule is over: workers drain the queue and stop
        self.queue: deque[float] = deque()
        self.queue_ready = asyncio.Event()
        self.inflight: dict[int, tuple[float, Connection]] = {}
        self.timed_out: set[int] = set()
        self.connections_opened = 0

    def _within(self, at: float) -> bool:
        limit = self.config.max_requests
        return at < self.end and (limit is None or self.issued < limit)

    def _stats_for(self, at: float) -> RunStats:
        return self.stats if at >= self.measure_start else self.warm

    async def _open(self, failures: int) -> Connection | None:
        delay = _BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)]
        if delay:
            await self.sleep(delay)
        try:
            conn = await asyncio.wait_for(self.connect(), self.config.timeout_s)
        except OSError as exc:  # TimeoutError included
            self._stats_for(self.clock()).error("connect", str(exc) or type(exc).__name__)
            return None
        self.connections_opened += 1
        return conn

    async def _send(self, worker: int, conn: Connection, since: float) -> bool:
        """One request, its latency counted from ``since``; False when the connection failed."""
        stats = self._stats_for(since)
        payload = self.next_payload()
        self.inflight[worker] = (self.clock(), conn)
        try:
            status, body = await conn.request(payload)
        except OSError as exc:
            if worker in self.timed_out:
                self.timed_out.discard(worker)
                stats.error("timeout", f"no answer within {self.config.timeout_s:g} s")
            else:
                stats.error("connection", str(exc) or type(exc).__name__)
            return False
        finally:
            del self.inflight[worker]
        stats.record(self.clock() - since, status, len(payload), body)
        return True

    async def closed_worker(self, worker: int) -> None:
        conn: Connection | None = None
        failures = 0
        try:
            while self._within(now := self.clock()):
                if conn is None or conn.closed:
                    conn = await self._open(failures)
                    if conn is None:
                        failures += 1
                        continue
                    now = self.clock()
                if now >= self.measure_start:
                    self.issued += 1
                if await self._send(worker, conn, now):
                    failures = 0
                else:
                    conn.close()
                    conn, failures = None, failures + 1
        finally:
            if conn is not None:
                conn.close()

    async def open_worker(self, worker: int) -> None:
        conn: Connection | None = None
        failures = 0
        try:
            while self.clock() < self.end:
                if not self.queue:
                    if self.no_more:
                        return
                    self.queue_ready.clear()
                    await self.queue_ready.wait()
                    continue
                if conn is None or conn.closed:
                    conn = await self._open(failures)
                    failures = 0 if conn is not None else failures + 1
                    continue
                if await self._send(worker, conn, self.queue.popleft()):
                    failures = 0
                else:
                    conn.close()
                    conn, failures = None, failures + 1
        finally:
            if conn is not None:
                conn.close()

    async def dispatch(self, offsets: Iterator[float]) -> None:
        """Put each scheduled request in the queue at its time; then wait for the end."""
        try:
            for offset in offsets:
                due = self.start + offset
                if not self._within(due):
                    break
                while (wait := due - self.clock()) > 0:
                    await self.sleep(wait - _SPIN_S / 2 if wait > _SPIN_S else 0)
                if due >= self.measure_start:
                    self.issued += 1
                self.queue.append(due)
                self.queue_ready.set()
            if self.config.max_requests is None and (left := self.end - self.clock()) > 0:
                await self.sleep(left)
        finally:
            self.no_more = True
            self.queue_ready.set()

    async def tick(self, on_progress: Callable[[Progress], None] | None) -> None:
        """Fail requests past the timeout, wake idle workers at the end, report progress."""
        window: deque[tuple[float, int]] = deque([(self.clock(), 0)], maxlen=9)
        while True:
            await self.sleep(_TICK_S)
            now = self.clock()
            for worker, (started, conn) in list(self.inflight.items()):
                if now - started > self.config.timeout_s:
                    self.timed_out.add(worker)
                    conn.close()
            if now >= self.end:
                self.queue_ready.set()
            done = self.warm.answered + self.stats.answered
            window.append((now, done))
            if on_progress is not None:
                span = now - window[0][0]
                on_progress(
                    Progress(
                        elapsed_s=now - self.start,
                        warmup_s=self.config.warmup_s,
                        duration_s=self.config.duration_s,
                        measuring=now >= self.measure_start,
                        answered=self.stats.answered,
                        failed=self.stats.failed,
                        recent_rps=(done - window[0][1]) / span if span > 0 else 0.0,
                        p99_s=self.stats.latency.percentile(99) if self.stats.answered else None,
                    )
                )


async def run_load(
    config: LoadConfig,
    payloads: list[bytes],
    *,
    connect: Callable[[], Awaitable[Connection]] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_progress: Callable[[Progress], None] | None = None,
    rng: random.Random | None = None,
) -> LoadResult:
    """Run the load on the running event loop and measure it.

    Args:
        config: What to send and for how long.
        payloads: Prepared HTTP requests (line, headers and body), sent in turn.
        connect: Opens a connection; by default an :class:`HttpConnection` to ``config.url``.
        clock: Monotonic seconds (``FakeClock.monotonic`` in tests).
        sleep: Waits on that clock (``FakeClock.sleep`` in tests).
        on_progress: Called four times a second with a :class:`Progress`.
        rng: Source of Poisson arrivals (``random.Random(config.seed)`` by default).

    Returns:
        What was measured after the warm-up.

    Raises:
        InvalidInputError: no payloads, or a URL that is not ``http(s)://host[:port]``.
    """
    if not payloads:
        raise InvalidInputError.for_field("payloads", payloads, "at least one request")
    if connect is None:
        target = parse_target(config.url)

        async def connect_http() -> Connection:
            return await HttpConnection.open(target)

        connect = connect_http
    run = _Run(config, payloads, connect, clock, sleep)
    cpu = time.process_time()
    if config.rate is None:
        tasks = [run.closed_worker(i) for i in range(config.concurrency)]
    else:
        rng = rng or random.Random(config.seed)  # noqa: S311 - arrival times, not secrets
        offsets = arrival_offsets(config.rate, poisson=config.arrivals == "poisson", rng=rng)
        tasks = [run.dispatch(offsets), *(run.open_worker(i) for i in range(config.concurrency))]
    ticker = asyncio.ensure_future(run.tick(on_progress))
    try:
        await asyncio.gather(*tasks)
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    return run.stats.result(
        config,
        elapsed_s=max(run.clock() - run.measure_start, 1e-9),
        client_cpu_s=time.process_time() - cpu,
        scheduled=run.issued if config.rate is not None else None,
        unsent=sum(due >= run.measure_start for due in run.queue),
        connections_opened=run.connections_opened,
    )


def run_loadtest(
    config: LoadConfig,
    *,
    data: Path | str | pa.Table | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> LoadResult:
    """Read the model's metadata, build the requests, run the load (blocking; uvloop if present).

    Args:
        config: What to send and for how long.
        data: A Parquet file (or pyarrow table) of rows to send instead of random values.
        on_progress: Called four times a second with a :class:`Progress`.

    Returns:
        What was measured after the warm-up.

    Raises:
        NotFoundError: the server does not serve that model or version.
        NotReadyError: the model is not ready.
        StorageError: the server cannot be reached or does not answer V2 metadata.
        InvalidInputError: bad options, or data that matches none of the model's inputs.
    """
    from bascule.loadgen.payloads import build_requests, fetch_metadata

    target = parse_target(config.url)
    metadata = fetch_metadata(config.url, config.model, config.version, timeout_s=config.timeout_s)
    payloads = build_requests(
        metadata, config, host=target.host_header, path_prefix=target.path, data=data
    )
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):  # uvloop is not on Windows
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(run_load(config, payloads, on_progress=on_progress))
