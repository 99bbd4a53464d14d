"""The control-plane app: REST ``/api/v1``, the MLflow REST subset ``/api/2.0/mlflow``, OpenAPI
at ``/docs``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from bascule._version import __version__
from bascule.http.control.background import monitor_lifespan
from bascule.http.control.metrics import install_metrics
from bascule.http.control.mlflow import router as mlflow_router
from bascule.http.control.routes import experiments, features, models, monitoring, runs
from bascule.http.errors import install_error_handlers
from bascule.http.middleware import RequestIdMiddleware
from bascule.wiring import Services

__all__ = ["build_app", "create_app"]


def create_app(services: Services) -> FastAPI:
    """Build the control-plane ASGI app around already-built services."""
    app = FastAPI(
        title="bascule control plane",
        version=__version__,
        description="Experiments, runs, models and aliases. MLflow clients use /api/2.0/mlflow.",
        lifespan=monitor_lifespan(services),
    )
    app.state.services = services
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(experiments.router)
    app.include_router(runs.router)
    app.include_router(models.router)
    app.include_router(features.router)
    app.include_router(monitoring.router)
    install_metrics(app, services)
    app.include_router(mlflow_router)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, Any]:
        services.db.ping()
        return {"status": "ok", "version": __version__}

    return app


def build_app() -> FastAPI:
    """Composition root for ``uvicorn --factory bascule.http.control.app:build_app``."""
    from bascule.core.settings import load_settings
    from bascule.wiring import build_services

    return create_app(build_services(load_settings()))
