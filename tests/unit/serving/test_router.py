"""Traffic policies: the canary split is exact enough and deterministic; shadow never waits."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import pytest

from bascule.core.errors import InvalidInputError
from bascule.serving.router import CanarySplit, Policy, ShadowQueue


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize("percent", [1, 10, 25, 50, 90])
@pytest.mark.parametrize("ids", ["uuid", "sequential"])
def test_canary_share_is_within_tolerance_over_10k_requests(percent: float, ids: str) -> None:
    split = CanarySplit(percent)
    rng = random.Random(percent)  # seeded: random-looking ids, yet the same every run
    request_ids = [
        uuid.UUID(int=rng.getrandbits(128)).hex if ids == "uuid" else f"req-{i}"
        for i in range(10_000)
    ]

    share = 100 * sum(split.to_challenger(r) for r in request_ids) / len(request_ids)

    assert abs(share - percent) < 1.5, share


def test_canary_split_is_deterministic_per_request_id_and_seeded() -> None:
    ids = [f"r{i}" for i in range(2000)]
    a, b, other = CanarySplit(30), CanarySplit(30), CanarySplit(30, seed="another")

    assert [a.to_challenger(i) for i in ids] == [b.to_challenger(i) for i in ids]
    assert [a.to_challenger(i) for i in ids] != [other.to_challenger(i) for i in ids]


def test_canary_extremes_send_none_or_all() -> None:
    ids = [f"r{i}" for i in range(1000)]

    assert not any(CanarySplit(0).to_challenger(i) for i in ids)
    assert all(CanarySplit(100).to_challenger(i) for i in ids)


@pytest.mark.parametrize("percent", [-1, 100.5])
def test_canary_percent_out_of_range_is_refused(percent: float) -> None:
    with pytest.raises(InvalidInputError, match="canary percent") as e:
        CanarySplit(percent)

    assert "invalid_input" == e.value.code


def test_policy_names_are_what_the_prediction_log_records() -> None:
    assert "" == Policy().name
    assert "canary" == Policy("canary", 5).name
    assert "shadow" == Policy("shadow").name


@pytest.mark.anyio
async def test_offering_a_shadow_copy_never_waits_and_drops_when_full() -> None:
    queue = ShadowQueue(maxsize=2, workers=1)
    queue.start()
    release = asyncio.Event()
    started = asyncio.Event()

    async def stuck() -> None:
        started.set()
        await release.wait()

    assert queue.offer(stuck)
    await started.wait()  # the worker holds the first job; the queue is empty again
    began = time.perf_counter()
    accepted = [queue.offer(stuck) for _ in range(5)]
    elapsed = time.perf_counter() - began

    assert [True, True, False, False, False] == accepted
    assert 3 == queue.dropped
    assert 6 == queue.offered
    assert elapsed < 0.05
    release.set()
    await queue.close(timeout_s=5)


@pytest.mark.anyio
async def test_failing_shadow_jobs_do_not_stop_the_workers() -> None:
    queue = ShadowQueue(maxsize=10, workers=1)
    queue.start()
    done: list[int] = []

    async def boom() -> None:
        raise RuntimeError("challenger exploded")

    async def ok() -> None:
        done.append(1)

    queue.offer(boom)
    queue.offer(ok)
    await queue.close(timeout_s=5)

    assert 1 == queue.failed
    assert [1] == done
    assert not queue.offer(ok)  # closed
