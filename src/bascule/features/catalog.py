"""The definitions in force, and how a list of feature refs resolves against them.

A ref is ``view:feature``, or ``view`` for all of a view's features; a feature service name
stands for its refs. Unknown names fail with a message that lists what exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bascule.core.errors import InvalidInputError, NotFoundError
from bascule.features.views import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    OnDemandFeatureView,
)

__all__ = ["Catalog", "OnDemandPart", "Removal", "Selection", "ViewPart", "not_found"]


def not_found(
    kind: str,
    name: str,
    available: Iterable[str],
    removed: Removal | None = None,
    *,
    error: type[NotFoundError] = NotFoundError,
) -> NotFoundError:
    """A :class:`NotFoundError` (or ``error``) whose message names the kind of thing and lists
    what exists; when the name was removed by an apply, it says so: when, by whom, its last
    version."""
    avail = sorted(available)
    err = error(name, available=avail, kind=kind)
    shown = ", ".join(repr(a) for a in avail[:30]) or "none"
    more = f" … ({len(avail) - 30} more)" if len(avail) > 30 else ""
    what = f"{kind} {name!r} not found"
    if removed is not None:
        when = datetime.fromtimestamp(removed.removed_at / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        what = (
            f"{kind} {name!r} was removed from the feature definitions on {when} UTC by "
            f"{removed.removed_by} (its last version was v{removed.last_version}; "
            "apply a definition with that name to bring it back)"
        )
        err.details.update(
            removed=True,
            removed_at=removed.removed_at,
            removed_by=removed.removed_by,
            last_version=removed.last_version,
        )
    err.message = f"{what}; available: {shown}{more}"
    err.args = (err.message,)
    return err


@dataclass(frozen=True)
class Removal:
    """A definition removed by an apply: its tombstone's version, time and author."""

    kind: str
    name: str
    last_version: int
    removed_at: int
    removed_by: str


@dataclass(frozen=True)
class ViewPart:
    """What to read from one feature view: features, and the output name of each (or None)."""

    view: FeatureView
    version: int
    join_keys: tuple[str, ...]
    features: tuple[Field, ...]
    outputs: tuple[str | None, ...]


@dataclass(frozen=True)
class OnDemandPart:
    """One on-demand view to run: its inputs (view, feature) and request fields, its outputs."""

    view: OnDemandFeatureView
    version: int
    inputs: tuple[tuple[str, str], ...]
    request: tuple[str, ...]
    features: tuple[Field, ...]
    outputs: tuple[str, ...]
    view_fields: dict[str, tuple[Field, ...]]


@dataclass(frozen=True)
class Selection:
    """A resolved feature request."""

    refs: tuple[str, ...]
    outputs: tuple[str, ...]
    views: tuple[ViewPart, ...]
    on_demand: tuple[OnDemandPart, ...]
    join_keys: tuple[str, ...]
    request: tuple[str, ...]


class Catalog:
    """Entities, views, on-demand views and services, each with its version."""

    def __init__(
        self, items: Iterable[tuple[Any, int, str]], removed: Iterable[Removal] = ()
    ) -> None:
        self.removed: dict[tuple[str, str], Removal] = {(r.kind, r.name): r for r in removed}
        """``(kind, name)`` → how a definition no longer in force was removed."""
        self.entities: dict[str, Entity] = {}
        self.views: dict[str, tuple[FeatureView, int]] = {}
        self.on_demand: dict[str, tuple[OnDemandFeatureView, int]] = {}
        self.services: dict[str, tuple[FeatureService, int]] = {}
        self.fingerprints: dict[str, str] = {}
        """``name`` of a view or on-demand view → fingerprint of its stored spec."""
        for obj, version, fp in items:
            self.fingerprints[obj.name] = fp
            if isinstance(obj, Entity):
                self.entities[obj.name] = obj
            elif isinstance(obj, FeatureView):
                self.views[obj.name] = (obj, version)
            elif isinstance(obj, OnDemandFeatureView):
                self.on_demand[obj.name] = (obj, version)
            elif isinstance(obj, FeatureService):
                self.services[obj.name] = (obj, version)
        self._selections: dict[tuple[Any, bool], Selection] = {}

    def removal(self, name: str, *kinds: str) -> Removal | None:
        """How the definition ``name`` of one of ``kinds`` was removed, if it was."""
        for kind in kinds:
            found = self.removed.get((kind, name))
            if found is not None:
                return found
        return None

    def view_names(self) -> list[str]:
        """Names refs may start with: feature views and on-demand views."""
        return sorted([*self.views, *self.on_demand])

    def join_keys(self, view: FeatureView) -> tuple[str, ...]:
        """The join keys of a view, from its entities (unknown entities give none)."""
        keys: list[str] = []
        for name in view.entity_names:
            entity = self.entities.get(name)
            if entity is not None:
                keys.extend(k for k in entity.join_keys if k not in keys)
        return tuple(keys)

    def features_of(self, name: str) -> tuple[Field, ...]:
        """The features of a view or on-demand view.

        Raises:
            NotFoundError: no view of that name; the message lists the views.
        """
        if name in self.views:
            view = self.views[name][0]
            return view.fields(self.join_keys(view))
        if name in self.on_demand:
            return self.on_demand[name][0].output_fields
        gone = self.removal(name, "view", "on_demand_view")
        raise not_found("feature view", name, self.view_names(), gone)

    def refs_of(self, features: Sequence[str] | FeatureService | str) -> tuple[str, ...]:
        """Expand a service (object or name) or a list into ``view:feature`` refs.

        Raises:
            NotFoundError: an unknown service, view or feature.
            InvalidInputError: an empty list or a malformed ref.
        """
        if isinstance(features, FeatureService):
            raw: Sequence[str] = features.refs
        elif isinstance(features, str):
            if features not in self.services:
                gone = self.removal(features, "service")
                raise not_found("feature service", features, self.services, gone)
            raw = self.services[features][0].refs
        else:
            raw = tuple(features)
        if not raw:
            raise InvalidInputError.for_field("features", [], "at least one 'view:feature' ref")
        out: list[str] = []
        for ref in raw:
            if ref.count(":") > 1 or not ref.strip(":"):
                raise InvalidInputError.for_field("feature ref", ref, "'view:feature' or 'view'")
            view, _, feat = ref.partition(":")
            fields = self.features_of(view)
            if not feat:
                out.extend(f"{view}:{f.name}" for f in fields)
            elif feat in {f.name for f in fields}:
                out.append(ref)
            else:
                raise not_found("feature", ref, (f"{view}:{f.name}" for f in fields))
        return tuple(dict.fromkeys(out))

    def select(
        self, features: Sequence[str] | FeatureService | str, *, full_feature_names: bool = False
    ) -> Selection:
        """Resolve a request into the views to read and the on-demand views to run (cached).

        Raises:
            NotFoundError: an unknown service, view or feature; the message lists what exists.
            InvalidInputError: two features would share an output name.
        """
        cache_key = (
            features.name
            if isinstance(features, FeatureService)
            else (features if isinstance(features, str) else tuple(features)),
            full_feature_names,
        )
        found = self._selections.get(cache_key)
        if found is not None:
            return found
        refs = self.refs_of(features)
        outputs = tuple(
            r.replace(":", "__") if full_feature_names else r.split(":")[1] for r in refs
        )
        dup = sorted({o for o in outputs if outputs.count(o) > 1})
        if dup:
            raise InvalidInputError(
                f"features {dup} come from more than one view; pass full_feature_names=True "
                "to name outputs 'view__feature'"
            )
        wanted: dict[str, dict[str, str | None]] = {}  # view → feature → output name
        odfv: dict[str, dict[str, str]] = {}
        for ref, out in zip(refs, outputs, strict=True):
            view, _, feat = ref.partition(":")
            if view in self.on_demand:
                odfv.setdefault(view, {})[feat] = out
            else:
                wanted.setdefault(view, {})[feat] = out
        parts_od: list[OnDemandPart] = []
        request: list[str] = []
        for name, feats in odfv.items():
            od, version = self.on_demand[name]
            inputs: list[tuple[str, str]] = []
            view_fields = {src: self.features_of(src) for src in od.view_sources}
            for src in od.view_sources:
                for f in view_fields[src]:
                    wanted.setdefault(src, {}).setdefault(f.name, None)
                    inputs.append((src, f.name))
            req = tuple(f.name for f in od.request_fields)
            request.extend(r for r in req if r not in request)
            schema = {f.name: f for f in od.output_fields}
            parts_od.append(
                OnDemandPart(
                    od,
                    version,
                    tuple(inputs),
                    req,
                    tuple(schema[f] for f in feats),
                    tuple(feats.values()),
                    view_fields,
                )
            )
        parts: list[ViewPart] = []
        keys: list[str] = []
        for name, chosen in wanted.items():
            fv, fv_version = self.views[name]
            jk = self.join_keys(fv)
            keys.extend(k for k in jk if k not in keys)
            by_name = {f.name: f for f in fv.fields(jk)}
            parts.append(
                ViewPart(
                    fv, fv_version, jk, tuple(by_name[f] for f in chosen), tuple(chosen.values())
                )
            )
        selection = Selection(
            refs, outputs, tuple(parts), tuple(parts_od), tuple(keys), tuple(request)
        )
        self._selections[cache_key] = selection
        return selection
