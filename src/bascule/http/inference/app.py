"""The inference server app: Open Inference Protocol v2 REST, `/metrics`, OpenAPI at `/docs`.

The app is a thin ASGI dispatcher in front of a FastAPI app:

* ``POST /v2/models/{name}[/versions/{v}]/infer`` and the two health probes are answered
  directly on raw ASGI messages (no routing table, no middleware stack, no per-request
  objects beyond the body): this path runs for every prediction and its overhead is most
  of the server's CPU per request;
* everything else (metadata, readiness of models, ``/metrics``, ``/openapi.json``,
  ``/docs``, lifespan) goes to the FastAPI app, which also documents the fast routes and
  can answer them itself with the same handler.

Every response carries ``x-request-id`` (the client's when sane, else a new one).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import orjson
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from prometheus_client import CollectorRegistry
from starlette.types import Message, Receive, Scope, Send

from bascule._version import __version__
from bascule.core.settings import ServingSettings
from bascule.core.v2 import InferenceRequest
from bascule.http.errors import install_error_handlers
from bascule.http.inference.metrics import InferenceMetrics
from bascule.http.inference.routes import Answer, InferenceEndpoints, build_router
from bascule.http.middleware import client_request_id, new_request_id
from bascule.serving.dataplane import DataPlane

__all__ = ["InferenceApp", "build_app", "create_app"]

log = logging.getLogger("bascule.http")

_LIVE: Final = b'{"live":true}'
_READY: Final = b'{"ready":true}'
_NOT_READY: Final = b'{"ready":false}'
_GC_YOUNG_THRESHOLD: Final = 20_000  # allocations between young-generation collections


class InferenceApp:
    """The ASGI app of the inference server (see the module docstring).

    Attributes:
        dataplane: The data plane answering requests.
        metrics: The app's Prometheus metrics.
        docs: The FastAPI app (documented routes, OpenAPI, lifespan).
    """

    def __init__(self, endpoints: InferenceEndpoints, docs: FastAPI) -> None:
        self._endpoints = endpoints
        self.dataplane = endpoints.dataplane
        self.metrics = endpoints.metrics
        self.docs = docs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.docs(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        rid = client_request_id(headers)
        path: str = scope["path"]
        method: str = scope["method"]
        if method == "POST" and path.startswith("/v2/models/") and path.endswith("/infer"):
            parts = path.split("/")
            if len(parts) == 5 or (len(parts) == 7 and parts[4] == "versions"):
                version = parts[5] if len(parts) == 7 else None
                try:
                    answer, rid = await self._endpoints.infer(
                        parts[3], version, headers, receive, rid
                    )
                except Exception:  # the safety net: logged, a generic 500, never a traceback
                    rid = rid or new_request_id()
                    log.exception("unhandled error in POST %s (request id %s)", path, rid)
                    answer = Answer(500, _internal(rid))
                await _send(send, answer, rid)
                return
        elif method == "GET" and path in ("/v2/health/live", "/v2/health/ready"):
            if path.endswith("live"):
                answer = Answer(200, _LIVE)
            elif self.dataplane.ready():
                answer = Answer(200, _READY)
            else:
                answer = Answer(503, _NOT_READY)
            await _send(send, answer, rid or new_request_id())
            return
        await self._delegate(scope, receive, send, rid or new_request_id())

    async def _delegate(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        scope.setdefault("state", {})["request_id"] = rid
        header = (b"x-request-id", rid.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        await self.docs(scope, receive, send_with_id)


def _internal(rid: str) -> bytes:
    return orjson.dumps(
        {"error": f"internal error; quote request id {rid} when reporting it", "code": "internal"}
    )


async def _send(send: Send, answer: Answer, rid: str) -> None:
    headers = [
        (b"content-type", answer.content_type),
        (b"content-length", str(len(answer.body)).encode()),
        (b"x-request-id", rid.encode("latin-1")),
        *answer.headers,
    ]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            request_schema = InferenceRequest.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(request_schema.pop("$defs", {}))
            components["InferenceRequest"] = request_schema
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def create_app(
    dataplane: DataPlane,
    settings: ServingSettings,
    *,
    metrics: InferenceMetrics | None = None,
    on_shutdown: Callable[[], None] | None = None,
    load_before_serving: bool = False,
) -> InferenceApp:
    """Build the inference app around a data plane.

    Args:
        dataplane: Answers the requests; started by the app's lifespan (in the background,
            so liveness answers while models load) and closed at shutdown.
        settings: The serving settings (body size limit).
        metrics: The metrics the data plane reports to (a fresh registry if None); when they
            are shared with other workers, the lifespan publishes this worker's share.
        on_shutdown: Called after the data plane is closed (releases services).
        load_before_serving: Finish loading (and warming, or failing to) before the server
            accepts connections: one of several workers sharing a socket, so that the kernel
            hands connections only to workers that can answer them (a worker still loading
            would answer every request of a kept-alive connection with 503).
    """
    if metrics is None:
        metrics = InferenceMetrics(CollectorRegistry())
    metrics.watch(dataplane)
    endpoints = InferenceEndpoints(dataplane, metrics, max_body_bytes=settings.max_body_bytes)

    async def start() -> None:
        await dataplane.start()
        # Everything allocated so far (libraries, models) lives as long as the process: move
        # it out of the collector's reach. Otherwise each full collection walks millions of
        # objects (pandas, sklearn, onnx) and stalls every request for ~150 ms: the p99.
        gc.collect()
        gc.freeze()
        # A request allocates a few hundred containers (scope, headers, tensors, answer), so
        # at the default threshold (700) a young-generation collection runs every two or three
        # requests; one every ~50 requests costs less in all (two servers measured under the
        # same alternating load: more requests/s, single-row and 64-row).
        gc.set_threshold(_GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(start(), name="bascule-model-loading")
        if load_before_serving:  # uvicorn accepts on the socket once the lifespan started
            await asyncio.wait({loading})
        try:
            async with metrics.publishing():
                yield
        finally:
            if not loading.done():
                loading.cancel()
            await asyncio.gather(loading, return_exceptions=True)
            await dataplane.close()
            metrics.close()
            if on_shutdown is not None:
                on_shutdown()

    docs = FastAPI(
        title="bascule inference server",
        version=__version__,
        description=(
            "Open Inference Protocol v2 (REST) with the binary tensor data extension. "
            'Every response carries x-request-id; errors are {"error": message, "code": code}.'
        ),
        lifespan=lifespan,
    )
    install_error_handlers(docs)
    docs.include_router(build_router(endpoints))
    docs.openapi = _openapi(docs)  # type: ignore[method-assign]  # FastAPI's documented override
    return InferenceApp(endpoints, docs)


def build_app() -> InferenceApp:
    """Composition root of one server process (``uvicorn --factory …:build_app``, and workers).

    Reads the settings (``bascule.yaml``, ``BASCULE_*``; ``bascule serve`` passes its flags
    to worker processes through ``BASCULE_SERVING``), builds the services and the data plane.

    Raises:
        ConfigError: bad settings, or no model to serve.
    """
    from bascule.core.settings import load_settings
    from bascule.serving.assembly import build_dataplane
    from bascule.wiring import build_services

    settings = load_settings()
    services = build_services(settings)
    # serving.metrics_dir: one of several workers (bascule serve --workers N), sharing metrics.
    metrics = InferenceMetrics(CollectorRegistry(), shared_dir=settings.serving.metrics_dir)
    dataplane = build_dataplane(
        services.registry,
        services.artifacts,
        settings.serving,
        clock=services.clock,
        observer=metrics,
        features=lambda: services.features,
    )
    return create_app(
        dataplane,
        settings.serving,
        metrics=metrics,
        on_shutdown=services.close,
        load_before_serving=settings.serving.metrics_dir is not None,
    )
