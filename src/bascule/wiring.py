"""The composition root: the one place that picks implementations from the settings."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bascule.core.clock import Clock, SystemClock
from bascule.core.settings import Settings
from bascule.registry.service import RegistryService
from bascule.store.artifacts.base import ArtifactStore
from bascule.store.db.engine import Database
from bascule.store.db.models import ModelRepository
from bascule.store.db.runs import RunRepository
from bascule.tracking.service import TrackingService

if TYPE_CHECKING:
    import httpx
    import pandas as pd

    from bascule.core.project_settings import ProjectSettings
    from bascule.features.store import FeatureStore
    from bascule.monitoring.schedule import MonitorScheduler
    from bascule.monitoring.service import MonitoringService
    from bascule.pipelines.automation import RetrainAutomation
    from bascule.pipelines.retrain import Retrainer
    from bascule.pipelines.triggers import Spawn
    from bascule.store.online.base import OnlineStore
    from bascule.store.usage import UsageRecord

__all__ = [
    "Services",
    "build_retrain_automation",
    "build_retrainer",
    "build_services",
    "default_actor",
    "open_artifact_store",
    "open_online_store",
    "require_project",
]


def default_actor(settings: Settings) -> str:
    """Who is recorded as acting: the configured actor, else the OS user."""
    if settings.actor:
        return settings.actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def open_artifact_store(settings: Settings) -> ArtifactStore:
    """A local folder store, or an S3-compatible one for ``s3://`` roots."""
    root = settings.artifacts_value
    if root.startswith("s3://"):
        from bascule.store.artifacts.s3 import S3ArtifactStore

        return S3ArtifactStore.from_url(root, settings.s3)
    from bascule.store.artifacts.local import LocalArtifactStore

    return LocalArtifactStore(Path(root))


def open_online_store(settings: Settings) -> OnlineStore:
    """The online feature store: Redis for ``redis://`` URLs, else SQLite (the default file).

    Raises:
        ConfigError: a Redis URL without the ``redis`` package (``bascule[redis]``).
        StorageError: the SQLite folder cannot be created.
    """
    url = settings.online_store_value
    if url.startswith(("redis://", "rediss://")):
        try:
            from bascule.store.online.redis import RedisOnlineStore
        except ImportError as exc:
            from bascule.core.errors import ConfigError

            raise ConfigError(
                "online_store is a Redis URL but the redis package is missing; "
                "install 'bascule[redis]'"
            ) from exc
        return RedisOnlineStore(url)
    from bascule.store.online.sqlite import SQLiteOnlineStore

    return SQLiteOnlineStore(Path(url.removeprefix("sqlite:///")))


@dataclass
class Services:
    """Every service of one bascule installation, built from one Settings."""

    settings: Settings
    db: Database
    artifacts: ArtifactStore
    tracking: TrackingService
    registry: RegistryService
    clock: Clock = field(default_factory=SystemClock)
    _features: FeatureStore | None = field(default=None, init=False, repr=False)
    _monitoring: MonitoringService | None = field(default=None, init=False, repr=False)
    _http: httpx.Client | None = field(default=None, init=False, repr=False)

    @property
    def features(self) -> FeatureStore:
        """The feature store, built on first use (so other commands never import it)."""
        if self._features is None:
            from bascule.features.store import FeatureStore
            from bascule.store.db.features import FeatureRepository

            settings = self.settings
            self._features = FeatureStore(
                FeatureRepository(self.db),
                lambda: open_online_store(settings),
                self.clock,
                settings=settings.features,
                actor=default_actor(settings),
                spill_dir=settings.home / "features" / "spill",
            )
        return self._features

    @property
    def monitoring(self) -> MonitoringService:
        """The monitoring service, built on first use: the prediction log in the artifact
        store, the metadata DB, cost matrices and notifiers from ``settings.monitoring``."""
        if self._monitoring is None:
            self._monitoring, self._http = _build_monitoring(self)
        return self._monitoring

    def monitor_scheduler(self) -> MonitorScheduler | None:
        """The scheduler of ``monitoring.schedule`` (None when no schedule is set).

        Raises:
            InvalidInputError: the schedule is not an interval or a valid cron expression.
        """
        schedule = self.settings.monitoring.schedule
        if schedule is None:
            return None
        from bascule.monitoring.schedule import MonitorScheduler, every
        from bascule.monitoring.windows import parse_duration

        if schedule[0].isdigit() and len(schedule.split()) == 1:
            next_after = every(parse_duration(schedule, field="monitoring.schedule"))
        else:
            from bascule.pipelines.cron import CronSchedule

            next_after = CronSchedule.parse(schedule).next_after
        return MonitorScheduler(self.monitoring, self.clock, next_after=next_after)

    def read_predictions(self, model: str, start: datetime, end: datetime) -> pd.DataFrame:
        """The prediction log of ``model`` with ``start <= timestamp < end``, ordered by time
        (one row per logged input row; see :func:`bascule.store.predictions.read_predictions`).

        Raises:
            InvalidInputError: ``start`` is after ``end``, or a bound is naive.
            StorageError: the log cannot be read.
        """
        from bascule.store.predictions import read_predictions

        return read_predictions(self.artifacts, model, start=start, end=end)

    def read_usage(self, model: str, start: datetime, end: datetime) -> list[UsageRecord]:
        """The inference servers' usage windows of ``model`` overlapping ``[start, end)``
        (answers, failures and CPU seconds per version; see
        :func:`bascule.store.usage.read_usage`).

        Raises:
            InvalidInputError: a naive bound, or ``start`` after ``end``.
            StorageError: the log cannot be read.
        """
        from bascule.store.usage import read_usage

        return read_usage(self.artifacts, model, start=start, end=end)

    def close(self) -> None:
        """Release pooled connections."""
        if self._features is not None:
            self._features.close()
        if self._http is not None:
            self._http.close()
        self.db.dispose()


def _build_monitoring(services: Services) -> tuple[MonitoringService, httpx.Client]:
    import httpx

    from bascule.business.costs import CostMatrix
    from bascule.monitoring.evaluation import cost_column
    from bascule.monitoring.notifiers import build_notifiers
    from bascule.monitoring.service import MonitoringService
    from bascule.store.db.monitoring import MonitoringRepository
    from bascule.store.predictions import read_predictions

    store = services.artifacts
    settings = services.settings.monitoring

    def reader(model: str, start: datetime, end: datetime) -> pd.DataFrame:
        return read_predictions(store, model, start=start, end=end)

    costs = {
        name: CostMatrix.from_settings(c, column=cost_column)
        for name, m in settings.models.items()
        if (c := m.cost) is not None
    }
    client = httpx.Client()
    service = MonitoringService(
        reader,
        MonitoringRepository(services.db),
        services.registry,
        services.clock,
        settings,
        costs=costs,
        notifiers=build_notifiers(settings.notifiers, client),
    )
    return service, client


def build_services(
    settings: Settings, *, clock: Clock | None = None, artifacts: ArtifactStore | None = None
) -> Services:
    """Build the services (migrating the metadata DB on first use).

    Raises:
        ConfigError: the database URL or artifact root cannot be used.
        StorageError: the database cannot be reached or migrated.
    """
    clock = clock or SystemClock()
    db = Database(settings.database_url_value)
    store = artifacts if artifacts is not None else open_artifact_store(settings)
    actor = default_actor(settings)
    services = Services(
        settings=settings,
        db=db,
        artifacts=store,
        tracking=TrackingService(RunRepository(db), store, clock, default_user=actor),
        registry=RegistryService(ModelRepository(db), store, clock, actor=actor),
        clock=clock,
    )
    # register(feature_service=...) resolves names in the feature store, built on first use.
    services.registry.use_feature_services(lambda name: services.features.bind_service(name))
    return services


def build_retrainer(
    services: Services,
    *,
    base_dir: Path,
    wait_for_lock: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> Retrainer:
    """The retraining function of the project's model (``bascule retrain`` and the server).

    Args:
        services: The services (registry, tracking, artifacts, clock, settings).
        base_dir: Where the project's relative paths start (the settings file's folder).
        wait_for_lock: Wait for another process's retraining instead of refusing.
        on_step: Called with each step's name as it starts.

    Raises:
        ConfigError: the settings have no ``project`` section.
    """
    from bascule.pipelines.retrain import Retrainer

    settings = services.settings
    project = require_project(settings)
    entry = settings.monitoring.models.get(project.model)
    return Retrainer(
        registry=services.registry,
        tracking=services.tracking,
        artifacts=services.artifacts,
        project=project,
        cost=None if entry is None else entry.cost,
        base_dir=base_dir,
        lock_dir=settings.home / "locks",
        clock=services.clock,
        max_retries=settings.pipelines.max_retries,
        backoff_s=settings.pipelines.backoff_s,
        wait_for_lock=wait_for_lock,
        on_step=on_step,
    )


def build_retrain_automation(
    services: Services, *, base_dir: Path, spawn: Spawn | None = None
) -> RetrainAutomation | None:
    """The automatic retraining of the project's model (None when there is no project):
    alerts and feedback ingests of ``services.monitoring``, the policy's schedule, by hand.

    Args:
        services: The services.
        base_dir: Where the project's relative paths start (the settings file's folder).
        spawn: How retrainings start (default: a thread each; ``run_inline`` runs them in
            the caller's thread).

    Raises:
        InvalidInputError: ``project.retraining.schedule`` is not a valid cron expression.
    """
    project = services.settings.project
    if project is None:
        return None
    from bascule.pipelines.automation import RetrainAutomation

    return RetrainAutomation(
        project.model,
        project.retraining,
        retrain=build_retrainer(services, base_dir=base_dir),
        registry=services.registry,
        monitoring=services.monitoring,
        clock=services.clock,
        spawn=spawn,
    )


def require_project(settings: Settings) -> ProjectSettings:
    """The project section.

    Raises:
        ConfigError: the settings have none (the message says how to start one).
    """
    if settings.project is None:
        from bascule.core.errors import ConfigError

        raise ConfigError(
            "no 'project' section in the settings: run 'bascule init' to start a project"
        )
    return settings.project
