"""Microbenchmark of the prediction log: append cost, flush throughput, window reads.

Prints ``name: value unit`` lines on stdout, progress on stderr::

    .venv/bin/python benchmarks/prediction_log.py            # 1,000,000 rows read back
    .venv/bin/python benchmarks/prediction_log.py --quick    # 100,000 rows

Records look like a tabular model's: 8 float and 2 categorical inputs, a label and two
class probabilities. Figures:

- ``append_1row_per_record`` / ``append_64row_per_record``: ``PredictionLog.append`` on the
  request path (no flusher running), per call, median of 3 runs of 200,000 calls;
  ``deque_append_per_record`` is a bare ``deque.append`` for scale.
- ``flush_*_throughput``: ``flush()`` of a full buffer into a ``LocalArtifactStore`` in a
  temporary folder (Arrow tables, lz4 Parquet by default, atomic fsynced writes, chunks of the
  server's default ``flush_rows``), rows per second,
  after an untimed warm-up flush (pyarrow's import and first conversions).
- ``flush_64row_{lz4,zstd}_cpu_per_row`` / ``..._bytes_per_row``: the flushing thread's CPU
  time per row and the file bytes per row with each codec
  (``serving.prediction_log.compression``).
- ``flush_server_64row_cpu_per_row`` / ``..._bytes_per_row``: the same for what the inference
  server logs under the serving benchmark's 64-row load: batches of 128 requests of 64 rows,
  30 float32 features, a label and two class probabilities (``PredictionBatch``); median of
  three flushes.
- ``read_1h_window``: ``read_predictions`` of one hour holding all the rows (DuckDB over the
  hour's Parquet files, ordered by time, into pandas), median of 3 after an untimed first
  read, which ``read_1h_window_first`` shows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bascule.core.clock import SystemClock
from bascule.core.settings import PredictionLogSettings
from bascule.store.artifacts import LocalArtifactStore
from bascule.store.predictions import (
    PredictionBatch,
    PredictionLog,
    PredictionRecord,
    read_predictions,
)

HOUR = datetime(2026, 3, 1, 10, tzinfo=UTC)
CITIES = np.array(["Paris", "Lyon", "Lille", "Nantes", "Nice"], dtype=object)
PLANS = np.array(["free", "silver", "gold"], dtype=object)


def progress(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def figure(name: str, value: float, unit: str) -> None:
    print(f"{name}: {value:.6g} {unit}", flush=True)


def make_records(n: int, rows: int, rng: np.random.Generator) -> list[PredictionRecord]:
    """``n`` records of ``rows`` rows, timestamps spread over one hour."""
    out = []
    for i in range(n):
        inputs: dict[str, np.ndarray] = {f"f{j}": rng.standard_normal(rows) for j in range(8)}
        inputs["city"] = CITIES[rng.integers(0, len(CITIES), rows)]
        inputs["plan"] = PLANS[rng.integers(0, len(PLANS), rows)]
        p1 = rng.random(rows)
        outputs = {
            "prediction": np.where(p1 > 0.5, "fraud", "ok").astype(object),
            "proba_ok": 1 - p1,
            "proba_fraud": p1,
        }
        at = HOUR + timedelta(seconds=3599.0 * i / max(n - 1, 1))
        out.append(
            PredictionRecord(
                request_id=f"req-{rows}-{i:09d}",
                model_name="fraud",
                model_version=3,
                timestamp=at,
                inputs=inputs,
                outputs=outputs,
                latency_ms=1.5,
                route="champion",
                policy="",
            )
        )
    return out


def make_server_batches(rows: int, rng: np.random.Generator) -> list[PredictionBatch]:
    """About ``rows`` rows as the inference server logs 64-row requests: 128 per batch."""
    out = []
    requests, per_request, features = 128, 64, 30
    for i in range(max(1, rows // (requests * per_request))):
        n = requests * per_request
        x = rng.standard_normal((n, features)).astype(np.float32)
        p1 = rng.random(n).astype(np.float32)
        start = HOUR + timedelta(seconds=i)
        out.append(
            PredictionBatch(
                model_name="hgb",
                model_version=1,
                request_ids=[f"{i:08d}-{j:024d}" for j in range(requests)],
                request_rows=[per_request] * requests,
                timestamps_us=micros(start) + np.arange(requests) * 100,
                latencies_ms=rng.random(requests) * 5,
                routes=["champion"] * requests,
                inputs={f"f{j}": x[:, j].copy() for j in range(features)},
                outputs={"proba_0": 1 - p1, "proba_1": p1, "label": (p1 > 0.5).astype(np.int64)},
            )
        )
    return out


def micros(ts: datetime) -> int:
    return (ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def bench_append(records: list[PredictionRecord], calls: int) -> float:
    """Nanoseconds per ``append`` (records reused cyclically; the buffer never fills)."""
    plog = PredictionLog(
        LocalArtifactStore(Path(tempfile.gettempdir()) / "unused"),
        max_buffer_rows=10**12,
        flush_rows=10**12,
        clock=SystemClock(),
    )
    batch = (records * (calls // len(records) + 1))[:calls]
    append = plog.append
    t0 = time.perf_counter_ns()
    for r in batch:
        append(r)
    return (time.perf_counter_ns() - t0) / calls


def bench_deque(records: list[PredictionRecord], calls: int) -> float:
    d: deque[PredictionRecord] = deque()
    batch = (records * (calls // len(records) + 1))[:calls]
    append = d.append
    t0 = time.perf_counter_ns()
    for r in batch:
        append(r)
    return (time.perf_counter_ns() - t0) / calls


def median(bench: Callable[[list[PredictionRecord], int], float], *args: Any) -> float:
    return statistics.median(bench(*args) for _ in range(3))


def bench_flush(
    store: LocalArtifactStore,
    records: list[PredictionRecord] | list[PredictionBatch],
    compression: str = "lz4",
) -> tuple[float, int, float]:
    """One ``flush()`` of ``records``: rows per second, files written, and the CPU time of the
    flushing thread per row in µs (encoding, and the system time of writing and fsync)."""
    plog = PredictionLog(
        store,
        max_buffer_rows=10**9,
        flush_rows=PredictionLogSettings().flush_rows,  # the server's default
        compression=compression,
        clock=SystemClock(),
    )
    for r in records:
        plog.append(r)
    rows = plog.buffered_rows
    t0, cpu0 = time.perf_counter(), time.thread_time()
    written = plog.flush()
    dt, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
    if written != rows:
        raise SystemExit(f"flush wrote {written} of {rows} rows")
    return rows / dt, plog.files_written, cpu / rows * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows instead of 1,000,000")
    args = parser.parse_args()
    total_rows = 100_000 if args.quick else 1_000_000
    rng = np.random.default_rng(7)

    progress("building records")
    one = make_records(20_000, 1, rng)
    wide = make_records(total_rows // 64, 64, rng)
    calls = 200_000

    progress("append")
    figure("deque_append_per_record", median(bench_deque, one, calls), "ns")
    figure("append_1row_per_record", median(bench_append, one, calls), "ns")
    figure("append_64row_per_record", median(bench_append, wide, calls), "ns")

    with tempfile.TemporaryDirectory(prefix="bascule-bench-plog-") as tmp:
        bench_flush(LocalArtifactStore(Path(tmp) / "warm-up"), one[:100])
        progress("flush of 1-row records")
        rate, files, _ = bench_flush(LocalArtifactStore(Path(tmp) / "one"), one)
        figure("flush_1row_records_throughput", rate, f"rows/s ({len(one)} rows, {files} files)")
        progress(f"flush of 64-row records ({len(wide) * 64} rows)")
        store = LocalArtifactStore(Path(tmp) / "wide")
        rate, files, _ = bench_flush(store, wide)
        figure("flush_64row_records_throughput", rate, f"rows/s ({files} files)")
        for codec in ("lz4", "zstd"):  # the codec's cost to the server, and the bytes it saves
            progress(f"flush of 64-row records with {codec}")
            folder = Path(tmp) / f"codec-{codec}"
            _, _, cpu = bench_flush(LocalArtifactStore(folder), wide, codec)
            size = sum(f.stat().st_size for f in folder.rglob("*.parquet"))
            figure(f"flush_64row_{codec}_cpu_per_row", cpu, "us")
            figure(f"flush_64row_{codec}_bytes_per_row", size / (len(wide) * 64), "bytes")

        progress("flush of the server's batches of 64-row requests")
        server = make_server_batches(total_rows, rng)
        cpus = []
        for run in range(3):  # one flush moves with the machine's speed: median of three
            folder = Path(tmp) / f"server-{run}"
            cpus.append(bench_flush(LocalArtifactStore(folder), server)[2])
        size = sum(f.stat().st_size for f in folder.rglob("*.parquet"))
        figure("flush_server_64row_cpu_per_row", statistics.median(cpus), "us (median of 3)")
        figure("flush_server_64row_bytes_per_row", size / sum(b.rows for b in server), "bytes")

        progress("read of a 1-hour window")
        t0 = time.perf_counter()
        read_predictions(store, "fraud", start=HOUR, end=HOUR + timedelta(hours=1))
        figure("read_1h_window_first", time.perf_counter() - t0, "s")
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            df = read_predictions(store, "fraud", start=HOUR, end=HOUR + timedelta(hours=1))
            times.append(time.perf_counter() - t0)
        if len(df) != len(wide) * 64:
            raise SystemExit(f"read {len(df)} rows, expected {len(wide) * 64}")
        figure("read_1h_window", statistics.median(times), f"s ({len(df)} rows)")


if __name__ == "__main__":
    main()
