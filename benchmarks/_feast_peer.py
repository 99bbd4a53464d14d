"""The Feast side of ``benchmarks/features.py``, run only by the Feast peer venv's python.

Never imported by bascule: ``features.py`` runs
``benchmarks/.peers/feast-0.67/bin/python benchmarks/_feast_peer.py TASK --data DIR --repo DIR``
and reads one JSON object from stdout. Each task builds a feature repo in ``--repo``
(``feature_store.yaml``: local provider, file offline store, SQLite or Redis online store) and
registers the definitions with ``FeatureStore.apply`` — what ``feast apply`` does.

Tasks:
  pit N         get_historical_features for the N-row entity frame, ``.to_df()`` (median of 3)
  materialize   materialize all feature rows into the online store
  online        get_online_features latency for 1 and for 100 entities (after materialize)
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

N_FEATURES = 10
TTL = timedelta(days=7)


def _repo(args: argparse.Namespace) -> Any:
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource
    from feast.types import Float64, Int64

    repo = Path(args.repo)
    repo.mkdir(parents=True, exist_ok=True)
    if args.online == "redis":
        online = f'online_store:\n  type: redis\n  connection_string: "{args.redis}"\n'
    else:
        online = f"online_store:\n  type: sqlite\n  path: {repo / 'online.db'}\n"
    (repo / "feature_store.yaml").write_text(
        "project: bench\n"
        f"registry: {repo / 'registry.db'}\n"
        "provider: local\n"
        f"{online}"
        "offline_store:\n  type: file\n"
        "entity_key_serialization_version: 3\n"
    )
    store = FeatureStore(repo_path=str(repo))
    entity = Entity(name="entity", join_keys=["entity_id"])
    source = FileSource(
        path=str(Path(args.data) / "features.parquet"), timestamp_field="event_timestamp"
    )
    view = FeatureView(
        name="stats",
        entities=[entity],
        ttl=TTL,
        schema=[Field(name="entity_id", dtype=Int64)]
        + [Field(name=f"f{i}", dtype=Float64) for i in range(N_FEATURES)],
        source=source,
    )
    store.apply([entity, view])
    return store


def _refs() -> list[str]:
    return [f"stats:f{i}" for i in range(N_FEATURES)]


def pit(args: argparse.Namespace) -> dict[str, Any]:
    import pandas as pd

    store = _repo(args)
    entity_df = pd.read_parquet(Path(args.data) / f"entities_{args.n}.parquet")
    times = []
    for _ in range(args.repeats_pit):
        t = time.perf_counter()
        df = store.get_historical_features(entity_df=entity_df, features=_refs()).to_df()
        times.append(time.perf_counter() - t)
        rows = len(df)
        del df
    return {"seconds": statistics.median(times), "rows": rows, "entity_rows": len(entity_df)}


def _window(args: argparse.Namespace) -> tuple[Any, Any]:
    meta = json.loads((Path(args.data) / "meta.json").read_text())
    from datetime import datetime

    start = datetime.fromisoformat(meta["start"]) - timedelta(days=1)
    end = datetime.fromisoformat(meta["end"]) + timedelta(days=1)
    return start, end


def materialize(args: argparse.Namespace) -> dict[str, Any]:
    store = _repo(args)
    start, end = _window(args)
    t = time.perf_counter()
    store.materialize(start, end)
    return {"seconds": time.perf_counter() - t}


def online(args: argparse.Namespace) -> dict[str, Any]:
    import random

    store = _repo(args)
    start, end = _window(args)
    store.materialize(start, end)
    rng = random.Random(7)
    n_entities = json.loads((Path(args.data) / "meta.json").read_text())["entities"]
    out: dict[str, Any] = {}
    for batch, repeats in ((1, args.repeats), (100, max(20, args.repeats // 10))):
        times = []
        present = 0
        for _ in range(repeats):
            rows = [{"entity_id": rng.randrange(n_entities)} for _ in range(batch)]
            t = time.perf_counter()
            res = store.get_online_features(features=_refs(), entity_rows=rows).to_dict()
            times.append(time.perf_counter() - t)
            present += sum(v is not None for v in res["f0"])
        times.sort()
        out[f"p50_{batch}"] = statistics.median(times)
        out[f"p99_{batch}"] = times[min(len(times) - 1, int(len(times) * 0.99))]
        out[f"present_{batch}"] = present
    return out


def main() -> int:
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    p = argparse.ArgumentParser()
    p.add_argument("task", choices=["pit", "materialize", "online"])
    p.add_argument("--data", required=True)
    p.add_argument("--repo", required=True)
    p.add_argument("--online", choices=["sqlite", "redis"], default="sqlite")
    p.add_argument("--redis", default="127.0.0.1:6379,db=14")
    p.add_argument("--n", type=int, default=0)
    p.add_argument("--repeats", type=int, default=500)
    p.add_argument("--repeats-pit", type=int, default=3)
    args = p.parse_args()
    result = {"pit": pit, "materialize": materialize, "online": online}[args.task](args)
    import feast

    result["version"] = feast.__version__
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
