"""Request dependencies of the control plane."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import Request

from bascule.wiring import Services

__all__ = ["get_services", "render"]


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def render(record: Any) -> Any:
    """A record (dataclass) or a list of them as JSON-ready data."""
    if isinstance(record, list):
        return [render(r) for r in record]
    return asdict(record)
