"""Small SQL helpers shared by the repositories."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

__all__ = ["upsert", "upsert_rows"]


def upsert(conn: Connection, table: Any, keys: dict[str, Any], values: dict[str, Any]) -> None:
    """Insert or update one row by primary key (``keys``), setting ``values``."""
    upsert_rows(conn, table, [{**keys, **values}], list(keys))


def upsert_rows(
    conn: Connection, table: Any, rows: Sequence[dict[str, Any]], keys: list[str]
) -> None:
    """Insert rows, or update the existing ones by primary key, in the dialect's own
    ON CONFLICT form; one statement compiled once and executed for every row."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    columns = [k for k in rows[0] if k not in keys]
    stmt = stmt.on_conflict_do_update(
        index_elements=keys, set_={c: stmt.excluded[c] for c in columns}
    )
    conn.execute(stmt, list(rows))
