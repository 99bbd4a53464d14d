"""A pipeline run in a subprocess by test_resume.py: step 3 blocks while ``<dir>/block`` exists.

Usage: python _resumable.py HOME MARKER_DIR  → prints the result as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pandas as pd

from bascule.pipelines import LocalRunner, Pipeline, step
from bascule.testing import make_services


@step(outputs="data")
def load(n_rows: int) -> pd.DataFrame:
    return pd.DataFrame({"x": range(n_rows), "y": [i % 3 for i in range(n_rows)]})


@step(outputs="features")
def featurize(data: pd.DataFrame) -> pd.DataFrame:
    return data.assign(x2=data["x"] ** 2)


@step(outputs="summary")
def summarize(features: pd.DataFrame, marker_dir: str) -> dict[str, float]:
    folder = Path(marker_dir)
    (folder / "step3-started").touch()
    while (folder / "block").exists():
        time.sleep(0.05)
    return {"mean_x2": float(features["x2"].mean())}


PIPELINE = Pipeline("resumable", [load, featurize, summarize], params=["n_rows", "marker_dir"])


def main(home: str, marker_dir: str) -> None:
    services = make_services(home)
    result = LocalRunner(services.tracking, services.artifacts).run(
        PIPELINE, {"n_rows": 1000, "marker_dir": marker_dir}, experiment="resume"
    )
    body = {
        "run_id": result.run_id,
        "status": result.status,
        "cache": {s.name: s.cache for s in result.steps},
        "summary": result.outputs.get("summary"),
    }
    sys.stdout.write(json.dumps(body) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
