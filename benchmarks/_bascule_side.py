"""The bascule side of ``benchmarks/tracking.py``, run by the project's own python.

``tracking.py`` runs it in a fresh process per measurement (as it runs MLflow's side in the peer
venv), with ``BASCULE_HOME`` set to a temporary folder and, for the HTTP measurements,
``BASCULE_TRACKING__URI=http://127.0.0.1:P``; it prints one JSON object on stdout and mirrors
``_mlflow_peer.py`` task for task.

Tasks:
  log     N values, one ``run.log_metrics({"loss": v}, step=i)`` call each, then the run's end
          (which writes what is still buffered); the history is read back and counted.
  search  R runs with a metric ``auc`` and a param (set up with ``log_batch``, untimed), then
          search ``metrics.auc > 0.5`` ordered by ``metrics.auc DESC`` (in-process through
          ``TrackingService.search_runs``; with a tracking URI: ``GET /api/v1/runs`` on the server).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from typing import Any

SEED = 20240611


def _history(run_id: str) -> list[tuple[int, float]]:
    from bascule import sdk

    uri = sdk.services().settings.tracking.uri
    if uri:
        import httpx

        resp = httpx.get(f"{uri}/api/v1/runs/{run_id}/metrics/loss", timeout=60)
        resp.raise_for_status()
        return [(m["step"], m["value"]) for m in resp.json()]
    return [(m.step, m.value) for m in sdk.services().tracking.metric_history(run_id, "loss")]


def _log(args: argparse.Namespace) -> dict[str, Any]:
    import bascule

    values = [1.0 / (i + 1) for i in range(args.n)]
    run = bascule.start_run(experiment=f"bench-log-{uuid.uuid4().hex[:8]}")  # migrates: untimed
    t0 = time.perf_counter()
    for i, v in enumerate(values):
        run.log_metrics({"loss": v}, step=i)
    t_loop = time.perf_counter() - t0
    run.end()  # writes what is still buffered, then marks the run FINISHED
    t_total = time.perf_counter() - t0
    stored = _history(run.id)
    return {
        "n": args.n,
        "loop_s": t_loop,
        "total_s": t_total,
        "stored": len(stored),
        "steps_ok": sorted(s for s, _ in stored) == list(range(args.n)),
    }


def _search(args: argparse.Namespace) -> dict[str, Any]:
    from bascule import sdk
    from bascule.core.records import Metric
    from bascule.sdk.backends import LocalBackend, RemoteBackend

    tracking = sdk.services().tracking
    uri = sdk.services().settings.tracking.uri
    experiment = f"bench-search-{uuid.uuid4().hex[:8]}"
    rng = random.Random(SEED)
    aucs = [rng.random() for _ in range(args.runs)]
    # The SDK's own writers: the service in-process, or the server over keep-alive HTTP.
    backend: LocalBackend | RemoteBackend = RemoteBackend(uri) if uri else LocalBackend(tracking)
    t_setup = time.perf_counter()
    now = int(time.time() * 1000)
    for i, auc in enumerate(aucs):
        run = backend.start_run(experiment=experiment, name=f"run-{i}", tags={}, parent_run_id=None)
        backend.log_batch(
            run.id,
            metrics=[Metric("auc", auc, 0, now)],
            params={"lr": str(0.001 * (i % 10 + 1))},
            tags={},
        )
    setup_s = time.perf_counter() - t_setup
    expected = sorted((a for a in aucs if a > 0.5), reverse=True)

    if uri:
        import httpx

        from bascule.sdk.backends import run_from_json

        client = httpx.Client(base_url=uri, timeout=60)

        def search() -> list[float]:
            resp = client.get(
                "/api/v1/runs",
                params={
                    "experiment": experiment,
                    "filter": "metrics.auc > 0.5",
                    "order_by": "metrics.auc DESC",
                    "max_results": 1000,
                },
            )
            resp.raise_for_status()
            runs = [run_from_json(r) for r in resp.json()["runs"]]
            return [r.metrics["auc"].value for r in runs]

    else:

        def search() -> list[float]:
            page = tracking.search_runs(
                experiment_names=[experiment],
                filter_string="metrics.auc > 0.5",
                order_by=["metrics.auc DESC"],
                max_results=1000,
            )
            return [r.metrics["auc"].value for r in page.runs]

    times = []
    found: list[float] = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        found = search()
        times.append(time.perf_counter() - t0)
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
    search_p = sub.add_parser("search")
    search_p.add_argument("--runs", type=int, required=True)
    search_p.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    result = _log(args) if args.task == "log" else _search(args)
    from bascule import __version__

    result["version"] = __version__
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
