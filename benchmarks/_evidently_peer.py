"""Evidently's side of the drift benchmark; runs under the python of its own venv.

Usage: ``python _evidently_peer.py SPEC.json``. The spec names the reference and current
Parquet files and the numeric and categorical columns. Prints one JSON line: the columns
Evidently's ``DataDriftPreset`` flags, its dataset-level verdict, the wall time of the
report (data already loaded, imports done) and the process's peak RSS.
"""

from __future__ import annotations

import json
import re
import resource
import sys
import time
from pathlib import Path

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

_VALUE_DRIFT = re.compile(
    r"ValueDrift\(column=(?P<column>.+?),method=(?P<method>.+?),threshold=(?P<t>[^)]+)\)"
)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    reference = pd.read_parquet(spec["reference"])
    current = pd.read_parquet(spec["current"])
    definition = DataDefinition(
        numerical_columns=spec["numeric"], categorical_columns=spec["categorical"]
    )
    loaded_mb = _rss_mb()
    start = time.perf_counter()
    report = Report([DataDriftPreset()])
    snapshot = report.run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    result = snapshot.dict()
    wall = time.perf_counter() - start
    flagged, share, drift_share, methods = [], 0.0, 0.5, {}
    for metric in result["metrics"]:
        name, value = metric["metric_name"], metric["value"]
        match = _VALUE_DRIFT.fullmatch(name)
        if match:
            column, method, threshold = match["column"], match["method"], float(match["t"])
            methods[column] = method
            is_p_value = "p_value" in method
            if (value < threshold) if is_p_value else (value >= threshold):
                flagged.append(column)
        elif name.startswith("DriftedColumnsCount"):
            share = float(value["share"])
            drift_share = float(metric["config"].get("drift_share", 0.5))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "flagged": sorted(flagged, key=spec["columns"].index),
                "dataset_drift": share >= drift_share,
                "wall_s": wall,
                "peak_rss_mb": peak_mb,
                "loaded_rss_mb": loaded_mb,
                "methods": sorted(set(methods.values())),
            }
        )
    )


if __name__ == "__main__":
    main()
