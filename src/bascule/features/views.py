"""Feature store definitions: entities, sources, feature views, on-demand views and services.

They read like Feast's::

    customer = Entity(name="customer", join_keys=["customer_id"])
    stats = FeatureView(
        name="customer_stats",
        entities=[customer],
        ttl=timedelta(days=7),
        schema=[Field(name="spend_7d", dtype=Float64), Field(name="n_txn", dtype=Int64)],
        source=FileSource(path="data/stats/*.parquet", timestamp_field="event_timestamp"),
    )

Every definition turns into a plain JSON spec (``to_spec``) that is versioned in the metadata
DB by its sha256; ``bascule.yaml`` uses the same shape (see :mod:`bascule.features.definitions`).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bascule.core.errors import InvalidInputError

__all__ = [
    "DTYPES",
    "Bool",
    "Entity",
    "FeatureService",
    "FeatureView",
    "Field",
    "FileSource",
    "Float32",
    "Float64",
    "Int32",
    "Int64",
    "OnDemandFeatureView",
    "RequestSource",
    "SqlSource",
    "String",
    "check_ident",
    "fingerprint",
    "function_ref",
    "on_demand_feature_view",
]

Bool, Float32, Float64, Int32, Int64, String = (
    "bool",
    "float32",
    "float64",
    "int32",
    "int64",
    "string",
)
DTYPES = (Bool, Float32, Float64, Int32, Int64, String)
"""Feature types: what the offline join casts to and the online store holds."""

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def check_ident(value: object, *, what: str) -> str:
    """Validate the name of a view, feature, entity, join key or service.

    Raises:
        InvalidInputError: it is not a letter or ``_`` followed by up to 62 letters, digits or
            ``_`` (names become SQL columns and online tables).
    """
    if not isinstance(value, str) or not _IDENT.match(value):
        raise InvalidInputError.for_field(
            what, value, "a letter or _ followed by up to 62 letters, digits or _"
        )
    return value


def fingerprint(spec: Mapping[str, Any]) -> str:
    """The sha256 of a spec's canonical JSON: equal specs, equal fingerprints."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Field:
    """A named, typed column: a feature, a request field, or a join key's type."""

    name: str
    dtype: str = Float64

    def __post_init__(self) -> None:
        check_ident(self.name, what="field name")
        if self.dtype not in DTYPES:
            raise InvalidInputError.for_field(
                f"type of field {self.name!r}", self.dtype, f"one of {', '.join(DTYPES)}"
            )


def _fields(values: Sequence[Field] | Mapping[str, str]) -> tuple[Field, ...]:
    if isinstance(values, Mapping):
        return tuple(Field(n, t) for n, t in values.items())
    return tuple(values)


@dataclass(frozen=True)
class Entity:
    """What features describe (a customer, a card): its name and the columns that key it."""

    name: str
    join_keys: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        check_ident(self.name, what="entity name")
        keys = tuple(self.join_keys) or (self.name,)
        for k in keys:
            check_ident(k, what=f"join key of entity {self.name!r}")
        object.__setattr__(self, "join_keys", keys)

    def to_spec(self) -> dict[str, Any]:
        """The entity as a JSON-ready dict."""
        return {
            "name": self.name,
            "join_keys": list(self.join_keys),
            "description": self.description,
        }


@dataclass(frozen=True)
class FileSource:
    """Parquet data: a file, a folder (all ``*.parquet`` below it) or a glob."""

    path: str
    timestamp_field: str = "event_timestamp"
    created_timestamp_column: str | None = None
    """Breaks ties between rows of one entity at the same event time: the latest wins."""

    def to_spec(self) -> dict[str, Any]:
        """The source as a JSON-ready dict."""
        return {
            "path": self.path,
            "timestamp_field": self.timestamp_field,
            "created_timestamp_column": self.created_timestamp_column,
        }


@dataclass(frozen=True)
class SqlSource:
    """The result of a DuckDB SQL query (it may read Parquet, CSV or anything DuckDB can)."""

    query: str
    timestamp_field: str = "event_timestamp"
    created_timestamp_column: str | None = None
    """Breaks ties between rows of one entity at the same event time: the latest wins."""

    def to_spec(self) -> dict[str, Any]:
        """The source as a JSON-ready dict."""
        return {
            "query": self.query,
            "timestamp_field": self.timestamp_field,
            "created_timestamp_column": self.created_timestamp_column,
        }


Source = FileSource | SqlSource


@dataclass(frozen=True)
class FeatureView:
    """Features of one or more entities, read from a source with event times, valid for a TTL.

    ``schema`` lists the features; a field named like a join key declares that key's type
    instead (as in Feast). ``ttl`` of ``None`` means values never expire.
    """

    name: str
    entities: Sequence[Entity | str]
    schema: Sequence[Field] | Mapping[str, str]
    source: Source
    ttl: timedelta | None = None
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_ident(self.name, what="feature view name")
        if not self.entities:
            raise InvalidInputError(f"feature view {self.name!r} names no entity")
        object.__setattr__(self, "entities", tuple(self.entities))
        object.__setattr__(self, "schema", _fields(self.schema))
        object.__setattr__(self, "tags", dict(self.tags))
        if self.ttl is not None and self.ttl.total_seconds() <= 0:
            raise InvalidInputError.for_field(
                f"ttl of feature view {self.name!r}", self.ttl, "a positive duration or None"
            )

    @property
    def entity_names(self) -> tuple[str, ...]:
        """Names of the entities (objects or names were given)."""
        return tuple(e.name if isinstance(e, Entity) else e for e in self.entities)

    @property
    def entity_objects(self) -> tuple[Entity, ...]:
        """The entities given as objects (applied along with the view)."""
        return tuple(e for e in self.entities if isinstance(e, Entity))

    @property
    def schema_fields(self) -> tuple[Field, ...]:
        """Every field of the schema, join-key declarations included."""
        return _fields(self.schema)

    def fields(self, join_keys: Sequence[str] = ()) -> tuple[Field, ...]:
        """The features: schema fields that are not join keys."""
        keys = set(join_keys)
        return tuple(f for f in _fields(self.schema) if f.name not in keys)

    def to_spec(self) -> dict[str, Any]:
        """The view as a JSON-ready dict (the ``bascule.yaml`` shape)."""
        return {
            "name": self.name,
            "entities": list(self.entity_names),
            "features": {f.name: f.dtype for f in _fields(self.schema)},
            "source": self.source.to_spec(),
            "ttl": None if self.ttl is None else self.ttl.total_seconds(),
            "description": self.description,
            "tags": dict(self.tags),
        }


@dataclass(frozen=True)
class RequestSource:
    """Values that arrive with each request (and are columns of the entity rows in training)."""

    name: str
    schema: Sequence[Field] | Mapping[str, str]

    def __post_init__(self) -> None:
        check_ident(self.name, what="request source name")
        object.__setattr__(self, "schema", _fields(self.schema))


def function_ref(fn: Callable[..., Any]) -> str:
    """``module:qualname`` of a module-level function, the way it is stored and re-imported.

    Raises:
        InvalidInputError: a lambda or a function defined inside another function, which no
            other process could import.
    """
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if not module or "<" in qualname:
        raise InvalidInputError.for_field(
            "on-demand function", qualname or repr(fn), "a function defined at module level"
        )
    return f"{module}:{qualname}"


def _source_hash(fn: Callable[..., Any]) -> str:
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        text = function_ref(fn)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class OnDemandFeatureView:
    """Features computed by a Python function from stored features and request values.

    The function takes a pandas DataFrame (one row per entity row, with the source views'
    features by name and the request fields) and returns a DataFrame with the ``schema``
    columns, the same number of rows. It runs identically in training sets and online.
    """

    name: str
    sources: Sequence[FeatureView | RequestSource | str]
    schema: Sequence[Field] | Mapping[str, str]
    function: Callable[[Any], Any] | None = None
    function_name: str = ""
    """``module:qualname``; derived from ``function`` when that is given."""
    code_hash: str = ""
    """sha256 of the function's source, so changing the code makes a new version."""
    description: str = ""

    def __post_init__(self) -> None:
        check_ident(self.name, what="on-demand feature view name")
        object.__setattr__(self, "schema", _fields(self.schema))
        object.__setattr__(self, "sources", tuple(self.sources))
        if self.function is not None:
            if not self.function_name:
                object.__setattr__(self, "function_name", function_ref(self.function))
            if not self.code_hash:
                object.__setattr__(self, "code_hash", _source_hash(self.function))
        if not self.function_name:
            raise InvalidInputError(f"on-demand feature view {self.name!r} has no function")

    @property
    def output_fields(self) -> tuple[Field, ...]:
        """The features the function computes."""
        return _fields(self.schema)

    @property
    def view_sources(self) -> tuple[str, ...]:
        """Names of the feature views whose features the function reads."""
        return tuple(
            s.name if isinstance(s, FeatureView) else s
            for s in self.sources
            if not isinstance(s, RequestSource)
        )

    @property
    def request_fields(self) -> tuple[Field, ...]:
        """Fields the request (or the entity rows) must carry."""
        out: list[Field] = []
        for s in self.sources:
            if isinstance(s, RequestSource):
                out.extend(_fields(s.schema))
        return tuple(out)

    def to_spec(self) -> dict[str, Any]:
        """The view as a JSON-ready dict (the ``bascule.yaml`` shape)."""
        return {
            "name": self.name,
            "function": self.function_name,
            "code_hash": self.code_hash,
            "sources": list(self.view_sources),
            "request": {f.name: f.dtype for f in self.request_fields},
            "features": {f.name: f.dtype for f in _fields(self.schema)},
            "description": self.description,
        }


def on_demand_feature_view(
    *,
    sources: Sequence[FeatureView | RequestSource | str],
    schema: Sequence[Field] | Mapping[str, str],
    name: str | None = None,
    description: str = "",
) -> Callable[[Callable[[Any], Any]], OnDemandFeatureView]:
    """Decorator: turn a DataFrame → DataFrame function into an :class:`OnDemandFeatureView`.

    Raises:
        InvalidInputError: the function is a lambda or nested, or a name is invalid.
    """

    def wrap(fn: Callable[[Any], Any]) -> OnDemandFeatureView:
        return OnDemandFeatureView(
            name=name or fn.__name__,
            sources=sources,
            schema=schema,
            function=fn,
            description=description,
        )

    return wrap


@dataclass(frozen=True)
class FeatureService:
    """A named set of features a model uses: ``view:feature`` refs, or whole views."""

    name: str
    features: Sequence[str | FeatureView | OnDemandFeatureView]
    description: str = ""

    def __post_init__(self) -> None:
        check_ident(self.name, what="feature service name")
        if not self.features:
            raise InvalidInputError(f"feature service {self.name!r} lists no features")
        refs = tuple(f if isinstance(f, str) else f.name for f in self.features)
        object.__setattr__(self, "features", refs)

    @property
    def refs(self) -> tuple[str, ...]:
        """The refs (``view:feature`` or ``view``) the service lists."""
        return tuple(f if isinstance(f, str) else f.name for f in self.features)

    def to_spec(self) -> dict[str, Any]:
        """The service as a JSON-ready dict."""
        return {"name": self.name, "features": list(self.features), "description": self.description}
