"""PredictionRecorder: many answers → one log record, read back one row per input row."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from bascule.core.tensors import Tensor
from bascule.registry.converters import convert
from bascule.registry.predictor import OnnxPredictor
from bascule.serving.feeds import Feeds
from bascule.serving.recording import PredictionRecorder
from bascule.serving.runtime import Outputs, ServedModel
from bascule.store.predictions import PredictionBatch, PredictionLog, PredictionRecord
from bascule.store.predictions import read_predictions as read
from bascule.testing import FakeClock, InMemoryArtifactStore

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
COLUMNS = ["amount", "age", "score"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def model() -> ServedModel:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=COLUMNS)
    fitted = LogisticRegression().fit(frame, (frame.amount + frame.score > 0).astype(int))
    converted = convert(fitted, frame)
    return ServedModel(
        OnnxPredictor(converted.onnx_bytes, converted.signature, name="fraud", version=3)
    )


class ListSink:
    """A prediction sink keeping what it is given."""

    def __init__(self) -> None:
        self.items: list[PredictionRecord | PredictionBatch] = []

    written_rows = dropped_rows = buffered_rows = 0

    def append(self, record: PredictionRecord | PredictionBatch) -> bool:
        self.items.append(record)
        return True

    def start(self) -> None:
        pass

    def flush(self) -> int:
        return 0

    def close(self) -> None:
        pass


def answer(model: ServedModel, rows: list[list[float]]) -> tuple[Feeds, Outputs]:
    feeds = model.feeds([Tensor("input", "FP64", np.array(rows))])
    (result,) = model.run_batch([feeds])
    assert not isinstance(result, Exception)
    return feeds, result


@pytest.mark.anyio
async def test_answers_are_logged_as_one_batch_after_the_delay(model: ServedModel) -> None:
    sink = ListSink()
    recorder = PredictionRecorder(sink, clock=FakeClock(T0), max_delay_s=0)

    for i in range(3):
        recorder.record(model, f"r{i}", *answer(model, [[1, 2, 3]]), 1000.0, "champion", "")
    assert [] == sink.items
    for _ in range(10):  # the timer fires within an iteration or two of the event loop
        if sink.items:
            break
        await asyncio.sleep(0)

    (logged,) = sink.items
    assert isinstance(logged, PredictionBatch)
    assert ("fraud", 3, ("r0", "r1", "r2")) == (
        logged.model_name,
        logged.model_version,
        tuple(logged.request_ids),
    )
    assert 3 == logged.rows


@pytest.mark.anyio
async def test_max_pending_answers_are_handed_over_at_once(model: ServedModel) -> None:
    sink = ListSink()
    recorder = PredictionRecorder(sink, clock=FakeClock(T0), max_pending=2, max_delay_s=60)

    recorder.record(model, "a", *answer(model, [[1, 2, 3]]), 1000.0, "champion", "")
    recorder.record(model, "b", *answer(model, [[1, 2, 3]]), 1000.0, "shadow", "shadow")
    recorder.record(model, "c", *answer(model, [[1, 2, 3]]), 1000.0, "champion", "")

    assert [["a"], ["b"]] == [list(b.request_ids) for b in sink.items if b.rows]
    assert 1 == recorder.flush()
    assert 0 == recorder.flush()
    assert 3 == len(sink.items)


def test_without_an_event_loop_an_answer_is_logged_at_once(model: ServedModel) -> None:
    sink = ListSink()
    recorder = PredictionRecorder(sink, clock=FakeClock(T0))

    recorder.record(model, "a", *answer(model, [[1, 2, 3]]), 1000.0, "champion", "")

    assert 1 == len(sink.items)


@pytest.mark.anyio
async def test_a_recorded_batch_reads_back_one_row_per_input_row(model: ServedModel) -> None:
    clock = FakeClock(T0)
    store = InMemoryArtifactStore()
    log = PredictionLog(store, clock=clock)
    recorder = PredictionRecorder(log, clock=clock, max_delay_s=60)
    started = clock.monotonic()
    first = answer(model, [[0.5, 1.0, -1.0], [2.0, 3.0, 4.0]])
    second = answer(model, [[-3.0, 0.0, 1.0]])

    clock.advance(0.004)
    recorder.record(model, "two-rows", *first, started, "champion", "canary")
    clock.advance(0.001)
    recorder.record(model, "one-row", *second, started, "challenger", "canary")
    recorder.flush()
    log.close()
    df = read(store, "fraud")

    expected: dict[str, Any] = {
        "request_id": ["two-rows", "two-rows", "one-row"],
        "row": [0, 1, 0],
        "model_version": [3, 3, 3],
        "timestamp": [T0 + timedelta(milliseconds=4)] * 2 + [T0 + timedelta(milliseconds=5)],
        "route": ["champion", "champion", "challenger"],
        "policy": ["canary"] * 3,
        "amount": [0.5, 2.0, -3.0],
        "score": [-1.0, 4.0, 1.0],
        "label": [*first[1]["label"].tolist(), *second[1]["label"].tolist()],
    }
    assert expected == {k: df[k].tolist() for k in expected}
    assert pytest.approx([4.0, 4.0, 5.0]) == df["latency_ms"].tolist()
    proba = np.vstack([first[1]["probabilities"], second[1]["probabilities"]])
    np.testing.assert_allclose(df[["proba_0", "proba_1"]].to_numpy(), proba, rtol=1e-6)
