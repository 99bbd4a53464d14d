"""SQLiteOnlineStore: the embedded default, one ``WITHOUT ROWID`` table per feature view.

Each table is keyed by the entity key and holds the event time and one typed column per
feature, so a lookup is one primary-key probe on a prepared statement. Every thread gets its
own connection (statements stay prepared in its cache); WAL mode lets lookups run while a
materialisation writes.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bascule.core.errors import InvalidInputError, StorageError
from bascule.store.online.base import (
    ONLINE_DTYPES,
    Column,
    OnlineRow,
    check_columns,
    check_table_name,
    to_list,
)

__all__ = ["SQLiteOnlineStore"]

_DECL = {
    "bool": "BOOLEAN",
    "float32": "FLOAT",
    "float64": "DOUBLE",
    "int32": "INT",
    "int64": "BIGINT",
    "string": "TEXT",
}
_DTYPE_OF_DECL = {v: k for k, v in _DECL.items()}
_IN_CHUNK = 500  # keys per IN (...) list; SQLite allows 32766 variables, statements stay cached


def _tname(table: str) -> str:
    return f'"fv_{check_table_name(table)}"'


def _col(feature: str) -> str:
    return f'"f_{check_table_name(feature)}"'


class SQLiteOnlineStore:
    """Online store in one SQLite file (``sqlite:///path/online.db``)."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._schemas: dict[str, dict[str, str]] = {}
        self._sql: dict[tuple[str, tuple[str, ...], int], tuple[str, tuple[int, ...]]] = {}
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"online store {self.url}: cannot create folder: {exc}") from exc

    @property
    def url(self) -> str:
        """``sqlite:///`` plus the absolute file path."""
        return f"sqlite:///{self._path.resolve()}"

    def __repr__(self) -> str:
        return f"SQLiteOnlineStore({str(self._path)!r})"

    # -- connections ---------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            conn = sqlite3.connect(
                self._path,
                check_same_thread=False,
                isolation_level=None,
                cached_statements=512,
                timeout=30,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise StorageError(f"online store {self.url} cannot be opened: {exc}") from exc
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn

    def _fail(self, action: str, exc: sqlite3.Error) -> StorageError:
        return StorageError(f"online store {self.url}: {action} failed: {exc}", url=self.url)

    def _schema(self, table: str) -> dict[str, str]:
        """Feature name → type of an existing table (``{}`` when absent); cached."""
        cached = self._schemas.get(table)
        if cached is not None:
            return cached
        try:
            info = self._conn().execute(f"PRAGMA table_info({_tname(table)})").fetchall()
        except sqlite3.Error as exc:
            raise self._fail(f"reading the columns of {table!r}", exc) from exc
        schema = {
            str(r[1])[2:]: _DTYPE_OF_DECL.get(str(r[2]).upper(), "string")
            for r in info
            if str(r[1]).startswith("f_")
        }
        if schema or info:
            self._schemas[table] = schema
        return schema

    # -- protocol --------------------------------------------------------------------------------

    def ensure_table(self, table: str, features: Mapping[str, str]) -> None:
        """Create the table or add / retype columns to match ``features``.

        Raises:
            InvalidInputError: a name or type is not supported.
            StorageError: the file cannot be written.
        """
        for name, dtype in features.items():
            check_table_name(name)
            if dtype not in ONLINE_DTYPES:
                raise InvalidInputError.for_field(
                    f"type of feature {name!r}", dtype, f"one of {', '.join(ONLINE_DTYPES)}"
                )
        conn = self._conn()
        self._schemas.pop(table, None)
        self._sql.clear()
        cols = "".join(f", {_col(n)} {_DECL[t]}" for n, t in features.items())
        try:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {_tname(table)} "
                f"(k TEXT PRIMARY KEY NOT NULL, ts INTEGER NOT NULL{cols}) WITHOUT ROWID"
            )
            have = self._schema(table)
            for name, dtype in features.items():
                if have.get(name) == dtype:
                    continue
                if name in have:
                    conn.execute(f"ALTER TABLE {_tname(table)} DROP COLUMN {_col(name)}")
                conn.execute(f"ALTER TABLE {_tname(table)} ADD COLUMN {_col(name)} {_DECL[dtype]}")
        except sqlite3.Error as exc:
            raise self._fail(f"creating table {table!r}", exc) from exc
        finally:
            self._schemas.pop(table, None)
            self._sql.clear()

    def write(
        self,
        table: str,
        features: Sequence[str],
        keys: Column,
        event_ms: Column,
        columns: Sequence[Column],
    ) -> int:
        """Upsert whole rows; a stored row with a newer event time is kept.

        Raises:
            InvalidInputError: unknown table or feature, or columns of unequal length.
            StorageError: the write failed.
        """
        check_columns(table, features, keys, event_ms, columns)
        schema = self._schema(table)
        if not schema and features:
            raise InvalidInputError(f"online table {table!r} does not exist; call ensure_table")
        missing = [f for f in features if f not in schema]
        if missing:
            raise InvalidInputError(
                f"online table {table!r} has no feature(s) {missing}; it has {sorted(schema)}"
            )
        names = ", ".join(["k", "ts", *(_col(f) for f in features)])
        marks = ", ".join("?" * (len(features) + 2))
        # A row is replaced whole: features not written are null, as in every store.
        given = set(features)
        updates = ", ".join(
            [
                "ts = excluded.ts",
                *(f"{_col(f)} = excluded.{_col(f)}" for f in features),
                *(f"{_col(f)} = NULL" for f in schema if f not in given),
            ]
        )
        sql = (
            f"INSERT INTO {_tname(table)} ({names}) VALUES ({marks}) ON CONFLICT(k) DO UPDATE "
            f"SET {updates} WHERE excluded.ts >= {_tname(table)}.ts"
        )
        rows = zip(to_list(keys), to_list(event_ms), *map(to_list, columns), strict=True)
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(sql, rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._fail(f"writing {len(keys)} row(s) to {table!r}", exc) from exc
        return len(keys)

    def _select(self, table: str, features: Sequence[str], n: int) -> tuple[str, tuple[int, ...]]:
        cache_key = (table, tuple(features), n)
        found = self._sql.get(cache_key)
        if found is not None:
            return found
        schema = self._schema(table)
        missing = [f for f in features if f not in schema]
        if missing:
            raise InvalidInputError(
                f"online table {table!r} has no feature(s) {missing}; it has {sorted(schema)}"
            )
        cols = ", ".join(["k", "ts", *(_col(f) for f in features)])
        where = "k = ?" if n == 1 else f"k IN ({', '.join('?' * n)})"
        bools = tuple(i for i, f in enumerate(features) if schema[f] == "bool")
        found = (f"SELECT {cols} FROM {_tname(table)} WHERE {where}", bools)
        self._sql[cache_key] = found
        return found

    def read(
        self, table: str, keys: Sequence[str], features: Sequence[str]
    ) -> list[OnlineRow | None]:
        """Stored rows of ``keys`` in order; ``None`` where absent or the table does not exist.

        Raises:
            StorageError: the file cannot be read.
        """
        if not keys:
            return []
        if not self._schema(table):
            return [None] * len(keys)
        conn = self._conn()
        try:
            if len(keys) == 1:
                sql, bools = self._select(table, features, 1)
                row = conn.execute(sql, (keys[0],)).fetchone()
                if row is None:
                    return [None]
                return [(row[1], _values(row, bools))]
            found: dict[str, OnlineRow] = {}
            unique = list(dict.fromkeys(keys))
            for start in range(0, len(unique), _IN_CHUNK):
                part = unique[start : start + _IN_CHUNK]
                sql, bools = self._select(table, features, len(part))
                for row in conn.execute(sql, part):
                    found[row[0]] = (row[1], _values(row, bools))
        except sqlite3.Error as exc:
            raise self._fail(f"reading {len(keys)} key(s) from {table!r}", exc) from exc
        return [found.get(k) for k in keys]

    def count(self, table: str) -> int:
        """Rows in the table (0 when absent).

        Raises:
            StorageError: the file cannot be read.
        """
        if not self._schema(table):
            return 0
        try:
            row = self._conn().execute(f"SELECT count(*) FROM {_tname(table)}").fetchone()
        except sqlite3.Error as exc:
            raise self._fail(f"counting {table!r}", exc) from exc
        return int(row[0])

    def drop_table(self, table: str) -> None:
        """Drop the table if it exists.

        Raises:
            StorageError: the file cannot be written.
        """
        try:
            self._conn().execute(f"DROP TABLE IF EXISTS {_tname(table)}")
        except sqlite3.Error as exc:
            raise self._fail(f"dropping {table!r}", exc) from exc
        finally:
            self._schemas.pop(table, None)
            self._sql.clear()

    def ping(self) -> None:
        """Run ``SELECT 1``.

        Raises:
            StorageError: the file cannot be opened.
        """
        try:
            self._conn().execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise self._fail("ping", exc) from exc

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()


def _values(row: tuple[Any, ...], bools: tuple[int, ...]) -> tuple[Any, ...]:
    values = row[2:]
    if not bools:
        return values
    out = list(values)
    for i in bools:
        if out[i] is not None:
            out[i] = bool(out[i])
    return tuple(out)
