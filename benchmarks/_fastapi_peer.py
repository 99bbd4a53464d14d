"""A plain FastAPI + onnxruntime V2 server: the peer "anyone would write" in the serving benchmark.

Typical, honest code: pydantic models for the V2 request, one ``async def`` infer route that
turns the tensor into a numpy array, runs the onnxruntime session and returns the V2 answer
as a dict (FastAPI encodes it), plus the readiness and metadata routes a V2 client (and the
load generator) reads. uvicorn with one worker and its defaults (uvloop and httptools when
installed), access log off as in production. It does not import bascule.

Usage: python _fastapi_peer.py --model model.onnx --port 8080 [--name hgb]
"""

from __future__ import annotations

import argparse

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel


class RequestInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]


class InferenceRequest(BaseModel):
    id: str | None = None
    inputs: list[RequestInput]


def create_app(model_path: str, name: str) -> FastAPI:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    width = session.get_inputs()[0].shape[1]
    app = FastAPI()

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.get("/v2/models/{model}")
    async def metadata(model: str) -> dict[str, object]:
        if model != name:
            raise HTTPException(404, f"model {model} not found")
        return {
            "name": name,
            "platform": "onnxruntime_onnx",
            "inputs": [{"name": input_name, "datatype": "FP32", "shape": [-1, width]}],
            "outputs": [
                {"name": "label", "datatype": "INT64", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
            ],
        }

    @app.post("/v2/models/{model}/infer")
    async def infer(model: str, request: InferenceRequest) -> dict[str, object]:
        if model != name:
            raise HTTPException(404, f"model {model} not found")
        tensor = request.inputs[0]
        x = np.asarray(tensor.data, dtype=np.float32).reshape(tensor.shape)
        label, proba = session.run(None, {input_name: x})
        return {
            "model_name": name,
            "id": request.id,
            "outputs": [
                {
                    "name": "label",
                    "datatype": "INT64",
                    "shape": [len(label)],
                    "data": label.tolist(),
                },
                {
                    "name": "probabilities",
                    "datatype": "FP32",
                    "shape": list(proba.shape),
                    "data": proba.ravel().tolist(),
                },
            ],
        }

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="hgb")
    args = parser.parse_args()
    app = create_app(args.model, args.name)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
