"""RedisOnlineStore: one hash per entity per feature view (extra: ``bascule[redis]``).

Layout, under a key prefix (``bascule:`` by default)::

    {prefix}#schema:{view}       hash  feature → type
    {prefix}#layout:{view}       hash  layout id → JSON [[feature, type], …]
    {prefix}{view}:{entity key}  hash  _t → event time (ms); _l → layout id;
                                       _r → the row's values as one JSON array

A row is stored whole, as one JSON array in the order of its *layout* (the features and types
it was written with, named by a hash of them). Redis then does the same work for a row of ten
features as for a row of one, which is what makes bulk writes fast, and reads need no
per-value decoding: ``orjson`` returns ints, floats, booleans, strings and nulls as they are.
A row written under an older layout still reads: features it lacks, or that have changed type
since, come back null. Floats are written in their shortest round-trip form (reads turn whole
numbers back into floats), infinities as the strings ``"inf"``/``"-inf"``, NaN as null.

Writes go through one Lua script per chunk of rows that keeps a stored row whose event time
is newer, so they are idempotent and an older window never overwrites a newer one. (Rows of
the earlier one-field-per-feature layout have no ``_t`` and read as absent; materialising
again writes them in this layout.) Arrow
builds each chunk's RESP arguments, so Python touches neither rows nor values. Lookups of
many keys are one round trip: a Lua script reads every key and splices the stored JSON into
one reply.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson
import redis
from redis.exceptions import RedisError

from bascule.core.errors import InvalidInputError, StorageError
from bascule.store.online import _redis_values as rv
from bascule.store.online.base import (
    ONLINE_DTYPES,
    Column,
    OnlineRow,
    check_columns,
    check_table_name,
)

if TYPE_CHECKING:
    pass

__all__ = ["RedisOnlineStore"]

_WRITE_CHUNK = 1000  # rows per Lua call (Redis runs one at a time)
_ENCODE_ROWS = 16 * _WRITE_CHUNK  # rows Arrow encodes at a time
_IN_FLIGHT = 2 * _ENCODE_ROWS // _WRITE_CHUNK  # Redis has a slice queued while one is encoded
_SCAN_COUNT = 1000

# KEYS: entity hashes. ARGV: the layout id, then per key: event time, row (JSON array).
_WRITE_LUA = """
local layout = ARGV[1]
local written = 0
for k = 1, #KEYS do
  local ts = ARGV[2 * k]
  local cur = redis.call('HGET', KEYS[k], '_t')
  if (not cur) or tonumber(cur) <= tonumber(ts) then
    redis.call('HSET', KEYS[k], '_t', ts, '_l', layout, '_r', ARGV[2 * k + 1])
    written = written + 1
  end
end
return written
"""

# KEYS: entity hashes. One JSON reply: per key [ts, "layout", row] or null; the stored rows are
# JSON already, so they are spliced in, not re-encoded.
_READ_LUA = """
local out = {}
for k = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[k], '_t', '_l', '_r')
  if v[1] and v[2] and v[3] then
    out[k] = '[' .. v[1] .. ',"' .. v[2] .. '",' .. v[3] .. ']'
  else
    out[k] = 'null'
  end
end
return '[' .. table.concat(out, ',') .. ']'
"""


class RedisOnlineStore:
    """Online store in Redis (``redis://host:6379/0``)."""

    def __init__(self, url: str, *, prefix: str = "bascule:", timeout_s: float = 5.0) -> None:
        self._raw_url = url
        self._prefix = prefix
        try:
            self._client: redis.Redis = redis.Redis.from_url(
                url,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                decode_responses=False,
            )
        except ValueError as exc:
            raise InvalidInputError.for_field(
                "online store URL", self.url, "redis://[:password@]host:port/db"
            ) from exc
        self._reader = self._client.register_script(_READ_LUA)
        self._schemas: dict[str, dict[str, str]] = {}
        self._layouts: dict[tuple[str, str], rv.Layout] = {}  # (table, id) → layout; immutable
        self._plans: dict[tuple[str, str, tuple[str, ...]], rv.Plan] = {}

    @property
    def url(self) -> str:
        """The Redis URL with any password masked, plus the key prefix."""
        head, sep, tail = self._raw_url.partition("@")
        shown = self._raw_url
        if sep:
            scheme, _, cred = head.partition("://")
            user = cred.split(":", 1)[0] if ":" in cred else ""
            shown = f"{scheme}://{user}:***@{tail}"
        return f"{shown}#{self._prefix}"

    def __repr__(self) -> str:
        return f"RedisOnlineStore({self.url!r})"

    def _fail(self, action: str, exc: Exception) -> StorageError:
        return StorageError(f"online store {self.url}: {action} failed: {exc}", url=self.url)

    def _key(self, table: str, key: str) -> str:
        return f"{self._prefix}{table}:{key}"

    def _meta(self, what: str, table: str) -> str:
        # '#' cannot start a table name, so these never clash with a table's rows.
        return f"{self._prefix}#{what}:{check_table_name(table)}"

    def _schema(self, table: str, *, refresh: bool = False) -> dict[str, str] | None:
        """Feature name → type, or ``None`` when the table does not exist (cached)."""
        if not refresh and table in self._schemas:
            return self._schemas[table]
        try:
            raw = self._client.hgetall(self._meta("schema", table))
        except RedisError as exc:
            raise self._fail(f"reading the schema of {table!r}", exc) from exc
        if not raw:
            self._schemas.pop(table, None)
            return None
        schema = {rv.text(k): rv.text(v) for k, v in raw.items() if k}
        self._schemas[table] = schema
        return schema

    def _layout(self, table: str, layout_id: str) -> rv.Layout | None:
        found = self._layouts.get((table, layout_id))
        if found is not None:
            return found
        try:
            raw = self._client.hget(self._meta("layout", table), layout_id)
        except RedisError as exc:
            raise self._fail(f"reading a row layout of {table!r}", exc) from exc
        if raw is None:
            return None
        layout: rv.Layout = tuple((str(f), str(t)) for f, t in orjson.loads(raw))
        self._layouts[(table, layout_id)] = layout
        return layout

    def _missing(self, table: str, features: Sequence[str]) -> dict[str, str]:
        """The table's schema, re-read when it lacks an asked feature.

        Raises:
            InvalidInputError: the table lacks an asked feature.
        """
        schema = self._schema(table) or {}
        if any(f not in schema for f in features):
            schema = self._schema(table, refresh=True) or {}
            missing = [f for f in features if f not in schema]
            if missing:
                raise InvalidInputError(
                    f"online table {table!r} has no feature(s) {missing}; it has {sorted(schema)}"
                )
        return schema

    # -- protocol --------------------------------------------------------------------------------

    def ensure_table(self, table: str, features: Mapping[str, str]) -> None:
        """Record the view's feature types (rows need no creation; a row written before keeps
        the values of features whose type did not change).

        Raises:
            InvalidInputError: a name or type is not supported.
            StorageError: Redis is unreachable.
        """
        check_table_name(table)
        for name, dtype in features.items():
            check_table_name(name)
            if dtype not in ONLINE_DTYPES:
                raise InvalidInputError.for_field(
                    f"type of feature {name!r}", dtype, f"one of {', '.join(ONLINE_DTYPES)}"
                )
        mapping: dict[Any, Any] = {"": "table"}
        mapping.update(features)
        try:
            self._client.hset(self._meta("schema", table), mapping=mapping)
        except RedisError as exc:
            raise self._fail(f"creating table {table!r}", exc) from exc
        self._schemas.pop(table, None)
        self._plans.clear()

    def write(
        self,
        table: str,
        features: Sequence[str],
        keys: Column,
        event_ms: Column,
        columns: Sequence[Column],
    ) -> int:
        """Upsert whole rows in chunks through a Lua script; a newer stored row is kept.

        Raises:
            InvalidInputError: unknown table or feature, columns of unequal length, or a value
                that does not fit its feature's type (nothing is written then).
            StorageError: Redis is unreachable or the script failed.
        """
        check_columns(table, features, keys, event_ms, columns)
        schema = self._schema(table, refresh=True)
        if schema is None:
            raise InvalidInputError(f"online table {table!r} does not exist; call ensure_table")
        missing = [f for f in features if f not in schema]
        if missing:
            raise InvalidInputError(
                f"online table {table!r} has no feature(s) {missing}; it has {sorted(schema)}"
            )
        import pyarrow as pa
        import pyarrow.compute as pc

        # Every column becomes Arrow first (a bad value fails here, before anything is sent).
        names = rv.arrow(keys, pa.string(), "string")
        times = rv.arrow(event_ms, pa.int64(), "int64")
        if names.null_count or times.null_count:
            raise InvalidInputError(f"write to {table!r}: a key or an event time is null")
        kinds = [schema[f] for f in features]
        typed = [rv.typed(k, c) for k, c in zip(kinds, columns, strict=True)]
        layout: rv.Layout = tuple(zip(features, kinds, strict=True))
        layout_id = rv.layout_id(layout)
        sha = self._write_sha()
        prefix = self._key(table, "")
        n = len(names)

        def commands() -> Iterator[bytes]:
            yield rv.packed(["HSET", self._meta("layout", table), layout_id, rv.dumps(layout)])
            # Arrow builds every argument as RESP text a slice of rows at a time, so the
            # chunks of a slice are byte ranges of two buffers: Python never touches a row or
            # a value, and Redis runs the first chunks while the next slice is encoded.
            for lo in range(0, n, _ENCODE_ROWS):
                size = min(_ENCODE_ROWS, n - lo)
                hkeys = rv.bulk(pc.binary_join_element_wise(prefix, names.slice(lo, size), ""))
                values = [
                    rv.encode_column(k, c.slice(lo, size))
                    for k, c in zip(kinds, typed, strict=True)
                ]
                if values:
                    joined = pc.binary_join_element_wise(*values, ",")
                    row = pc.binary_join_element_wise("[", joined, "]", "")
                else:
                    row = pa.array(["[]"] * size, type=pa.string())
                stamps = pc.cast(times.slice(lo, size), pa.string())
                args = pc.binary_join_element_wise(
                    "$",
                    pc.cast(pc.binary_length(stamps), pa.string()),
                    "\r\n",
                    stamps,
                    "\r\n$",
                    pc.cast(pc.binary_length(row), pa.string()),
                    "\r\n",
                    row,
                    "\r\n",
                    "",
                )
                key_bytes, key_marks = rv.spans(hkeys, _WRITE_CHUNK)
                arg_bytes, arg_marks = rv.spans(args, _WRITE_CHUNK)
                for i, start in enumerate(range(0, size, _WRITE_CHUNK)):
                    m = min(_WRITE_CHUNK, size - start)
                    call = (
                        f"*{3 + m + 1 + 2 * m}\r\n$7\r\nEVALSHA\r\n"
                        + rv.bulk_text(sha)
                        + rv.bulk_text(str(m))
                    )
                    yield b"".join(
                        (
                            call.encode(),
                            key_bytes[key_marks[i] : key_marks[i + 1]],
                            rv.bulk_text(layout_id).encode(),
                            arg_bytes[arg_marks[i] : arg_marks[i + 1]],
                        )
                    )

        self._send(commands(), f"writing {n} row(s) to {table!r}")
        return n

    def _write_sha(self) -> str:
        """Load the write script (cheap when cached) and return its sha."""
        try:
            sha: Any = self._client.script_load(_WRITE_LUA)  # bytes: decode_responses is off
        except RedisError as exc:
            raise self._fail("loading the write script", exc) from exc
        return rv.text(sha)

    def _send(self, commands: Iterable[bytes], action: str) -> None:
        """Send pre-packed commands as they are built, keeping a few in flight (Redis runs
        one while the next is packed), and check every reply."""
        pool = self._client.connection_pool
        try:
            conn: Any = pool.get_connection()
        except (RedisError, OSError) as exc:
            raise self._fail(action, exc) from exc
        in_flight = 0
        try:
            for command in commands:
                conn.send_packed_command([command])
                in_flight += 1
                if in_flight >= _IN_FLIGHT:
                    conn.read_response()
                    in_flight -= 1
            for _ in range(in_flight):
                conn.read_response()
        except (RedisError, OSError) as exc:
            conn.disconnect()
            raise self._fail(action, exc) from exc
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)

    def read(
        self, table: str, keys: Sequence[str], features: Sequence[str]
    ) -> list[OnlineRow | None]:
        """Stored rows of ``keys`` in order (one round trip); ``None`` where absent.

        Raises:
            InvalidInputError: a feature the table does not hold.
            StorageError: Redis is unreachable.
        """
        if not keys:
            return []
        if self._schema(table) is None:
            return [None] * len(keys)
        try:
            if len(keys) == 1:
                ts, lid, row = self._client.hmget(self._key(table, keys[0]), ["_t", "_l", "_r"])
                if ts is None or lid is None or row is None:
                    return [None]
                replies: list[Any] = [(ts, rv.text(lid), orjson.loads(row))]
            else:
                hkeys = [self._key(table, k) for k in keys]
                replies = orjson.loads(self._reader(keys=hkeys))
        except RedisError as exc:
            raise self._fail(f"reading {len(keys)} key(s) from {table!r}", exc) from exc
        wanted = tuple(features)
        out: list[OnlineRow | None] = []
        for reply in replies:
            if reply is None:
                out.append(None)
                continue
            ts, lid, row = reply
            plan = self._plans.get((table, lid, wanted))
            if plan is None:
                plan = self._make_plan(table, lid, wanted)
            out.append((int(ts), rv.values(row, plan)))
        return out

    def _make_plan(self, table: str, layout_id: str, features: tuple[str, ...]) -> rv.Plan:
        schema = self._missing(table, features)
        layout = self._layout(table, layout_id) or ()  # unknown layout: every value null
        plan = rv.plan(layout, features, schema)
        self._plans[(table, layout_id, features)] = plan
        return plan

    def _scan(self, table: str) -> list[bytes]:
        pattern = f"{self._prefix}{check_table_name(table)}:*"
        try:
            return list(self._client.scan_iter(match=pattern, count=_SCAN_COUNT))
        except RedisError as exc:
            raise self._fail(f"scanning {table!r}", exc) from exc

    def count(self, table: str) -> int:
        """Keys of the table, counted with ``SCAN`` (for tests and the CLI, not hot paths).

        Raises:
            StorageError: Redis is unreachable.
        """
        return len(self._scan(table))

    def drop_table(self, table: str) -> None:
        """Unlink every row of the table, its schema and its layouts.

        Raises:
            StorageError: Redis is unreachable.
        """
        keys = self._scan(table)
        try:
            for start in range(0, len(keys), _SCAN_COUNT):
                self._client.unlink(*keys[start : start + _SCAN_COUNT])
            self._client.unlink(self._meta("schema", table), self._meta("layout", table))
        except RedisError as exc:
            raise self._fail(f"dropping {table!r}", exc) from exc
        self._schemas.pop(table, None)
        self._plans.clear()

    def ping(self) -> None:
        """``PING``.

        Raises:
            StorageError: Redis does not answer.
        """
        try:
            self._client.ping()
        except RedisError as exc:
            raise self._fail("ping", exc) from exc

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
