"""The control plane's background loop moves active rollouts on (the rollout supervisor)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from bascule.http.control.app import create_app
from bascule.pipelines.rollout import current_rollout, record_rollout
from bascule.registry.rollouts import RolloutState
from bascule.store.usage import RouteUsage, UsageLog, UsageRecord
from bascule.testing import FakeClock, make_services
from bascule.wiring import Services


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    clock = FakeClock()
    svc = make_services(tmp_path / "home", clock=clock, server={"rollout_interval_s": 3600})
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(200, 2)), columns=["x0", "x1"])
    y = (frame.x0 > 0).astype(int)
    svc.registry.register("m", LogisticRegression().fit(frame, y), sample=frame)
    svc.registry.register("m", LogisticRegression().fit(frame, 1 - y), sample=frame)
    svc.registry.set_alias("m", "champion", 1)
    svc.registry.set_alias("m", "challenger", 2)
    yield svc
    svc.close()


def answered(services: Services, version: int, route: str, requests: int, errors: int) -> None:
    """A usage window as the inference server writes it, in the shadow policy."""
    now = services.clock.now_utc()
    usage = RouteUsage(requests, requests, errors)
    record = UsageRecord(
        "m", version, "shadow", now - timedelta(seconds=1), now, routes={route: usage}
    )
    UsageLog(services.artifacts).write([record])


@pytest.mark.anyio
async def test_the_server_rolls_back_a_failing_shadow_challenger(services: Services) -> None:
    clock = services.clock
    assert isinstance(clock, FakeClock)
    state = RolloutState(
        "m", 2, 1, "shadow", shadow_requests=20, canary_percent=25.0, canary_requests=40
    )
    record_rollout(services.registry, state)
    clock.advance(1)
    answered(services, 1, "champion", 10, 0)
    answered(services, 2, "shadow", 8, 2)
    clock.advance(1)
    app = create_app(services)

    async with app.router.lifespan_context(app):
        for _ in range(200):  # the first tick runs as the server starts
            rollout = current_rollout(services.registry, "m")
            if rollout is not None and not rollout.active:
                break
            await asyncio.sleep(0.05)

    assert rollout is not None
    assert "rolled_back" == rollout.stage
    assert {"champion": 1} == services.registry.get_model("m").aliases
