"""The single table from error codes to HTTP statuses, and the exception handlers that use it.

Bodies are ``{"error": message, "code": code}`` — the Open Inference Protocol's error shape
plus bascule's stable code. Unexpected exceptions become a generic 500 that names the
request id and never leaks a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bascule.core.errors import BasculeError, OverloadedError

__all__ = ["STATUS_BY_CODE", "error_response", "install_error_handlers", "status_for"]

log = logging.getLogger("bascule.http")

STATUS_BY_CODE: dict[str, int] = {
    "invalid_input": 400,
    "unsupported_model": 400,
    "parity_failed": 422,
    "config_error": 400,
    "not_found": 404,
    "conflict": 409,
    "integrity_error": 500,
    "features_unavailable": 422,
    "storage_error": 503,
    "not_ready": 503,
    "overloaded": 503,
    "payload_too_large": 413,
}


def status_for(exc: BasculeError) -> int:
    return STATUS_BY_CODE.get(exc.code, 500)


def error_response(
    status: int, message: str, code: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": message, "code": code}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",)) or "body"
        parts.append(f"{loc}: {err.get('msg')} (got {err.get('input')!r})")
    return "invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception to a status and a JSON body, in one place."""

    async def on_bascule(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, BasculeError):  # pragma: no cover - registered for BasculeError only
            raise exc
        headers = None
        if isinstance(exc, OverloadedError):
            headers = {"Retry-After": str(max(1, round(exc.retry_after_s)))}
        return error_response(status_for(exc), exc.message, exc.code, headers)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, RequestValidationError):  # pragma: no cover
            raise exc
        return error_response(400, _validation_message(exc), "invalid_input")

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, StarletteHTTPException):  # pragma: no cover
            raise exc
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        return error_response(exc.status_code, str(exc.detail), code, getattr(exc, "headers", None))

    async def on_any(request: Request, exc: Exception) -> JSONResponse:
        rid = request_id_of(request)
        log.exception(
            "unhandled error in %s %s (request id %s)", request.method, request.url.path, rid
        )
        return error_response(
            500, f"internal error; quote request id {rid} when reporting it", "internal"
        )

    app.add_exception_handler(BasculeError, on_bascule)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_any)


def request_id_of(request: Any) -> str:
    state = request.scope.get("state") or {}
    return str(state.get("request_id", "-"))
