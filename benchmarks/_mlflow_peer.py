"""The MLflow side of ``benchmarks/tracking.py``, run by the MLflow peer venv's python only.

Never imported by bascule code: ``tracking.py`` runs it as
``benchmarks/.peers/mlflow-3.17.2/bin/python benchmarks/_mlflow_peer.py TASK ...`` with
``MLFLOW_TRACKING_URI`` set (``sqlite:///…`` in-process, ``http://127.0.0.1:P`` for a server),
and it prints one JSON object on stdout. It mirrors ``_bascule_side.py`` task for task.

Tasks:
  log     N values, one ``mlflow.log_metric("loss", v, step=i)`` call each (``--async``:
          ``synchronous=False``), then ``mlflow.end_run()``; the history is read back and counted.
  search  R runs with a metric ``auc`` and a param (set up with ``log_batch``, untimed), then
          ``MlflowClient().search_runs("metrics.auc > 0.5", order_by ["metrics.auc DESC"])``.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import time
import uuid
from typing import Any

SEED = 20240611


def _log(args: argparse.Namespace) -> dict[str, Any]:
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_experiment(f"bench-log-{uuid.uuid4().hex[:8]}")  # also migrates the DB: untimed
    values = [1.0 / (i + 1) for i in range(args.n)]
    run = mlflow.start_run()
    run_id = run.info.run_id
    kwargs: dict[str, Any] = {} if not args.async_ else {"synchronous": False}
    budget = args.budget_s
    done = 0
    t0 = time.perf_counter()
    for i, v in enumerate(values):
        mlflow.log_metric("loss", v, step=i, **kwargs)
        done = i + 1
        # Past the budget, stop (never below --min-n calls) and report per call at n=done.
        if budget and done >= args.min_n and done % 100 == 0 and time.perf_counter() - t0 > budget:
            break
    t_loop = time.perf_counter() - t0
    mlflow.end_run()  # waits for queued async writes too
    t_total = time.perf_counter() - t0
    stored = MlflowClient().get_metric_history(run_id, "loss")
    steps = sorted(m.step for m in stored)
    return {
        "n": done,
        "loop_s": t_loop,
        "total_s": t_total,
        "stored": len(stored),
        "steps_ok": steps == list(range(done)),
    }


def _search(args: argparse.Namespace) -> dict[str, Any]:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient()
    exp_id = client.create_experiment(f"bench-search-{uuid.uuid4().hex[:8]}")
    rng = random.Random(SEED)
    aucs = [rng.random() for _ in range(args.runs)]
    t_setup = time.perf_counter()
    now = int(time.time() * 1000)
    for i, auc in enumerate(aucs):
        run = client.create_run(exp_id, run_name=f"run-{i}")
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("auc", auc, now, 0)],
            params=[Param("lr", str(0.001 * (i % 10 + 1)))],
        )
    setup_s = time.perf_counter() - t_setup
    expected = sorted((a for a in aucs if a > 0.5), reverse=True)
    times = []
    found: list[float] = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        runs = client.search_runs(
            [exp_id],
            filter_string="metrics.auc > 0.5",
            order_by=["metrics.auc DESC"],
            max_results=1000,
        )
        times.append(time.perf_counter() - t0)
        found = [r.data.metrics["auc"] for r in runs]
    return {
        "runs": args.runs,
        "setup_s": setup_s,
        "times_s": times,
        "median_s": statistics.median(times),
        "matches": len(found),
        "expected": len(expected),
        "order_ok": found == expected,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="task", required=True)
    log_p = sub.add_parser("log")
    log_p.add_argument("--n", type=int, required=True)
    log_p.add_argument("--async", dest="async_", action="store_true")
    log_p.add_argument("--budget-s", type=float, default=0.0)
    log_p.add_argument("--min-n", type=int, default=1000)
    search_p = sub.add_parser("search")
    search_p.add_argument("--runs", type=int, required=True)
    search_p.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    result = _log(args) if args.task == "log" else _search(args)
    import mlflow

    result["version"] = mlflow.__version__
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
