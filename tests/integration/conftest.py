"""Factory fixtures for integration tests: services on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bascule.testing import make_services
from bascule.wiring import Services


@pytest.fixture
def make_svc(tmp_path: Path, db_url: str) -> Iterator[Callable[..., Services]]:
    """Build services on the parametrized database (SQLite and PostgreSQL) and close them after."""
    built: list[Services] = []

    def factory(**overrides: object) -> Services:
        services = make_services(tmp_path / "home", database_url=db_url, **overrides)
        built.append(services)
        return services

    yield factory
    for s in built:
        s.close()


@pytest.fixture
def services(make_svc: Callable[..., Services]) -> Services:
    return make_svc()
