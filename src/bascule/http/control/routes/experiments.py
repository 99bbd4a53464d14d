"""``/api/v1/experiments``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from bascule.http.control.deps import get_services, render
from bascule.wiring import Services

router = APIRouter(prefix="/api/v1/experiments", tags=["experiments"])
Svc = Annotated[Services, Depends(get_services)]


class ExperimentIn(BaseModel):
    name: str = Field(min_length=1, max_length=250)
    tags: dict[str, str] = {}


@router.get("")
def list_experiments(services: Svc) -> Response:
    """All active experiments."""
    return render(services.tracking.list_experiments())


@router.post("", status_code=201)
def create_experiment(body: ExperimentIn, services: Svc) -> Response:
    """Create an experiment (409 if the name exists)."""
    return render(services.tracking.create_experiment(body.name, tags=body.tags), 201)


@router.get("/{ref}")
def get_experiment(ref: str, services: Svc) -> Response:
    """An experiment by id or by name."""
    if ref.isdigit():
        return render(services.tracking.get_experiment(int(ref)))
    return render(services.tracking.get_experiment_by_name(ref))
