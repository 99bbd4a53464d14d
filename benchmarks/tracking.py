"""Tracking benchmark: bascule against MLflow 3.17.2, side by side, same machine, same run.

Usage::

    .venv/bin/python benchmarks/tracking.py                  # full run (a few minutes)
    .venv/bin/python benchmarks/tracking.py --quick          # smoke run: 2,000 values, 200 runs
    .venv/bin/python benchmarks/tracking.py --quick --bascule-only   # no peer at all

Prints ``name: value unit`` lines on stdout (a parenthesised note may follow), progress on
stderr. Every measurement runs in a fresh process: bascule's with this interpreter
(``_bascule_side.py``), MLflow's with the python of its own venv ``benchmarks/.peers/
mlflow-3.17.2`` (``_mlflow_peer.py``, created on first run), so the two never share an
interpreter. Both use SQLite in a temporary folder; servers listen on 127.0.0.1 only and are
stopped by PID when the benchmark ends, also on error.

Measured:

1. metric logging, one call per value as a training loop does: bascule
   ``run.log_metrics({"loss": v}, step=i)`` vs ``mlflow.log_metric("loss", v, step=i)``, in-process
   and over HTTP through each project's own server; ``*_per_call`` is the loop alone,
   ``*_durable_per_value`` includes the end of the run (everything written), and the history is
   read back and counted. MLflow's ``synchronous=False`` mode is measured too, for reference.
2. ``search runs`` over R runs: ``metrics.auc > 0.5`` ordered by ``metrics.auc DESC``, all
   matches, median of 5; the matches are checked against the expected set and order.
3. cold ``import`` time in a fresh interpreter, median of 5 (after one untimed warm-up that
   writes bytecode caches).
4. speedups (MLflow time / bascule time) and whether the goals (10x) are met.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import (  # the benchmarks folder is not a package
    bench_env,
    free_port,
    mlflow_python,
    progress,
    start_process,
    stop_process,
    wait_http,
)

HERE = Path(__file__).resolve().parent
BASCULE_SIDE = HERE / "_bascule_side.py"
MLFLOW_SIDE = HERE / "_mlflow_peer.py"
GOAL = 10.0
IMPORT_REPEATS = 5
SIDE_TIMEOUT_S = 1800


class Report:
    """Collects figures, prints each one as it is measured, and remembers failed checks."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.failures: list[str] = []

    def emit(self, name: str, value: float, unit: str, note: str = "") -> None:
        self.values[name] = value
        text = f"{value:.0f}" if unit in ("values", "runs", "bool", "checks") else _fmt(value)
        print(f"{name}: {text} {unit}" + (f" ({note})" if note else ""), flush=True)

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.failures.append(what)
            progress(f"CHECK FAILED: {what}")


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


# -- running the two sides -------------------------------------------------------------------


def run_side(
    python: Path | str, script: Path, args: list[str], env: dict[str, str], cwd: Path
) -> Any:
    """Run one measurement in a fresh process; its last stdout line is the JSON result."""
    proc = subprocess.run(
        [str(python), str(script), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=SIDE_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{script.name} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def import_time(python: Path | str, module: str, env: dict[str, str], cwd: Path) -> float:
    """Median seconds to import ``module`` in a fresh interpreter (one untimed warm-up first)."""
    code = f"import time; t=time.perf_counter(); import {module}; print(time.perf_counter()-t)"
    times = []
    for i in range(IMPORT_REPEATS + 1):
        out = subprocess.run(
            [str(python), "-c", code],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        if i:
            times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


@contextmanager
def server(name: str, args: list[str], env: dict[str, str], cwd: Path) -> Iterator[str]:
    """Start a server on a free 127.0.0.1 port, wait for /health, stop it by PID afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cwd.mkdir(parents=True, exist_ok=True)
    log_path = cwd / "server.log"
    full = [a.replace("{port}", str(port)) for a in args]
    progress(f"starting {name} server on {url}")
    proc = start_process(full, env=env, log_path=log_path, cwd=cwd)
    try:
        wait_http(f"{url}/health", proc, timeout_s=120, log_path=log_path)
        yield url
    finally:
        progress(f"stopping {name} server (pid {proc.pid})")
        stop_process(proc)


# -- reporting one measurement ----------------------------------------------------------------


def report_log(rep: Report, prefix: str, res: dict[str, Any], expected_n: int | None) -> None:
    n = res["n"]
    note = f"n={n}"
    if expected_n is not None and n < expected_n:
        note += f" of {expected_n}: stopped at the time budget"
    rep.emit(f"{prefix}_per_call", res["loop_s"] / n * 1e6, "us", note)
    rep.emit(f"{prefix}_durable_per_value", res["total_s"] / n * 1e6, "us", note + ", incl. end")
    rep.emit(f"{prefix}_total", res["total_s"], "s", note + ", until everything is written")
    ok = res["stored"] == n and res["steps_ok"]
    rep.emit(f"{prefix}_stored", res["stored"], "values", f"of {n} logged")
    rep.check(ok, f"{prefix}: stored {res['stored']} of {n} (steps ok: {res['steps_ok']})")


def report_search(rep: Report, prefix: str, res: dict[str, Any]) -> None:
    rep.emit(
        prefix,
        res["median_s"] * 1e3,
        "ms",
        f"median of {len(res['times_s'])}, {res['runs']} runs, {res['matches']} matches",
    )
    ok = res["matches"] == res["expected"] and res["order_ok"]
    rep.emit(
        f"{prefix}_matches",
        res["matches"],
        "runs",
        f"expected {res['expected']}, order {'ok' if res['order_ok'] else 'WRONG'}",
    )
    rep.check(
        ok, f"{prefix}: {res['matches']} matches of {res['expected']}, order {res['order_ok']}"
    )


def speedup(rep: Report, name: str, peer_key: str, ours_key: str, goal: bool) -> None:
    if peer_key not in rep.values or ours_key not in rep.values:
        return
    ratio = rep.values[peer_key] / rep.values[ours_key]
    rep.emit(name, ratio, "x", f"{peer_key} / {ours_key}")
    if goal:
        rep.emit(
            f"goal_{name.removeprefix('speedup_')}_10x_met",
            1 if ratio >= GOAL else 0,
            "bool",
            f"{_fmt(ratio)} x, goal >= {GOAL:.0f} x",
        )


# -- the benchmark ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 values, 200 runs")
    parser.add_argument("--bascule-only", action="store_true", help="skip MLflow entirely")
    parser.add_argument("--no-http", action="store_true", help="skip the server measurements")
    parser.add_argument("--values", type=int, help="metric values to log (default 10,000)")
    parser.add_argument("--runs", type=int, help="runs to search over (default 1,000)")
    parser.add_argument(
        "--http-budget-s",
        type=float,
        help="stop MLflow's per-call HTTP logging after this long (>= 1,000 calls; default 240)",
    )
    args = parser.parse_args(argv)
    n_values = args.values or (2000 if args.quick else 10_000)
    n_runs = args.runs or (200 if args.quick else 1000)
    budget = args.http_budget_s or (30.0 if args.quick else 240.0)
    with_peer = not args.bascule_only

    # SIGTERM ends the benchmark through the finally blocks, so servers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    rep = Report()
    work = Path(tempfile.mkdtemp(prefix="bascule-bench-"))
    try:
        mlflow_py = mlflow_python() if with_peer else None
        progress(f"tracking benchmark: {n_values} metric values, {n_runs} runs, SQLite, 127.0.0.1")

        def b_env(name: str, uri: str | None = None) -> dict[str, str]:
            extra = {"BASCULE_HOME": str(work / name)}
            if uri:
                extra["BASCULE_TRACKING__URI"] = uri
            return bench_env(extra)

        def m_env(uri: str) -> dict[str, str]:
            return bench_env({"MLFLOW_TRACKING_URI": uri})

        # 3. imports (no servers needed; done first, on a quiet machine)
        progress("import times")
        rep.emit(
            "import_bascule",
            import_time(sys.executable, "bascule", b_env("imp"), work) * 1e3,
            "ms",
            f"median of {IMPORT_REPEATS}",
        )
        rep.emit(
            "import_bascule_sdk",
            import_time(sys.executable, "bascule.sdk", b_env("imp"), work) * 1e3,
            "ms",
            f"median of {IMPORT_REPEATS}; what the first start_run call imports",
        )
        if mlflow_py:
            rep.emit(
                "import_mlflow",
                import_time(mlflow_py, "mlflow", b_env("imp"), work) * 1e3,
                "ms",
                f"median of {IMPORT_REPEATS}",
            )

        # 1a. logging in-process
        progress(f"bascule in-process: {n_values} x log_metrics")
        res = run_side(
            sys.executable, BASCULE_SIDE, ["log", "--n", str(n_values)], b_env("b-log"), work
        )
        report_log(rep, "bascule_inprocess_log_metrics", res, n_values)
        if mlflow_py:
            db = f"sqlite:///{work / 'm-log.db'}"
            progress(f"mlflow in-process: {n_values} x log_metric")
            res = run_side(mlflow_py, MLFLOW_SIDE, ["log", "--n", str(n_values)], m_env(db), work)
            report_log(rep, "mlflow_inprocess_log_metric", res, n_values)
            progress(f"mlflow in-process: {n_values} x log_metric(synchronous=False)")
            res = run_side(
                mlflow_py, MLFLOW_SIDE, ["log", "--n", str(n_values), "--async"], m_env(db), work
            )
            report_log(rep, "mlflow_inprocess_log_metric_async", res, n_values)

        # 2. search in-process
        progress(f"bascule in-process: search over {n_runs} runs")
        res = run_side(
            sys.executable, BASCULE_SIDE, ["search", "--runs", str(n_runs)], b_env("b-search"), work
        )
        report_search(rep, "bascule_inprocess_search_runs", res)
        if mlflow_py:
            progress(f"mlflow in-process: search over {n_runs} runs (set-up is slow)")
            res = run_side(
                mlflow_py,
                MLFLOW_SIDE,
                ["search", "--runs", str(n_runs)],
                m_env(f"sqlite:///{work / 'm-search.db'}"),
                work,
            )
            report_search(rep, "mlflow_inprocess_search_runs", res)

        # 1b + 2. over HTTP, each through its own server
        if not args.no_http:
            uvicorn = [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "bascule.http.control.app:build_app",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
            ]
            with server("bascule", uvicorn, b_env("b-server"), work / "b-server-cwd") as url:
                progress(f"bascule over HTTP: {n_values} x log_metrics")
                res = run_side(
                    sys.executable,
                    BASCULE_SIDE,
                    ["log", "--n", str(n_values)],
                    b_env("b-http-client", url),
                    work,
                )
                report_log(rep, "bascule_http_log_metrics", res, n_values)
                progress(f"bascule over HTTP: search over {n_runs} runs")
                res = run_side(
                    sys.executable,
                    BASCULE_SIDE,
                    ["search", "--runs", str(n_runs)],
                    b_env("b-http-client", url),
                    work,
                )
                report_search(rep, "bascule_http_search_runs", res)
            if mlflow_py:
                m_cwd = work / "m-server-cwd"
                # One worker, like the bascule server above. It is also MLflow's best case here:
                # with its default of 4 uvicorn workers, every request (even /health) took
                # ~44 ms more on the machine this was written on (see benchmarks/README.md).
                mlflow_server = [
                    str(mlflow_py.parent / "mlflow"),
                    "server",
                    "--backend-store-uri",
                    f"sqlite:///{work / 'm-server.db'}",
                    "--artifacts-destination",
                    str(m_cwd / "mlartifacts"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "{port}",
                    "--workers",
                    "1",
                ]
                with server("mlflow", mlflow_server, bench_env(), m_cwd) as url:
                    progress(
                        f"mlflow over HTTP: up to {n_values} x log_metric (budget {budget:.0f}s)"
                    )
                    res = run_side(
                        mlflow_py,
                        MLFLOW_SIDE,
                        [
                            "log",
                            "--n",
                            str(n_values),
                            "--budget-s",
                            str(budget),
                            "--min-n",
                            str(min(1000, n_values)),
                        ],
                        m_env(url),
                        work,
                    )
                    report_log(rep, "mlflow_http_log_metric", res, n_values)
                    progress(f"mlflow over HTTP: {n_values} x log_metric(synchronous=False)")
                    res = run_side(
                        mlflow_py,
                        MLFLOW_SIDE,
                        ["log", "--n", str(n_values), "--async"],
                        m_env(url),
                        work,
                    )
                    report_log(rep, "mlflow_http_log_metric_async", res, n_values)
                    progress(f"mlflow over HTTP: search over {n_runs} runs (set-up is slow)")
                    res = run_side(
                        mlflow_py, MLFLOW_SIDE, ["search", "--runs", str(n_runs)], m_env(url), work
                    )
                    report_search(rep, "mlflow_http_search_runs", res)

        # 4. ratios and goals. Logging is compared on the time until everything is written,
        # which is what a buffered logger must be judged on; the loop alone is shown beside it.
        if mlflow_py:
            for where in ("inprocess", "http"):
                b, m = f"bascule_{where}_log_metrics", f"mlflow_{where}_log_metric"
                speedup(
                    rep,
                    f"speedup_log_metric_{where}",
                    f"{m}_durable_per_value",
                    f"{b}_durable_per_value",
                    goal=True,
                )
                speedup(
                    rep,
                    f"speedup_log_metric_{where}_loop_only",
                    f"{m}_per_call",
                    f"{b}_per_call",
                    goal=False,
                )
                speedup(
                    rep,
                    f"speedup_log_metric_{where}_vs_mlflow_async",
                    f"{m}_async_durable_per_value",
                    f"{b}_durable_per_value",
                    goal=False,
                )
                speedup(
                    rep,
                    f"speedup_search_{where}",
                    f"mlflow_{where}_search_runs",
                    f"bascule_{where}_search_runs",
                    goal=True,
                )
            speedup(rep, "speedup_import", "import_mlflow", "import_bascule", goal=True)
            speedup(rep, "speedup_import_sdk", "import_mlflow", "import_bascule_sdk", goal=False)
        rep.emit(
            "checks_failed",
            len(rep.failures),
            "checks",
            "; ".join(rep.failures) if rep.failures else "every value stored, every search right",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if rep.failures else 0


if __name__ == "__main__":
    sys.exit(main())
