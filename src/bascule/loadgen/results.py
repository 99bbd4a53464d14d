"""What a load run counts as it runs (:class:`RunStats`) and reports (:class:`LoadResult`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final

from bascule.loadgen.histogram import LatencyHistogram

if TYPE_CHECKING:
    from bascule.loadgen.runner import LoadConfig

__all__ = ["LoadResult", "Progress", "RunStats"]

_SAMPLE_CHARS: Final = 300
_BUSY_CPU_PERCENT: Final = 85.0


@dataclass(frozen=True)
class Progress:
    """A snapshot for the live progress line."""

    elapsed_s: float
    warmup_s: float
    duration_s: float
    measuring: bool
    """False during the warm-up."""
    answered: int
    """Answers received since the warm-up ended (any status)."""
    failed: int
    """Of those, non-2xx answers, plus connection failures and timeouts."""
    recent_rps: float
    """Answers per second over the last two seconds (warm-up included)."""
    p99_s: float | None
    """The p99 latency so far (None before the first measured answer)."""


class RunStats:
    """Counters of one phase of a run (the warm-up, or the measured part)."""

    __slots__ = (
        "answered",
        "bytes_received",
        "bytes_sent",
        "error_samples",
        "errors",
        "failed",
        "latency",
        "ok",
        "statuses",
    )

    def __init__(self) -> None:
        self.latency = LatencyHistogram()
        self.statuses: dict[int, int] = {}
        self.errors: dict[str, int] = {}
        self.error_samples: dict[str, str] = {}
        self.answered = self.ok = self.failed = 0
        self.bytes_sent = self.bytes_received = 0

    def record(self, seconds: float, status: int, sent: int, body: bytes) -> None:
        """Count one answer and its latency."""
        self.latency.record(seconds)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.answered += 1
        self.bytes_sent += sent
        self.bytes_received += len(body)
        if 200 <= status < 300:
            self.ok += 1
        else:
            self.error(str(status), body.decode("utf-8", "replace"))

    def error(self, kind: str, message: str) -> None:
        """Count one failure: a non-2xx status, or ``connection``, ``connect``, ``timeout``."""
        self.failed += 1
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if kind not in self.error_samples:
            self.error_samples[kind] = message[:_SAMPLE_CHARS]

    def result(
        self,
        config: LoadConfig,
        *,
        elapsed_s: float,
        client_cpu_s: float,
        scheduled: int | None,
        unsent: int,
        connections_opened: int,
    ) -> LoadResult:
        """The figures of this phase."""
        cpu_percent = 100.0 * client_cpu_s / elapsed_s if elapsed_s > 0 else 0.0
        warnings = []
        if cpu_percent >= _BUSY_CPU_PERCENT:
            warnings.append(
                f"the load generator used {cpu_percent:.0f}% of a CPU: it may be the "
                "bottleneck; run it on another machine or lower --concurrency"
            )
        if unsent:
            warnings.append(
                f"{unsent} scheduled requests were never sent: the server could not keep up "
                "with --rate on --concurrency connections"
            )
        done = self.answered + self.errors.get("connection", 0) + self.errors.get("timeout", 0)
        return LoadResult(
            url=config.url,
            model=config.model,
            version=config.version,
            mode="closed" if config.rate is None else "open",
            concurrency=config.concurrency,
            rate=config.rate,
            arrivals=config.arrivals if config.rate is not None else None,
            rows_per_request=config.rows,
            duration_s=elapsed_s,
            requests=self.answered,
            ok=self.ok,
            failed=self.failed,
            throughput_rps=self.ok / elapsed_s,
            requests_per_s=self.answered / elapsed_s,
            rows_per_s=self.ok * config.rows / elapsed_s,
            latency_ms=self.latency.summary_ms(),
            latency_from="scheduled send" if config.rate is not None else "send",
            statuses={str(k): v for k, v in sorted(self.statuses.items())},
            errors=dict(sorted(self.errors.items())),
            error_samples=dict(sorted(self.error_samples.items())),
            scheduled=scheduled,
            unsent=unsent,
            connections_opened=connections_opened,
            bytes_sent=self.bytes_sent,
            bytes_received=self.bytes_received,
            client_cpu_s=client_cpu_s,
            client_cpu_percent=cpu_percent,
            client_cpu_per_request_us=1e6 * client_cpu_s / done if done else 0.0,
            warnings=warnings,
        )


@dataclass(frozen=True)
class LoadResult:
    """The figures of a load run, measured after the warm-up.

    Attributes:
        url: Server base URL.
        model: Model name.
        version: Model version addressed, or None.
        mode: ``closed`` (fixed concurrency) or ``open`` (fixed arrival rate).
        concurrency: Connections used.
        rate: Target requests per second (open loop), or None.
        arrivals: ``poisson`` or ``constant`` (open loop), or None.
        rows_per_request: Rows in each request.
        duration_s: Measured seconds (until the last answer in flight came back).
        requests: HTTP answers received (any status).
        ok: 2xx answers.
        failed: Non-2xx answers, connection failures and timeouts.
        throughput_rps: 2xx answers per second.
        requests_per_s: Answers per second, whatever their status.
        rows_per_s: Rows answered with 2xx per second.
        latency_ms: ``p50``, ``p90``, ``p99``, ``max``, ``mean``, ``min`` of every answer.
        latency_from: ``send``, or ``scheduled send`` in the open loop (no coordinated omission).
        statuses: Answers by HTTP status.
        errors: Failures by status (``"503"``) or kind (``connection``, ``connect``, ``timeout``).
        error_samples: The first message seen for each kind of failure.
        scheduled: Requests scheduled in the measured part (open loop), or None.
        unsent: Scheduled requests still waiting for a connection at the end (open loop).
        connections_opened: Connections opened, reconnections included.
        bytes_sent: Request bytes, headers included.
        bytes_received: Answer body bytes.
        client_cpu_s: CPU time of the load generator during the run.
        client_cpu_percent: That time over the measured duration (100 = one busy core).
        client_cpu_per_request_us: The generator's CPU per request, in microseconds.
        warnings: Reasons to doubt the figures (a busy generator, unsent requests).
    """

    url: str
    model: str
    version: str | None
    mode: str
    concurrency: int
    rate: float | None
    arrivals: str | None
    rows_per_request: int
    duration_s: float
    requests: int
    ok: int
    failed: int
    throughput_rps: float
    requests_per_s: float
    rows_per_s: float
    latency_ms: dict[str, float]
    latency_from: str
    statuses: dict[str, int]
    errors: dict[str, int]
    error_samples: dict[str, str]
    scheduled: int | None
    unsent: int
    connections_opened: int
    bytes_sent: int
    bytes_received: int
    client_cpu_s: float
    client_cpu_percent: float
    client_cpu_per_request_us: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data (what ``bascule loadtest --json`` prints)."""
        return asdict(self)
