"""``/api/v1/features``: registered feature definitions, and online values for debugging.

``POST /api/v1/features/online`` takes and returns the shapes of Feast's feature server::

    {"features": ["customer_stats:spend_7d"], "entities": {"customer_id": [1, 2]}}
    → {"metadata": {"feature_names": ["customer_id", "spend_7d"]},
       "results": [{"values": [...], "statuses": [...], "event_timestamps": [...]}, ...]}

A missing entity comes back as null with status ``NOT_FOUND``; an online store that cannot be
reached gives 503.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from bascule.core.errors import InvalidInputError
from bascule.http.control.deps import get_services
from bascule.wiring import Services

router = APIRouter(prefix="/api/v1/features", tags=["features"])
Svc = Annotated[Services, Depends(get_services)]


class OnlineRequest(BaseModel):
    """Entity rows and the features to look up (``features`` or ``feature_service``)."""

    features: list[str] | None = Field(default=None, max_length=1000)
    feature_service: str | None = None
    entities: dict[str, list[Any]] | list[dict[str, Any]]
    full_feature_names: bool = False


def _render(result: Any) -> dict[str, Any]:
    names = list(result.entities) + list(result.features)
    results: list[dict[str, Any]] = []
    for values in result.entities.values():
        results.append(
            {
                "values": values,
                "statuses": ["PRESENT"] * len(values),
                "event_timestamps": [None] * len(values),
            }
        )
    for fv in result.features.values():
        results.append(
            {
                "values": fv.values,
                "statuses": fv.statuses,
                "event_timestamps": [
                    None if t is None else t.isoformat() for t in fv.event_timestamps
                ],
            }
        )
    return {"metadata": {"feature_names": names}, "results": results}


def _lookup(services: Services, features: Any, rows: Any, full: bool) -> dict[str, Any]:
    fs = services.features
    return _render(fs.get_online_features(rows, features, full_feature_names=full))


@router.post("/online")
def online_features(body: OnlineRequest, services: Svc) -> dict[str, Any]:
    """Online values, statuses and event times for entity rows (Feast's request shape)."""
    if (body.features is None) == (body.feature_service is None):
        raise InvalidInputError.for_field(
            "features", body.features, "exactly one of 'features' or 'feature_service'"
        )
    features: Any = body.feature_service if body.feature_service else body.features
    return _lookup(services, features, body.entities, body.full_feature_names)


@router.get("/online")
def online_features_get(
    services: Svc,
    feature: Annotated[list[str], Query(description="view:feature refs (repeatable).")],
    entity: Annotated[list[str], Query(description="KEY=VALUE of one entity (repeatable).")],
) -> dict[str, Any]:
    """The same lookup for one entity from the address bar: ``?feature=v:f&entity=id=42``."""
    row: dict[str, Any] = {}
    for item in entity:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidInputError.for_field("entity", item, "KEY=VALUE")
        row[key] = int(value) if value.lstrip("-").isdigit() else value
    return _lookup(services, feature, [row], False)


@router.get("")
def list_definitions(services: Svc) -> list[dict[str, Any]]:
    """The latest version of every entity, view, on-demand view and service."""
    return [asdict(d) for d in services.features.definitions()]


@router.get("/{name}")
def get_definition(name: str, services: Svc) -> dict[str, Any]:
    """A definition's kind and versions, and a view's materialisation watermark."""
    info = services.features.describe(name)
    mark = info.get("watermark")
    return {
        "kind": info["kind"],
        "name": name,
        "versions": [asdict(v) for v in info["versions"]],
        "watermark": None if mark is None else asdict(mark),
    }
