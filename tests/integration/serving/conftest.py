"""Factory fixtures for the inference server in-process: registered models, started apps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from bascule.core.clock import SystemClock
from bascule.core.settings import ServingSettings
from bascule.http.inference.app import InferenceApp, create_app
from bascule.http.inference.metrics import InferenceMetrics
from bascule.serving.assembly import build_dataplane
from bascule.serving.dataplane import DataPlane
from bascule.testing import InMemoryArtifactStore, make_services
from bascule.wiring import Services

FEATURES = ["amount", "age", "hour", "risk"]


@dataclass
class Models:
    """The registered models and the data they were trained on."""

    services: Services
    frame: pd.DataFrame
    fraud_v1: Any
    fraud_v2: Any
    mixed_frame: pd.DataFrame
    mixed: Any


@pytest.fixture(scope="package")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Models]:
    """``fraud`` v1 (champion) and v2 (challenger), numeric; ``mixed`` with a text column."""
    services = make_services(tmp_path_factory.mktemp("serving") / "home")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 4)), columns=FEATURES)
    v1 = LogisticRegression().fit(frame, (frame.amount + frame.risk > 0).astype(int))
    v2 = LogisticRegression().fit(frame, (frame.amount - frame.risk > 0).astype(int))
    services.registry.register("fraud", v1, sample=frame)
    services.registry.register("fraud", v2, sample=frame)
    services.registry.set_alias("fraud", "champion", 1)
    services.registry.set_alias("fraud", "challenger", 2)
    mixed_frame = pd.DataFrame(
        {
            "n": rng.integers(0, 5, 200),
            "x": rng.normal(size=200),
            "city": rng.choice(["lyon", "nantes", "paris"], 200),
        }
    )
    encode = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["city"])], remainder="passthrough"
    )
    mixed = make_pipeline(encode, LogisticRegression()).fit(
        mixed_frame, np.where(mixed_frame.n > 2, "yes", "no")
    )
    services.registry.register("mixed", mixed, sample=mixed_frame)
    yield Models(services, frame, v1, v2, mixed_frame, mixed)
    services.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Served:
    """A started inference app and what it is made of."""

    app: InferenceApp
    dataplane: DataPlane
    metrics: InferenceMetrics
    store: InMemoryArtifactStore

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://bascule.test"
        )


ServeFactory = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve(models: Models) -> AsyncIterator[ServeFactory]:
    """``await serve(["fraud@champion"], start=False, **serving)`` builds (and starts) an app."""
    made: list[DataPlane] = []

    async def factory(refs: list[str], *, start: bool = True, **overrides: Any) -> Served:
        settings = ServingSettings(refs=refs, **overrides)
        metrics = InferenceMetrics(CollectorRegistry())
        store = InMemoryArtifactStore()
        dataplane = build_dataplane(
            models.services.registry, store, settings, clock=SystemClock(), observer=metrics
        )
        made.append(dataplane)
        if start:
            await dataplane.start()
        return Served(create_app(dataplane, settings, metrics=metrics), dataplane, metrics, store)

    yield factory
    for dataplane in made:
        await dataplane.close()
