"""Assemble a DataPlane from the serving settings.

``wiring.py`` picks the implementations (the metadata DB, the artifact store); this module
only composes serving's own parts on top of what it is given: the model manager, the
traffic policies and the prediction log over the chosen artifact store. It is called by
the server's composition roots (``bascule serve``, ``http.inference.app.build_app``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from bascule.core.errors import ConfigError
from bascule.core.refs import ModelRef
from bascule.serving.dataplane import DataPlane, ModelSpec, PredictionSink
from bascule.serving.manager import ModelManager
from bascule.serving.router import Policy
from bascule.serving.usage_writer import UsageSink

if TYPE_CHECKING:
    from bascule.core.clock import Clock
    from bascule.core.settings import ServingSettings
    from bascule.features.store import FeatureStore
    from bascule.registry.service import RegistryService
    from bascule.serving.observer import ServingObserver
    from bascule.store.artifacts.base import ArtifactStore

__all__ = ["build_dataplane", "default_intra_op_threads", "model_specs"]


def default_intra_op_threads(workers: int) -> int:
    """onnxruntime threads per session: the usable CPUs over twice the workers, at least 1.

    Each worker runs its event loop on one core and its batcher thread on another; giving
    each session more threads than that only makes them compete (and spin).
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // (2 * max(1, workers)))


def model_specs(settings: ServingSettings) -> list[ModelSpec]:
    """One spec per served reference, with its traffic policy from ``settings.models``.

    A reference by alias (``fraud@champion``) with no challenger in ``settings.models``
    follows the rollout recorded on the model's history.

    Raises:
        ConfigError: no reference to serve, or a reference that does not parse.
        InvalidInputError: a malformed reference.
    """
    if not settings.refs:
        raise ConfigError(
            "no model to serve: give references like 'fraud@champion' to `bascule serve`, "
            "or list them under serving.refs in bascule.yaml"
        )
    specs = []
    for text in settings.refs:
        ref = ModelRef.parse(text)
        policy = settings.models.get(ref.name)
        if policy is None or policy.challenger is None or policy.mode is None:
            specs.append(ModelSpec(ref, follow_rollout=ref.alias is not None))
            continue
        specs.append(
            ModelSpec(
                ref,
                challenger=ModelRef.parse(policy.challenger),
                policy=Policy(policy.mode, policy.canary_percent),
                shadow_queue=policy.shadow_queue,
            )
        )
    return specs


def build_dataplane(
    registry: RegistryService,
    artifacts: ArtifactStore,
    settings: ServingSettings,
    *,
    clock: Clock,
    observer: ServingObserver | None = None,
    features: FeatureStore | Callable[[], FeatureStore] | None = None,
) -> DataPlane:
    """Build the data plane for ``settings.refs`` (not started: see ``DataPlane.start``).

    ``features`` is the feature store versions declaring a feature service look their
    features up in (or a function building it when first needed, e.g.
    ``lambda: services.features``).

    Raises:
        ConfigError: nothing to serve, or a model name served twice.
        InvalidInputError: a malformed reference.
    """
    threads = settings.intra_op_threads or default_intra_op_threads(settings.workers)
    manager = ModelManager(
        registry,
        clock=clock,
        batching=settings.batching,
        poll_interval_s=settings.poll_interval_s,
        intra_op_threads=threads,
        observer=observer,
        drain_timeout_s=settings.shutdown_timeout_s,
    )
    log: PredictionSink | None = None
    usage: UsageSink | None = None
    if settings.prediction_log.enabled:
        from bascule.store.predictions import PredictionLog
        from bascule.store.usage import UsageLog

        pl = settings.prediction_log
        log = PredictionLog(
            artifacts,
            max_buffer_rows=pl.max_buffer_rows,
            flush_rows=pl.flush_rows,
            flush_interval_s=pl.flush_interval_s,
            compression=pl.compression,
            clock=clock,
        )
        usage = UsageLog(artifacts)
    from bascule.serving.features import FeatureLookup

    return DataPlane(
        manager,
        model_specs(settings),
        clock=clock,
        prediction_log=log,
        observer=observer,
        features=FeatureLookup(features, clock=clock),
        usage_log=usage,
        usage_interval_s=settings.prediction_log.flush_interval_s,
    )
