"""Drift benchmark: bascule against Evidently 0.7.23's DataDriftPreset, same data, same run.

Usage::

    .venv/bin/python benchmarks/drift.py                 # 10k and 200k rows (a few minutes)
    .venv/bin/python benchmarks/drift.py --quick         # 10k rows only
    .venv/bin/python benchmarks/drift.py --bascule-only  # no peer venv

The data is generated once, with known truth, and written as Parquet files that both
sides read: a reference and a current window of 20 numeric features (means 0..19, sds
1..2.9, two correlated pairs) and 5 categorical ones (3 to 50 categories), at each size.
Scenarios for the current window:

==============  =====================================================================
no_drift        same distribution, other rows
shift_0.1sd     mean of n0, n1, n2 + 0.1 sd: a trivial shift that should not alert
shift_0.5sd     mean of n0, n1, n2 + 0.5 sd
variance        sd of n6, n7 x 1.5 (variance x 2.25), same mean
category        c0 shares 40/30/20/10 % -> 25/30/25/20 %
correlation     corr(n4, n5) +0.6 -> -0.6, marginals unchanged (no per-feature test sees it)
==============  =====================================================================

Each side runs in a fresh process: bascule with this interpreter (``--worker``), Evidently
with the python of ``benchmarks/.peers/evidently-0.7.23`` (created on first run; Evidently
0.7.23 does not import under pandas 3). Wall time covers the drift computation only (data
loaded, libraries imported); for bascule it includes summarising the reference from raw
rows, and the time of the test alone (summary already kept with the model) is shown too.
Peak memory is the process's peak RSS (``getrusage``), imports and data included.

Prints a table per size and ``name: value unit`` lines on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import bench_env, ensure_venv, progress  # the benchmarks folder is not a package

HERE = Path(__file__).resolve().parent
PEER = HERE / "_evidently_peer.py"
EVIDENTLY = "0.7.23"
NUMERIC = [f"n{i}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]
COLUMNS = NUMERIC + CATEGORICAL
CARDINALITY = [4, 3, 5, 10, 50]
C0_REF, C0_CUR = [0.4, 0.3, 0.2, 0.1], [0.25, 0.3, 0.25, 0.2]
SCENARIOS: dict[str, dict[str, Any]] = {
    "no_drift": {"truth": [], "dataset": False},
    "shift_0.1sd": {"truth": ["n0", "n1", "n2"], "dataset": False, "trivial": True},
    "shift_0.5sd": {"truth": ["n0", "n1", "n2"], "dataset": True},
    "variance": {"truth": ["n6", "n7"], "dataset": True},
    "category": {"truth": ["c0"], "dataset": True},
    "correlation": {"truth": [], "dataset": True},
}
SPEED_GOAL = 10.0
SIDE_TIMEOUT_S = 1800


def generate(n: int, scenario: str, seed: int) -> pd.DataFrame:
    """``n`` rows of the scenario (``no_drift`` is the reference's distribution)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 20))
    rho = -0.6 if scenario == "correlation" else 0.6
    z[:, 5] = rho * z[:, 4] + np.sqrt(1 - rho**2) * z[:, 5]
    z[:, 13] = 0.4 * z[:, 12] + np.sqrt(1 - 0.4**2) * z[:, 13]
    if scenario in ("shift_0.1sd", "shift_0.5sd"):
        z[:, :3] += 0.1 if scenario == "shift_0.1sd" else 0.5
    if scenario == "variance":
        z[:, 6:8] *= 1.5
    means, sds = np.arange(20.0), 1.0 + np.arange(20) / 10.0
    frame = pd.DataFrame(means + sds * z, columns=NUMERIC)
    for name, k in zip(CATEGORICAL, CARDINALITY, strict=True):
        if name == "c0":
            p = np.array(C0_CUR if scenario == "category" else C0_REF)
        else:
            p = 1.0 / np.arange(1, k + 1)  # Zipf-like shares
            p /= p.sum()
        labels = np.array([f"{name}_{i}" for i in range(k)], dtype=object)
        frame[name] = labels[rng.choice(k, n, p=p)]
    return frame


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def worker(spec_path: str) -> None:
    """bascule's side, in a fresh process: prints one JSON line."""
    import sklearn.ensemble  # noqa: F401 - imported up front, as Evidently's imports are

    from bascule.monitoring import drift_report
    from bascule.monitoring.reference import ReferenceSummary

    spec = json.loads(Path(spec_path).read_text())
    reference = pd.read_parquet(spec["reference"])
    current = pd.read_parquet(spec["current"])
    loaded = _rss_mb()
    start = time.perf_counter()
    summary = ReferenceSummary.fit(reference, categorical=spec["categorical"])
    fitted = time.perf_counter()
    report = drift_report(summary, current)
    end = time.perf_counter()
    auc = report.multivariate.auc if report.multivariate else None
    out = {
        "flagged": report.drifted_features,
        "dataset_drift": report.dataset_drift,
        "wall_s": end - start,
        "fit_s": fitted - start,
        "test_s": end - fitted,
        "auc": auc,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "loaded_rss_mb": loaded,
    }
    print(json.dumps(out))


def run_side(python: Path | str, script: Path, args: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [str(python), str(script), *args],
        capture_output=True,
        text=True,
        env=bench_env({"PYTHONWARNINGS": "ignore"}),
        timeout=SIDE_TIMEOUT_S,
        check=False,
        cwd=HERE.parent,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{script.name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def evidently_python() -> Path:
    return ensure_venv(
        f"evidently-{EVIDENTLY}",
        [f"evidently=={EVIDENTLY}", "pandas<3", "pyarrow"],
        import_check=(
            "import sys, evidently, pandas; from evidently.presets import DataDriftPreset; "
            f"sys.exit(0 if evidently.__version__ == {EVIDENTLY!r} and "
            "int(pandas.__version__.split('.')[0]) < 3 else 1)"
        ),
    )


def emit(name: str, value: float | str, unit: str = "") -> None:
    text = f"{value:.3g}" if isinstance(value, float) else str(value)
    print(f"{name}: {text} {unit}".rstrip(), flush=True)


def short(columns: list[str]) -> str:
    return ",".join(columns) if columns else "-"


def judge(scenario: str, res: dict[str, Any]) -> list[str]:
    """The goals this side missed in this scenario."""
    spec, flagged = SCENARIOS[scenario], set(res["flagged"])
    misses = []
    if scenario == "no_drift" and (flagged or res["dataset_drift"]):
        misses.append("false alarm without drift")
    if spec.get("trivial") and (flagged or res["dataset_drift"]):
        misses.append("flagged a trivial 0.1 sd shift")
    if scenario in ("shift_0.5sd", "variance", "category") and not set(spec["truth"]) <= flagged:
        misses.append(f"missed {sorted(set(spec['truth']) - flagged)}")
    if scenario == "correlation" and not res["dataset_drift"]:
        misses.append("correlation change not found at dataset level")
    extra = flagged - set(spec["truth"])
    if extra:
        misses.append(f"false alarms {sorted(extra)}")
    return misses


def run_size(n: int, folder: Path, peer: Path | None) -> tuple[dict[str, Any], list[str]]:
    progress(f"generating {n:,} rows per window")
    reference_path = folder / f"reference_{n}.parquet"
    generate(n, "no_drift", seed=1).to_parquet(reference_path)
    results: dict[str, Any] = {}
    failures: list[str] = []
    for i, scenario in enumerate(SCENARIOS):
        current_path = folder / f"current_{n}_{scenario}.parquet"
        generate(n, scenario, seed=100 + i).to_parquet(current_path)
        spec_path = folder / f"spec_{n}_{scenario}.json"
        spec = {
            "reference": str(reference_path),
            "current": str(current_path),
            "numeric": NUMERIC,
            "categorical": CATEGORICAL,
            "columns": COLUMNS,
        }
        spec_path.write_text(json.dumps(spec))
        progress(f"{n:,} rows, {scenario}: bascule")
        ours = run_side(sys.executable, Path(__file__), ["--worker", str(spec_path)])
        theirs = None
        if peer is not None:
            progress(f"{n:,} rows, {scenario}: evidently")
            theirs = run_side(peer, PEER, [str(spec_path)])
        results[scenario] = {"bascule": ours, "evidently": theirs}
        failures += [f"{n} {scenario}: {m}" for m in judge(scenario, ours)]
        current_path.unlink()
    return results, failures


def print_size(n: int, results: dict[str, Any]) -> None:
    tag = f"{n // 1000}k"
    print(f"\n== {n:,} rows per window ==")
    head = f"{'scenario':<12} {'truth':<9} | {'bascule flagged':<16} {'ds':<3} {'AUC':>5} "
    head += f"{'time':>6} {'peak':>6} | {'evidently flagged':<22} {'ds':<3} {'time':>6} {'peak':>6}"
    print(head)
    for scenario, res in results.items():
        ours, theirs = res["bascule"], res["evidently"]
        auc = f"{ours['auc']:.3f}" if ours["auc"] is not None else "-"
        line = f"{scenario:<12} {short(SCENARIOS[scenario]['truth']):<9} | "
        line += f"{short(ours['flagged']):<16} {'yes' if ours['dataset_drift'] else 'no':<3} "
        line += f"{auc:>5} {ours['wall_s']:5.2f}s {ours['peak_rss_mb']:4.0f}MB | "
        if theirs:
            verdict = "yes" if theirs["dataset_drift"] else "no"
            line += f"{short(theirs['flagged'])[:22]:<22} {verdict:<3} "
            line += f"{theirs['wall_s']:5.2f}s {theirs['peak_rss_mb']:4.0f}MB"
        print(line)
    print()
    for scenario, res in results.items():
        for side in ("bascule", "evidently"):
            r = res[side]
            if r is None:
                continue
            prefix = f"drift_{tag}_{scenario}_{side}"
            emit(f"{prefix}_flagged", short(r["flagged"]), "features")
            emit(f"{prefix}_dataset_drift", str(bool(r["dataset_drift"])).lower(), "bool")
            emit(f"{prefix}_wall", r["wall_s"], "s")
            emit(f"{prefix}_peak_rss", r["peak_rss_mb"], "MB")
        emit(f"drift_{tag}_{scenario}_bascule_test_only", res["bascule"]["test_s"], "s")
    for side in ("bascule", "evidently"):
        if results["no_drift"][side] is None:
            continue
        no_drift = results["no_drift"][side]
        emit(f"drift_{tag}_{side}_false_alarms", str(len(no_drift["flagged"])), "features")
        total = sum(r[side]["wall_s"] for r in results.values())
        emit(f"drift_{tag}_{side}_total_wall", total, "s")
        emit(
            f"drift_{tag}_{side}_max_peak_rss",
            max(r[side]["peak_rss_mb"] for r in results.values()),
            "MB",
        )
    if results["no_drift"]["evidently"] is not None:
        ours_t = sum(r["bascule"]["wall_s"] for r in results.values())
        theirs_t = sum(r["evidently"]["wall_s"] for r in results.values())
        ours_m = max(r["bascule"]["peak_rss_mb"] for r in results.values())
        theirs_m = max(r["evidently"]["peak_rss_mb"] for r in results.values())
        emit(f"drift_{tag}_speedup", theirs_t / ours_t, "x (evidently time / bascule time)")
        emit(f"drift_{tag}_memory_ratio", theirs_m / ours_m, "x (evidently peak / bascule peak)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k rows only")
    parser.add_argument("--bascule-only", action="store_true", help="skip Evidently")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return 0
    sizes = [10_000] if args.quick else [10_000, 200_000]
    peer = None if args.bascule_only else evidently_python()
    failures: list[str] = []
    all_results: dict[int, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bascule-drift-") as tmp:
        for n in sizes:
            all_results[n], missed = run_size(n, Path(tmp), peer)
            failures += missed
            print_size(n, all_results[n])
    print()
    big = max(sizes)
    emit(
        "drift_goal_no_false_alarm",
        str(not any("false alarm" in f for f in failures)).lower(),
        "bool",
    )
    emit("drift_goal_changes_found", str(not any("missed" in f for f in failures)).lower(), "bool")
    emit(
        "drift_goal_correlation_found",
        str(not any("correlation" in f for f in failures)).lower(),
        "bool",
    )
    emit(
        "drift_goal_trivial_shift_quiet",
        str(not any("trivial" in f for f in failures)).lower(),
        "bool",
    )
    if peer is not None:
        res = all_results[big]
        speed = sum(r["evidently"]["wall_s"] for r in res.values()) / sum(
            r["bascule"]["wall_s"] for r in res.values()
        )
        memory_ok = max(r["bascule"]["peak_rss_mb"] for r in res.values()) < max(
            r["evidently"]["peak_rss_mb"] for r in res.values()
        )
        if speed < SPEED_GOAL:
            failures.append(
                f"{big}: only {speed:.1f}x faster than Evidently (goal {SPEED_GOAL:g}x)"
            )
        if not memory_ok:
            failures.append(f"{big}: peak memory not below Evidently's")
        emit(f"drift_goal_speed_{big // 1000}k", str(speed >= SPEED_GOAL).lower(), "bool")
        emit(f"drift_goal_memory_{big // 1000}k", str(memory_ok).lower(), "bool")
    for failure in failures:
        progress(f"GOAL MISSED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
