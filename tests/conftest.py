"""Backends for tests: PostgreSQL and Redis come from BASCULE_TEST_*_URL.

Locally a missing variable skips the test with a reason; in CI
``BASCULE_TEST_REQUIRE=postgres,redis`` turns that skip into a failure, so a green run cannot hide
a missing service.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest


def _required() -> set[str]:
    return {s.strip() for s in os.environ.get("BASCULE_TEST_REQUIRE", "").split(",") if s.strip()}


def backend_url(kind: str) -> str:
    """The URL of a test backend, or skip (fail when CI requires it)."""
    url = os.environ.get(f"BASCULE_TEST_{kind.upper()}_URL")
    if not url:
        reason = f"BASCULE_TEST_{kind.upper()}_URL is not set"
        if kind in _required():
            pytest.fail(f"{reason}, but BASCULE_TEST_REQUIRE names {kind}")
        pytest.skip(reason)
    return url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    base = backend_url("postgres")
    name = f"bascule_test_{uuid.uuid4().hex[:12]}"
    conninfo = base.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        if "postgres" in _required():
            pytest.fail(f"PostgreSQL at {base} unreachable: {exc}")
        pytest.skip(f"PostgreSQL at {base} unreachable: {exc}")
    head, _, _ = conninfo.rpartition("/")
    url = f"{head}/{name}"
    yield url
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


REDIS_TEST_DB = 15
"""The Redis database number tests use; it is flushed before and after each test."""


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis URL on a dedicated database number, empty at the start and flushed afterwards."""
    import redis

    base = backend_url("redis")
    head, _, tail = base.rpartition("/")
    url = f"{head}/{REDIS_TEST_DB}" if tail.isdigit() else f"{base.rstrip('/')}/{REDIS_TEST_DB}"
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.flushdb()
    except redis.exceptions.ConnectionError as exc:
        client.close()
        if "redis" in _required():
            pytest.fail(f"Redis at {base} unreachable: {exc}")
        pytest.skip(f"Redis at {base} unreachable: {exc}")
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """The same test against SQLite (a file) and PostgreSQL (a fresh database)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    return str(request.getfixturevalue("postgres_url"))
