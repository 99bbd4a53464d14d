"""bascule.Client against a fake server (httpx.MockTransport): the request it sends, the frame
it returns, and server errors raised as bascule errors."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest

import bascule
from bascule.core.errors import (
    InvalidInputError,
    NotFoundError,
    OverloadedError,
    StorageError,
)
from bascule.core.tensors import load_json, parse_request, split_body

METADATA = {
    "name": "fraud",
    "versions": ["3"],
    "platform": "onnxruntime_onnx",
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 2]}],
    "outputs": [],
    "parameters": {
        "task": "classification",
        "classes": ["no", "yes"],
        "columns": [
            {"name": "amount", "datatype": "FP32", "kind": "numeric"},
            {"name": "city", "datatype": "BYTES", "kind": "categorical"},
        ],
    },
}


def fake_server(seen: list[Any]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=METADATA)
        head, binary = split_body(
            request.content, request.headers.get("inference-header-content-length")
        )
        parsed = parse_request(load_json(head), binary)
        seen.append((request, parsed))
        n = parsed.inputs[0].array.shape[0]
        body = {
            "model_name": "fraud",
            "model_version": "3",
            "id": "srv-1",
            "outputs": [
                {"name": "label", "datatype": "BYTES", "shape": [n], "data": ["yes"] * n},
                {
                    "name": "probabilities",
                    "datatype": "FP32",
                    "shape": [n, 2],
                    "data": [0.25, 0.75] * n,
                },
            ],
        }
        return httpx.Response(
            200,
            content=orjson.dumps(body),
            headers={"x-request-id": request.headers.get("x-request-id", "srv-1")},
        )

    return httpx.MockTransport(handle)


def test_infer_sends_one_binary_tensor_per_column_and_returns_a_frame() -> None:
    seen: list[Any] = []
    frame = pd.DataFrame(
        {"amount": [1.5, np.nan, 3.0], "city": ["lyon", None, "paris"], "other": 1}
    )

    with bascule.Client("http://serve.test", transport=fake_server(seen)) as client:
        out = client.infer("fraud", frame, request_id="mine")

    request, parsed = seen[0]
    assert "/v2/models/fraud/infer" == request.url.path
    assert "mine" == request.headers["x-request-id"]
    assert ["amount", "city"] == [t.name for t in parsed.inputs]
    np.testing.assert_array_equal(
        np.array([1.5, np.nan, 3.0], dtype=np.float32), parsed.inputs[0].array
    )
    assert ["lyon", "nan", "paris"] == parsed.inputs[1].array.tolist()
    assert ["request_id", "label", "proba_no", "proba_yes"] == list(out.columns)
    assert ["mine"] * 3 == out.request_id.tolist()
    assert [0.75] * 3 == out.proba_yes.tolist()


def test_missing_columns_are_refused_before_sending() -> None:
    seen: list[Any] = []
    client = bascule.Client("http://serve.test", transport=fake_server(seen))
    with client, pytest.raises(InvalidInputError, match=r"lacks columns \['city'\]") as e:
        client.infer("fraud", {"amount": [1.0]})

    assert "invalid_input" == e.value.code
    assert [] == seen


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (404, {"error": "model 'churn' not found", "code": "not_found"}, NotFoundError),
        (400, {"error": "input 'x': sent 'a'", "code": "invalid_input"}, InvalidInputError),
        (503, {"error": "queue full", "code": "overloaded"}, OverloadedError),
        (502, "<html>bad gateway</html>", StorageError),
    ],
)
def test_server_errors_are_raised_as_bascule_errors(
    status: int, body: Any, error: type[Exception]
) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    client = bascule.Client("http://serve.test", transport=httpx.MockTransport(handle))
    with client, pytest.raises(error):
        client.metadata("churn")


def test_unreachable_server_is_a_storage_error_and_not_ready() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with bascule.Client("http://serve.test", transport=httpx.MockTransport(handle)) as client:
        assert not client.ready()
        with pytest.raises(StorageError, match="cannot reach"):
            client.metadata("fraud")
