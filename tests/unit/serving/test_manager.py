"""ModelManager: loading, readiness, hot swap on alias moves (FakeClock-driven), bad versions."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from bascule.core.errors import InvalidInputError, NotReadyError
from bascule.core.records import ModelVersion
from bascule.core.settings import BatchingSettings
from bascule.registry.predictor import OnnxPredictor
from bascule.serving.feeds import Feeds
from bascule.serving.manager import ModelManager
from bascule.serving.runtime import ServedModel, load_served_model
from bascule.testing import FakeClock, make_services
from bascule.wiring import Services

COLUMNS = ["a", "b", "c"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    svc = make_services(tmp_path / "home")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(100, 3)), columns=COLUMNS)
    for sign in (1, -1, 1):  # versions 1, 2, 3 answer differently (2 is the opposite)
        model = LogisticRegression().fit(frame, (sign * frame.a > 0).astype(int))
        svc.registry.register("fraud", model, sample=frame)
    svc.registry.set_alias("fraud", "champion", 1)
    yield svc
    svc.close()


class Events:
    """A ServingObserver that remembers model events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, bool]] = []

    def batch_done(self, model: str, version: str, rows: int, seconds: float) -> None:
        pass

    def model_event(self, model: str, event: str, ok: bool) -> None:
        self.events.append((model, event, ok))

    def rejected(self, model: str, reason: str) -> None:
        pass

    def shadow_done(self, model: str, version: str, outcome: str) -> None:
        pass


def manager_for(
    services: Services, clock: FakeClock | None = None, **kwargs: Any
) -> tuple[ModelManager, FakeClock]:
    clock = clock or FakeClock()
    manager = ModelManager(
        services.registry,
        clock=clock,
        batching=BatchingSettings(max_batch_size=8),
        poll_interval_s=1.0,
        **kwargs,
    )
    return manager, clock


def row() -> Feeds:
    return {"input": np.array([[1.0, 0.0, 0.0]], dtype=np.float32)}


def corrupt_blob(services: Services, mv: ModelVersion) -> None:
    path = Path(services.artifacts.root) / "blobs" / "sha256" / mv.digest[:2] / mv.digest
    path.write_bytes(b"not the model any more")


@pytest.mark.anyio
async def test_references_load_and_become_ready(services: Services) -> None:
    manager, _ = manager_for(services)
    slot = manager.add("fraud@champion")

    assert not manager.ready
    with pytest.raises(NotReadyError, match="still loading") as e:
        slot.require()
    assert "not_ready" == e.value.code

    await manager.load_all()

    assert manager.ready
    assert 1 == slot.require().version
    assert 1 == manager.stats.loads
    await manager.close()


@pytest.mark.anyio
async def test_alias_move_is_followed_on_the_next_poll(services: Services) -> None:
    events = Events()
    manager, _ = manager_for(services, observer=events)
    slot = manager.add("fraud@champion")
    pinned = manager.add("fraud:1")
    await manager.load_all()
    before = (await slot.require().run(row()))["label"].tolist()

    services.registry.set_alias("fraud", "champion", 2)
    await manager.poll_once()

    assert 2 == slot.require().version
    assert 1 == pinned.require().version
    assert before != (await slot.require().run(row()))["label"].tolist()
    assert 1 == manager.stats.swaps
    assert ("fraud", "swap", True) in events.events
    await manager.close()


@pytest.mark.anyio
async def test_background_poll_runs_when_the_clock_says_so(services: Services) -> None:
    clock = FakeClock()
    manager, _ = manager_for(services, clock, sleep=clock.sleep)
    slot = manager.add("fraud@champion")
    await manager.load_all()
    manager.start()
    services.registry.set_alias("fraud", "champion", 3)

    while not clock.sleepers:  # the poller waits on the injected clock
        await asyncio.sleep(0)
    clock.advance(0.9)
    for _ in range(10):
        await asyncio.sleep(0)
    assert 1 == slot.require().version

    clock.advance(0.1)
    for _ in range(400):
        if slot.require().version == 3:
            break
        await asyncio.sleep(0.025)

    assert 3 == slot.require().version
    await manager.close()


@pytest.mark.anyio
async def test_corrupted_version_is_not_swapped_in_and_the_error_is_reported(
    services: Services,
) -> None:
    events = Events()
    manager, _ = manager_for(services, observer=events)
    slot = manager.add("fraud@champion")
    await manager.load_all()
    corrupt_blob(services, services.registry.resolve("fraud:2"))

    services.registry.set_alias("fraud", "champion", 2)
    await manager.poll_once()
    await manager.poll_once()  # the bad version is not retried

    assert 1 == slot.require().version
    assert slot.last_error is not None
    assert "version 2" in slot.last_error
    assert "still serving version 1" in slot.last_error
    assert 1 == manager.stats.swap_failures
    assert [("fraud", "load", True), ("fraud", "swap", False)] == events.events
    assert [1] == (await slot.require().run(row()))["label"].tolist()

    services.registry.set_alias("fraud", "champion", 3)
    await manager.poll_once()

    assert 3 == slot.require().version
    assert slot.last_error is None
    await manager.close()


@pytest.mark.anyio
async def test_version_failing_its_warm_up_keeps_the_old_one(services: Services) -> None:
    def loader(mv: ModelVersion) -> ServedModel:
        if mv.version == 2:
            raise InvalidInputError(
                "warm-up of model 'fraud' version 2: probabilities are not finite"
            )
        return load_served_model(services.registry, mv, warm_rows=8)

    manager, _ = manager_for(services, loader=loader)
    slot = manager.add("fraud@champion")
    await manager.load_all()

    services.registry.set_alias("fraud", "champion", 2)
    await manager.poll_once()

    assert 1 == slot.require().version
    assert "not finite" in (slot.last_error or "")
    await manager.close()


@pytest.mark.anyio
async def test_first_load_failure_leaves_the_slot_not_ready_with_the_reason(
    services: Services,
) -> None:
    corrupt_blob(services, services.registry.resolve("fraud:1"))
    manager, _ = manager_for(services)
    slot = manager.add("fraud@champion")

    await manager.load_all()

    assert not manager.ready
    with pytest.raises(NotReadyError, match="failed to load"):
        slot.require()
    assert 1 == manager.stats.load_failures
    await manager.close()


class Gated(ServedModel):
    """A served model whose batches wait for a gate (to hold requests in flight)."""

    def __init__(self, predictor: OnnxPredictor, gate: threading.Event) -> None:
        super().__init__(predictor)
        self.gate = gate

    def run_batch(self, items: list[Feeds]) -> list[Any]:
        self.gate.wait(10)
        return super().run_batch(items)


@pytest.mark.anyio
async def test_in_flight_requests_finish_on_the_old_version(services: Services) -> None:
    gate = threading.Event()

    def loader(mv: ModelVersion) -> ServedModel:
        if mv.version == 1:
            return Gated(services.registry.load(f"fraud:{mv.version}"), gate)
        return load_served_model(services.registry, mv, warm_rows=8)

    manager, _ = manager_for(services, loader=loader)
    slot = manager.add("fraud@champion")
    await manager.load_all()
    old = slot.require()
    held = [asyncio.create_task(old.run(row())) for _ in range(5)]
    await asyncio.sleep(0.05)
    assert 5 == old.inflight

    services.registry.set_alias("fraud", "champion", 2)
    await manager.poll_once()
    fresh = await slot.require().run(row())
    gate.set()
    answers = await asyncio.gather(*held)

    assert 2 == slot.require().version
    assert [[1]] * 5 == [a["label"].tolist() for a in answers]  # version 1's answer
    assert [0] == fresh["label"].tolist()  # version 2's answer
    await manager.close()
    assert old.batcher.stats().closed
