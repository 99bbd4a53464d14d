"""The registry of definitions: validation at apply time, versions in the metadata DB, and a
cached :class:`Catalog` for lookups.

``apply`` checks everything before it writes anything: names, references between definitions,
and each view against its source's columns (a type that does not match its definition is an
error here, not a surprise at training time). Then every changed definition gets a new
version, in one transaction.

An apply may also remove definitions (what ``bascule features apply`` does with those its
file no longer declares, like ``feast apply``): a removal is a tombstone version in the same
transaction, refused while a definition that stays still uses the removed one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from bascule.core.clock import Clock, now_ms
from bascule.core.errors import BasculeError, ConfigError, InvalidInputError
from bascule.features.catalog import Catalog, Removal, not_found
from bascule.features.definitions import Definition, definition_from_spec, resolve_function
from bascule.features.offline import DuckDBOfflineStore
from bascule.features.views import (
    Entity,
    FeatureService,
    FeatureView,
    OnDemandFeatureView,
    fingerprint,
)
from bascule.store.db.features import AppliedChange, FeatureDefinition, FeatureRepository

__all__ = ["KIND_OF", "FeatureRegistry"]

KIND_OF: dict[type, str] = {
    Entity: "entity",
    FeatureView: "view",
    OnDemandFeatureView: "on_demand_view",
    FeatureService: "service",
}


def _kind(obj: object) -> str:
    kind = KIND_OF.get(type(obj))
    if kind is None:
        raise InvalidInputError.for_field(
            "definition",
            type(obj).__name__,
            "an Entity, FeatureView, OnDemandFeatureView or FeatureService",
        )
    return kind


class FeatureRegistry:
    """Definitions in force, versioned in the metadata DB, cached in this process."""

    def __init__(
        self,
        repository: FeatureRepository,
        offline: DuckDBOfflineStore,
        clock: Clock,
        *,
        ttl_s: float,
        actor: str,
    ) -> None:
        self._repo = repository
        self._offline = offline
        self._clock = clock
        self._ttl_s = ttl_s
        self._actor = actor
        self._catalog: Catalog | None = None
        self._revision: tuple[int, int] | None = None
        self._checked_at = float("-inf")
        self._functions: dict[str, Callable[[Any], Any]] = {}

    # -- reading ----------------------------------------------------------------------------------

    def catalog(self) -> Catalog:
        """The definitions in force (re-read when another process applied, after ``ttl_s``).

        Raises:
            StorageError: the metadata DB failed.
        """
        now = self._clock.monotonic()
        if self._catalog is not None and now - self._checked_at < self._ttl_s:
            return self._catalog
        revision = self._repo.revision()
        self._checked_at = now
        if self._catalog is None or revision != self._revision:
            self._catalog = self._load()
            self._revision = revision
        return self._catalog

    def refresh(self) -> Catalog:
        """Re-read the definitions now.

        Raises:
            StorageError: the metadata DB failed.
        """
        self._catalog = None
        return self.catalog()

    def _load(self) -> Catalog:
        items: list[tuple[Any, int, str]] = []
        for d in self._repo.latest():
            obj: Any = definition_from_spec(d.kind, d.spec)
            if isinstance(obj, OnDemandFeatureView) and obj.function_name in self._functions:
                obj = dataclasses.replace(obj, function=self._functions[obj.function_name])
            items.append((obj, d.version, d.fingerprint))
        removed = [
            Removal(d.kind, d.name, d.version - 1, d.created_at, d.created_by)
            for d in self._repo.latest(removed=True)
        ]
        return Catalog(items, removed)

    def definitions(self, kind: str | None = None) -> list[FeatureDefinition]:
        """Latest stored versions of every definition (of one kind).

        Raises:
            StorageError: the metadata DB failed.
        """
        return self._repo.latest(kind)

    def versions(self, name: str) -> tuple[str, list[FeatureDefinition]]:
        """The kind of the definition called ``name`` and all its versions, oldest first.

        Raises:
            NotFoundError: nothing has that name; the message lists what exists.
            StorageError: the metadata DB failed.
        """
        latest = self._repo.latest()
        for d in [*latest, *self._repo.latest(removed=True)]:
            if d.name == name:
                return d.kind, self._repo.versions(d.kind, name)
        raise not_found("feature definition", name, (d.name for d in latest))

    def undeclared(self, objects: Sequence[Definition]) -> list[Definition]:
        """Definitions in force that ``objects`` does not declare (entities inside views
        count as declared): services first, then on-demand views, views, entities.

        Raises:
            InvalidInputError: something is not a definition.
            StorageError: the metadata DB failed.
        """
        declared = {(_kind(o), o.name) for o in _with_entities(objects)}
        cat = self.catalog()
        found: list[Definition] = [
            *(cat.services[n][0] for n in sorted(cat.services)),
            *(cat.on_demand[n][0] for n in sorted(cat.on_demand)),
            *(cat.views[n][0] for n in sorted(cat.views)),
            *(cat.entities[n] for n in sorted(cat.entities)),
        ]
        return [o for o in found if (_kind(o), o.name) not in declared]

    # -- writing ----------------------------------------------------------------------------------

    def plan(self, objects: Sequence[Definition], remove: Sequence[Definition] = ()) -> list[str]:
        """Problems that would stop ``apply`` (empty when it would succeed).

        Raises:
            InvalidInputError: something is not a definition.
            StorageError: the metadata DB failed.
        """
        objs = _with_entities(objects)
        gone = {(_kind(o), o.name) for o in remove}
        problems: list[str] = []
        seen: set[tuple[str, str]] = set()
        for obj in objs:
            kind = _kind(obj)
            key = ("view" if kind in ("view", "on_demand_view") else kind, obj.name)
            if key in seen:
                problems.append(f"{obj.name!r} is defined twice")
            seen.add(key)
        current = self.catalog()
        merged: dict[tuple[str, str], Any] = {}
        for obj_map in (current.entities, current.views, current.on_demand, current.services):
            for name, value in obj_map.items():
                obj = value[0] if isinstance(value, tuple) else value
                merged[(_kind(obj), name)] = obj
        for obj in objs:
            merged[(_kind(obj), obj.name)] = obj
        for kind, name in sorted(gone):
            if (kind, name) in {(_kind(o), o.name) for o in objs}:
                problems.append(f"{_LABEL[kind]} {name!r} is both applied and removed")
            elif (kind, name) not in merged:
                problems.append(f"cannot remove {_LABEL[kind]} {name!r}: it is not registered")
            merged.pop((kind, name), None)
        cat = Catalog((obj, 0, "") for obj in merged.values())
        both = sorted(set(cat.views) & set(cat.on_demand))
        problems += [f"{n!r} names both a feature view and an on-demand view" for n in both]
        for obj in objs:
            problems += self._problems(obj, cat)
        problems += _still_used(gone, merged.values())
        return problems

    def _problems(self, obj: Definition, cat: Catalog) -> list[str]:
        if isinstance(obj, FeatureView):
            unknown = [e for e in obj.entity_names if e not in cat.entities]
            if unknown:
                return [
                    f"feature view {obj.name!r}: unknown entit(ies) {unknown}; "
                    f"known: {sorted(cat.entities)}"
                ]
            keys = cat.join_keys(obj)
            clash = [f.name for f in obj.fields(keys) if f.name in keys]
            out = [f"feature view {obj.name!r}: {c!r} is a join key" for c in clash]
            return out + self._offline.check_view(obj, keys)
        if isinstance(obj, OnDemandFeatureView):
            out = [
                f"on-demand view {obj.name!r}: unknown source view {s!r}; "
                f"known: {sorted(cat.views)}"
                for s in obj.view_sources
                if s not in cat.views
            ]
            if obj.function is None:
                try:
                    resolve_function(obj.function_name)
                except ConfigError as exc:
                    out.append(f"on-demand view {obj.name!r}: {exc.message}")
            return out
        if isinstance(obj, FeatureService):
            try:
                cat.refs_of(obj)
            except BasculeError as exc:
                return [f"feature service {obj.name!r}: {exc.message}"]
        return []

    def apply(
        self, objects: Sequence[Definition], remove: Sequence[Definition] = ()
    ) -> list[AppliedChange]:
        """Validate, then store a new version of every definition that changed, and a
        tombstone for every definition in ``remove`` (matched by kind and name), in one
        transaction.

        Entities given as objects inside feature views are applied too.

        Raises:
            InvalidInputError: listing every problem found (a removed definition still used
                by one that stays, or one that is not registered); nothing was written.
            StorageError: the metadata DB failed; nothing was written.
        """
        problems = self.plan(objects, remove)
        if problems:
            raise InvalidInputError(
                f"{len(problems)} problem(s) in the feature definitions:\n  "
                + "\n  ".join(problems),
                problems=problems,
            )
        items = []
        for obj in _with_entities(objects):
            spec = obj.to_spec()
            items.append((_kind(obj), obj.name, spec, fingerprint(spec)))
            if isinstance(obj, OnDemandFeatureView) and obj.function is not None:
                self._functions[obj.function_name] = obj.function
        changes = self._repo.apply(
            items,
            now=now_ms(self._clock),
            actor=self._actor,
            remove=sorted({(_kind(o), o.name) for o in remove}),
        )
        self.refresh()
        return changes


_LABEL = {
    "entity": "entity",
    "view": "feature view",
    "on_demand_view": "on-demand view",
    "service": "feature service",
}


def _still_used(gone: set[tuple[str, str]], staying: Iterable[Any]) -> list[str]:
    """Why removing ``gone`` would break a definition that stays (empty when it would not)."""
    problems = []
    for obj in staying:
        used: list[tuple[str, str]] = []
        if isinstance(obj, FeatureView):
            used = [("entity", e) for e in obj.entity_names]
        elif isinstance(obj, OnDemandFeatureView):
            used = [("view", v) for v in obj.view_sources]
        elif isinstance(obj, FeatureService):
            names = {ref.partition(":")[0] for ref in obj.refs}
            used = [(k, n) for n in sorted(names) for k in ("view", "on_demand_view")]
        for kind, name in used:
            if (kind, name) in gone:
                problems.append(
                    f"cannot remove {_LABEL[kind]} {name!r}: {_LABEL[_kind(obj)]} "
                    f"{obj.name!r} still uses it (remove or change that one too)"
                )
    return problems


def _with_entities(objects: Sequence[Definition]) -> list[Definition]:
    out: list[Definition] = []
    named = {o.name for o in objects if isinstance(o, Entity)}
    for obj in objects:
        if isinstance(obj, FeatureView):
            for e in obj.entity_objects:
                if e.name not in named:
                    out.append(e)
                    named.add(e.name)
        out.append(obj)
    return out
