"""The Python SDK: ``start_run``, ``register_model``, ``set_alias``, ``load_model``.

Services are built lazily, once per process, from :func:`bascule.core.settings.load_settings`
(``BASCULE_*`` variables and ``bascule.yaml``). :func:`configure` replaces them (tests, notebooks).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from bascule.sdk.runs import ActiveRun, TrackingBackend, active_run

if TYPE_CHECKING:
    from bascule.core.records import ModelEvent, ModelVersion
    from bascule.core.settings import Settings
    from bascule.features.store import FeatureStore
    from bascule.features.training import FeatureLineage
    from bascule.registry.predictor import OnnxPredictor
    from bascule.wiring import Services

__all__ = [
    "ActiveRun",
    "active_run",
    "configure",
    "feature_store",
    "load_model",
    "register_model",
    "services",
    "set_alias",
    "start_run",
]

_lock = threading.Lock()
_state: dict[str, Any] = {"services": None, "backend": None}


def configure(settings: Settings | None = None, *, services: Services | None = None) -> Services:
    """(Re)build the SDK's services from ``settings`` (default: :func:`load_settings`)."""
    from bascule.core.settings import load_settings
    from bascule.sdk.backends import LocalBackend, RemoteBackend
    from bascule.wiring import build_services

    with _lock:
        old = _state["services"]
        if services is None:
            services = build_services(settings or load_settings())
        backend: TrackingBackend
        if services.settings.tracking.uri:
            backend = RemoteBackend(services.settings.tracking.uri)
        else:
            backend = LocalBackend(services.tracking)
        _state["services"] = services
        _state["backend"] = backend
    if old is not None and old is not services:
        old.close()
    return services


def services() -> Services:
    """The SDK's services, built on first use."""
    current: Services | None = _state["services"]
    return current if current is not None else configure()


def _backend() -> TrackingBackend:
    services()
    backend: TrackingBackend = _state["backend"]
    return backend


def start_run(
    experiment: str | None = None,
    *,
    name: str | None = None,
    tags: dict[str, str] | None = None,
    parent: ActiveRun | str | None = None,
) -> ActiveRun:
    """Start a run (use it with ``with``). A run started inside another is nested under it.

    Example::

        with bascule.start_run(experiment="fraud", name="baseline") as run:
            run.log_params({"max_depth": 6})
            for epoch in range(10):
                run.log_metrics({"loss": 1 / (epoch + 1)}, step=epoch)

    Raises:
        InvalidInputError: a bad name or tag.
        RunNotFoundError: ``parent`` does not exist.
    """
    settings = services().settings
    parent_id = parent.id if isinstance(parent, ActiveRun) else parent
    if parent_id is None and (outer := active_run()) is not None:
        parent_id = outer.id
    backend = _backend()
    run = backend.start_run(
        experiment=experiment, name=name, tags=tags or {}, parent_run_id=parent_id
    )
    return ActiveRun(
        backend,
        run,
        max_buffered=settings.tracking.max_buffered_metrics,
        flush_interval_s=settings.tracking.flush_interval_s,
    )


def register_model(
    name: str,
    model: Any,
    *,
    sample: Any,
    run: ActiveRun | None = None,
    metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
    description: str = "",
    feature_service: str | None = None,
    feature_lineage: FeatureLineage | None = None,
    missing_features: str | None = None,
) -> ModelVersion:
    """Convert a fitted model to ONNX, check parity on ``sample`` and register a new version.

    With ``run``, the version records the run, the fingerprint of the last data set the run
    logged, and (unless ``metrics`` is given) the run's latest metrics.

    With ``feature_service``, the server looks the model's features up in the online store:
    a request may send only the service's entity keys and request fields. Pass the training
    set's ``lineage`` as ``feature_lineage`` to record which feature-view versions and data
    the model was trained on (and to check they are the ones the service serves). A row
    whose features the online store lacks (or holds past the TTL) is refused; with
    ``missing_features="null"`` the model gets missing values there, as in its training set::

        train = store.get_historical_features(entity_df, "fraud_features")
        frame = train.to_df()
        bascule.sdk.register_model(
            "fraud", model, sample=frame[columns],
            feature_service="fraud_features", feature_lineage=train.lineage,
        )

    Raises:
        UnsupportedModelError, ParityError, InvalidInputError.
        FeatureServiceNotFoundError: an unknown feature service (the message lists them).
    """
    run_id = None
    dataset_digest = None
    if run is not None:
        info = run.info
        run_id = run.id
        dataset_digest = (
            run.last_dataset.digest
            if run.last_dataset
            else (info.datasets[-1].digest if info.datasets else None)
        )
        if metrics is None:
            metrics = {k: m.value for k, m in info.metrics.items()}
    return services().registry.register(
        name,
        model,
        sample=sample,
        run_id=run_id,
        dataset_digest=dataset_digest,
        metrics=metrics,
        tags=tags,
        description=description,
        feature_service=feature_service,
        feature_lineage=feature_lineage,
        missing_features=missing_features,
    )


def set_alias(name: str, alias: str, version: int, *, reason: str = "") -> ModelEvent:
    """Point ``alias`` (e.g. ``champion``) at ``version`` atomically; the move is audited.

    Raises:
        ModelNotFoundError, VersionNotFoundError, InvalidInputError.
    """
    return services().registry.set_alias(name, alias, version, reason=reason)


def feature_store() -> FeatureStore:
    """The project's feature store (definitions from ``bascule.yaml``; SQLite or Redis online).

    Example::

        store = bascule.sdk.feature_store()
        store.get_online_features([{"customer_id": 42}], ["spend:spend_7d"])
    """
    return services().features


def load_model(ref: str) -> OnnxPredictor:
    """A predictor for ``"name@alias"``, ``"name:version"`` or ``"name"`` (newest), run by
    onnxruntime.

    Raises:
        ModelNotFoundError, VersionNotFoundError, AliasNotFoundError, IntegrityError.
    """
    return services().registry.load(ref)
