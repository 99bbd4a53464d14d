"""RedisOnlineStore: one hash per entity per feature view (extra: ``bascule[redis]``).

Layout, under a key prefix (``bascule:`` by default)::

    {prefix}schema:{view}        hash  feature → type
    {prefix}{view}:{entity key}  hash  _ts → event time (ms); feature → encoded value

Values are encoded as text: numbers in their shortest round-trip form, booleans as ``1``/``0``,
strings with a leading ``=``; the empty value stands for null. Writes go through one Lua
script per chunk of rows that keeps a stored row whose event time is newer, so they are
idempotent and an older window never overwrites a newer one. Lookups of many keys are one
round trip: a Lua script runs the ``HMGET`` of every key and
returns them as one JSON reply (parsing one string is much cheaper than a thousand).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson
import redis
from redis.exceptions import RedisError

from bascule.core.errors import InvalidInputError, StorageError
from bascule.store.online.base import ONLINE_DTYPES, OnlineRow, check_columns, check_table_name

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["RedisOnlineStore"]

_WRITE_CHUNK = 1000
_IN_FLIGHT = 8
_SCAN_COUNT = 1000

# KEYS: entity hashes. ARGV: n features, their names, then per key: ts, n values.
_WRITE_LUA = """
local nf = tonumber(ARGV[1])
local pos = nf + 2
local written = 0
for k = 1, #KEYS do
  local ts = ARGV[pos]
  local cur = redis.call('HGET', KEYS[k], '_ts')
  if (not cur) or tonumber(cur) <= tonumber(ts) then
    local args = {'_ts', ts}
    for i = 1, nf do
      args[#args + 1] = ARGV[1 + i]
      args[#args + 1] = ARGV[pos + i]
    end
    redis.call('HSET', KEYS[k], unpack(args))
    written = written + 1
  end
  pos = pos + nf + 1
end
return written
"""

# KEYS: entity hashes. ARGV: fields. One JSON reply: per key the HMGET result (false = absent).
_READ_LUA = """
local out = {}
for k = 1, #KEYS do
  out[k] = redis.call('HMGET', KEYS[k], unpack(ARGV))
end
return cjson.encode(out)
"""


def _enc_bool(v: Any) -> str:
    if v is None:
        return ""
    return "1" if v else "0"


def _enc_str(v: Any) -> str:
    return "" if v is None else "=" + str(v)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# Decoders take the text of a field; None, False (absent, from Lua) or "" are null.
def _dec_float(v: str | None) -> float | None:
    return float(v) if v else None


def _dec_int(v: str | None) -> int | None:
    return int(v) if v else None


def _dec_bool(v: str | None) -> bool | None:
    return (v == "1") if v else None


def _dec_str(v: str | None) -> str | None:
    return v[1:] if v else None


def _bulk_text(value: str) -> str:
    """One RESP bulk string."""
    return f"${len(value.encode())}\r\n{value}\r\n"


def _bulk(values: pa.Array) -> pa.Array:
    """RESP bulk strings of a string array, element-wise (lengths in UTF-8 bytes)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lengths = pc.cast(pc.binary_length(values), pa.string())
    out: pa.Array = pc.binary_join_element_wise("$", lengths, "\r\n", values, "\r\n", "")
    return out


def _encode_column(dtype: str, values: Sequence[Any]) -> pa.Array:
    """Encode a column as an Arrow string array; numbers in shortest round-trip text.

    Raises:
        InvalidInputError: a value does not fit the feature's type.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if dtype in ("bool", "string"):
        return pa.array(list(map(_ENCODERS[dtype], values)), type=pa.string())
    arrow_type = pa.float64() if dtype.startswith("float") else pa.int64()
    try:
        arr = pa.array(values, type=arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        raise InvalidInputError(f"values do not fit type {dtype}: {exc}") from exc
    if arrow_type == pa.float64():
        arr = pc.if_else(pc.is_nan(arr), pa.scalar(None, pa.float64()), arr)  # NaN → null
    encoded: pa.Array = pc.fill_null(pc.cast(arr, pa.string()), "")
    return encoded


_ENCODERS: dict[str, Callable[[Any], str]] = {
    "bool": _enc_bool,
    "string": _enc_str,
}
_DECODERS: dict[str, Callable[[str | None], Any]] = {
    "bool": _dec_bool,
    "float32": _dec_float,
    "float64": _dec_float,
    "int32": _dec_int,
    "int64": _dec_int,
    "string": _dec_str,
}


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
        self._script = self._client.register_script(_WRITE_LUA)
        self._reader = self._client.register_script(_READ_LUA)
        self._schemas: dict[str, dict[str, str]] = {}
        self._plans: dict[tuple[str, tuple[str, ...]], list[Callable[[str | None], Any]]] = {}

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

    def _schema(self, table: str, *, refresh: bool = False) -> dict[str, str]:
        cached = self._schemas.get(table)
        if cached is not None and not refresh:
            return cached
        try:
            raw = self._client.hgetall(f"{self._prefix}schema:{check_table_name(table)}")
        except RedisError as exc:
            raise self._fail(f"reading the schema of {table!r}", exc) from exc
        schema = {_text(k): _text(v) for k, v in raw.items()}
        if schema:
            self._schemas[table] = schema
        return schema

    # -- protocol --------------------------------------------------------------------------------

    def ensure_table(self, table: str, features: Mapping[str, str]) -> None:
        """Record the view's feature types (rows need no creation).

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
            self._client.hset(f"{self._prefix}schema:{table}", mapping=mapping)
        except RedisError as exc:
            raise self._fail(f"creating table {table!r}", exc) from exc
        self._schemas.pop(table, None)
        self._plans.clear()

    def write(
        self,
        table: str,
        features: Sequence[str],
        keys: Sequence[str],
        event_ms: Sequence[int],
        columns: Sequence[Sequence[Any]],
    ) -> int:
        """Upsert rows in chunks through a Lua script; a newer stored row is kept.

        Raises:
            InvalidInputError: unknown table or feature, or columns of unequal length.
            StorageError: Redis is unreachable or the script failed.
        """
        check_columns(table, features, keys, event_ms, columns)
        schema = self._schema(table, refresh=True)
        if not schema:
            raise InvalidInputError(f"online table {table!r} does not exist; call ensure_table")
        missing = [f for f in features if f not in schema]
        if missing:
            raise InvalidInputError(
                f"online table {table!r} has no feature(s) {missing}; "
                f"it has {sorted(k for k in schema if k)}"
            )
        import pyarrow as pa
        import pyarrow.compute as pc

        # Every argument is built as RESP text by Arrow, a row at a time: Python touches
        # rows, never single values.
        encoded = [_encode_column(schema[f], col) for f, col in zip(features, columns, strict=True)]
        times = pc.cast(pa.array(event_ms, type=pa.int64()), pa.string())
        rows: list[str] = pc.binary_join_element_wise(
            _bulk(times), *(_bulk(c) for c in encoded), ""
        ).to_pylist()
        names = pa.array([self._key(table, k) for k in keys], type=pa.string())
        hkeys: list[str] = _bulk(names).to_pylist()
        sha = self._write_sha()
        head = "".join(_bulk_text(a) for a in (str(len(features)), *features))
        nf = len(features)

        def commands() -> Iterator[bytes]:
            for start in range(0, len(keys), _WRITE_CHUNK):
                stop = min(start + _WRITE_CHUNK, len(keys))
                n = stop - start
                text = (
                    f"*{3 + n + 1 + nf + n * (1 + nf)}\r\n"
                    + _bulk_text("EVALSHA")
                    + _bulk_text(sha)
                    + _bulk_text(str(n))
                    + "".join(hkeys[start:stop])
                    + head
                    + "".join(rows[start:stop])
                )
                yield text.encode()

        self._send(commands(), f"writing {len(keys)} row(s) to {table!r}")
        return len(keys)

    def _write_sha(self) -> str:
        """Load the write script (cheap when cached) and return its sha."""
        try:
            sha: Any = self._client.script_load(_WRITE_LUA)  # bytes: decode_responses is off
        except RedisError as exc:
            raise self._fail("loading the write script", exc) from exc
        return _text(sha)

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
        plan_key = (table, tuple(features))
        decoders = self._plans.get(plan_key)
        if decoders is None:
            schema = self._schema(table)
            if not schema:
                return [None] * len(keys)
            missing = [f for f in features if f not in schema]
            if missing:
                schema = self._schema(table, refresh=True)
                missing = [f for f in features if f not in schema]
            if missing:
                raise InvalidInputError(
                    f"online table {table!r} has no feature(s) {missing}; "
                    f"it has {sorted(k for k in schema if k)}"
                )
            decoders = [_DECODERS[schema[f]] for f in features]
            self._plans[plan_key] = decoders
        fields = ["_ts", *features]
        try:
            if len(keys) == 1:
                raw = self._client.hmget(self._key(table, keys[0]), fields)
                replies: list[list[Any]] = [[None if b is None else _text(b) for b in raw]]
            else:
                hkeys = [self._key(table, k) for k in keys]
                replies = orjson.loads(self._reader(keys=hkeys, args=fields))
        except RedisError as exc:
            raise self._fail(f"reading {len(keys)} key(s) from {table!r}", exc) from exc
        out: list[OnlineRow | None] = []
        for reply in replies:
            ts = reply[0]
            if not ts:
                out.append(None)
                continue
            out.append((int(ts), tuple(dec(v) for dec, v in zip(decoders, reply[1:], strict=True))))
        return out

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
        """Unlink every row of the table and its schema.

        Raises:
            StorageError: Redis is unreachable.
        """
        keys = self._scan(table)
        try:
            for start in range(0, len(keys), _SCAN_COUNT):
                self._client.unlink(*keys[start : start + _SCAN_COUNT])
            self._client.unlink(f"{self._prefix}schema:{table}")
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
