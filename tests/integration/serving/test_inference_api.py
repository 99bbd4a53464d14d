"""The V2 REST API in-process: every route, request ids, bad input, 404/413/503, /metrics."""

from __future__ import annotations

import gzip
from typing import Any

import numpy as np
import orjson
import pytest

from bascule.core.outputs import serialize_bytes
from bascule.core.v2 import InferenceResponse, MetadataModelResponse

pytestmark = pytest.mark.anyio

FEATURES = ["amount", "age", "hour", "risk"]
Models = Any
ServeFactory = Any


def matrix_request(rows: Any, **extra: Any) -> dict[str, Any]:
    """A V2 request with one 2-D FP32 tensor named ``input``."""
    return {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": list(rows.shape),
                "data": rows.to_numpy().ravel().tolist(),
            }
        ],
        **extra,
    }


async def test_health_metadata_and_readiness(serve: ServeFactory) -> None:
    served = await serve(["fraud@champion", "mixed"])
    async with served.client() as c:
        live = await c.get("/v2/health/live")
        ready = await c.get("/v2/health/ready")
        server = await c.get("/v2")
        model = await c.get("/v2/models/fraud")
        version = await c.get("/v2/models/fraud/versions/1")
        mixed = await c.get("/v2/models/mixed")
        model_ready = await c.get("/v2/models/fraud/ready")
        version_ready = await c.get("/v2/models/fraud/versions/1/ready")

    assert (200, {"live": True}) == (live.status_code, live.json())
    assert (200, {"ready": True}) == (ready.status_code, ready.json())
    assert "binary_tensor_data" in server.json()["extensions"]
    meta = MetadataModelResponse.model_validate(model.json())
    assert ["1"] == meta.versions
    assert [("input", "FP32", [-1, 4])] == [(t.name, t.datatype, t.shape) for t in meta.inputs]
    assert ["label", "probabilities"] == [t.name for t in meta.outputs]
    assert FEATURES == [c["name"] for c in (meta.parameters or {})["columns"]]
    assert model.json() == version.json()
    assert ["n", "x", "city"] == [t["name"] for t in mixed.json()["inputs"]]
    assert "BYTES" == mixed.json()["inputs"][2]["datatype"]
    assert {"name": "fraud", "ready": True} == model_ready.json()
    assert 200 == version_ready.status_code


async def test_not_ready_is_503_until_loaded(serve: ServeFactory) -> None:
    served = await serve(["fraud@champion"], start=False)
    async with served.client() as c:
        ready = await c.get("/v2/health/ready")
        model_ready = await c.get("/v2/models/fraud/ready")
        infer = await c.post(
            "/v2/models/fraud/infer",
            json={
                "inputs": [
                    {"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [0, 0, 0, 0]}
                ]
            },
        )
        meta = await c.get("/v2/models/fraud")

    assert 503 == ready.status_code
    assert 503 == model_ready.status_code
    assert 503 == infer.status_code
    assert "not_ready" == infer.json()["code"]
    assert "still loading" in infer.json()["error"]
    assert 503 == meta.status_code


async def test_infer_answers_like_the_model_and_echoes_ids(
    serve: ServeFactory, models: Models
) -> None:
    served = await serve(["fraud@champion"])
    rows = models.frame.head(5)
    async with served.client() as c:
        with_id = await c.post("/v2/models/fraud/infer", json=matrix_request(rows, id="order-17"))
        without = await c.post("/v2/models/fraud/infer", json=matrix_request(rows))
        with_header = await c.post(
            "/v2/models/fraud/infer",
            json=matrix_request(rows, id="body-id"),
            headers={"x-request-id": "hdr-1"},
        )
        pinned = await c.post("/v2/models/fraud/versions/1/infer", json=matrix_request(rows))

    answer = InferenceResponse.model_validate(with_id.json())
    proba = np.asarray(answer.outputs[1].data).reshape(answer.outputs[1].shape)
    assert 200 == with_id.status_code
    assert ("fraud", "1", "order-17") == (answer.model_name, answer.model_version, answer.id)
    assert "order-17" == with_id.headers["x-request-id"]
    assert models.fraud_v1.predict(rows).tolist() == answer.outputs[0].data
    np.testing.assert_allclose(proba, models.fraud_v1.predict_proba(rows), atol=1e-5)
    generated = without.headers["x-request-id"]
    assert generated == without.json()["id"]
    assert len(generated) >= 16
    assert "hdr-1" == with_header.headers["x-request-id"]
    assert "body-id" == with_header.json()["id"]
    assert {"route": "champion"} == pinned.json()["parameters"]


async def test_per_feature_tensors_with_text_columns(serve: ServeFactory, models: Models) -> None:
    served = await serve(["mixed"])
    rows = models.mixed_frame.head(4)
    body = {
        "inputs": [
            {"name": "n", "datatype": "INT64", "shape": [4, 1], "data": rows.n.tolist()},
            {"name": "x", "datatype": "FP64", "shape": [4], "data": rows.x.tolist()},
            {"name": "city", "datatype": "BYTES", "shape": [4], "data": rows.city.tolist()},
        ],
        "outputs": [{"name": "label"}],
    }
    async with served.client() as c:
        response = await c.post("/v2/models/mixed/infer", json=body)

    outputs = response.json()["outputs"]
    assert ["label"] == [o["name"] for o in outputs]
    assert ("BYTES", models.mixed.predict(rows).tolist()) == (
        outputs[0]["datatype"],
        outputs[0]["data"],
    )


async def test_binary_tensor_data_both_ways(serve: ServeFactory, models: Models) -> None:
    served = await serve(["mixed"])
    rows = models.mixed_frame.head(3)
    chunks = [
        rows.n.to_numpy().astype("<i8").tobytes(),
        rows.x.to_numpy().astype("<f4").tobytes(),
        serialize_bytes(rows.city.to_numpy(dtype=object)),
    ]
    names = [("n", "INT64"), ("x", "FP32"), ("city", "BYTES")]
    header = orjson.dumps(
        {
            "inputs": [
                {"name": n, "datatype": d, "shape": [3], "parameters": {"binary_data_size": len(b)}}
                for (n, d), b in zip(names, chunks, strict=True)
            ],
            "outputs": [
                {"name": "probabilities", "parameters": {"binary_data": True}},
                {"name": "label"},
            ],
        }
    )
    async with served.client() as c:
        response = await c.post(
            "/v2/models/mixed/infer",
            content=header + b"".join(chunks),
            headers={"inference-header-content-length": str(len(header))},
        )

    length = int(response.headers["inference-header-content-length"])
    head = orjson.loads(response.content[:length])
    proba = np.frombuffer(response.content[length:], dtype="<f4").reshape(3, 2)
    assert 200 == response.status_code
    assert 24 == head["outputs"][0]["parameters"]["binary_data_size"]
    np.testing.assert_allclose(proba, models.mixed.predict_proba(rows), atol=1e-5)
    assert models.mixed.predict(rows).tolist() == head["outputs"][1]["data"]


async def test_gzip_request_bodies_are_inflated(serve: ServeFactory, models: Models) -> None:
    served = await serve(["fraud@champion"])
    async with served.client() as c:
        response = await c.post(
            "/v2/models/fraud/infer",
            content=gzip.compress(orjson.dumps(matrix_request(models.frame.head(2)))),
            headers={"content-encoding": "gzip"},
        )

    assert 200 == response.status_code


def _input(
    name: str = "input", datatype: str = "FP32", shape: Any = (1, 4), data: Any = None
) -> dict[str, Any]:
    return {
        "name": name,
        "datatype": datatype,
        "shape": list(shape),
        "data": [0.5] * 4 if data is None else data,
    }


BAD = {
    "wrong input name": ({"inputs": [_input(name="features")]}, ["'features'", "'input'"]),
    "wrong shape": (
        {"inputs": [_input(shape=(1, 3), data=[1, 2, 3])]},
        ["'input'", "[1, 3]", "[rows, 4]"],
    ),
    "wrong datatype": (
        {"inputs": [_input(datatype="BYTES", data=["a"] * 4)]},
        ["'input'", "BYTES", "FP32"],
    ),
    "unknown datatype": ({"inputs": [_input(datatype="FLOAT")]}, ["'input'", "'FLOAT'"]),
    "non-numeric": ({"inputs": [_input(data=[1, 2, "x", 4])]}, ["'input'", "'x'", "FP32"]),
    "ragged": ({"inputs": [_input(shape=(2, 2), data=[[1, 2], [3]])]}, ["'input'", "ragged"]),
    "count mismatch": ({"inputs": [_input(data=[1, 2, 3])]}, ["'input'", "3 values", "[1, 4]"]),
    "missing inputs": (
        {"inputs": [_input(name="amount", shape=(1,), data=[1.0])]},
        ["missing", "'age'"],
    ),
    "empty batch": ({"inputs": [_input(shape=(0, 4), data=[])]}, ["'input'", "empty"]),
    "no inputs": ({"inputs": []}, ["inputs", "non-empty"]),
    "unknown output": (
        {"inputs": [_input()], "outputs": [{"name": "score"}]},
        ["'score'", "'label'"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
async def test_bad_input_is_400_with_a_v2_error_naming_it(serve: ServeFactory, case: str) -> None:
    served = await serve(["fraud@champion"])
    body, words = BAD[case]
    async with served.client() as c:
        response = await c.post(
            "/v2/models/fraud/infer", json=body, headers={"x-request-id": "bad-1"}
        )

    assert 400 == response.status_code
    assert "bad-1" == response.headers["x-request-id"]
    error = response.json()
    assert "invalid_input" == error["code"]
    for word in words:
        assert word in error["error"], error


async def test_not_json_and_bad_header_length_are_400(serve: ServeFactory) -> None:
    served = await serve(["fraud@champion"])
    async with served.client() as c:
        not_json = await c.post("/v2/models/fraud/infer", content=b"{nope")
        bad_length = await c.post(
            "/v2/models/fraud/infer",
            content=b"{}",
            headers={"inference-header-content-length": "9"},
        )
        bad_gzip = await c.post(
            "/v2/models/fraud/infer", content=b"xx", headers={"content-encoding": "gzip"}
        )

    assert [400, 400, 400] == [r.status_code for r in (not_json, bad_length, bad_gzip)]
    assert "not valid JSON" in not_json.json()["error"]
    assert "Inference-Header-Content-Length" in bad_length.json()["error"]


async def test_unknown_model_or_version_is_404(serve: ServeFactory) -> None:
    served = await serve(["fraud@champion"])
    body = {"inputs": [_input()]}
    async with served.client() as c:
        responses = [
            await c.post("/v2/models/churn/infer", json=body),
            await c.post("/v2/models/fraud/versions/7/infer", json=body),
            await c.post("/v2/models/fraud/versions/x/infer", json=body),
            await c.get("/v2/models/churn"),
            await c.get("/v2/models/fraud/versions/7"),
            await c.get("/v2/models/churn/ready"),
            await c.get("/v2/nothing/here"),
        ]

    assert [404] * 7 == [r.status_code for r in responses]
    assert "'fraud'" in responses[0].json()["error"]
    assert all("x-request-id" in r.headers for r in responses)


async def test_body_over_the_limit_is_413(serve: ServeFactory, models: Models) -> None:
    served = await serve(["fraud@champion"], max_body_bytes=1024)
    big = matrix_request(models.frame.head(100))
    async with served.client() as c:
        response = await c.post("/v2/models/fraud/infer", json=big)
        zipped = await c.post(
            "/v2/models/fraud/infer",
            content=gzip.compress(orjson.dumps(big)),
            headers={"content-encoding": "gzip"},
        )

    assert 413 == response.status_code
    assert "payload_too_large" == response.json()["code"]
    assert 413 == zipped.status_code


async def test_metrics_count_requests_batches_events_and_the_log(
    serve: ServeFactory, models: Models
) -> None:
    served = await serve(["fraud@champion"])
    async with served.client() as c:
        for _ in range(3):
            await c.post("/v2/models/fraud/infer", json=matrix_request(models.frame.head(2)))
        await c.post("/v2/models/fraud/infer", json={"inputs": []})
        await c.post("/v2/models/churn/infer", json={"inputs": []})
        metrics = await c.get("/metrics")

    text = metrics.text
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    for line in [
        'bascule_inference_requests_total{model="fraud",status="200",version="1"} 3.0',
        'bascule_inference_requests_total{model="fraud",status="400",version=""} 1.0',
        'bascule_inference_requests_total{model="",status="404",version=""} 1.0',
        'bascule_inference_request_duration_seconds_count{model="fraud"} 4.0',
        'bascule_inference_batch_size_sum{model="fraud",version="1"}',
        'bascule_inference_queue_depth{model="fraud",version="1"} 0.0',
        'bascule_model_events_total{event="load",model="fraud",outcome="success"} 1.0',
        "bascule_prediction_log_rows_dropped_total 0.0",
        "bascule_prediction_log_rows_buffered",
        "process_cpu_seconds_total",
    ]:
        assert line in text, line


async def test_openapi_documents_every_route(serve: ServeFactory) -> None:
    served = await serve(["fraud@champion"])
    async with served.client() as c:
        spec = (await c.get("/openapi.json")).json()
        docs = await c.get("/docs")

    assert {
        "/v2/health/live",
        "/v2/health/ready",
        "/v2",
        "/v2/models/{name}",
        "/v2/models/{name}/versions/{version}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/versions/{version}/ready",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
        "/metrics",
    } == set(spec["paths"])
    assert "InferenceRequest" in spec["components"]["schemas"]
    assert 200 == docs.status_code
