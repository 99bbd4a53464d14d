"""Open Inference Protocol v2 (KServe / Triton / MLServer) REST payloads, wire-exact.

These pydantic models document the protocol in the OpenAPI spec and serve the non-hot
paths (metadata, health, the Python client's tests). The infer hot path does not build
them: it parses with orjson and validates by hand in :mod:`bascule.core.tensors`, which
accepts exactly what :class:`InferenceRequest` describes.

Field names and shapes follow the protocol's REST specification
(``$inference_request``, ``$inference_response``, ``$metadata_model_response`` …).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bascule.core.schema import V2Datatype

__all__ = [
    "ErrorResponse",
    "InferenceRequest",
    "InferenceResponse",
    "LiveResponse",
    "MetadataModelResponse",
    "MetadataServerResponse",
    "MetadataTensor",
    "ModelReadyResponse",
    "Parameters",
    "ReadyResponse",
    "RequestInput",
    "RequestOutput",
    "ResponseOutput",
    "TensorData",
]

Parameters = dict[str, Any]
"""Free-form ``parameters`` object: string keys; values are strings, numbers or booleans."""

TensorData = list[Any]
"""Tensor contents in row-major order: a flat list, or lists nested as deep as the shape."""


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)


class MetadataTensor(_Wire):
    """A tensor a model takes or returns: name, datatype and shape (-1 for any size)."""

    name: str
    """Tensor name."""
    datatype: V2Datatype
    """V2 datatype (``FP32``, ``INT64``, ``BYTES`` …)."""
    shape: list[int]
    """Shape; ``-1`` marks a dimension of any size (the batch)."""
    parameters: Parameters | None = None
    """Extra facts about the tensor (for ``probabilities``: the ``classes``)."""


class MetadataServerResponse(_Wire):
    """``GET /v2``: who the server is and which protocol extensions it speaks."""

    name: str
    """Server name."""
    version: str
    """Server version."""
    extensions: list[str]
    """Supported extensions (``binary_tensor_data`` …)."""


class MetadataModelResponse(_Wire):
    """``GET /v2/models/{name}[/versions/{v}]``: a model's inputs and outputs."""

    name: str
    """Model name."""
    versions: list[str] | None = None
    """Versions of the model this server serves."""
    platform: str
    """Runtime of the model (``onnxruntime_onnx``)."""
    inputs: list[MetadataTensor]
    """Tensors the model takes."""
    outputs: list[MetadataTensor]
    """Tensors the model returns."""
    parameters: Parameters | None = None
    """bascule additions: task, classes, feature columns, serving policy."""


class RequestInput(_Wire):
    """One input tensor of an inference request."""

    name: str
    """Input name (a feature column, or ``input`` for the 2-D matrix)."""
    shape: list[int]
    """Shape of the tensor; its product is the number of elements in ``data``."""
    datatype: V2Datatype
    """V2 datatype of the elements."""
    parameters: Parameters | None = None
    """``binary_data_size``: the tensor's bytes follow the JSON header (binary extension)."""
    data: TensorData | None = None
    """Elements in row-major order; absent when sent as binary data."""


class RequestOutput(_Wire):
    """An output the client asks for."""

    name: str
    """Output name (``label``, ``probabilities``)."""
    parameters: Parameters | None = None
    """``binary_data``: return this output as binary data after the JSON header."""


class InferenceRequest(_Wire):
    """``POST /v2/models/{name}[/versions/{v}]/infer`` body (the JSON part)."""

    id: str | None = None
    """Client's request identifier, echoed in the response."""
    parameters: Parameters | None = None
    """``binary_data_output``: return every output as binary data."""
    inputs: list[RequestInput] = Field(min_length=1)
    """Input tensors: one 2-D matrix, or one tensor per feature column."""
    outputs: list[RequestOutput] | None = None
    """Outputs to return; all of them when absent."""


class ResponseOutput(_Wire):
    """One output tensor of an inference response."""

    name: str
    """Output name."""
    shape: list[int]
    """Shape of the tensor."""
    datatype: V2Datatype
    """V2 datatype of the elements."""
    parameters: Parameters | None = None
    """``binary_data_size`` when the tensor's bytes follow the JSON header."""
    data: TensorData | None = None
    """Elements in row-major order (flat); absent when sent as binary data."""


class InferenceResponse(_Wire):
    """The answer to an inference request."""

    model_name: str
    """Name of the model that answered."""
    model_version: str | None = None
    """Version that answered (the champion, or the challenger in canary mode)."""
    id: str | None = None
    """The request's ``id``, or the server's request id when the client sent none."""
    parameters: Parameters | None = None
    """bascule additions: ``route`` and ``policy`` that chose the answering version."""
    outputs: list[ResponseOutput]
    """Output tensors."""


class LiveResponse(_Wire):
    """``GET /v2/health/live``."""

    live: bool
    """Whether the server process is up."""


class ReadyResponse(_Wire):
    """``GET /v2/health/ready``."""

    ready: bool
    """Whether every served model is loaded and warmed up."""


class ModelReadyResponse(_Wire):
    """``GET /v2/models/{name}[/versions/{v}]/ready``."""

    name: str
    """Model name."""
    ready: bool
    """Whether the model (version) is loaded and warmed up."""


class ErrorResponse(_Wire):
    """Every error: the protocol's ``{"error": message}`` plus bascule's stable ``code``."""

    error: str
    """What went wrong: for bad input, the input, what was sent and what the model expects."""
    code: str | None = None
    """bascule's stable error code (``invalid_input``, ``not_found``, ``overloaded`` …)."""
