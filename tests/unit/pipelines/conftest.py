"""Factory fixtures for pipeline tests: services in a temp folder, a fake clock, runners."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bascule.pipelines import LocalRunner
from bascule.testing import FakeClock, make_services
from bascule.wiring import Services


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def services(tmp_path: Path, clock: FakeClock) -> Iterator[Services]:
    svc = make_services(tmp_path / "home", clock=clock)
    yield svc
    svc.close()


class SleepRecorder:
    """An injected ``sleep`` that records each wait and moves the fake clock instead."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)


@pytest.fixture
def sleeps(clock: FakeClock) -> SleepRecorder:
    return SleepRecorder(clock)


@pytest.fixture
def make_runner(
    services: Services, clock: FakeClock, sleeps: SleepRecorder
) -> Callable[..., LocalRunner]:
    def factory(**options: Any) -> LocalRunner:
        return LocalRunner(
            services.tracking, services.artifacts, clock=clock, sleep=sleeps, **options
        )

    return factory
