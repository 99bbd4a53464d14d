"""The control-plane app: REST ``/api/v1``, the MLflow REST subset ``/api/2.0/mlflow``, OpenAPI
at ``/docs``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from bascule._version import __version__
from bascule.http.control.background import control_lifespan
from bascule.http.control.metrics import install_metrics
from bascule.http.control.mlflow import router as mlflow_router
from bascule.http.control.routes import (
    experiments,
    features,
    models,
    monitoring,
    retraining,
    runs,
)
from bascule.http.errors import install_error_handlers
from bascule.http.middleware import RequestIdMiddleware
from bascule.wiring import Services

__all__ = ["build_app", "create_app"]


def create_app(services: Services, *, project_dir: Path | None = None) -> FastAPI:
    """Build the control-plane ASGI app around already-built services.

    Args:
        services: The services.
        project_dir: Where the project's relative paths start (the settings file's folder;
            default: the current folder). When a project is configured, the app's lifespan
            runs its retraining automation.
    """
    app = FastAPI(
        title="bascule control plane",
        version=__version__,
        description="Experiments, runs, models and aliases. MLflow clients use /api/2.0/mlflow.",
        lifespan=control_lifespan(services, project_dir=project_dir),
    )
    app.state.services = services
    app.state.retraining = None  # the lifespan sets the project's RetrainAutomation
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(experiments.router)
    app.include_router(runs.router)
    app.include_router(models.router)
    app.include_router(features.router)
    app.include_router(monitoring.router)
    app.include_router(retraining.router)
    install_metrics(app, services)
    app.include_router(mlflow_router)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, Any]:
        services.db.ping()
        return {"status": "ok", "version": __version__}

    return app


def build_app() -> FastAPI:
    """Composition root for ``uvicorn --factory bascule.http.control.app:build_app``."""
    from bascule.core.settings import find_config_file, load_settings
    from bascule.wiring import build_services

    found = find_config_file()
    return create_app(
        build_services(load_settings()),
        project_dir=found.parent.resolve() if found is not None else None,
    )
