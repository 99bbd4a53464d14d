"""The load generator: histogram accuracy, request building, HTTP parsing, and both run loops
on a FakeClock with fake connections (no sockets, no wall-clock waits)."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest

from bascule.core.errors import InvalidInputError
from bascule.core.tensors import load_json, parse_request, split_body
from bascule.loadgen import (
    LatencyHistogram,
    LoadConfig,
    LoadResult,
    arrival_offsets,
    build_bodies,
    run_load,
)
from bascule.loadgen.connection import encode_request, parse_target
from bascule.loadgen.payloads import VOCABULARY
from bascule.testing import FakeClock

# -- histogram ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(1).lognormal(np.log(5e-4), 1.0, 50_000),
        np.random.default_rng(2).uniform(1e-5, 2.0, 20_000),
        np.concatenate([np.full(990, 2e-4), np.full(10, 0.35)]),  # a tail that p99 must see
        np.array([7e-9, 3e-3]),
    ],
    ids=["lognormal", "uniform", "bimodal", "two-values"],
)
def test_histogram_percentiles_are_within_one_percent_of_numpy(values: np.ndarray) -> None:
    h = LatencyHistogram()
    for v in values:
        h.record(float(v))
    exact = np.floor(values * 1e9) / 1e9  # the histogram records whole nanoseconds

    for p in (0, 1, 25, 50, 90, 99, 99.9, 100):
        expected = float(np.percentile(exact, p, method="inverted_cdf"))
        assert h.percentile(p) == pytest.approx(expected, rel=0.01), p
    assert len(values) == h.count
    assert exact.max() == pytest.approx(h.max, abs=1e-9)
    assert exact.min() == pytest.approx(h.min, abs=1e-9)
    assert exact.mean() == pytest.approx(h.mean, rel=1e-6)


def test_histogram_merge_equals_recording_everything_in_one() -> None:
    rng = np.random.default_rng(3)
    a, b, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for v in rng.exponential(1e-3, 5_000):
        (a if v < 1e-3 else b).record(float(v))
        both.record(float(v))
    a.merge(b)

    assert both.summary_ms() == a.summary_ms()
    assert both.count == a.count


def test_histogram_refuses_empty_and_out_of_range_percentiles() -> None:
    h = LatencyHistogram()

    assert 0.0 == h.summary_ms()["p99"]
    with pytest.raises(ValueError, match="no latency"):
        h.percentile(50)
    h.record(-1.0)  # clamped to 0
    with pytest.raises(ValueError, match="101"):
        h.percentile(101)
    assert 0.0 == h.percentile(100)


# -- request building ---------------------------------------------------------------------------

MATRIX = {
    "name": "fraud",
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 3]}],
    "parameters": {"columns": [{"name": "a"}, {"name": "b"}, {"name": "c"}]},
}
MIXED = {
    "name": "mixed",
    "inputs": [
        {"name": "n", "datatype": "INT64", "shape": [-1, 1]},
        {"name": "x", "datatype": "FP64", "shape": [-1]},
        {"name": "city", "datatype": "BYTES", "shape": [-1, 1]},
        {"name": "flag", "datatype": "BOOL", "shape": [-1, 1]},
    ],
}


def test_bodies_from_metadata_have_one_tensor_per_input_with_the_rows_asked() -> None:
    bodies = [orjson.loads(b.content) for b in build_bodies(MIXED, rows=5, count=3, seed=1)]

    assert 3 == len(bodies)
    first = {t["name"]: t for t in bodies[0]["inputs"]}
    assert ["n", "x", "city", "flag"] == list(first)
    assert [5, 1] == first["n"]["shape"]
    assert [5] == first["x"]["shape"]
    assert all(isinstance(v, int) and 0 <= v < 10 for v in first["n"]["data"])
    assert all(isinstance(v, float) for v in first["x"]["data"])
    assert "BYTES" == first["city"]["datatype"]
    assert set(first["city"]["data"]) <= set(VOCABULARY)
    assert all(isinstance(v, bool) for v in first["flag"]["data"])
    assert bodies[0] != bodies[1]  # different random values per body


def test_bodies_from_metadata_fill_a_matrix_input() -> None:
    (body,) = build_bodies(MATRIX, rows=4, count=1)
    (tensor,) = orjson.loads(body.content)["inputs"]

    assert body.json_length is None

    assert [4, 3] == tensor["shape"]
    assert 12 == len(tensor["data"])


def test_binary_bodies_decode_to_the_same_tensors_as_json_bodies() -> None:
    table = pa.table(
        {"n": [1, 2], "x": [0.5, 1.5], "city": ["lyon", "paris"], "flag": [True, False]}
    )
    (as_json,) = build_bodies(MIXED, rows=2, count=1, data=table)
    (as_binary,) = build_bodies(MIXED, rows=2, count=1, data=table, binary=True)

    head, rest = split_body(as_binary.content, str(as_binary.json_length))
    from_binary = parse_request(load_json(head), rest)
    from_json = parse_request(orjson.loads(as_json.content))
    assert from_binary.binary_output
    assert [t.name for t in from_json.inputs] == [t.name for t in from_binary.inputs]
    for a, b in zip(from_json.inputs, from_binary.inputs, strict=True):
        assert a.datatype == b.datatype
        assert a.array.tolist() == b.array.tolist()


def test_bodies_refuse_a_fixed_batch_size_and_unknown_datatypes() -> None:
    fixed = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3]}]}
    odd = {"inputs": [{"name": "x", "datatype": "FP8", "shape": [-1]}]}

    with pytest.raises(InvalidInputError, match="--rows 1") as e:
        build_bodies(fixed, rows=2)
    assert "invalid_input" == e.value.code
    assert 1 == len(build_bodies(fixed, rows=1, count=1))
    with pytest.raises(InvalidInputError, match="FP8"):
        build_bodies(odd)


def test_bodies_from_a_table_take_the_feature_columns_as_the_matrix_in_order() -> None:
    table = pa.table({"c": [3.0, 6.0], "b": [2.0, 5.0], "a": [1.0, 4.0], "label": [0, 1]})

    bodies = build_bodies(MATRIX, rows=2, count=1, data=table)
    (tensor,) = orjson.loads(bodies[0].content)["inputs"]

    assert [2, 3] == tensor["shape"]
    assert [1.0, 2.0, 3.0, 4.0, 5.0, 6.0] == tensor["data"]


def test_bodies_from_a_table_take_one_column_per_input_and_cycle_rows() -> None:
    table = pa.table(
        {
            "n": [1, 2, 3],
            "x": [0.5, 1.5, 2.5],
            "city": ["lyon", None, "paris"],
            "flag": [True, False, True],
        }
    )

    bodies = [
        orjson.loads(b.content)["inputs"] for b in build_bodies(MIXED, rows=2, count=3, data=table)
    ]

    assert 3 == len(bodies)
    assert [1, 2] == bodies[0][0]["data"]
    assert ["lyon", None] == bodies[0][2]["data"]
    assert [3, 1] == bodies[1][0]["data"]  # wraps around the table
    assert [[2, 1], [2], [2, 1], [2, 1]] == [t["shape"] for t in bodies[1]]


def test_bodies_from_a_table_that_matches_no_input_name_the_columns() -> None:
    table = pa.table({"p": [1.0], "q": [2.0]})

    with pytest.raises(InvalidInputError, match="3 feature columns"):
        build_bodies(MATRIX, data=table)
    with pytest.raises(InvalidInputError, match="one column per model input"):
        build_bodies(MIXED, data=table)


def test_requests_are_whole_http_messages() -> None:
    raw = encode_request("POST", "/v2/models/m/infer", "127.0.0.1:8080", b'{"inputs":[]}')

    head, body = raw.split(b"\r\n\r\n")
    assert head.startswith(b"POST /v2/models/m/infer HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n")
    assert b"Content-Length: 13" in head
    assert b'{"inputs":[]}' == body


def test_targets_parse_http_urls_and_refuse_others() -> None:
    t = parse_target("http://127.0.0.1:8080/prefix/")

    assert ("127.0.0.1", 8080, "/prefix", "127.0.0.1:8080") == (
        t.host,
        t.port,
        t.path,
        t.host_header,
    )
    assert 80 == parse_target("http://localhost").port
    with pytest.raises(InvalidInputError, match="URL"):
        parse_target("ftp://127.0.0.1")


def test_configs_refuse_bad_options_with_the_option_named() -> None:
    with pytest.raises(InvalidInputError, match="concurrency"):
        LoadConfig("http://127.0.0.1", "m", concurrency=0)
    with pytest.raises(InvalidInputError, match="rate"):
        LoadConfig("http://127.0.0.1", "m", rate=-1)
    assert "/v2/models/m/versions/2/infer" == LoadConfig("http://x", "m", version="2").infer_path


# -- HTTP answers, parsed from chunks as they arrive --------------------------------------------


class _FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing


@pytest.mark.parametrize(
    ("answer", "status", "body", "keep_alive"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, b"hello", True),
        (b"HTTP/1.1 503 NO\r\ncontent-length: 2\r\nConnection: close\r\n\r\n{}", 503, b"{}", False),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
            200,
            b"abcde",
            True,
        ),
        (b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n", 204, b"", True),
    ],
    ids=["content-length", "close", "chunked", "no-body"],
)
def test_answers_are_parsed_whatever_the_chunking(
    answer: bytes, status: int, body: bytes, keep_alive: bool
) -> None:
    from bascule.loadgen.connection import HttpConnection, _Protocol

    async def main() -> None:
        for size in (1, 7, len(answer)):
            protocol = _Protocol()
            transport = _FakeTransport()
            protocol.connection_made(transport)  # type: ignore[arg-type]  # a fake transport
            conn = HttpConnection(protocol, asyncio.get_running_loop())
            pending = asyncio.ensure_future(conn.request(b"GET / HTTP/1.1\r\n\r\n"))
            await asyncio.sleep(0)
            for i in range(0, len(answer), size):
                protocol.data_received(answer[i : i + size])

            assert (status, body) == await pending
            assert keep_alive == (not conn.closed)

    asyncio.run(main())


def test_a_connection_lost_mid_answer_fails_the_request() -> None:
    from bascule.loadgen.connection import HttpConnection, _Protocol

    async def main() -> None:
        protocol = _Protocol()
        protocol.connection_made(_FakeTransport())  # type: ignore[arg-type]  # a fake transport
        conn = HttpConnection(protocol, asyncio.get_running_loop())
        pending = asyncio.ensure_future(conn.request(b"x"))
        await asyncio.sleep(0)
        protocol.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        protocol.connection_lost(None)

        with pytest.raises(ConnectionError):
            await pending
        assert conn.closed

    asyncio.run(main())


# -- arrivals -----------------------------------------------------------------------------------


def test_constant_arrivals_are_evenly_spaced_from_the_start() -> None:
    offsets = arrival_offsets(250.0, poisson=False)

    assert [k / 250 for k in range(1000)] == [next(offsets) for _ in range(1000)]


def test_poisson_arrivals_have_exponential_gaps_of_the_right_mean() -> None:
    offsets = arrival_offsets(200.0, poisson=True, rng=random.Random(7))
    times = np.array([next(offsets) for _ in range(40_001)])
    gaps = np.diff(times)

    assert 0.0 == times[0]
    assert 1 / 200 == pytest.approx(gaps.mean(), rel=0.03)
    assert 1.0 == pytest.approx(gaps.std() / gaps.mean(), rel=0.03)  # exponential: CV = 1
    assert 40_000 / 200 == pytest.approx(times[-1], rel=0.03)


# -- runs on a fake clock -----------------------------------------------------------------------


class FakeServer:
    """Connections whose answers take ``service_s`` of fake time, one at a time overall
    (``serial``) or each on its own; ``answers`` decides each status."""

    def __init__(
        self,
        clock: FakeClock,
        service_s: float,
        *,
        serial: bool = False,
        answers: Callable[[int], int] = lambda _: 200,
        fail_every: int = 0,
    ) -> None:
        self.clock = clock
        self.service_s = service_s
        self.lock = asyncio.Lock() if serial else None
        self.answers = answers
        self.fail_every = fail_every
        self.requests = 0
        self.opened = 0

    async def connect(self) -> FakeConnection:
        self.opened += 1
        return FakeConnection(self)


class FakeConnection:
    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.closed = False
        self._work: asyncio.Future[None] | None = None

    async def request(self, payload: bytes) -> tuple[int, bytes]:
        s = self.server
        s.requests += 1
        n = s.requests
        if s.fail_every and n % s.fail_every == 0:
            self.closed = True
            raise ConnectionResetError("reset by fake peer")
        if s.lock is None:
            await self._serve()
        else:
            async with s.lock:
                await self._serve()
        status = s.answers(n)
        return status, b"{}" if status == 200 else b'{"error": "busy"}'

    async def _serve(self) -> None:
        self._work = asyncio.ensure_future(self.server.clock.sleep(self.server.service_s))
        try:
            await self._work
        except asyncio.CancelledError:
            if not self.closed:
                raise
            raise ConnectionAbortedError("closed by the load generator") from None

    def close(self) -> None:
        """Like a real connection: a request in flight fails."""
        self.closed = True
        if self._work is not None:
            self._work.cancel()


def _run(
    config: LoadConfig, server: FakeServer, clock: FakeClock, step: float = 0.0005
) -> LoadResult:
    """Run the load while moving the fake clock forward in small steps."""

    async def main() -> LoadResult:
        connect: Callable[[], Awaitable[Any]] = server.connect
        task = asyncio.ensure_future(
            run_load(
                config,
                [b"req-a", b"req-b"],
                connect=connect,
                clock=clock.monotonic,
                sleep=clock.sleep,
                rng=random.Random(1),
            )
        )
        while not task.done():
            clock.advance(step)
            for _ in range(6):
                await asyncio.sleep(0)
        return task.result()

    return asyncio.run(main())


def test_closed_loop_keeps_concurrency_requests_in_flight() -> None:
    clock = FakeClock()
    server = FakeServer(clock, 0.010)
    config = LoadConfig("http://127.0.0.1", "m", concurrency=4, duration_s=1.0, warmup_s=0.2)

    result = _run(config, server, clock)

    assert 4 == server.opened
    # 4 connections x 100 per second (less a little: the fake clock moves in 0.5 ms steps)
    assert 390 == pytest.approx(result.requests, abs=15)
    assert 390 == pytest.approx(result.throughput_rps, abs=15)
    assert 10.0 <= result.latency_ms["p50"] <= 10.6
    assert {"200": result.requests} == result.statuses
    assert {} == result.errors
    assert server.requests > result.requests  # the warm-up was not measured


def test_open_loop_on_a_fast_server_measures_the_service_time() -> None:
    clock = FakeClock()
    server = FakeServer(clock, 0.005)
    config = LoadConfig(
        "http://127.0.0.1",
        "m",
        rate=100,
        arrivals="constant",
        concurrency=4,
        duration_s=1.0,
        warmup_s=0,
    )

    result = _run(config, server, clock)

    assert 100 == result.scheduled
    assert 100 == result.requests
    assert 0 == result.unsent
    # 5 ms, plus at most two steps of the fake clock (the release, the answer)
    assert 5.0 <= result.latency_ms["p50"] <= 6.1
    assert result.latency_ms["max"] <= 6.1
    assert "scheduled send" == result.latency_from


def test_open_loop_counts_waiting_for_the_server_no_coordinated_omission() -> None:
    # 100 requests/s scheduled on one connection to a server that needs 20 ms per request:
    # request k is scheduled at 10k ms but answered at 20(k+1) ms, 20 + 10k ms late. A
    # generator that timed from the actual send would report 20 ms for all of them.
    clock = FakeClock()
    server = FakeServer(clock, 0.020, serial=True)
    config = LoadConfig(
        "http://127.0.0.1",
        "m",
        rate=100,
        arrivals="constant",
        concurrency=1,
        duration_s=1.0,
        warmup_s=0,
    )

    result = _run(config, server, clock, step=0.0002)

    assert 50 == pytest.approx(result.requests, abs=1)
    assert 100 == result.scheduled
    assert 50 == pytest.approx(result.unsent, abs=1)
    expected = np.array([20 + 10 * k for k in range(result.requests)], dtype=float)
    assert float(np.percentile(expected, 50, method="inverted_cdf")) == pytest.approx(
        result.latency_ms["p50"],
        rel=0.05,  # the fake clock's steps add ~0.2 ms per request
    )
    assert float(expected.max()) == pytest.approx(result.latency_ms["max"], rel=0.05)
    assert result.latency_ms["p50"] > 10 * 20
    assert any("never sent" in w for w in result.warnings)


def test_failures_are_counted_by_status_and_kind_and_connections_reopened() -> None:
    clock = FakeClock()
    server = FakeServer(clock, 0.010, answers=lambda n: 503 if n % 4 == 0 else 200, fail_every=7)
    config = LoadConfig("http://127.0.0.1", "m", concurrency=2, duration_s=0.5, warmup_s=0)

    result = _run(config, server, clock)

    assert set(result.errors) == {"503", "connection"}
    assert result.errors["503"] == result.statuses["503"]
    assert result.failed == result.errors["503"] + result.errors["connection"]
    assert result.ok == result.statuses["200"]
    assert "busy" in result.error_samples["503"]
    assert "reset by fake peer" in result.error_samples["connection"]
    assert result.connections_opened > 2


def test_runs_stop_after_max_requests() -> None:
    clock = FakeClock()
    server = FakeServer(clock, 0.001)
    config = LoadConfig(
        "http://127.0.0.1", "m", concurrency=3, duration_s=60, warmup_s=0, max_requests=50
    )

    result = _run(config, server, clock)

    assert 50 == result.requests
    assert result.duration_s < 1.0


def test_requests_past_the_timeout_fail_as_timeouts() -> None:
    clock = FakeClock()
    server = FakeServer(clock, 5.0)
    config = LoadConfig(
        "http://127.0.0.1", "m", concurrency=2, duration_s=1.0, warmup_s=0, timeout_s=0.5
    )

    result = _run(config, server, clock, step=0.01)

    assert 0 == result.ok
    assert result.errors["timeout"] >= 2
    assert result.duration_s < 2.0
    assert math.isclose(0.0, result.throughput_rps)
