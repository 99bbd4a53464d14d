"""Serving benchmark: `bascule serve` against MLServer 1.7.1 and a plain FastAPI + onnxruntime app.

Usage::

    .venv/bin/python benchmarks/serving.py                 # full: 10 s per configuration (~14 min)
    .venv/bin/python benchmarks/serving.py --quick         # smoke: 3 s each, fewer configurations
    .venv/bin/python benchmarks/serving.py --bascule-only  # no peers, no peer venv

The same model for everyone: a scikit-learn ``HistGradientBoostingClassifier`` trained once on
30 numeric features. bascule serves it from a temporary ``BASCULE_HOME`` (registered, converted
to ONNX); the FastAPI app (``_fastapi_peer.py``) runs the very ONNX bytes bascule stored;
MLServer runs the scikit-learn model from ``model.joblib`` with its sklearn runtime
(``_mlserver_peer/``; its venv ``benchmarks/.peers/mlserver-1.7.1`` is created on first run).

Every server runs alone, one after another, as a subprocess in its own process group with
``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` at 1, on 127.0.0.1, and is
stopped by PID in a ``finally``. The load is ``bascule loadtest --json`` in its own process
(closed loop, kept-alive connections, the same Parquet rows and request bodies for every
server): single-row requests at concurrency 1, 16 and 64, and 64-row requests at concurrency
16. Each load runs a short warm-up first, in its own process; then the measured run, around
which the server's CPU time (utime + stime of its whole process tree, from ``/proc``) is read:
``..._cpu_per_request_ms`` is that time over the requests answered.

Configurations: bascule with its defaults (adaptive batching, prediction log, one process),
without batching, with two worker processes (``--workers 2``; c64 and 64-row loads only);
MLServer without and with adaptive batching (max_batch_size 64, max_batch_time 2 ms) and with
inference in the server process (``parallel_workers: 0``) — ``mlserver_best_*`` is the best
of them per load; the FastAPI app. Raw onnxruntime in the benchmark's process gives the rows/s
ceiling of 64-row batches, on the load's own rows (its 64-row chunks, cycled; see
``raw_onnxruntime``), measured just before and after each 64-row load. bascule's 64-row load
also runs with the V2 binary tensor extension (``--binary``, what ``bascule.Client`` sends).
Two comparisons run last as interleaved pairs (``interleaved``: both servers up at once, their
loads alternated, half-length runs, ``--pair-rounds`` rounds, medians): the prediction log on
and off (c16, c64, 64-row), and batching on and off at c1 (both without the log).

Prints ``name: value unit`` lines on stdout (progress on stderr), then the goal checks
``goal_..._met: 1|0 bool (...)``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from itertools import zip_longest
from pathlib import Path
from typing import Any

from peers import (  # the benchmarks folder is not a package
    bench_env,
    ensure_venv,
    free_port,
    progress,
    start_process,
    stop_process,
    wait_http,
)

HERE = Path(__file__).resolve().parent
MLSERVER_VERSION = "1.7.1"
MODEL = "hgb"
N_FEATURES = 30
THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
LOADS: dict[str, tuple[int, int]] = {  # name: (concurrency, rows per request)
    "c1": (1, 1),
    "c16": (16, 1),
    "c64": (64, 1),
    "rows64": (16, 64),
}
Figures = dict[str, dict[str, Any]]


def emit(name: str, value: float, unit: str, note: str = "") -> None:
    text = f"{value:.0f}" if unit in ("bool", "requests", "rows/s") else f"{value:.4g}"
    print(f"{name}: {text} {unit}" + (f" ({note})" if note else ""), flush=True)


# -- the model, once ------------------------------------------------------------------------------


def prepare(work: Path) -> dict[str, Path]:
    """Train the model, register it for bascule, export the ONNX, dump the joblib, write rows."""
    import joblib
    import numpy as np
    import pandas as pd
    import sklearn
    from sklearn.ensemble import HistGradientBoostingClassifier

    from bascule.core.refs import ModelRef
    from bascule.testing import make_services

    rng = np.random.default_rng(20260301)
    columns = [f"f{i}" for i in range(N_FEATURES)]
    x = pd.DataFrame(rng.standard_normal((20_000, N_FEATURES)).astype(np.float32), columns=columns)
    signal_ = x.f0 * x.f1 + np.sin(3 * x.f2) + 0.5 * x.f3 - 0.3 * x.f4**2
    y = (signal_ + rng.normal(0, 0.5, len(x)) > 0).astype(int)
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(x, y)
    progress(f"trained {model.n_iter_} boosting iterations (scikit-learn {sklearn.__version__})")

    home = work / "home"
    services = make_services(home)
    services.registry.register(MODEL, model, sample=x.head(256))
    services.registry.set_alias(MODEL, "champion", 1)
    version = services.registry.resolve(ModelRef.parse(f"{MODEL}@champion"))
    onnx = work / "model.onnx"
    onnx.write_bytes(services.registry.model_bytes(version))
    services.close()

    joblib_path = work / "model.joblib"
    joblib.dump(model, joblib_path)
    rows = work / "rows.parquet"
    pd.DataFrame(
        rng.standard_normal((4096, N_FEATURES)).astype(np.float32), columns=columns
    ).to_parquet(rows)
    return {"home": home, "onnx": onnx, "joblib": joblib_path, "rows": rows}


def raw_onnxruntime(
    onnx: Path, rows_file: Path, seconds: float, only: str | None = None
) -> dict[str, float]:
    """rows/s of 64-row batches and µs per single row, onnxruntime in this process (1 thread).

    The rows are the ones the load sends, in the same 64-row chunks, cycled: a tree ensemble
    on the same 64 rows over and over runs about 2.7x faster (the CPU's branch predictors
    learn that batch), a speed no server sees; ``rows64_same_rows_per_s`` shows it.
    """
    import numpy as np
    import onnxruntime as ort
    import pandas as pd

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = pd.read_parquet(rows_file).to_numpy(np.float32)
    out: dict[str, float] = {}
    for label, rows, chunks in (
        ("rows64", 64, [x[i : i + 64] for i in range(0, len(x) - 63, 64)]),
        ("rows64_same", 64, [x[:64]]),
        ("rows1", 1, [x[i : i + 1] for i in range(len(x))]),
    ):
        if only is not None and label != only:
            continue
        for chunk in chunks[:200]:
            session.run(None, {name: chunk})
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            session.run(None, {name: chunks[runs % len(chunks)]})
            runs += 1
        elapsed = time.perf_counter() - start
        out[f"{label}_rows_per_s"] = runs * rows / elapsed
        out[f"{label}_us_per_run"] = elapsed / runs * 1e6
    return out


# -- servers --------------------------------------------------------------------------------------


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and all its descendants, in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = int(fields[11]) + int(fields[12])
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, p in parents.items():
            if p == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(times.get(p, 0) for p in tree) / tick


def start_bascule(
    work: Path, paths: dict[str, Path], name: str, flags: list[str]
) -> tuple[Any, str]:
    port = free_port()
    log = work / f"{name}.log"
    env = bench_env({"BASCULE_HOME": str(paths["home"]), **THREADS})
    args = [sys.executable, "-m", "bascule.cli.main", "serve", f"{MODEL}@champion"]
    proc = start_process(
        [*args, "--host", "127.0.0.1", "--port", str(port), *flags], env=env, log_path=log, cwd=work
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/v2/health/ready", proc, timeout_s=120, log_path=log)
    return proc, url


def start_mlserver(
    work: Path, paths: dict[str, Path], name: str, *, batching: bool, workers: int
) -> tuple[Any, str]:
    python = mlserver_python()
    folder = work / name
    shutil.copytree(HERE / "_mlserver_peer", folder)
    shutil.copy(paths["joblib"], folder / "model.joblib")
    port = free_port()
    settings = json.loads((folder / "settings.json").read_text())
    settings.update(
        http_port=port, grpc_port=free_port(), metrics_port=free_port(), parallel_workers=workers
    )
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    model = json.loads((folder / "model-settings.json").read_text())
    model.update(max_batch_size=64 if batching else 0, max_batch_time=0.002 if batching else 0.0)
    (folder / "model-settings.json").write_text(json.dumps(model, indent=2))
    log = work / f"{name}.log"
    mlserver = python.parent / "mlserver"
    proc = start_process(
        [str(mlserver), "start", str(folder)], env=bench_env(THREADS), log_path=log, cwd=folder
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/v2/models/{MODEL}/ready", proc, timeout_s=180, log_path=log)
    return proc, url


def start_fastapi(work: Path, paths: dict[str, Path], name: str) -> tuple[Any, str]:
    port = free_port()
    log = work / f"{name}.log"
    args = [sys.executable, str(HERE / "_fastapi_peer.py"), "--model", str(paths["onnx"])]
    proc = start_process(
        [*args, "--port", str(port), "--name", MODEL],
        env=bench_env(THREADS),
        log_path=log,
        cwd=work,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/v2/health/ready", proc, timeout_s=60, log_path=log)
    return proc, url


def mlserver_python() -> Path:
    import sklearn

    return ensure_venv(
        f"mlserver-{MLSERVER_VERSION}",
        [
            f"mlserver=={MLSERVER_VERSION}",
            f"mlserver-sklearn=={MLSERVER_VERSION}",
            "uvloop==0.21.*",  # MLServer 1.7.1 does not start with uvloop >= 0.22 (#2286)
            f"scikit-learn=={sklearn.__version__}",  # loads the joblib this process trains
        ],
        import_check=(
            "import mlserver, mlserver_sklearn, sklearn, uvloop, sys; "
            f"sys.exit(0 if (mlserver.__version__, sklearn.__version__) == "
            f"({MLSERVER_VERSION!r}, {sklearn.__version__!r}) and "
            "uvloop.__version__.startswith('0.21') else 1)"
        ),
    )


# -- loads ----------------------------------------------------------------------------------------


def loadtest(url: str, rows_file: Path, load: str, seconds: float, *, binary: bool) -> Any:
    concurrency, rows = LOADS[load]
    args = [sys.executable, "-m", "bascule.cli.main", "loadtest", url, "--model", MODEL]
    args += ["-c", str(concurrency), "--rows", str(rows), "-d", str(seconds), "--warmup", "0"]
    args += ["--data", str(rows_file), "--json", *(["--binary"] if binary else [])]
    proc = subprocess.run(
        args, env=bench_env(THREADS), capture_output=True, text=True, timeout=seconds + 120
    )
    if proc.returncode != 0:
        raise RuntimeError(f"loadtest {load} on {url} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def measure(proc: Any, url: str, rows_file: Path, load: str, args: Any, binary: bool) -> Any:
    loadtest(url, rows_file, load, args.warmup, binary=binary)
    raw_before = args.raw_rows64() if LOADS[load][1] > 1 else None
    before = tree_cpu_seconds(proc.pid)
    result = loadtest(url, rows_file, load, args.duration, binary=binary)
    cpu = tree_cpu_seconds(proc.pid) - before
    result["server_cpu_ms_per_request"] = cpu * 1e3 / max(1, result["requests"])
    result["server_cpu_percent"] = 100 * cpu / result["duration_s"]
    if raw_before is not None:  # raw onnxruntime just before and just after: the same machine
        result["raw_rows_per_s"] = (raw_before + args.raw_rows64()) / 2
    return result


def run_config(
    name: str, start: Callable[[], tuple[Any, str]], loads: list[str], rows: Path, args: Any
) -> Figures:
    progress(f"{name}: starting")
    proc, url = None, ""
    figures: Figures = {}
    try:
        proc, url = start()
        for load in loads:
            binary = load.endswith("_binary")
            base = load.removesuffix("_binary")
            progress(f"{name}: {load} ({LOADS[base][0]} connections, {LOADS[base][1]} rows)")
            r = measure(proc, url, rows, base, args, binary)
            figures[load] = r
            lat = r["latency_ms"]
            prefix = f"{name}_{load}"
            emit(f"{prefix}_rps", r["throughput_rps"], "req/s")
            if LOADS[base][1] > 1:
                emit(f"{prefix}_rows_per_s", r["rows_per_s"], "rows/s")
                emit(
                    f"{prefix}_raw_onnxruntime_rows_per_s",
                    r["raw_rows_per_s"],
                    "rows/s",
                    "just before and after the load, mean",
                )
            emit(f"{prefix}_p50_ms", lat["p50"], "ms")
            emit(f"{prefix}_p99_ms", lat["p99"], "ms")
            emit(f"{prefix}_max_ms", lat["max"], "ms")
            emit(f"{prefix}_cpu_per_request_ms", r["server_cpu_ms_per_request"], "ms")
            emit(f"{prefix}_server_cpu_percent", r["server_cpu_percent"], "%")
            emit(f"{prefix}_loadgen_cpu_percent", r["client_cpu_percent"], "%")
            emit(f"{prefix}_errors", r["failed"], "requests", ", ".join(r["errors"]) or "none")
    finally:
        stop_process(proc)
    return figures


def interleaved(
    work: Path,
    paths: dict[str, Path],
    sides: tuple[tuple[str, list[str]], tuple[str, list[str]]],
    loads: list[str],
    args: Any,
) -> Figures:
    """Two bascule configurations up at once, their loads alternated, per-pair ratios.

    On a shared VM the machine's speed drifts by a fifth within minutes, more than the 10 %
    some goals measure; back-to-back pairs (order swapped every round) see the same machine,
    and the medians of the per-pair figures are what the goals judge. Prints, per side and
    load, the median requests/s, p50 and server CPU per request, then the median ratio of
    requests/s (first side over second).
    """
    import statistics

    procs: list[Any] = []
    out: Figures = {}
    try:
        servers = []
        for name, flags in sides:
            proc, url = start_bascule(work, paths, name, flags)
            procs.append(proc)
            servers.append((name, proc, url))
        for load in loads:
            names = " and ".join(n for n, _ in sides)
            progress(f"{names}: {load}, {args.pair_rounds} interleaved rounds")
            for _, _, url in servers:
                loadtest(url, paths["rows"], load, args.warmup, binary=False)
            runs: dict[str, list[tuple[float, float, float]]] = {n: [] for n, _ in sides}
            for r in range(args.pair_rounds):
                for name, proc, url in servers if r % 2 == 0 else servers[::-1]:
                    before = tree_cpu_seconds(proc.pid)
                    result = loadtest(url, paths["rows"], load, args.pair_duration, binary=False)
                    cpu = (tree_cpu_seconds(proc.pid) - before) * 1e3 / max(1, result["requests"])
                    runs[name].append((result["throughput_rps"], result["latency_ms"]["p50"], cpu))
            (a, _), (b, _) = sides
            ratios = [x[0] / y[0] for x, y in zip(runs[a], runs[b], strict=True)]
            figures: dict[str, Any] = {"rps_ratio": statistics.median(ratios)}
            for name, _ in sides:
                for k, (label, unit) in enumerate((("rps", "req/s"), ("p50_ms", "ms"))):
                    value = statistics.median(x[k] for x in runs[name])
                    figures[f"{name}_{label}"] = value
                    emit(f"{name}_{load}_{label}", value, unit, "median")
                cpu = statistics.median(x[2] for x in runs[name])
                emit(f"{name}_{load}_cpu_per_request_ms", cpu, "ms", "median")
            emit(
                f"{a}_over_{b}_{load}_rps_ratio",
                figures["rps_ratio"],
                "ratio",
                "median of pairs: " + ", ".join(f"{x:.3f}" for x in ratios),
            )
            out[load] = figures
    finally:
        for proc in procs:
            stop_process(proc)
    return out


# -- goals ----------------------------------------------------------------------------------------


def goal(name: str, met: bool, note: str) -> None:
    emit(f"goal_{name}_met", int(met), "bool", note)


def check_goals(res: dict[str, Figures], log_ab: Figures, batch_ab: Figures, peers: bool) -> None:
    b = res["bascule"]
    mls = {k: v for k, v in res.items() if k.startswith("mlserver")}

    def best(load: str, key: Callable[[Any], float], low: bool) -> tuple[str, float] | None:
        cands = [(n, key(f[load])) for n, f in mls.items() if load in f]
        return (min if low else max)(cands, key=lambda c: c[1]) if cands else None

    for load in LOADS:
        top = best(load, lambda r: r["throughput_rps"], low=False)
        cheap = best(load, lambda r: r["server_cpu_ms_per_request"], low=True)
        if top and cheap:
            emit(f"mlserver_best_{load}_rps", top[1], "req/s", top[0])
            emit(f"mlserver_best_{load}_cpu_per_request_ms", cheap[1], "ms", cheap[0])
    if peers and "c64" in b and best("c64", lambda r: r["throughput_rps"], low=False):
        top = best("c64", lambda r: r["throughput_rps"], low=False)
        assert top is not None
        ratio = b["c64"]["throughput_rps"] / top[1]
        goal("c64_rps_3x_mlserver", ratio >= 3, f"{ratio:.2f}x MLServer's best, {top[0]}")
    if "c64" in b:
        lat = b["c64"]["latency_ms"]
        goal(
            "c64_p99_under_4x_p50",
            lat["p99"] < 4 * lat["p50"],
            f"p99/p50 = {lat['p99'] / lat['p50']:.2f}",
        )
    for load in ("c16", "c64"):
        if load not in b:
            continue
        cpu = b[load]["server_cpu_ms_per_request"]
        cheap = best(load, lambda r: r["server_cpu_ms_per_request"], low=True)
        if peers and cheap:
            goal(
                f"{load}_cpu_third_of_mlserver",
                cpu <= cheap[1] / 3,
                f"{cpu:.3f} ms vs {cheap[1]:.3f} ms ({cheap[0]})",
            )
        fastapi = res.get("fastapi", {}).get(load)
        if peers and fastapi:
            f_cpu = fastapi["server_cpu_ms_per_request"]
            goal(f"{load}_cpu_below_fastapi", cpu < f_cpu, f"{cpu:.3f} ms vs {f_cpu:.3f} ms")
    if "c1" in batch_ab:
        on, off = batch_ab["c1"]["batching_p50_ms"], batch_ab["c1"]["no_batching_p50_ms"]
        goal(
            "c1_batching_adds_no_latency",
            on <= max(off * 1.1, off + 0.02),
            f"p50 {on:.3f} ms with batching, {off:.3f} ms without, medians of interleaved runs",
        )
    for load in ("rows64", "rows64_binary"):
        if load in b:
            share = b[load]["rows_per_s"] / b[load]["raw_rows_per_s"]
            goal(
                f"{load}_half_of_raw_onnxruntime",
                share >= 0.5,
                f"{share:.2f} of raw onnxruntime's rows/s, measured around the load",
            )
    for load, pairs in log_ab.items():
        share = pairs["rps_ratio"]
        goal(
            f"{load}_prediction_log_costs_under_10pct",
            share >= 0.9,
            f"{1 - share:.1%} of the throughput lost with the log on, median of interleaved pairs",
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 s per load, fewer configurations")
    parser.add_argument("--bascule-only", action="store_true", help="skip MLServer and FastAPI")
    parser.add_argument("--duration", type=float, help="seconds per measured load (10; 3 quick)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per load (2; 1 quick)")
    parser.add_argument(
        "--pair-rounds", type=int, help="rounds of each interleaved comparison (9; 3 quick)"
    )
    args = parser.parse_args(argv)
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup or (1.0 if args.quick else 2.0)
    # One pair's ratio moves by +-15 % on the 2-core VM: five pairs could not resolve the 10 %
    # goals of the log comparison (two runs of the same code gave 0.85 and 0.92).
    args.pair_rounds = args.pair_rounds or (3 if args.quick else 9)
    args.pair_duration = args.duration / 2
    # SIGTERM ends the benchmark through the finally blocks, so servers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    every = ["c1", "c16", "c64", "rows64"]
    work = Path(tempfile.mkdtemp(prefix="bascule-bench-serving-"))
    try:
        progress(f"preparing the model in {work}")
        paths = prepare(work)
        rows = paths["rows"]
        load = os.getloadavg()[0]
        emit(
            "machine_load_1m_start",
            load,
            "processes",
            f"{os.cpu_count()} CPUs; others' jobs skew figures",
        )
        raw = raw_onnxruntime(paths["onnx"], rows, 1.0 if args.quick else 3.0)
        args.raw_rows64 = lambda: raw_onnxruntime(paths["onnx"], rows, 1.0, only="rows64")[
            "rows64_rows_per_s"
        ]
        emit(
            "onnxruntime_rows64_rows_per_s",
            raw["rows64_rows_per_s"],
            "rows/s",
            "in-process, 1 thread, the load's rows in its 64-row chunks",
        )
        emit(
            "onnxruntime_rows64_same_rows_per_s",
            raw["rows64_same_rows_per_s"],
            "rows/s",
            "the same 64 rows every call: the branch predictors learn them; not a baseline",
        )
        emit("onnxruntime_single_row_us", raw["rows1_us_per_run"], "us", "in-process, 1 thread")

        def b(name: str, *flags: str) -> Callable[[], tuple[Any, str]]:
            return lambda: start_bascule(work, paths, name, list(flags))

        configs: list[tuple[str, Callable[[], tuple[Any, str]], list[str]]] = [
            (
                "bascule",
                b("bascule"),
                [*every, "rows64_binary"]
                if not args.quick
                else ["c1", "c64", "rows64", "rows64_binary"],
            ),
            (
                "bascule_nobatch",
                b("bascule_nobatch", "--no-batching"),
                every if not args.quick else ["c1", "c64"],
            ),
            # One process holds the GIL for HTTP and JSON: two share the port and the cores.
            (
                "bascule_workers2",
                b("bascule_workers2", "--workers", "2"),
                ["c64", "rows64"] if not args.quick else [],
            ),
        ]
        if not args.bascule_only:
            mls = [
                ("mlserver", False, 1),
                ("mlserver_batching", True, 1),
                ("mlserver_inproc", False, 0),
            ]
            for name, batching, workers in mls[: 1 if args.quick else 3]:
                configs.append(
                    (
                        name,
                        lambda n=name, bt=batching, w=workers: start_mlserver(
                            work, paths, n, batching=bt, workers=w
                        ),
                        every if not args.quick else ["c1", "c64", "rows64"],
                    )
                )
            configs.append(
                (
                    "fastapi",
                    lambda: start_fastapi(work, paths, "fastapi"),
                    every if not args.quick else ["c1", "c64", "rows64"],
                )
            )
        # Interleave bascule's and the peers' configurations: on a shared machine, load from
        # other jobs then falls on all of them alike rather than on whichever runs first.
        configs = [c for c in configs if c[2]]
        ours = [c for c in configs if c[0].startswith("bascule")]
        theirs = [c for c in configs if not c[0].startswith("bascule")]
        order = [c for pair in zip_longest(ours, theirs) for c in pair if c is not None]
        results = {name: run_config(name, start, loads, rows, args) for name, start, loads in order}
        log_ab = interleaved(
            work,
            paths,
            (("log_on", []), ("log_off", ["--no-prediction-log"])),
            ["c64"] if args.quick else ["c16", "c64", "rows64"],
            args,
        )
        batch_ab = interleaved(
            work,
            paths,
            (
                ("batching", ["--no-prediction-log"]),
                ("no_batching", ["--no-prediction-log", "--no-batching"]),
            ),
            ["c1"],
            args,
        )
        emit("machine_load_1m_end", os.getloadavg()[0], "processes")
        check_goals(results, log_ab, batch_ab, peers=not args.bascule_only)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
