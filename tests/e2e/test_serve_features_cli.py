"""``bascule models register --feature-service`` then ``bascule serve``: requests with entity
ids only, answered from the online store, in subprocesses as a user would run them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from bascule.registry.converters import convert
from tests.e2e.conftest import as_json
from tests.e2e.serving.conftest import free_port
from tests.e2e.test_features_cli import _project

Cli = Callable[..., subprocess.CompletedProcess[str]]
COLUMNS = ["spend", "amount_over_spend", "amount"]


def _model_files(root: Path) -> tuple[Path, Path, Any]:
    rng = np.random.default_rng(3)
    spend = rng.gamma(2.0, 10.0, 300)
    amount = rng.gamma(2.0, 10.0, 300)
    frame = pd.DataFrame({"spend": spend, "amount_over_spend": amount / spend, "amount": amount})
    model = LogisticRegression(max_iter=500).fit(frame, (frame.amount_over_spend > 1).astype(int))
    onnx_path, sample_path = root / "model.onnx", root / "sample.parquet"
    onnx_path.write_bytes(convert(model, frame).onnx_bytes)
    frame.to_parquet(sample_path, index=False)
    return onnx_path, sample_path, model


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """``serve("fraud")`` starts ``bascule serve`` in the project folder; stopped after."""
    processes: list[subprocess.Popen[str]] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASCULE_")}
    env.update(BASCULE_HOME=str(tmp_path / "home"), NO_COLOR="1")

    def start(ref: str) -> str:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "bascule.cli.main", "serve", ref, "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if process.poll() is not None:
                out, err = process.communicate()
                raise AssertionError(f"bascule serve exited {process.returncode}: {out}\n{err}")
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("bascule serve did not become ready in time")

    yield start
    for process in processes:
        process.terminate()
        process.communicate(timeout=60)


def _tensor(name: str, values: list[Any], datatype: str) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": [len(values)], "data": values}


def test_register_with_a_feature_service_and_serve_entity_ids(
    cli: Cli, serve: Callable[[str], str], tmp_path: Path
) -> None:
    _project(tmp_path)
    as_json(cli("features", "apply", "--json"))
    as_json(
        cli("features", "materialize", "--start", "2025-12-01", "--end", "2026-02-01", "--json")
    )
    onnx_path, sample_path, model = _model_files(tmp_path)
    args = ("models", "register", "fraud", str(onnx_path), "--sample", str(sample_path))

    unknown = cli(*args, "--feature-service", "frud")
    registered = as_json(cli(*args, "--feature-service", "fraud", "--json"))
    url = serve("fraud")
    ids = {
        "inputs": [_tensor("customer_id", [1, 2], "INT64"), _tensor("amount", [30.0, 2.0], "FP64")]
    }
    by_ids = httpx.post(f"{url}/v2/models/fraud/infer", json=ids, timeout=30)
    missing = httpx.post(
        f"{url}/v2/models/fraud/infer",
        json={"inputs": [_tensor("customer_id", [9], "INT64"), _tensor("amount", [1.0], "FP64")]},
        timeout=30,
    )
    metadata = httpx.get(f"{url}/v2/models/fraud", timeout=30).json()

    assert 4 == unknown.returncode
    assert "feature service 'frud' not found; available: 'fraud'" in unknown.stderr
    assert "fraud" == registered["tags"]["bascule.feature_service"]
    assert "customer_id" == registered["tags"]["bascule.feature_service.entity_keys"]
    assert 200 == by_ids.status_code, by_ids.text
    # customer 1's latest spend is 20, customer 2's is 5 (see _project)
    expected = model.predict_proba(
        pd.DataFrame({"spend": [20.0, 5.0], "amount_over_spend": [1.5, 0.4], "amount": [30.0, 2.0]})
    )
    probabilities = next(o for o in by_ids.json()["outputs"] if o["name"] == "probabilities")
    np.testing.assert_allclose(expected.ravel(), probabilities["data"], atol=1e-5)
    assert 422 == missing.status_code
    assert "customer_id=9" in missing.json()["error"]
    required = metadata["parameters"]["feature_service"]["required_inputs"]
    assert ["customer_id", "amount"] == required
