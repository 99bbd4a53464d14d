"""AdaptiveBatcher: dispatch rule, limits, errors and draining, on a FakeClock.

``fn`` runs in a ``ManualExecutor``: calls wait until the test runs them, so "a batch is
computing" is a state the test controls, with no threads and no sleeps.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from bascule.core.errors import InvalidInputError, NotReadyError, OverloadedError
from bascule.serving.batching import AdaptiveBatcher
from bascule.testing import FakeClock


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class ManualExecutor(concurrent.futures.Executor):
    """Holds submitted calls until ``run_next``; records each call's arguments."""

    def __init__(self) -> None:
        self.calls: deque[
            tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...]]
        ] = deque()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.calls.append((fut, fn, args))
        return fut

    @property
    def pending(self) -> int:
        return len(self.calls)

    def next_batch(self) -> list[Any]:
        return list(self.calls[0][2][0])

    def run_next(self) -> None:
        fut, fn, args = self.calls.popleft()
        try:
            fut.set_result(fn(*args))
        except Exception as exc:  # noqa: BLE001 - an executor hands any error to its future
            fut.set_exception(exc)


def double(items: list[int]) -> list[int]:
    return [2 * i for i in items]


async def settle() -> None:
    """Let ready tasks and callbacks run (loop turns only: no wall-clock wait).

    (``anyio.wait_all_tasks_blocked`` polls with 0.1 s wall-clock sleeps on asyncio.)
    """
    for _ in range(50):
        await asyncio.sleep(0)


def make(clock: FakeClock, executor: concurrent.futures.Executor | None = None, **kw: Any):
    kw.setdefault("fn", double)
    return AdaptiveBatcher(clock=clock, executor=executor, sleep=clock.sleep, name="m:1", **kw)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ex() -> ManualExecutor:
    return ManualExecutor()


# -- rule 1: an idle batcher never waits ----------------------------------------------------------


@pytest.mark.anyio
async def test_lone_request_runs_at_once_even_with_a_long_max_wait(clock):
    b = make(clock, max_wait_s=3600.0)  # the real single-thread executor; the clock never moves

    with anyio.fail_after(10):  # a safety net only: a wait on the fake clock would hang
        results = [await b.submit(i) for i in range(20)]
    stats = b.stats()
    await b.close()

    assert [2 * i for i in range(20)] == results
    assert 20 == stats.batches
    assert 0 == stats.waits
    assert 0 == clock.sleepers


@pytest.mark.anyio
async def test_idle_batcher_dispatches_what_is_queued_at_that_instant(clock, ex):
    b = make(clock, ex, max_wait_s=3600.0)

    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(b.submit, i)
        await settle()
        first = ex.next_batch()
        ex.run_next()

    assert [0, 1, 2, 3, 4] == first
    assert 0 == clock.sleepers


# -- rule 2: natural batching ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_arrivals_during_a_batch_form_the_next_batch(clock, ex):
    b = make(clock, ex)
    results: dict[int, int] = {}

    async def call(i: int) -> None:
        results[i] = await b.submit(i)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, 0)
        await settle()
        for i in range(1, 64):
            tg.start_soon(call, i)
        await settle()
        batches = [ex.next_batch()]
        ex.run_next()
        await settle()
        batches.append(ex.next_batch())
        ex.run_next()

    assert [[0], list(range(1, 64))] == batches
    assert {i: 2 * i for i in range(64)} == results
    assert (2, 64, 0) == (b.stats().batches, b.stats().items, b.stats().waits)


@pytest.mark.anyio
async def test_batch_limit_counts_rows_and_a_large_item_runs_alone(clock, ex):
    b = make(clock, ex, fn=lambda xs: [len(x) for x in xs], rows=len, max_batch_size=64)
    sizes = [30, 30, 30, 100, 10]

    async with anyio.create_task_group() as tg:
        tg.start_soon(b.submit, [0] * 1)  # occupies fn while the others queue
        await settle()
        for n in sizes:
            tg.start_soon(b.submit, [0] * n)
        await settle()
        ex.run_next()
        batches = []
        for _ in range(4):
            await settle()
            batches.append([len(x) for x in ex.next_batch()])
            ex.run_next()
    stats = b.stats()

    assert [[30, 30], [30], [100], [10]] == batches
    assert 1 + sum(sizes) == stats.rows
    assert 1 == stats.batch_size_counts[-1]  # the 100-row batch is above max_batch_size
    assert math.inf == stats.batch_size_buckets[-1]


@pytest.mark.anyio
async def test_max_batch_size_one_runs_each_item_alone(clock, ex):
    b = make(clock, ex, max_batch_size=1)

    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(b.submit, i)
        await settle()
        batches = []
        for _ in range(4):
            await settle()
            batches.append(ex.next_batch())
            ex.run_next()

    assert [[0], [1], [2], [3]] == batches
    assert 0 == b.stats().waits


# -- rule 3: wait, bounded, only for callers known to be coming -----------------------------------


async def _after_a_batch_of_three(b, ex, tg) -> None:
    """Leave the batcher right after a 3-row batch finished, with one item queued."""
    tg.start_soon(b.submit, 0)
    await settle()
    for i in (1, 2, 3):
        tg.start_soon(b.submit, i)
    await settle()
    ex.run_next()  # [0]
    await settle()
    tg.start_soon(b.submit, 4)  # arrives while [1, 2, 3] computes
    await settle()
    ex.run_next()  # [1, 2, 3] done: 1 row queued, 3 just answered
    await settle()


@pytest.mark.anyio
async def test_batcher_waits_for_returning_callers_and_dispatches_when_they_arrive(clock, ex):
    b = make(clock, ex, max_wait_s=0.002)

    async with anyio.create_task_group() as tg:
        await _after_a_batch_of_three(b, ex, tg)
        waiting = (ex.pending, clock.sleepers)
        for i in (5, 6):
            tg.start_soon(b.submit, i)
        await settle()
        batch = ex.next_batch()
        ex.run_next()

    assert (0, 1) == waiting
    assert [4, 5, 6] == batch
    assert 1 == b.stats().waits
    assert 0 == clock.sleepers


@pytest.mark.anyio
async def test_batcher_waits_at_most_max_wait_then_dispatches_a_partial_batch(clock, ex):
    b = make(clock, ex, max_wait_s=0.002)

    async with anyio.create_task_group() as tg:
        await _after_a_batch_of_three(b, ex, tg)
        clock.advance(0.0019)
        await settle()
        before = ex.pending
        clock.advance(0.0001)
        await settle()
        batch = ex.next_batch()
        ex.run_next()

    assert 0 == before
    assert [4] == batch


@pytest.mark.anyio
async def test_close_ends_a_wait_at_once(clock, ex):
    b = make(clock, ex, max_wait_s=0.002)

    async with anyio.create_task_group() as tg:
        await _after_a_batch_of_three(b, ex, tg)
        tg.start_soon(b.close)
        await settle()
        batch = ex.next_batch()
        ex.run_next()

    assert [4] == batch


# -- rule 4: a full batch goes ahead --------------------------------------------------------------


@pytest.mark.anyio
async def test_full_batch_queued_while_one_computes_is_handed_over_at_once(clock, ex):
    b = make(clock, ex, max_batch_size=4, max_wait_s=0)  # rule 3 would hold [5] back
    results: dict[int, int] = {}

    async def call(i: int) -> None:
        results[i] = await b.submit(i)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, 0)
        await settle()
        for i in range(1, 4):
            tg.start_soon(call, i)
        await settle()
        partial = (ex.pending, b.stats().queued)  # 3 rows: not full, they wait
        tg.start_soon(call, 4)
        tg.start_soon(call, 5)
        await settle()
        ahead = (ex.pending, b.stats().running, b.stats().queued)
        batches = []
        for _ in range(3):
            batches.append(ex.next_batch())
            ex.run_next()
            await settle()

    assert (1, 3) == partial
    assert (2, 5, 1) == ahead  # [1..4] handed over behind [0]; only one batch goes ahead
    assert [[0], [1, 2, 3, 4], [5]] == batches
    assert {i: 2 * i for i in range(6)} == results
    assert 0 == b.stats().running


# -- bounded queue --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_full_queue_refuses_at_once_and_counts(clock, ex):
    b = make(clock, ex, max_queue=2)

    async with anyio.create_task_group() as tg:
        tg.start_soon(b.submit, 0)  # running
        await settle()
        tg.start_soon(b.submit, 1)
        tg.start_soon(b.submit, 2)
        await settle()
        with pytest.raises(OverloadedError, match="max_queue=2") as e:
            await b.submit(3)
        stats = b.stats()
        ex.run_next()
        await settle()
        ex.run_next()

    assert "overloaded" == e.value.code
    assert e.value.retry_after_s > 0
    assert (2, 1, 1) == (stats.queued, stats.running, stats.rejected)


# -- errors and cancellation ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_fn_error_reaches_every_caller_of_the_batch_and_the_batcher_keeps_working(clock, ex):
    boom = RuntimeError("onnxruntime failed")

    def fn(items: list[int]) -> list[int]:
        if 13 in items:
            raise boom
        return double(items)

    b = make(clock, ex, fn=fn)
    errors: list[BaseException] = []

    async def call(i: int) -> None:
        try:
            await b.submit(i)
        except RuntimeError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, 0)
        await settle()
        tg.start_soon(call, 13)
        tg.start_soon(call, 14)
        await settle()
        ex.run_next()
        await settle()
        ex.run_next()
        await settle()
        tg.start_soon(call, 1)
        await settle()
        ex.run_next()
    after = await asyncio.gather(b.submit(5), _run_soon(ex))

    assert [boom, boom] == errors
    assert all(e is boom for e in errors)
    assert 10 == after[0]
    assert 1 == b.stats().errors


async def _run_soon(ex: ManualExecutor) -> None:
    await settle()
    ex.run_next()


@pytest.mark.anyio
async def test_wrong_length_result_is_an_error_naming_both_lengths(clock, ex):
    b = make(clock, ex, fn=lambda items: items[:-1])

    with pytest.raises(ValueError, match="returned 0 results for a batch of 1 items"):
        await asyncio.gather(b.submit(1), _run_soon(ex))
    assert 1 == b.stats().errors


@pytest.mark.anyio
async def test_cancelled_caller_is_skipped_and_others_are_answered(clock, ex):
    b = make(clock, ex)

    async with anyio.create_task_group() as tg:
        tg.start_soon(b.submit, 0)
        await settle()
        doomed = asyncio.ensure_future(b.submit(1))
        kept = asyncio.ensure_future(b.submit(2))
        await settle()
        doomed.cancel()
        await settle()
        queued = b.stats().queued
        ex.run_next()
        await settle()
        batch = ex.next_batch()
        ex.run_next()
        assert 4 == await kept

    assert doomed.cancelled()
    assert 1 == queued
    assert [2] == batch


@pytest.mark.anyio
async def test_rows_must_be_a_non_negative_integer(clock, ex):
    b = make(clock, ex, rows=lambda _: -1)

    with pytest.raises(InvalidInputError, match="rows of the item") as e:
        await b.submit(1)
    assert "invalid_input" == e.value.code


def test_bad_settings_are_refused(clock):
    with pytest.raises(InvalidInputError, match="max_batch_size"):
        AdaptiveBatcher(double, max_batch_size=0, clock=clock)
    with pytest.raises(InvalidInputError, match="max_wait_s"):
        AdaptiveBatcher(double, max_wait_s=-1, clock=clock)


# -- statistics, hook, close ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_on_batch_gets_rows_and_seconds_on_the_clock_and_hook_errors_are_contained(clock, ex):
    seen: list[tuple[int, float]] = []

    def fn(items: list[int]) -> list[int]:
        clock.advance(0.25)
        return double(items)

    def hook(rows: int, seconds: float) -> None:
        seen.append((rows, seconds))
        raise RuntimeError("exporter bug")

    b = make(clock, ex, fn=fn, on_batch=hook)

    first = await asyncio.gather(b.submit(1), _run_soon(ex))
    second = await asyncio.gather(b.submit(2), _run_soon(ex))
    stats = b.stats()

    assert (2, 4) == (first[0], second[0])
    assert [(1, 0.25), (1, 0.25)] == seen
    assert (2, 2, 2) == (stats.batches, stats.items, stats.rows)
    assert (1, 2, 4, 8, 16, 32, 64, math.inf) == stats.batch_size_buckets
    assert 2 == stats.batch_size_counts[0]


@pytest.mark.anyio
@pytest.mark.parametrize("max_batch_size", [64, 2], ids=["queued", "sent-ahead"])
async def test_close_drains_queued_items_then_refuses_new_ones(clock, ex, max_batch_size):
    b = make(clock, ex, max_batch_size=max_batch_size)  # 2: [1, 2] is full, sent ahead (rule 4)
    results: list[int] = []

    async def call(i: int) -> None:
        results.append(await b.submit(i))

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, 0)
        await settle()
        tg.start_soon(call, 1)
        tg.start_soon(call, 2)
        await settle()
        tg.start_soon(b.close)
        await settle()
        with pytest.raises(NotReadyError, match="closed"):
            await b.submit(3)
        ex.run_next()
        await settle()
        ex.run_next()

    assert [0, 2, 4] == sorted(results)
    assert b.stats().closed
    assert (0, 0) == (b.stats().queued, b.stats().running)
    await b.close()  # idempotent


# -- the batcher's own thread ---------------------------------------------------------------------


def _batch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "bascule-batch-m:1"]


@pytest.mark.anyio
async def test_own_thread_runs_fn_off_the_loop_hands_errors_back_and_ends_on_close(clock):
    loop_thread = threading.get_ident()
    ran_in: list[int] = []

    def fn(items: list[int]) -> list[int]:
        ran_in.append(threading.get_ident())
        if -1 in items:
            raise ValueError("bad item")
        return double(items)

    before = set(_batch_threads())
    b = make(clock, fn=fn)
    with anyio.fail_after(10):
        assert [2, 4, 6] == list(await asyncio.gather(*(b.submit(i) for i in (1, 2, 3))))
        with pytest.raises(ValueError, match="bad item"):
            await b.submit(-1)
        assert 8 == await b.submit(4)  # the thread survives fn's error
        [thread] = set(_batch_threads()) - before
        await b.close()
        await asyncio.to_thread(thread.join, 5)

    assert loop_thread not in ran_in
    assert 1 == len(set(ran_in))  # one thread, the batcher's own
    assert not thread.is_alive()
    assert 1 == b.stats().errors


@pytest.mark.anyio
async def test_own_thread_answer_of_a_cancelled_batch_is_dropped(clock):
    started, release = threading.Event(), threading.Event()

    def fn(items: list[int]) -> list[int]:
        started.set()
        release.wait(10)
        return double(items)

    b = make(clock, fn=fn)
    with anyio.fail_after(10):
        task = asyncio.ensure_future(b.submit(1))
        await asyncio.to_thread(started.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        assert 4 == await b.submit(2)  # the late answer of the first batch went nowhere
        await b.close()
