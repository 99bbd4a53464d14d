"""Feature store benchmark: bascule against Feast 0.67 and a hand-written DuckDB ASOF JOIN.

Usage::

    .venv/bin/python benchmarks/features.py            # full: 100k entities, 1M rows, 30 days
    .venv/bin/python benchmarks/features.py --quick    # smoke: 10k entities, 100k rows
    .venv/bin/python benchmarks/features.py --no-feast # bascule and DuckDB only

Data is generated once (Parquet, in a temp folder): entities with 10 numeric features at random
event times over 30 days, and entity frames of 100k and 1M rows (10k / 100k with --quick) with
random ids and times. The feature view has a TTL of 7 days.

Every measurement runs in its own process, so its peak memory (``ru_maxrss`` from
``os.wait4``) is its own: bascule and the hand-written DuckDB query with this interpreter
(``--task``), Feast with the python of ``benchmarks/.peers/feast-0.67`` (``_feast_peer.py``,
venv created on first run with ``feast[redis]==0.67.0``). Both use the local provider / embedded
defaults: a file offline store, SQLite online store; then Redis (127.0.0.1:6379, databases 13
and 14, flushed) for both.

Measured: the point-in-time join (median wall time of 3 runs in one process, peak memory of
that process, rows returned), materialisation of
all rows to SQLite and to Redis, online lookup latency p50/p99 for 1 and for 100 entities,
and whether ``import bascule`` loads the feature store. Prints ``name: value unit`` lines on
stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEER_DIR = HERE / ".peers" / "feast-0.67"
FEAST_SIDE = HERE / "_feast_peer.py"
N_FEATURES = 10
TTL = timedelta(days=7)
START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 30
REDIS = "redis://127.0.0.1:6379"
PIT_REPEATS = 3  # each side's join runs 3 times in its process; the median is reported


def progress(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def emit(name: str, value: float, unit: str, note: str = "") -> None:
    text = f"{value:.0f}" if unit in ("rows", "entities", "bool") else f"{value:.4g}"
    print(f"{name}: {text} {unit}" + (f" ({note})" if note else ""), flush=True)


# -- data -------------------------------------------------------------------------------------


def generate(data: Path, *, entities: int, rows: int, entity_sizes: list[int]) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(20260101)
    start_us = int(START.timestamp() * 1_000_000)
    span_us = DAYS * 86400 * 1_000_000
    ids = np.concatenate([np.arange(entities), rng.integers(0, entities, rows - entities)])
    ts = start_us + rng.integers(0, span_us, rows)
    cols: dict[str, Any] = {
        "entity_id": pa.array(ids, pa.int64()),
        "event_timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
    }
    for i in range(N_FEATURES):
        cols[f"f{i}"] = pa.array(rng.normal(0, 1, rows))
    pq.write_table(pa.table(cols), data / "features.parquet")
    for n in entity_sizes:
        e_ts = start_us + rng.integers(0, span_us, n)
        pq.write_table(
            pa.table(
                {
                    "entity_id": pa.array(rng.integers(0, entities, n), pa.int64()),
                    "event_timestamp": pa.array(e_ts, pa.timestamp("us", tz="UTC")),
                }
            ),
            data / f"entities_{n}.parquet",
        )
    meta = {
        "entities": entities,
        "rows": rows,
        "start": START.isoformat(),
        "end": (START + timedelta(days=DAYS)).isoformat(),
    }
    (data / "meta.json").write_text(json.dumps(meta))


# -- bascule and DuckDB sides (run in child processes) ----------------------------------------


def _store(data: Path, home: Path, online: str | None) -> Any:
    from bascule.features import Entity, FeatureView, Field, FileSource
    from bascule.testing import FakeClock, make_services

    # "Now" is the end of the data, so online values within the TTL come back PRESENT.
    overrides: dict[str, Any] = {"clock": FakeClock(START + timedelta(days=DAYS))}
    if online:
        overrides["online_store"] = online
    services = make_services(home, **overrides)
    fs = services.features
    fs.apply(
        [
            FeatureView(
                name="stats",
                entities=[Entity("entity", ["entity_id"])],
                schema=[Field(f"f{i}", "float64") for i in range(N_FEATURES)],
                source=FileSource(str(data / "features.parquet")),
                ttl=TTL,
            )
        ]
    )
    return fs


def _refs() -> list[str]:
    return [f"stats:f{i}" for i in range(N_FEATURES)]


def task_pit_bascule(args: argparse.Namespace) -> dict[str, Any]:
    import pandas as pd

    data = Path(args.data)
    fs = _store(data, Path(args.home), None)
    entity_df = pd.read_parquet(data / f"entities_{args.n}.parquet")
    times = []
    for _ in range(PIT_REPEATS):
        t = time.perf_counter()
        df = fs.get_historical_features(entity_df, _refs()).to_df()
        times.append(time.perf_counter() - t)
        rows = len(df)
        del df
    return {"seconds": statistics.median(times), "rows": rows, "entity_rows": len(entity_df)}


def task_pit_duckdb(args: argparse.Namespace) -> dict[str, Any]:
    import duckdb

    data = Path(args.data)
    ttl_us = int(TTL.total_seconds() * 1_000_000)
    feats = ", ".join(
        f"CASE WHEN f.event_timestamp >= e.event_timestamp - to_microseconds({ttl_us}::BIGINT) "
        f"THEN f.f{i} END AS f{i}"
        for i in range(N_FEATURES)
    )
    import pandas as pd

    sql = (
        f"SELECT e.entity_id, e.event_timestamp, {feats} FROM entity_df e "
        f"ASOF LEFT JOIN read_parquet('{data / 'features.parquet'}') f "
        "ON e.entity_id = f.entity_id AND e.event_timestamp >= f.event_timestamp"
    )
    # The entity frame is in memory as a DataFrame, as for bascule and Feast.
    entity_df = pd.read_parquet(data / f"entities_{args.n}.parquet")
    times = []
    for _ in range(PIT_REPEATS):
        con = duckdb.connect()
        t = time.perf_counter()
        con.register("entity_df", entity_df)
        df = con.sql(sql).to_arrow_table().to_pandas()
        times.append(time.perf_counter() - t)
        rows = len(df)
        del df
        con.close()
    return {"seconds": statistics.median(times), "rows": rows}


def task_materialize_bascule(args: argparse.Namespace) -> dict[str, Any]:
    data = Path(args.data)
    fs = _store(data, Path(args.home), args.online or None)
    # Feast's process has pandas and pyarrow.compute loaded before its clock starts (importing
    # feast loads them); pyarrow loads pandas on its first compute call. Load them here too, so
    # neither side's figure includes a one-off import.
    import pandas  # noqa: F401
    import pyarrow.compute  # noqa: F401

    t = time.perf_counter()
    results = fs.materialize(START - timedelta(days=1), START + timedelta(days=DAYS + 1))
    return {"seconds": time.perf_counter() - t, "written": sum(r.rows for r in results)}


def task_online_bascule(args: argparse.Namespace) -> dict[str, Any]:
    import random

    data = Path(args.data)
    fs = _store(data, Path(args.home), args.online or None)
    fs.materialize(START - timedelta(days=1), START + timedelta(days=DAYS + 1))
    entities = json.loads((data / "meta.json").read_text())["entities"]
    refs = _refs()
    rng = random.Random(7)
    out: dict[str, Any] = {}
    for batch, repeats in ((1, args.repeats), (100, max(20, args.repeats // 10))):
        times = []
        present = 0
        for _ in range(repeats):
            rows = [{"entity_id": rng.randrange(entities)} for _ in range(batch)]
            t = time.perf_counter()
            res = fs.get_online_features(rows, refs)
            times.append(time.perf_counter() - t)
            present += sum(s != "NOT_FOUND" for s in res.features["f0"].statuses)
        times.sort()
        out[f"p50_{batch}"] = statistics.median(times)
        out[f"p99_{batch}"] = times[min(len(times) - 1, int(len(times) * 0.99))]
        out[f"present_{batch}"] = present
    return out


PARTS = ("pit", "materialize", "online", "import")

TASKS = {
    "pit-bascule": task_pit_bascule,
    "pit-duckdb": task_pit_duckdb,
    "materialize-bascule": task_materialize_bascule,
    "online-bascule": task_online_bascule,
}


# -- orchestration --------------------------------------------------------------------------


def feast_cmd(
    feast: Path, task: str, data: Path, repo: str, online: str | None, *extra: str
) -> list[str]:
    """The command line of one Feast-side task (``_feast_peer.py``) in Feast's venv python.

    ``online``: the online store (``sqlite`` or ``redis``, database 14), or None for none.
    """
    cmd = [str(feast), str(FEAST_SIDE), task, "--data", str(data), "--repo", repo]
    if online is not None:
        cmd += ["--online", online, "--redis", "127.0.0.1:6379,db=14"]
    return [*cmd, *extra]


def run_child(cmd: list[str], *, timeout_s: float = 3600) -> tuple[dict[str, Any], float]:
    """Run a measurement process; return its JSON and its peak RSS in MiB."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASCULE_")}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT)
        deadline = time.monotonic() + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"{cmd[1:3]} timed out after {timeout_s:.0f}s")
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[1:4])} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1]), usage.ru_maxrss / 1024


def feast_python() -> Path:
    python = PEER_DIR / "bin" / "python"
    check = "import feast, sys; sys.exit(0 if feast.__version__ == '0.67.0' else 1)"
    if python.exists() and subprocess.run([str(python), "-c", check], check=False).returncode == 0:
        return python
    progress(f"creating peer venv {PEER_DIR} (first run only; a few minutes)")
    subprocess.run(["python3.11", "-m", "venv", str(PEER_DIR)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "feast[redis]==0.67.0"],
        check=True,
        stdout=sys.stderr,
    )
    subprocess.run([str(python), "-c", check], check=True)
    return python


def flush_redis(db: int) -> None:
    import redis

    client = redis.Redis.from_url(f"{REDIS}/{db}")
    client.flushdb()
    client.close()


def import_check() -> tuple[float, bool]:
    code = (
        "import sys, time; t = time.perf_counter(); import bascule; "
        "print(time.perf_counter() - t, int(any(m in sys.modules for m in "
        "('duckdb', 'bascule.features', 'pandas', 'sqlalchemy'))))"
    )
    times, heavy = [], False
    for _ in range(6):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        t, h = out.stdout.split()
        times.append(float(t))
        heavy = heavy or h == "1"
    return statistics.median(times[1:]), heavy


def measure_materialize(
    store: str,
    data: Path,
    home: Callable[[], str],
    feast: Path | None,
    runs: int,
    fails: list[str],
) -> None:
    """Materialise every row into ``store`` with bascule and with Feast, ``runs`` times each,
    interleaved (bascule, Feast, bascule, …) so both see the same machine load; medians."""
    me = [sys.executable, str(Path(__file__).resolve())]
    online = f"{REDIS}/13" if store == "redis" else ""
    ours: list[float] = []
    theirs: list[float] = []
    mems: list[float] = []
    feast_mems: list[float] = []
    written = 0
    for run in range(runs):
        progress(f"materialising to {store} (run {run + 1} of {runs})")
        if store == "redis":
            flush_redis(13)
        cmd = [*me, "--task", "materialize-bascule", "--data", str(data), "--home", home()]
        res, mem = run_child([*cmd, "--online", online])
        ours.append(res["seconds"])
        mems.append(mem)
        written = res["written"]
        if feast:
            if store == "redis":
                flush_redis(14)
            fres, fmem = run_child(feast_cmd(feast, "materialize", data, home(), store))
            theirs.append(fres["seconds"])
            feast_mems.append(fmem)
    b_mat = statistics.median(ours)
    note = (
        f"{written:,} entities written; median of {runs}"
        if runs > 1
        else f"{written:,} entities written"
    )
    emit(f"materialize_{store}_bascule_wall", b_mat, "s", note)
    emit(f"materialize_{store}_bascule_peak_mem", max(mems), "MiB")
    if theirs:
        f_mat = statistics.median(theirs)
        emit(f"materialize_{store}_feast_wall", f_mat, "s")
        emit(f"materialize_{store}_feast_peak_mem", max(feast_mems), "MiB")
        if runs > 1:
            ratios = ", ".join(f"{f / b:.1f}" for b, f in zip(ours, theirs, strict=True))
            emit(
                f"materialize_{store}_speedup_vs_feast_runs",
                min(t / o for o, t in zip(ours, theirs, strict=True)),
                "x",
                f"worst run; each run: {ratios}",
            )
        emit(f"materialize_{store}_speedup_vs_feast", f_mat / b_mat, "x", "goal >= 5")
        if f_mat / b_mat < 5:
            fails.append(f"materialisation to {store} at least 5x faster than Feast")


def measure_online(
    store: str, data: Path, home: Callable[[], str], feast: Path | None, fails: list[str]
) -> None:
    """Online lookup latency p50/p99 for 1 and for 100 entities, bascule then Feast."""
    me = [sys.executable, str(Path(__file__).resolve())]
    online = f"{REDIS}/13" if store == "redis" else ""
    progress(f"online lookups from {store}")
    if store == "redis":
        flush_redis(13)
    res, _ = run_child(
        [*me, "--task", "online-bascule", "--data", str(data), "--home", home(), "--online", online]
    )
    goal_1 = 0.2 if store == "sqlite" else 0.5
    for batch in (1, 100):
        emit(f"online_{store}_{batch}_bascule_p50", res[f"p50_{batch}"] * 1000, "ms")
        emit(f"online_{store}_{batch}_bascule_p99", res[f"p99_{batch}"] * 1000, "ms")
    if res["p50_1"] * 1000 > goal_1:
        fails.append(f"online {store} 1 entity p50 under {goal_1} ms")
    if res["p99_1"] * 1000 > 1.0:
        fails.append(f"online {store} 1 entity p99 under 1 ms")
    if res["p50_100"] * 1000 > 3.0:
        fails.append(f"online {store} 100 entities p50 under 3 ms")
    if feast:
        if store == "redis":
            flush_redis(14)
        fres, _ = run_child(feast_cmd(feast, "online", data, home(), store, "--repeats", "500"))
        for batch in (1, 100):
            emit(f"online_{store}_{batch}_feast_p50", fres[f"p50_{batch}"] * 1000, "ms")
            emit(f"online_{store}_{batch}_feast_p99", fres[f"p99_{batch}"] * 1000, "ms")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="10k entities, 100k rows")
    p.add_argument("--no-feast", action="store_true", help="skip the Feast peer")
    p.add_argument("--no-redis", action="store_true", help="skip Redis measurements")
    p.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated subset of {', '.join(PARTS)} (default: all)",
    )
    p.add_argument(
        "--materialize-runs",
        type=int,
        default=1,
        help="materialisations per side and store, interleaved; medians are reported",
    )
    p.add_argument("--task", choices=sorted(TASKS), help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--home", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--online", default="", help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, default=2000, help=argparse.SUPPRESS)
    args = p.parse_args()
    parts = {x.strip() for x in args.parts.split(",") if x.strip()}
    if parts - set(PARTS):
        p.error(f"--parts: unknown {sorted(parts - set(PARTS))}; choose from {', '.join(PARTS)}")
    if args.task:
        print(json.dumps(TASKS[args.task](args)))
        return 0

    entities, rows = (10_000, 100_000) if args.quick else (100_000, 1_000_000)
    sizes = [10_000, 100_000] if args.quick else [100_000, 1_000_000]
    label = {10_000: "10k", 100_000: "100k", 1_000_000: "1m"}
    work = Path(tempfile.mkdtemp(prefix="bascule-features-bench-"))
    me = [sys.executable, str(Path(__file__).resolve())]
    feast = None if args.no_feast else feast_python()
    fails: list[str] = []
    try:
        data = work / "data"
        data.mkdir()
        progress(f"generating {rows:,} feature rows for {entities:,} entities in {data}")
        generate(data, entities=entities, rows=rows, entity_sizes=sizes)
        emit("data_entities", entities, "entities")
        emit("data_feature_rows", rows, "rows", f"{N_FEATURES} float features over {DAYS} days")

        def home() -> str:
            return tempfile.mkdtemp(dir=work)

        pit: dict[tuple[str, int], tuple[float, float, int]] = {}
        for n in sizes if "pit" in parts else []:
            progress(f"point-in-time join of {n:,} entity rows")
            runs = [
                (
                    "bascule",
                    [
                        *me,
                        "--task",
                        "pit-bascule",
                        "--data",
                        str(data),
                        "--home",
                        home(),
                        "--n",
                        str(n),
                    ],
                ),
                ("duckdb_asof", [*me, "--task", "pit-duckdb", "--data", str(data), "--n", str(n)]),
            ]
            if feast:
                runs.append(("feast", feast_cmd(feast, "pit", data, home(), None, "--n", str(n))))
            for name, cmd in runs:
                res, mem = run_child(cmd)
                pit[(name, n)] = (res["seconds"], mem, res["rows"])
                emit(f"pit_{label[n]}_{name}_wall", res["seconds"], "s")
                emit(f"pit_{label[n]}_{name}_peak_mem", mem, "MiB")
                emit(f"pit_{label[n]}_{name}_rows", res["rows"], "rows", f"of {n:,} entity rows")
        for n in sizes if "pit" in parts else []:
            b, d = pit[("bascule", n)], pit[("duckdb_asof", n)]
            ratio = b[0] / d[0]
            emit(f"pit_{label[n]}_bascule_vs_duckdb", ratio, "x", "goal <= 1.5")
            if ratio > 1.5:
                fails.append(f"pit {label[n]} within 1.5x of DuckDB ASOF")
            if b[2] != n:
                fails.append(f"pit {label[n]} returned {b[2]} rows for {n}")
            if ("feast", n) in pit:
                f = pit[("feast", n)]
                emit(f"pit_{label[n]}_speedup_vs_feast", f[0] / b[0], "x")
                emit(f"pit_{label[n]}_mem_vs_feast", b[1] / f[1], "ratio")
                emit(f"pit_{label[n]}_feast_rows_dropped", n - f[2], "rows")
        big = sizes[-1]
        if ("feast", big) in pit and ("bascule", big) in pit:
            b, f = pit[("bascule", big)], pit[("feast", big)]
            if f[0] / b[0] < 10:
                fails.append("pit at the large size at least 10x faster than Feast")
            if b[1] > f[1] / 3:
                fails.append("pit at the large size under a third of Feast's memory")

        stores = ["sqlite"] + ([] if args.no_redis else ["redis"])
        for store in stores:
            if "materialize" in parts:
                measure_materialize(store, data, home, feast, args.materialize_runs, fails)
            if "online" in parts:
                measure_online(store, data, home, feast, fails)

        if "import" in parts:
            t_import, heavy = import_check()
            emit("import_bascule", t_import * 1000, "ms")
            emit("import_bascule_loads_feature_store", int(heavy), "bool", "goal 0")
            if heavy:
                fails.append("import bascule stays light")
        emit("goals_missed", len(fails), "checks", "; ".join(fails) or "all goals met")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not args.no_redis:
            for db in (13, 14):
                try:
                    flush_redis(db)
                except Exception:  # noqa: BLE001 - best-effort cleanup of benchmark data
                    progress(f"could not flush redis db {db}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
