"""MLflow REST API 2.0 subset (placeholder router until the compat routes land)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/2.0/mlflow", tags=["mlflow"])
