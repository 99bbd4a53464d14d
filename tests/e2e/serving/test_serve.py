"""``bascule serve`` as users run it: stock tritonclient, bascule.Client, hot swap under load,
SIGTERM, worker processes, ``promtool check metrics``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest

import bascule
from bascule.store.artifacts.local import LocalArtifactStore
from bascule.store.predictions import read_predictions
from bascule.testing import make_services

pytestmark = pytest.mark.slow

ROW = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1, 0, 0, -1]}]}


def test_stock_tritonclient_works_unmodified(start_server: Callable[..., Any], home: Any) -> None:
    import tritonclient.http as triton

    server = start_server("fraud@champion", "mixed")
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    rows = home.frame.head(6).to_numpy().astype(np.float32)
    expected = home.fraud_v1.predict_proba(home.frame.head(6))

    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("fraud")
    assert client.is_model_ready("fraud", "1")
    assert not client.is_model_ready("fraud", "2")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata("fraud")
    assert [("input", "FP32", [-1, 4])] == [
        (i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]
    ]

    for binary in (False, True):
        tensor = triton.InferInput("input", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows, binary_data=binary)
        wanted = [
            triton.InferRequestedOutput("label", binary_data=binary),
            triton.InferRequestedOutput("probabilities", binary_data=binary),
        ]
        result = client.infer("fraud", [tensor], outputs=wanted, request_id=f"triton-{binary}")
        np.testing.assert_allclose(result.as_numpy("probabilities"), expected, atol=1e-5)
        assert (
            home.fraud_v1.predict(home.frame.head(6)).tolist() == result.as_numpy("label").tolist()
        )
        assert f"triton-{binary}" == result.get_response()["id"]
    default = client.infer("fraud", [tensor], model_version="1")  # all outputs, as binary
    np.testing.assert_allclose(default.as_numpy("probabilities"), expected, atol=1e-5)

    mixed = home.mixed_frame.head(3)
    inputs = [
        triton.InferInput("n", [3, 1], "INT64"),
        triton.InferInput("x", [3, 1], "FP64"),
        triton.InferInput("city", [3, 1], "BYTES"),
    ]
    inputs[0].set_data_from_numpy(mixed.n.to_numpy().astype(np.int64).reshape(3, 1))
    inputs[1].set_data_from_numpy(mixed.x.to_numpy().reshape(3, 1))
    inputs[2].set_data_from_numpy(mixed.city.to_numpy(dtype=object).reshape(3, 1))
    labels = client.infer("mixed", inputs).as_numpy("label")
    assert home.mixed.predict(mixed).tolist() == [v.decode() for v in labels.tolist()]

    with pytest.raises(triton.InferenceServerException) as e:
        client.get_model_metadata("churn")
    assert "404" == e.value.status()
    client.close()


def test_bascule_client_returns_a_frame(start_server: Callable[..., Any], home: Any) -> None:
    server = start_server("fraud@champion", "mixed")

    with bascule.Client(server.url) as client:
        scores = client.infer("fraud", home.frame.head(5).assign(extra="ignored"), request_id="c-1")
        labels = client.infer("mixed", home.mixed_frame.head(4))
        with pytest.raises(bascule.core.errors.InvalidInputError, match="lacks columns"):
            client.infer("fraud", home.frame.drop(columns=["age"]))
        with pytest.raises(bascule.core.errors.NotFoundError, match="'churn'"):
            client.infer("churn", home.frame)

    assert ["request_id", "label", "proba_0", "proba_1"] == list(scores.columns)
    assert {"c-1"} == set(scores.request_id)
    np.testing.assert_allclose(
        scores[["proba_0", "proba_1"]].to_numpy(),
        home.fraud_v1.predict_proba(home.frame.head(5)),
        atol=1e-5,
    )
    assert home.mixed.predict(home.mixed_frame.head(4)).tolist() == labels.label.tolist()
    assert ["request_id", "label", "proba_no", "proba_yes"] == list(labels.columns)


def test_alias_move_under_load_fails_no_request(
    start_server: Callable[..., Any], home: Any
) -> None:
    server = start_server("swap@live")
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def send(i: int) -> None:
        time.sleep(i * 0.0075)  # 400 requests spread over about 3 seconds
        with httpx.Client(base_url=server.url, timeout=30) as http:
            r = http.post("/v2/models/swap/infer", json=ROW)
        with lock:
            results.append((r.status_code, r.json().get("model_version", "")))

    services = make_services(home.path)
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            futures = [pool.submit(send, i) for i in range(400)]
            time.sleep(1.0)
            services.registry.set_alias("swap", "live", 2, reason="e2e hot swap")
            for f in futures:
                f.result()
        deadline = time.monotonic() + 10
        after = ""
        while time.monotonic() < deadline and after != "2":
            after = httpx.post(f"{server.url}/v2/models/swap/infer", json=ROW).json()[
                "model_version"
            ]
            time.sleep(0.1)
    finally:
        services.registry.set_alias("swap", "live", 1, reason="e2e restore")
        services.close()

    assert 400 == len(results)
    assert {200} == {status for status, _ in results}
    assert "2" == after
    assert {"1", "2"} >= {version for _, version in results}


def test_sigterm_finishes_flushes_the_log_and_exits_0(
    start_server: Callable[..., Any], home: Any
) -> None:
    server = start_server("fraud@champion")
    ids = [f"sig-{i}" for i in range(20)]
    with httpx.Client(base_url=server.url) as http:
        for rid in ids:
            assert (
                200
                == http.post(
                    "/v2/models/fraud/infer", json=ROW, headers={"x-request-id": rid}
                ).status_code
            )

    code, err = server.stop()
    logged = read_predictions(LocalArtifactStore(home.path / "artifacts"), "fraud")

    assert 0 == code, err
    assert set(ids) <= set(logged.request_id)
    assert {"champion"} == set(logged[logged.request_id.isin(ids)].route)


def test_workers_share_the_port_and_stop_cleanly(start_server: Callable[..., Any]) -> None:
    server = start_server("fraud@champion", "--workers", "2", "--no-prediction-log")
    # a worker accepts connections only once its model is warm: every fresh connection is
    # answered by a ready worker, however long the other one takes to load
    for _ in range(10):
        with httpx.Client(base_url=server.url) as fresh:
            assert 200 == fresh.get("/v2/health/ready").status_code
    with httpx.Client(base_url=server.url) as http:
        statuses = {http.post("/v2/models/fraud/infer", json=ROW).status_code for _ in range(50)}
        metrics = http.get("/metrics")

    code, err = server.stop()

    assert {200} == statuses
    assert "bascule_inference_requests_total" in metrics.text
    assert 0 == code, err


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        required = {s.strip() for s in os.environ.get("BASCULE_TEST_REQUIRE", "").split(",")}
        if "promtool" in required:
            pytest.fail("promtool is not on PATH, but BASCULE_TEST_REQUIRE names promtool")
        pytest.skip("promtool is not on PATH (.ci/run unpacks it from the Debian package)")
    return found


def test_metrics_pass_promtool(start_server: Callable[..., Any]) -> None:
    promtool = _promtool()
    server = start_server("fraud@champion", "--challenger", "fraud:2", "--mode", "shadow")
    with httpx.Client(base_url=server.url) as http:
        for _ in range(5):
            http.post("/v2/models/fraud/infer", json=ROW)
        http.post("/v2/models/fraud/infer", json={"inputs": []})
        text = http.get("/metrics").text

    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )

    assert 0 == check.returncode, check.stdout + check.stderr
    assert "bascule_shadow_requests_total" in text


def test_unknown_model_fails_fast_with_exit_code_4(
    serve_env: dict[str, str], tmp_path: Any
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bascule.cli.main", "serve", "churn@champion", "--port", "1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=serve_env,
        timeout=120,
        check=False,
    )

    assert 4 == proc.returncode
    assert "'churn'" in proc.stderr
