"""Definitions from plain data: the ``features:`` section of ``bascule.yaml`` and stored specs.

The shape is the one :meth:`FeatureView.to_spec` and friends write::

    features:
      entities:
        - {name: customer, join_keys: [customer_id]}
      views:
        - name: customer_stats
          entities: [customer]
          source: data/customer_stats/*.parquet   # or {path: …} or {query: "SELECT …"}
          timestamp_field: event_timestamp
          ttl: 7d                                  # seconds, or 30s / 15m / 12h / 7d / 1d12h
          features: {spend_7d: float64, n_txn: int64}
      on_demand_views:
        - name: ratios
          function: my_features:ratios             # module:function, importable
          sources: [customer_stats]
          request: {amount: float64}
          features: {amount_over_spend: float64}
      services:
        fraud_v1: [customer_stats:spend_7d, ratios:amount_over_spend]
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from bascule.core.errors import BasculeError, ConfigError
from bascule.features.views import (
    Entity,
    FeatureService,
    FeatureView,
    FileSource,
    OnDemandFeatureView,
    RequestSource,
    SqlSource,
)

__all__ = [
    "Definition",
    "definition_from_spec",
    "load_definitions",
    "parse_duration",
    "resolve_function",
]

Definition = Entity | FeatureView | OnDemandFeatureView | FeatureService

_DURATION = re.compile(
    r"^(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$"
)


def parse_duration(value: float | str | None) -> timedelta | None:
    """A TTL: seconds as a number, or text like ``30s``, ``15m``, ``12h``, ``7d``, ``1d12h``.

    Raises:
        ValueError: the text is not a duration.
    """
    if value is None:
        return None
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    m = _DURATION.match(value.strip())
    if not value.strip() or m is None:
        raise ValueError(f"expected seconds or a duration like 30s, 15m, 12h, 7d; got {value!r}")
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return timedelta(days=d, hours=h, minutes=mi, seconds=s)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _EntitySpec(_Spec):
    name: str
    join_keys: list[str] = []
    description: str = ""


class _SourceSpec(_Spec):
    path: str | None = None
    query: str | None = None
    timestamp_field: str | None = None
    created_timestamp_column: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> _SourceSpec:
        if (self.path is None) == (self.query is None):
            raise ValueError("a source needs exactly one of 'path' (Parquet) or 'query' (SQL)")
        return self


class _ViewSpec(_Spec):
    name: str
    entities: list[str]
    source: _SourceSpec
    timestamp_field: str | None = None
    features: dict[str, str]
    ttl: float | str | None = None
    description: str = ""
    tags: dict[str, str] = {}

    @field_validator("source", mode="before")
    @classmethod
    def _path_shorthand(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value


class _OnDemandSpec(_Spec):
    name: str
    function: str
    sources: list[str] = []
    request: dict[str, str] = {}
    features: dict[str, str]
    code_hash: str = ""
    description: str = ""


class _ServiceSpec(_Spec):
    name: str
    features: list[str]
    description: str = ""


def resolve_function(ref: str) -> Callable[[Any], Any]:
    """Import ``module:qualname`` (the current folder is searched too, as ``python -m`` does).

    Raises:
        ConfigError: the module or the function cannot be found.
    """
    module_name, _, qualname = ref.partition(":")
    if not module_name or not qualname:
        raise ConfigError(f"on-demand function {ref!r}: expected 'module:function'")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.append(cwd)
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"on-demand function {ref!r} cannot be imported: {exc}") from exc
    if isinstance(obj, OnDemandFeatureView) and obj.function is not None:
        obj = obj.function  # the decorator replaced the function by the view
    if not callable(obj):
        raise ConfigError(f"on-demand function {ref!r} is not callable")
    return obj  # type: ignore[no-any-return]  # checked callable just above


def _view(spec: _ViewSpec) -> FeatureView:
    src = spec.source
    ts = src.timestamp_field or spec.timestamp_field or "event_timestamp"
    source: FileSource | SqlSource
    if src.path is not None:
        source = FileSource(src.path, ts, src.created_timestamp_column)
    else:
        source = SqlSource(src.query or "", ts, src.created_timestamp_column)
    try:
        ttl = parse_duration(spec.ttl)
    except ValueError as exc:
        raise ConfigError(f"feature view {spec.name!r}: ttl: {exc}") from exc
    return FeatureView(
        name=spec.name,
        entities=spec.entities,
        schema=spec.features,
        source=source,
        ttl=ttl,
        description=spec.description,
        tags=spec.tags,
    )


def _on_demand(spec: _OnDemandSpec, *, import_now: bool) -> OnDemandFeatureView:
    sources: list[FeatureView | RequestSource | str] = list(spec.sources)
    if spec.request:
        sources.append(RequestSource(name=f"{spec.name}_request", schema=spec.request))
    fn = resolve_function(spec.function) if import_now else None
    return OnDemandFeatureView(
        name=spec.name,
        sources=sources,
        schema=spec.features,
        function=fn,
        function_name=spec.function,
        code_hash=spec.code_hash,
        description=spec.description,
    )


_KINDS: dict[str, type[_Spec]] = {
    "entity": _EntitySpec,
    "view": _ViewSpec,
    "on_demand_view": _OnDemandSpec,
    "service": _ServiceSpec,
}


def _build(kind: str, data: Mapping[str, Any], *, import_now: bool) -> Definition:
    spec = _KINDS[kind].model_validate(dict(data))
    if isinstance(spec, _EntitySpec):
        return Entity(spec.name, tuple(spec.join_keys), spec.description)
    if isinstance(spec, _ViewSpec):
        return _view(spec)
    if isinstance(spec, _OnDemandSpec):
        return _on_demand(spec, import_now=import_now)
    if not isinstance(spec, _ServiceSpec):  # pragma: no cover - _KINDS is closed
        raise ConfigError(f"unknown definition kind {kind!r}")
    return FeatureService(spec.name, spec.features, spec.description)


def definition_from_spec(kind: str, spec: Mapping[str, Any]) -> Definition:
    """Rebuild a stored definition (on-demand functions are imported when first used).

    Raises:
        ConfigError: the spec does not fit its kind.
    """
    try:
        return _build(kind, spec, import_now=False)
    except ValidationError as exc:
        raise ConfigError(f"stored {kind} spec {spec.get('name')!r} is invalid: {exc}") from exc


def load_definitions(
    *,
    entities: list[dict[str, Any]],
    views: list[dict[str, Any]],
    on_demand_views: list[dict[str, Any]],
    services: dict[str, Any] | list[dict[str, Any]],
) -> list[Definition]:
    """Definitions from the ``features:`` section of ``bascule.yaml`` (see the module docstring).

    Raises:
        ConfigError: listing every mistake with its place (``features.views[0].ttl: …``).
    """
    svc_items: list[dict[str, Any]] = (
        [{"name": n, "features": f} for n, f in services.items()]
        if isinstance(services, dict)
        else list(services)
    )
    groups = (
        ("entities", "entity", entities),
        ("views", "view", views),
        ("on_demand_views", "on_demand_view", on_demand_views),
        ("services", "service", svc_items),
    )
    out: list[Definition] = []
    problems: list[str] = []
    for section, kind, items in groups:
        for i, item in enumerate(items):
            where = f"features.{section}[{i}]"
            try:
                out.append(_build(kind, item, import_now=True))
            except ValidationError as exc:
                for err in exc.errors():
                    loc = ".".join(str(p) for p in err["loc"])
                    problems.append(f"{where}.{loc}: {err['msg']} (got {err.get('input')!r})")
            except BasculeError as exc:
                problems.append(f"{where}: {exc.message}")
    if problems:
        raise ConfigError(
            f"{len(problems)} problem(s) in the feature definitions:\n  " + "\n  ".join(problems),
            problems=problems,
        )
    return out
