"""FeatureStore: the feature store's one entry point, shaped like Feast's.

::

    store = services.features                     # built by bascule.wiring
    store.apply([customer, customer_stats, fraud_v1])
    train = store.get_historical_features(entity_df, ["customer_stats:spend_7d"]).to_df()
    store.materialize_incremental(end=datetime.now(UTC))
    store.get_online_features([{"customer_id": 42}], "fraud_v1").to_dict()

The CLI (``bascule features …``) and the control plane's debugging endpoint are thin layers
over it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bascule.core.clock import Clock, now_ms
from bascule.core.errors import FeatureServiceNotFoundError, InvalidInputError, StorageError
from bascule.core.feature_binding import FeatureServiceBinding
from bascule.core.settings import FeatureSettings
from bascule.features.catalog import Catalog, Selection, not_found
from bascule.features.definitions import Definition, load_definitions
from bascule.features.materialize import (
    MaterializeResult,
    ProgressFn,
    materialize_view,
    ms_of,
    start_for_incremental,
)
from bascule.features.offline import DuckDBOfflineStore
from bascule.features.online import OnlineFeatures, entity_columns, read_online
from bascule.features.registry import FeatureRegistry
from bascule.features.training import OnDemandLineage, TrainingSet, ViewLineage
from bascule.features.views import (
    Entity,
    FeatureService,
    FeatureView,
    FileSource,
    OnDemandFeatureView,
    SqlSource,
)
from bascule.store.db.features import AppliedChange, FeatureDefinition, FeatureRepository, Watermark
from bascule.store.online.base import OnlineStore

__all__ = ["FeatureStore"]

Features = Sequence[str] | FeatureService | str
"""``["view:feature", "view", …]``, a :class:`FeatureService`, or a service name."""


def _describe(source: FileSource | SqlSource) -> str:
    return source.path if isinstance(source, FileSource) else source.query


class FeatureStore:
    """Definitions, training sets (offline), materialisation and online lookups."""

    def __init__(
        self,
        repository: FeatureRepository,
        online: OnlineStore | Callable[[], OnlineStore],
        clock: Clock,
        *,
        settings: FeatureSettings,
        actor: str = "unknown",
        spill_dir: Path | None = None,
    ) -> None:
        self._repo = repository
        self._online_factory = online if callable(online) else None
        self._online = None if callable(online) else online
        self._clock = clock
        self._settings = settings
        self.offline = DuckDBOfflineStore(
            memory_limit=settings.offline_memory_limit,
            temp_dir=spill_dir,
            threads=settings.offline_threads,
        )
        self.registry = FeatureRegistry(
            repository, self.offline, clock, ttl_s=settings.registry_ttl_s, actor=actor
        )

    @property
    def online_store(self) -> OnlineStore:
        """The online store (connected on first use)."""
        if self._online is None:
            if self._online_factory is None:  # pragma: no cover - one of the two is always set
                raise InvalidInputError("no online store configured")
            self._online = self._online_factory()
        return self._online

    def close(self) -> None:
        """Release the online store's connections and the DuckDB database."""
        if self._online is not None:
            self._online.close()
        self.offline.close()

    # -- definitions ----------------------------------------------------------------------------

    def configured_definitions(self) -> list[Definition]:
        """The definitions in the settings' ``features:`` section (``bascule.yaml``).

        Raises:
            ConfigError: listing every mistake with its place.
        """
        s = self._settings
        return load_definitions(
            entities=s.entities,
            views=s.views,
            on_demand_views=s.on_demand_views,
            services=s.services,
        )

    def plan(
        self, objects: Sequence[Definition], objects_to_delete: Sequence[Definition] = ()
    ) -> list[str]:
        """What would stop :meth:`apply` (an empty list when it would succeed).

        Raises:
            StorageError: the metadata DB failed.
        """
        return self.registry.plan(objects, objects_to_delete)

    def undeclared(self, objects: Sequence[Definition]) -> list[Definition]:
        """Registered definitions that ``objects`` does not declare: what
        ``bascule features apply`` removes when its file no longer has them.

        Raises:
            StorageError: the metadata DB failed.
        """
        return self.registry.undeclared(objects)

    def apply(
        self,
        objects: Sequence[Definition],
        objects_to_delete: Sequence[Definition] | None = None,
        partial: bool = True,
    ) -> list[AppliedChange]:
        """Register definitions; each changed one gets a new version (one transaction).

        As in Feast, definitions left out of ``objects`` stay registered; to remove some, pass
        them as ``objects_to_delete`` with ``partial=False`` (``undeclared(objects)`` lists
        those a full set of definitions no longer has). A removal is a version too (who, when;
        ``features show`` lists it), in the same transaction as the rest. A removed view's
        rows are dropped from the online store and its watermarks deleted; looking up a
        removed view or service then fails with a message that says it was removed.

        Raises:
            InvalidInputError: every problem found (unknown entities or views, a source column
                missing or of another type than declared, a removed definition that one which
                stays still uses, ``objects_to_delete`` without ``partial=False``); nothing
                was written.
            StorageError: the metadata DB or the online store failed (when the online store
                cannot be reached before the apply, nothing was written).
        """
        remove = list(objects_to_delete or ())
        if remove and partial:
            raise InvalidInputError.for_field(
                "partial", partial, "False when objects_to_delete is given (as in Feast)"
            )
        views_removed = [o.name for o in remove if isinstance(o, FeatureView)]
        if views_removed:
            self.online_store.ping()  # fail before writing anything when it is down
        changes = self.registry.apply(objects, remove)
        stale = [c.name for c in changes if c.kind == "view" and c.status == "removed"]
        # A view applied again after its removal starts from an empty online table.
        stale += [
            c.name for c in changes if c.kind == "view" and c.status == "created" and c.version > 1
        ]
        for name in stale:
            try:
                self.online_store.drop_table(name)
            except StorageError as exc:
                raise StorageError(
                    f"feature view {name!r} is {'removed' if name in views_removed else 'applied'}"
                    f" in the registry, but its rows could not be dropped from the online store "
                    f"{self.online_store.url}: {exc.message}. They are not served; apply again "
                    "or drop them by hand.",
                    url=self.online_store.url,
                ) from exc
        return changes

    def _catalog(self) -> Catalog:
        return self.registry.catalog()

    def list_entities(self) -> list[Entity]:
        """Registered entities, by name."""
        return [self._catalog().entities[n] for n in sorted(self._catalog().entities)]

    def list_feature_views(self) -> list[FeatureView]:
        """Registered feature views, by name."""
        cat = self._catalog()
        return [cat.views[n][0] for n in sorted(cat.views)]

    def list_on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        """Registered on-demand feature views, by name."""
        cat = self._catalog()
        return [cat.on_demand[n][0] for n in sorted(cat.on_demand)]

    def list_feature_services(self) -> list[FeatureService]:
        """Registered feature services, by name."""
        cat = self._catalog()
        return [cat.services[n][0] for n in sorted(cat.services)]

    def get_feature_view(self, name: str) -> FeatureView:
        """One feature view.

        Raises:
            NotFoundError: no such view; the message lists the views.
        """
        cat = self._catalog()
        if name not in cat.views:
            raise not_found("feature view", name, cat.views, cat.removal(name, "view"))
        return cat.views[name][0]

    def get_feature_service(self, name: str) -> FeatureService:
        """One feature service.

        Raises:
            NotFoundError: no such service; the message lists the services.
        """
        cat = self._catalog()
        if name not in cat.services:
            raise not_found("feature service", name, cat.services, cat.removal(name, "service"))
        return cat.services[name][0]

    def bind_service(self, name: str) -> FeatureServiceBinding:
        """What a model version declaring the service ``name`` records: the service's version,
        its feature refs, the view versions behind them, and the entity keys and request
        fields a request must carry for an online lookup.

        Raises:
            FeatureServiceNotFoundError: no such service; the message lists the services.
            NotFoundError: the service names a view or feature that no longer exists.
            StorageError: the metadata DB failed.
        """
        cat = self._catalog()
        if name not in cat.services:
            gone = cat.removal(name, "service")
            raise not_found(
                "feature service", name, cat.services, gone, error=FeatureServiceNotFoundError
            )
        version = cat.services[name][1]
        sel = cat.select(name)
        views = [f"{p.view.name}@v{p.version}" for p in sel.views]
        views += [f"{p.view.name}@v{p.version}" for p in sel.on_demand]
        return FeatureServiceBinding(
            service=name,
            version=version,
            refs=sel.refs,
            views=tuple(views),
            entity_keys=sel.join_keys,
            request_fields=sel.request,
        )

    def definitions(self) -> list[FeatureDefinition]:
        """The latest version of every definition, with its spec and fingerprint."""
        return self.registry.definitions()

    def describe(self, name: str) -> dict[str, Any]:
        """A definition's kind, versions (oldest first, a removal's tombstone last), whether it
        was removed and, for a view in force, its materialisation.

        Raises:
            NotFoundError: nothing has that name; the message lists what exists.
            StorageError: the metadata DB failed.
        """
        kind, versions = self.registry.versions(name)
        removed = bool(versions) and versions[-1].removed
        out: dict[str, Any] = {"kind": kind, "name": name, "versions": versions}
        out["removed"] = removed
        if kind == "view" and not removed:
            out["watermark"] = self._repo.watermark(name, self.online_store.url)
        return out

    def watermark(self, view: str) -> Watermark | None:
        """How far ``view`` is materialised into the configured online store."""
        return self._repo.watermark(view, self.online_store.url)

    # -- training sets --------------------------------------------------------------------------

    def get_historical_features(
        self,
        entity_df: Any,
        features: Features,
        *,
        full_feature_names: bool = False,
        timestamp_column: str = "event_timestamp",
    ) -> TrainingSet:
        """A point-in-time-correct training set: per entity row, the latest feature values at or
        before its timestamp and within each view's TTL. Every entity row comes back, in order.

        ``entity_df`` is a pandas DataFrame, a pyarrow Table, or a Parquet path with the join
        keys, ``timestamp_column`` and any request fields of on-demand views.

        Raises:
            NotFoundError: an unknown view, feature or service; the message lists what exists.
            InvalidInputError: the entity rows lack the timestamp or a join key (named), or
                already hold a column a feature would take.
        """
        selection = self._catalog().select(features, full_feature_names=full_feature_names)
        cat = self._catalog()
        views = [
            ViewLineage(
                name=p.view.name,
                version=p.version,
                fingerprint=cat.fingerprints.get(p.view.name, ""),
                data_fingerprint=self.offline.data_fingerprint(p.view.source),
                source=_describe(p.view.source),
                features=tuple(f.name for f in p.features),
            )
            for p in selection.views
        ]
        od = [
            OnDemandLineage(
                name=p.view.name,
                version=p.version,
                fingerprint=cat.fingerprints.get(p.view.name, ""),
                function=p.view.function_name,
                code_hash=p.view.code_hash,
            )
            for p in selection.on_demand
        ]
        return TrainingSet(
            self.offline,
            entity_df,
            selection,
            timestamp_column=timestamp_column,
            lineage_parts=(views, od),
        )

    # -- materialisation ------------------------------------------------------------------------

    def _view_parts(self, views: Sequence[str] | None) -> Selection:
        cat = self._catalog()
        names = list(views) if views else sorted(cat.views)
        for n in names:
            if n not in cat.views:
                raise not_found("feature view", n, cat.views, cat.removal(n, "view"))
        if not names:
            raise InvalidInputError("no feature views are registered; run apply first")
        return cat.select(list(names), full_feature_names=True)

    def materialize(
        self,
        start: datetime,
        end: datetime,
        *,
        views: Sequence[str] | None = None,
        progress: ProgressFn | None = None,
    ) -> list[MaterializeResult]:
        """Write the latest value per entity with ``start <= event time < end`` online.

        Idempotent (a newer stored value is never replaced by an older one) and resumable
        (running the same window again continues after the last batch written).

        Raises:
            NotFoundError: an unknown view.
            InvalidInputError: ``end`` is not after ``start``, or a source cannot be read.
            StorageError: the online store or the metadata DB failed.
        """
        start_ms, end_ms = ms_of(start), ms_of(end)
        if end_ms <= start_ms:
            raise InvalidInputError(f"materialize: end {end} is not after start {start}")
        return [
            self._run(part, start_ms, end_ms, progress) for part in self._view_parts(views).views
        ]

    def materialize_incremental(
        self,
        end: datetime | None = None,
        *,
        views: Sequence[str] | None = None,
        progress: ProgressFn | None = None,
    ) -> list[MaterializeResult]:
        """Materialise each view from where it stopped (else ``end - ttl``) up to ``end`` (now).

        Raises:
            NotFoundError: an unknown view.
            InvalidInputError: a source cannot be read.
            StorageError: the online store or the metadata DB failed.
        """
        end_ms = ms_of(end) if end is not None else now_ms(self._clock)
        out = []
        for part in self._view_parts(views).views:
            mark = self._repo.watermark(part.view.name, self.online_store.url)
            start_ms = start_for_incremental(mark, part, end_ms)
            if start_ms < end_ms:
                out.append(self._run(part, start_ms, end_ms, progress))
        return out

    def _run(
        self, part: Any, start_ms: int, end_ms: int, progress: ProgressFn | None
    ) -> MaterializeResult:
        return materialize_view(
            part,
            start_ms=start_ms,
            end_ms=end_ms,
            online=self.online_store,
            offline=self.offline,
            repository=self._repo,
            clock=self._clock,
            batch_rows=self._settings.materialize_batch_rows,
            progress=progress,
        )

    # -- online -----------------------------------------------------------------------------------

    def get_online_features(
        self,
        entity_rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
        features: Features,
        *,
        full_feature_names: bool = False,
    ) -> OnlineFeatures:
        """Latest values for entity rows (``[{"customer_id": 1}]`` or ``{"customer_id": [1]}``),
        with statuses and event times; a missing entity gives nulls with status ``NOT_FOUND``.

        Raises:
            NotFoundError: an unknown view, feature or service; the message lists what exists.
            InvalidInputError: a join key or request field missing from the rows (named).
            StorageError: the online store is unreachable (never answered with filled values).
        """
        selection = self._catalog().select(features, full_feature_names=full_feature_names)
        n, cols = entity_columns(entity_rows)
        return read_online(self.online_store, selection, n, cols, now_ms(self._clock))
