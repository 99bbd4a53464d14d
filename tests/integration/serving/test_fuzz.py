"""Fuzz every operation of the inference server's OpenAPI spec: never a 5xx, whatever comes in."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from bascule.core.clock import SystemClock
from bascule.core.settings import ServingSettings
from bascule.http.inference.app import create_app
from bascule.http.inference.metrics import InferenceMetrics
from bascule.serving.assembly import build_dataplane
from bascule.testing import InMemoryArtifactStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live_url(models: Any) -> Iterator[str]:
    """The app served by uvicorn on a free port, lifespan on, models loaded."""
    settings_ = ServingSettings(refs=["fraud@champion", "mixed"], max_body_bytes=64 * 1024)
    metrics = InferenceMetrics(CollectorRegistry())
    dataplane = build_dataplane(
        models.services.registry,
        InMemoryArtifactStore(),
        settings_,
        clock=SystemClock(),
        observer=metrics,
    )
    app = create_app(dataplane, settings_, metrics=metrics)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the inference server did not become ready")
        time.sleep(0.05)
    yield url
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def inference_schema(live_url: str) -> Any:
    return schemathesis.openapi.from_url(f"{live_url}/openapi.json")


OPERATIONS = [
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", "/v2"),
    ("GET", "/v2/models/{name}"),
    ("GET", "/v2/models/{name}/versions/{version}"),
    ("GET", "/v2/models/{name}/ready"),
    ("GET", "/v2/models/{name}/versions/{version}/ready"),
    ("POST", "/v2/models/{name}/infer"),
    ("POST", "/v2/models/{name}/versions/{version}/infer"),
    ("GET", "/metrics"),
]


def test_every_operation_is_fuzzed(inference_schema: Any) -> None:
    documented = {
        (method.upper(), path) for path in inference_schema for method in inference_schema[path]
    }

    assert set(OPERATIONS) == documented


CASES = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode == GenerationMode.POSITIVE or method == "POST"  # any string is a valid path value
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_no_input_makes_the_server_fail(
    inference_schema: Any, live_url: str, method: str, path: str, mode: GenerationMode
) -> None:
    operation = inference_schema[path][method]
    # Half the cases name a served model, so the fuzzer reaches the decoding of inputs.
    names = st.sampled_from(["fraud", "mixed"]) | st.text(min_size=1, max_size=20)

    @given(case=operation.as_strategy(generation_mode=mode), name=names)
    @settings(
        max_examples=100,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any, name: str) -> None:
        if "name" in (case.path_parameters or {}):
            case.path_parameters["name"] = name
        case.call_and_validate(base_url=live_url, checks=[not_a_server_error])

    run()
