"""``/api/v1/experiments``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from bascule.http.control.deps import get_services, render
from bascule.wiring import Services

router = APIRouter(prefix="/api/v1/experiments", tags=["experiments"])
Svc = Annotated[Services, Depends(get_services)]


class ExperimentIn(BaseModel):
    name: str = Field(min_length=1, max_length=250)
    tags: dict[str, str] = {}


@router.get("")
def list_experiments(services: Svc) -> list[dict[str, Any]]:
    """All active experiments."""
    return render(services.tracking.list_experiments())  # type: ignore[no-any-return]


@router.post("", status_code=201)
def create_experiment(body: ExperimentIn, services: Svc) -> dict[str, Any]:
    """Create an experiment (409 if the name exists)."""
    return render(services.tracking.create_experiment(body.name, tags=body.tags))  # type: ignore[no-any-return]


@router.get("/{ref}")
def get_experiment(ref: str, services: Svc) -> dict[str, Any]:
    """An experiment by id or by name."""
    if ref.isdigit():
        return render(services.tracking.get_experiment(int(ref)))  # type: ignore[no-any-return]
    return render(services.tracking.get_experiment_by_name(ref))  # type: ignore[no-any-return]
