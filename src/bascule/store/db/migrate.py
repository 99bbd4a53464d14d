"""Alembic, driven from code: migrations run on first use and by ``bascule db upgrade``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

    from bascule.store.db.engine import Database

__all__ = ["HEAD", "alembic_config", "current_revision", "upgrade_to_head"]

# The newest migration; tests check it equals Alembic's head, so the fast path stays honest.
HEAD = "0003"
_LOCK_ID = 0x6261_7363  # "basc": advisory lock key for PostgreSQL


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at bascule's migrations (and, optionally, a live connection)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at, or None for an empty database."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return None if row is None else str(row[0])


def upgrade_to_head(db: Database) -> None:
    """Bring the schema to HEAD, holding a database-wide lock so concurrent processes queue."""
    with db.transaction(write=False) as conn:
        if current_revision(conn) == HEAD:
            return
    from alembic import command

    with db.transaction(write=True) as conn:
        if not db.is_sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
        if current_revision(conn) == HEAD:
            return
        command.upgrade(alembic_config(conn), "head")
