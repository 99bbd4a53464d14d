"""The composition root: the one place that picks implementations from the settings."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from pathlib import Path

from bascule.core.clock import Clock, SystemClock
from bascule.core.settings import Settings
from bascule.registry.service import RegistryService
from bascule.store.artifacts.base import ArtifactStore
from bascule.store.db.engine import Database
from bascule.store.db.models import ModelRepository
from bascule.store.db.runs import RunRepository
from bascule.tracking.service import TrackingService

__all__ = ["Services", "build_services", "default_actor", "open_artifact_store"]


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


@dataclass
class Services:
    """Every service of one bascule installation, built from one Settings."""

    settings: Settings
    db: Database
    artifacts: ArtifactStore
    tracking: TrackingService
    registry: RegistryService
    clock: Clock = field(default_factory=SystemClock)

    def close(self) -> None:
        """Release pooled connections."""
        self.db.dispose()


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
    return Services(
        settings=settings,
        db=db,
        artifacts=store,
        tracking=TrackingService(RunRepository(db), store, clock, default_user=actor),
        registry=RegistryService(ModelRepository(db), store, clock, actor=actor),
        clock=clock,
    )
