"""Engines for the metadata DB, transactions, and migrations applied on first use.

SQLite runs in WAL mode with foreign keys on, and write transactions start with
``BEGIN IMMEDIATE`` so that two writers queue on the lock instead of failing half-way.
PostgreSQL URLs are accepted as users write them (``postgresql://…``) and use psycopg 3.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from bascule.core.errors import ConfigError, StorageError

__all__ = ["Database", "normalise_url"]

_MIGRATED: set[str] = set()
_MIGRATE_LOCK = threading.Lock()


def normalise_url(url: str) -> str:
    """Map the URLs users write to the driver bascule ships with.

    ``postgres://`` and ``postgresql://`` become ``postgresql+psycopg://``.

    Raises:
        ConfigError: the URL cannot be parsed or names an unsupported database.
    """
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"database URL {url!r} cannot be parsed; expected sqlite:///path or "
            "postgresql://user@host:5432/db"
        ) from exc
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"database {parsed.get_backend_name()!r} is not supported; "
            "expected sqlite or postgresql"
        )
    return parsed.render_as_string(hide_password=False)


class Database:
    """An engine plus the transaction helper every repository uses."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.engine = self._make_engine()
        if migrate:
            self.upgrade()

    def _make_engine(self) -> Engine:
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            path = make_url(self.url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=10)
        try:
            engine = create_engine(self.url, **kwargs)
        except (ArgumentError, ModuleNotFoundError) as exc:
            raise ConfigError(
                f"cannot use database {self.url!r}: {exc}; for PostgreSQL install "
                "'bascule[postgres]'"
            ) from exc
        if self.is_sqlite:
            _configure_sqlite(engine)
        return engine

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back on any error.

        Raises:
            StorageError: the database is unreachable or the statement failed at the driver.
        """
        engine = self.engine
        if self.is_sqlite:
            engine = engine.execution_options(sqlite_begin="IMMEDIATE" if write else "DEFERRED")
        try:
            with engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise StorageError(
                f"metadata DB {self.safe_url} failed: {exc.orig}", url=self.safe_url
            ) from exc

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, for messages."""
        return make_url(self.url).render_as_string(hide_password=True)

    def upgrade(self) -> None:
        """Apply pending Alembic migrations (once per process per URL, serialised across processes).

        Raises:
            StorageError: the database cannot be reached or migrated.
        """
        with _MIGRATE_LOCK:
            if self.url in _MIGRATED:
                return
            from bascule.store.db.migrate import upgrade_to_head

            try:
                upgrade_to_head(self)
            except SQLAlchemyError as exc:
                raise StorageError(
                    f"cannot migrate metadata DB {self.safe_url}: {exc}", url=self.safe_url
                ) from exc
            _MIGRATED.add(self.url)

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()

    def ping(self) -> None:
        """Check the database answers.

        Raises:
            StorageError: it does not.
        """
        with self.transaction(write=False) as conn:
            conn.execute(text("SELECT 1"))


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event emit BEGIN itself (pysqlite's own is deferred only).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")
