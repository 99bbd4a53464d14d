"""A load generator for Open Inference Protocol v2 servers (``bascule loadtest``).

It sends ``POST /v2/models/{name}[/versions/{v}]/infer`` requests over kept-alive HTTP/1.1
connections and measures what comes back:

* **closed loop** (``concurrency``): that many connections, each sending its next request
  as soon as the previous answer arrived; latency is measured from the send;
* **open loop** (``rate``): requests are *scheduled* at that rate (Poisson or constant
  arrivals) and sent on up to ``concurrency`` connections. A request that has to wait for a
  free connection waits, and its latency counts from its *scheduled* send time, so a
  stalling server cannot hide its stalls by slowing the generator down (no coordinated
  omission). Scheduled requests still waiting at the end are reported as ``unsent``.

Request bodies are built once, before the clock starts (:mod:`bascule.loadgen.payloads`):
random tensors from the model's V2 metadata, or rows of a Parquet file. Latencies go into a
log-bucketed histogram (:class:`LatencyHistogram`, within 0.8%); answers are counted by
status, failures by status or kind (``connection``, ``connect``, ``timeout``).

The HTTP client (:mod:`bascule.loadgen.connection`) is a small ``asyncio.Protocol`` rather
than httpx: on a 2-core machine httpx's per-request CPU would make the generator the
bottleneck (see ``client_cpu_per_request_us`` in the result). Runs use uvloop when it is
installed, are bounded by time (``warmup_s + duration_s``, then at most ``timeout_s`` for
answers in flight) and optionally by count (``max_requests``), and stop by themselves.

Example:
    >>> from bascule.loadgen import LoadConfig, run_loadtest
    >>> config = LoadConfig("http://127.0.0.1:8080", "fraud", concurrency=16, duration_s=10)
    >>> result = run_loadtest(config)  # doctest: +SKIP
    >>> result.throughput_rps, result.latency_ms["p99"]  # doctest: +SKIP
"""

from __future__ import annotations

from bascule.loadgen.histogram import LatencyHistogram
from bascule.loadgen.payloads import Body, build_bodies, fetch_metadata
from bascule.loadgen.results import LoadResult, Progress
from bascule.loadgen.runner import Connection, LoadConfig, arrival_offsets, run_load, run_loadtest

__all__ = [
    "Body",
    "Connection",
    "LatencyHistogram",
    "LoadConfig",
    "LoadResult",
    "Progress",
    "arrival_offsets",
    "build_bodies",
    "fetch_metadata",
    "run_load",
    "run_loadtest",
]
