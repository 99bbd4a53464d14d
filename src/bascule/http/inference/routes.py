"""The V2 REST routes: documented with FastAPI, answered by lean handlers.

``InferenceEndpoints.infer`` is the one implementation of ``POST …/infer``: it reads the
body (413 over the size limit; gzip/deflate request bodies are inflated under the same
limit), splits off the binary part, parses the JSON with orjson, calls the data plane and
encodes the answer. The raw ASGI fast path in ``app.py`` calls it directly; the FastAPI route
below calls it too, so the OpenAPI spec documents exactly what is served.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from fastapi import APIRouter, Request, Response
from starlette.types import Receive

from bascule.core.errors import BasculeError, InvalidInputError, OverloadedError
from bascule.core.outputs import encode_response
from bascule.core.tensors import HEADER_LENGTH, load_json, split_body
from bascule.core.v2 import (
    ErrorResponse,
    InferenceResponse,
    LiveResponse,
    MetadataModelResponse,
    MetadataServerResponse,
    ModelReadyResponse,
    ReadyResponse,
)
from bascule.http.errors import STATUS_BY_CODE
from bascule.http.inference.metrics import CONTENT_TYPE, InferenceMetrics
from bascule.http.middleware import is_valid_request_id, new_request_id
from bascule.serving.dataplane import DataPlane

__all__ = ["Answer", "InferenceEndpoints", "build_router"]

log = logging.getLogger("bascule.http")

JSON: Final = b"application/json"
_HEADER_LENGTH_BYTES: Final = HEADER_LENGTH.encode()


@dataclass(slots=True)
class Answer:
    """An HTTP answer: status, headers (without the request id) and body."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    content_type: bytes = JSON


class _TooLarge(Exception):
    """The body is over the size limit."""


def error_answer(exc: BasculeError, rid: str | None = None) -> Answer:
    """The V2 error body ``{"error": …}`` plus bascule's code (and the request id)."""
    payload: dict[str, Any] = {"error": exc.message, "code": exc.code}
    if rid is not None:
        payload["id"] = rid
    headers = []
    if isinstance(exc, OverloadedError):
        headers.append((b"retry-after", str(max(1, round(exc.retry_after_s))).encode()))
    return Answer(STATUS_BY_CODE.get(exc.code, 500), orjson.dumps(payload), headers)


def too_large_answer(limit: int, rid: str | None = None) -> Answer:
    """413 for a body over ``limit`` bytes."""
    payload: dict[str, Any] = {
        "error": f"request body is larger than the limit of {limit} bytes",
        "code": "payload_too_large",
    }
    if rid is not None:
        payload["id"] = rid
    return Answer(413, orjson.dumps(payload))


class InferenceEndpoints:
    """What the V2 routes do, on raw bytes and ASGI primitives.

    Args:
        dataplane: Answers the requests.
        metrics: Counts them.
        max_body_bytes: Largest accepted body (after decompression); more is a 413.
    """

    def __init__(
        self, dataplane: DataPlane, metrics: InferenceMetrics, *, max_body_bytes: int
    ) -> None:
        self.dataplane = dataplane
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def read_body(self, headers: Iterable[tuple[bytes, bytes]], receive: Receive) -> bytes:
        """Read the whole body, refusing more than the limit (before reading when possible)."""
        limit = self.max_body_bytes
        for key, value in headers:
            if key == b"content-length" and value.isdigit() and int(value) > limit:
                raise _TooLarge
        message = await receive()
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > limit:
                raise _TooLarge
            return body
        chunks = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    def _inflate(self, body: bytes, encoding: str) -> bytes:
        wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}.get(encoding)
        if wbits is None:
            raise InvalidInputError.for_field("Content-Encoding", encoding, "gzip or deflate")
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(body, self.max_body_bytes + 1)
        except zlib.error as exc:
            raise InvalidInputError.for_field(
                "body", f"{encoding} data ({exc})", f"valid {encoding}"
            ) from None
        if len(out) > self.max_body_bytes:
            raise _TooLarge
        return out

    async def infer(
        self,
        name: str,
        version: str | None,
        headers: list[tuple[bytes, bytes]],
        receive: Receive,
        rid: str | None,
    ) -> tuple[Answer, str]:
        """Answer ``POST /v2/models/{name}[/versions/{version}]/infer``.

        Returns:
            The answer and the request id it carries (the client's ``x-request-id``, else
            a valid ``id`` of the request body, else a new one).
        """
        started = time.perf_counter()
        dp = self.dataplane
        model = name if dp.is_served(name) else ""
        served_version = ""
        try:
            body = await self.read_body(headers, receive)
            header_length = encoding = None
            for key, value in headers:
                if key == _HEADER_LENGTH_BYTES:
                    header_length = value.decode("latin-1")
                elif key == b"content-encoding":
                    encoding = value.decode("latin-1").strip().lower()
            if encoding and encoding != "identity":
                body = self._inflate(body, encoding)
            head, binary = split_body(body, header_length)
            request = load_json(head)
            if rid is None:
                client_id = request.get("id") if isinstance(request, dict) else None
                rid = client_id if is_valid_request_id(client_id) else new_request_id()
            result = await dp.infer(name, version, request, request_id=rid, binary=binary)
            payload, json_length = encode_response(result.head(), result.outputs)
            served_version = result.model_version
            if json_length is None:
                answer = Answer(200, payload)
            else:
                answer = Answer(
                    200,
                    payload,
                    [(_HEADER_LENGTH_BYTES, str(json_length).encode())],
                    b"application/octet-stream",
                )
        except BasculeError as exc:
            rid = rid or new_request_id()
            answer = error_answer(exc, rid)
        except _TooLarge:
            rid = rid or new_request_id()
            self.metrics.rejected(model, "too_large")
            answer = too_large_answer(self.max_body_bytes, rid)
        self.metrics.request_done(
            model, served_version, answer.status, time.perf_counter() - started
        )
        return answer, rid


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    400: {
        "model": ErrorResponse,
        "description": "Bad input: names the input, what was sent, what is expected.",
    },
    404: {"model": ErrorResponse, "description": "Unknown model or version."},
    413: {"model": ErrorResponse, "description": "Body over the size limit."},
    503: {"model": ErrorResponse, "description": "Not ready, or queue full (with Retry-After)."},
}
_INFER_BODY: Final = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}},
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": "Binary tensor data extension: the JSON header (its length in "
                "Inference-Header-Content-Length) followed by the inputs' bytes.",
            },
        },
    }
}


def build_router(endpoints: InferenceEndpoints) -> APIRouter:
    """The documented V2 routes and ``/metrics``."""
    router = APIRouter()
    dp = endpoints.dataplane

    @router.get("/v2/health/live", response_model=LiveResponse, tags=["health"])
    async def live() -> Response:
        """Whether the server is up."""
        return _json({"live": dp.live()})

    @router.get(
        "/v2/health/ready",
        response_model=ReadyResponse,
        tags=["health"],
        responses={503: {"model": ReadyResponse, "description": "Not every model is ready."}},
    )
    async def ready() -> Response:
        """Whether every served model is loaded and warmed up (503 until then)."""
        ok = dp.ready()
        return _json({"ready": ok}, 200 if ok else 503)

    @router.get("/v2", response_model=MetadataServerResponse, tags=["metadata"])
    async def server_metadata() -> Response:
        """Server name, version and protocol extensions."""
        return _json(dp.server_metadata())

    @router.get(
        "/v2/models/{name}",
        response_model=MetadataModelResponse,
        tags=["metadata"],
        responses=_ERRORS,
    )
    async def model_metadata(name: str) -> Response:
        """A served model's inputs and outputs (from its registry signature)."""
        return _json(dp.model_metadata(name))

    @router.get(
        "/v2/models/{name}/versions/{version}",
        response_model=MetadataModelResponse,
        tags=["metadata"],
        responses=_ERRORS,
    )
    async def version_metadata(name: str, version: str) -> Response:
        """A served version's inputs and outputs."""
        return _json(dp.model_metadata(name, version))

    async def _ready(name: str, version: str | None) -> Response:
        ok = dp.model_ready(name, version)
        return _json({"name": name, "ready": ok}, 200 if ok else 503)

    @router.get(
        "/v2/models/{name}/ready",
        response_model=ModelReadyResponse,
        tags=["health"],
        responses=_ERRORS,
    )
    async def model_ready(name: str) -> Response:
        """Whether the model is ready (503 until loaded and warmed up)."""
        return await _ready(name, None)

    @router.get(
        "/v2/models/{name}/versions/{version}/ready",
        response_model=ModelReadyResponse,
        tags=["health"],
        responses=_ERRORS,
    )
    async def version_ready(name: str, version: str) -> Response:
        """Whether that version is ready."""
        return await _ready(name, version)

    async def _infer(request: Request, name: str, version: str | None) -> Response:
        rid = request.scope.get("state", {}).get("request_id")
        answer, _ = await endpoints.infer(
            name, version, list(request.scope["headers"]), request.receive, rid
        )
        return Response(
            answer.body,
            status_code=answer.status,
            headers={k.decode(): v.decode() for k, v in answer.headers},
            media_type=answer.content_type.decode(),
        )

    @router.post(
        "/v2/models/{name}/infer",
        response_model=InferenceResponse,
        tags=["inference"],
        responses=_ERRORS,
        openapi_extra=_INFER_BODY,
    )
    async def infer(request: Request, name: str) -> Response:
        """Predict with the model; the champion or the challenger answers, by policy."""
        return await _infer(request, name, None)

    @router.post(
        "/v2/models/{name}/versions/{version}/infer",
        response_model=InferenceResponse,
        tags=["inference"],
        responses=_ERRORS,
        openapi_extra=_INFER_BODY,
    )
    async def infer_version(request: Request, name: str, version: str) -> Response:
        """Predict with that version of the model."""
        return await _infer(request, name, version)

    @router.get(
        "/metrics",
        tags=["metrics"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format."}},
    )
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(endpoints.metrics.render(), media_type=CONTENT_TYPE)

    return router
