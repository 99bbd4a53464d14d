"""Online features for served models: entity ids in, the model's inputs out.

A model version registered with ``feature_service="fraud_features"`` carries a
:class:`~bascule.core.feature_binding.FeatureServiceBinding`. A V2 request to it may then
send only the entity keys (``customer_id``), the request fields of the service's on-demand
features, and the model inputs the service does not provide; :class:`FeatureLookup` looks
the features of every row up in one bulk read of the online store (off the event loop), runs
the on-demand features with the same code as the training sets, and hands the model its
inputs in signature order. A request that sends every model input itself is served as is.

Nothing is ever made up: a row whose entity is not in the online store, whose values are
older than the view's TTL, or null, makes the request fail with
:class:`FeaturesUnavailableError` (422) naming the entity keys and the features. A version
registered with ``missing_features="null"`` gets missing values there instead (NaN for a
floating-point input, no category for a text one), which is what the point-in-time join gave
such rows in its training set. An online store that cannot be reached is a
:class:`FeatureStoreUnavailableError` (503).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

import numpy as np

from bascule.core.clock import Clock, SystemClock
from bascule.core.errors import (
    ConfigError,
    FeatureInputError,
    FeatureStoreUnavailableError,
    FeaturesUnavailableError,
    InvalidInputError,
    NotFoundError,
    StorageError,
)
from bascule.core.feature_binding import FeatureServiceBinding
from bascule.core.tensors import Tensor
from bascule.serving.feeds import MATRIX_INPUT, Feeds, column_values
from bascule.serving.runtime import ServedModel

if TYPE_CHECKING:
    from bascule.features.online import OnlineFeatures

__all__ = ["FeatureLookup", "FeatureLookupStats", "LookedUp", "OnlineFeatureSource"]

_PRESENT: Final = "PRESENT"
_NULL: Final = "NULL_VALUE"
_WHY: Final = {
    "NOT_FOUND": "not in the online store",
    "OUTSIDE_MAX_AGE": "older than the view's TTL",
    _NULL: "null",
}
_SHOWN_ROWS: Final = 5


@runtime_checkable
class OnlineFeatureSource(Protocol):
    """Where features are looked up: :class:`bascule.features.FeatureStore` (or a fake)."""

    def get_online_features(
        self, entity_rows: Mapping[str, Sequence[Any]], features: Sequence[str]
    ) -> OnlineFeatures:
        """Latest values, statuses and event times of ``features`` for entity rows given
        as columns.

        Raises:
            InvalidInputError: a join key or request field is missing from the rows.
            NotFoundError: an unknown view or feature.
            StorageError: the online store cannot be reached.
        """
        ...


@dataclass(frozen=True)
class LookedUp:
    """What a lookup gave a request (for the prediction log).

    Attributes:
        service: The feature service the features came from.
        entities: Entity keys (and request fields) as sent, one list per name.
        event_times: Per feature view, the event time of each row's values (None: none).
    """

    service: str
    entities: dict[str, list[Any]]
    event_times: dict[str, list[datetime | None]]


@dataclass(frozen=True)
class FeatureLookupStats:
    """Counts since the server started, by model (``errors`` by model and reason).

    ``ages`` holds, by model and feature view, how many looked-up rows had values and the
    sum of their ages in seconds (answer time minus the values' event time): freshness.
    """

    lookups: dict[str, int]
    rows: dict[str, int]
    errors: dict[tuple[str, str], int]
    ages: dict[tuple[str, str], tuple[int, float]]


class FeatureLookup:
    """Completes the inputs of requests to models that declare a feature service.

    Args:
        store: The feature store (or a function building it on first use, so servers of
            models without a feature service never open it); None when there is none.
        clock: The wall clock the ages of feature values are measured with.
    """

    def __init__(
        self,
        store: OnlineFeatureSource | Callable[[], OnlineFeatureSource] | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self._ages: dict[tuple[str, str], tuple[int, float]] = {}
        self._factory: Callable[[], OnlineFeatureSource] | None = None
        self._store: OnlineFeatureSource | None = None
        if isinstance(store, OnlineFeatureSource) or store is None:
            self._store = store
        else:
            self._factory = store
        self._building = threading.Lock()
        self._lookups: Counter[str] = Counter()
        self._rows: Counter[str] = Counter()
        self._errors: Counter[tuple[str, str]] = Counter()

    def _feature_store(
        self, model: ServedModel, binding: FeatureServiceBinding
    ) -> OnlineFeatureSource:
        """The store, built by the factory on first use (in a worker thread: it may open
        databases)."""
        if self._store is not None:
            return self._store
        if self._factory is None:
            raise ConfigError(
                f"model '{model.name}' version {model.version} looks its features up in "
                f"feature service {binding.service!r}, but this server has no feature "
                "store; send every model input, or serve it with `bascule serve`"
            )
        with self._building:
            if self._store is None:
                self._store = self._factory()
        return self._store

    def _lookup(
        self, model: ServedModel, binding: FeatureServiceBinding, keys: Mapping[str, list[Any]]
    ) -> OnlineFeatures:
        return _read(self._feature_store(model, binding), binding, keys)

    def stats(self) -> FeatureLookupStats:
        """Lookups, rows looked up and errors so far (for ``/metrics``)."""
        return FeatureLookupStats(
            dict(self._lookups), dict(self._rows), dict(self._errors), dict(self._ages)
        )

    async def feeds(
        self, model: ServedModel, inputs: Sequence[Tensor]
    ) -> tuple[Feeds, LookedUp | None]:
        """The model's feeds for a request: its own inputs, or completed by a lookup.

        Returns:
            The feeds, and what was looked up (None when the request sent every input).

        Raises:
            FeatureInputError: an entity key or request field is missing (400).
            InvalidInputError: an input the model does not take, or bad tensors (400).
            FeaturesUnavailableError: entities missing from the online store, or expired
                values (422).
            FeatureStoreUnavailableError: the online store cannot be reached (503).
        """
        binding = model.feature_binding
        if binding is None or _complete(model, inputs):
            return model.feeds(inputs), None
        try:
            tensors, used = await self._complete(model, binding, inputs)
        except FeatureStoreUnavailableError:
            self._errors[(model.name, "store_unavailable")] += 1
            raise
        except FeaturesUnavailableError:
            self._errors[(model.name, "features_unavailable")] += 1
            raise
        except InvalidInputError:
            self._errors[(model.name, "invalid_input")] += 1
            raise
        return model.feeds(tensors), used

    async def _complete(
        self, model: ServedModel, binding: FeatureServiceBinding, inputs: Sequence[Tensor]
    ) -> tuple[list[Tensor], LookedUp]:
        columns = model.signature.column_names
        required = binding.required_inputs(columns)
        sent = {t.name: t for t in inputs}
        missing = [r for r in required if r not in sent]
        looked_up = [c for c in columns if c not in binding.passthrough(columns)]
        if missing:
            raise FeatureInputError(
                f"model '{model.name}' version {model.version} looks its features up in "
                f"feature service {binding.service!r}; the request lacks input(s) "
                f"{', '.join(repr(m) for m in missing)}: send {list(required)} (one value per "
                f"row), or every model input {columns}",
                field=f"input {missing[0]!r}",
                value=sorted(sent),
                expected=str(list(required)),
                missing=missing,
                required=list(required),
            )
        extra = [n for n in sent if n not in required]
        if extra:
            what = (
                f"is looked up in feature service {binding.service!r} by"
                if extra[0] in looked_up
                else "is not an input of"
            )
            raise InvalidInputError(
                f"input {extra[0]!r} {what} model '{model.name}' version {model.version}; "
                f"send only {list(required)} (the features of service {binding.service!r} are "
                f"looked up), or every model input {columns}",
                field=f"input {extra[0]!r}",
                value=sorted(sent),
                expected=str(list(required)),
            )
        values = {n: _values(sent[n]) for n in required}
        rows = {len(v) for v in values.values()}
        if len(rows) != 1 or 0 in rows:
            raise InvalidInputError(
                f"inputs {list(required)} sent {sorted(rows)} rows; expected the same number "
                "of rows (at least one) in each",
                field="inputs",
                value=sorted(rows),
                expected="the same number of rows in each input",
            )
        keys = {k: values[k] for k in (*binding.entity_keys, *binding.request_fields)}
        loop = asyncio.get_running_loop()
        online = await loop.run_in_executor(None, self._lookup, model, binding, keys)
        n = rows.pop()
        self._lookups[model.name] += 1
        self._rows[model.name] += n
        _refuse_missing(model, binding, online, looked_up, n)
        tensors = []
        for col in model.signature.columns:
            if col.name in sent:
                tensors.append(sent[col.name])
            else:
                tensors.append(_tensor(col.name, col.datatype, online.features[col.name].values))
        times = {}
        for ref in binding.refs:
            view, _, feat = ref.partition(":")
            found = online.features.get(feat)
            if found is not None and view not in times and any(found.event_timestamps):
                times[view] = found.event_timestamps
        now = self._clock.now_utc()
        for view, stamps in times.items():
            ages = [(now - t).total_seconds() for t in stamps if t is not None]
            count, total = self._ages.get((model.name, view), (0, 0.0))
            self._ages[(model.name, view)] = (count + len(ages), total + sum(ages))
        return tensors, LookedUp(binding.service, keys, times)


def _complete(model: ServedModel, inputs: Sequence[Tensor]) -> bool:
    """Whether the request sends every model input (or the one 2-D matrix)."""
    if len(inputs) == 1 and inputs[0].name == MATRIX_INPUT:
        return True
    names = {t.name for t in inputs}
    return all(c in names for c in model.signature.column_names)


def _values(tensor: Tensor) -> list[Any]:
    out: list[Any] = column_values(tensor).tolist()
    return out


def _read(
    store: OnlineFeatureSource, binding: FeatureServiceBinding, keys: Mapping[str, list[Any]]
) -> OnlineFeatures:
    """One bulk lookup of every row (runs in a worker thread)."""
    try:
        return store.get_online_features(keys, list(binding.refs))
    except StorageError as exc:
        raise FeatureStoreUnavailableError(
            f"the online feature store cannot be reached, so the features of service "
            f"{binding.service!r} cannot be looked up ({exc.message}); retry later, or send "
            "every model input",
            **exc.details,
        ) from exc
    except NotFoundError as exc:
        raise FeaturesUnavailableError(
            f"feature service {binding.service!r} was registered with features "
            f"{list(binding.refs)}, which are no longer all defined: {exc.message}; apply the "
            "feature definitions again, or register a new model version",
        ) from exc
    except FeatureInputError:
        raise
    except InvalidInputError as exc:
        if exc.field != "entity_rows":
            raise
        raise FeatureInputError(
            f"feature service {binding.service!r}: {exc.message}", **exc.details
        ) from exc


def _refuse_missing(
    model: ServedModel,
    binding: FeatureServiceBinding,
    online: OnlineFeatures,
    looked_up: Sequence[str],
    n: int,
) -> None:
    """Raise FeaturesUnavailableError when any row lacks a usable value of a feature.

    With the ``null`` policy, floating-point and text inputs take a missing value instead
    (whole-number inputs cannot hold one).
    """
    nullable: set[str] = set()
    if binding.missing == "null":
        kinds = ("FP16", "FP32", "FP64", "BYTES")
        nullable = {c.name for c in model.signature.columns if c.datatype in kinds}
    bad: dict[int, list[tuple[str, str]]] = {}
    for name in looked_up:
        statuses = online.features[name].statuses
        if all(s == _PRESENT for s in statuses):
            continue
        for i, status in enumerate(statuses):
            if status == _PRESENT or name in nullable:
                continue
            bad.setdefault(i, []).append((name, status))
    if not bad:
        return
    shown: list[str] = []
    rows: list[dict[str, Any]] = []
    for i in sorted(bad):
        entity = ", ".join(f"{k}={online.entities[k][i]!r}" for k in binding.entity_keys)
        by_status: dict[str, list[str]] = {}
        for feat, status in bad[i]:
            by_status.setdefault(status, []).append(feat)
        why = "; ".join(f"{_WHY.get(s, s)}: {', '.join(f)}" for s, f in by_status.items())
        keys = {k: online.entities[k][i] for k in binding.entity_keys}
        rows.append({"row": i, "entity": keys, "features": dict(bad[i])})
        if len(shown) < _SHOWN_ROWS:
            shown.append(f"row {i} ({entity}): {why}")
    more = f" … and {len(bad) - _SHOWN_ROWS} more row(s)" if len(bad) > _SHOWN_ROWS else ""
    raise FeaturesUnavailableError(
        f"model '{model.name}' version {model.version}: features of service "
        f"{binding.service!r} are unavailable for {len(bad)} of {n} row(s), so no prediction "
        f"is made: {' | '.join(shown)}{more}. Check the entity keys, materialise the feature "
        "views (`bascule features materialize`), or send every model input",
        rows=rows[:100],
        service=binding.service,
    )


def _tensor(name: str, datatype: str, values: list[Any]) -> Tensor:
    """A looked-up feature as the input tensor the model's column takes."""
    if datatype == "BYTES":
        return Tensor(
            name, "BYTES", np.array([None if v is None else str(v) for v in values], dtype=object)
        )
    array = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return Tensor(name, "FP64", array)
