"""``/api/v1/models``: registered models, versions, aliases and their audit history."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from bascule.http.control.deps import get_services, render
from bascule.wiring import Services

router = APIRouter(prefix="/api/v1/models", tags=["models"])
Svc = Annotated[Services, Depends(get_services)]


class AliasIn(BaseModel):
    version: int = Field(ge=1)
    reason: str = Field(default="", max_length=2000)


@router.get("")
def list_models(services: Svc) -> Response:
    return render(services.registry.list_models())


@router.get("/{name}")
def get_model(name: str, services: Svc) -> Response:
    """A model with all of its versions and aliases."""
    model = services.registry.get_model(name)
    return render({**asdict(model), "versions": services.registry.list_versions(name)})


@router.get("/{name}/versions/{version}")
def get_version(name: str, version: int, services: Svc) -> Response:
    return render(services.registry.resolve(f"{name}:{version}"))


@router.get("/{name}/resolve/{ref}")
def resolve(name: str, ref: str, services: Svc) -> Response:
    """The version an alias (``champion``) or ``latest`` points at."""
    target = name if ref == "latest" else f"{name}@{ref}"
    return render(services.registry.resolve(target))


@router.get("/{name}/history")
def history(name: str, services: Svc) -> Response:
    """Registrations and alias moves, oldest first, with actor, time and reason."""
    return render(services.registry.history(name))


@router.put("/{name}/aliases/{alias}")
def set_alias(name: str, alias: str, body: AliasIn, services: Svc) -> Response:
    """Move an alias to a version atomically (audited)."""
    return render(services.registry.set_alias(name, alias, body.version, reason=body.reason))


@router.delete("/{name}/aliases/{alias}")
def delete_alias(name: str, alias: str, services: Svc) -> Response:
    return render(services.registry.delete_alias(name, alias))
