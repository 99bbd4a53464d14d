"""Small SQL helpers shared by the repositories."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

__all__ = ["upsert"]


def upsert(conn: Connection, table: Any, keys: dict[str, Any], values: dict[str, Any]) -> None:
    """Insert or update one row by primary key, in the dialect's own ON CONFLICT form."""
    dialect = conn.dialect.name
    ins = (postgresql if dialect == "postgresql" else sqlite).insert(table).values(**keys, **values)
    conn.execute(ins.on_conflict_do_update(index_elements=list(keys), set_=values))
