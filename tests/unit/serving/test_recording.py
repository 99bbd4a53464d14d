"""PredictionRecorder: answers handed over by batch threads → one log record per model version
and policy, read back one row per input row."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from bascule.core.errors import InvalidInputError
from bascule.core.tensors import Tensor
from bascule.registry.converters import convert
from bascule.registry.predictor import OnnxPredictor
from bascule.serving.feeds import Feeds
from bascule.serving.recording import LogNote, PredictionRecorder
from bascule.serving.runtime import Outputs, ServedModel
from bascule.store.predictions import PredictionBatch, PredictionLog, PredictionRecord
from bascule.store.predictions import read_predictions as read
from bascule.testing import FakeClock, InMemoryArtifactStore

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
COLUMNS = ["amount", "age", "score"]


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


def note(request_id: str, route: str = "champion", policy: str = "") -> LogNote:
    return (request_id, 1000.0, route, policy, "")


def test_answers_wait_for_a_flush_then_are_one_record(model: ServedModel) -> None:
    sink = ListSink()
    recorder = PredictionRecorder(sink, clock=FakeClock(T0))
    answers = [answer(model, [[1, 2, 3]]), answer(model, [[4, 5, 6], [7, 8, 9]])]

    recorder.record(model, [note("a"), note("b")], [f for f, _ in answers], [r for _, r in answers])
    assert [] == sink.items
    assert 2 == recorder.flush()
    assert 0 == recorder.flush()

    (logged,) = sink.items
    assert isinstance(logged, PredictionBatch)
    assert ("fraud", 3, ["a", "b"], [1, 2], 3) == (
        logged.model_name,
        logged.model_version,
        list(logged.request_ids),
        logged.request_rows.tolist(),
        logged.rows,
    )


def test_max_pending_answers_are_handed_over_by_the_thread_that_fills_them(
    model: ServedModel,
) -> None:
    sink = ListSink()
    recorder = PredictionRecorder(sink, clock=FakeClock(T0), max_pending=2)
    feeds, result = answer(model, [[1, 2, 3]])

    recorder.record(model, [note("a")], [feeds], [result])
    assert [] == sink.items
    worker = threading.Thread(
        target=recorder.record, args=(model, [note("b"), note("c")], [feeds] * 2, [result] * 2)
    )
    worker.start()
    worker.join()

    assert [["a", "b", "c"]] == [list(b.request_ids) for b in sink.items]  # type: ignore[union-attr]


def test_requests_without_a_note_or_with_an_error_are_left_out(model: ServedModel) -> None:
    sink = ListSink()
    recorder = PredictionRecorder(sink, clock=FakeClock(T0))
    feeds, result = answer(model, [[1, 2, 3]])
    error = InvalidInputError("onnxruntime rejected the request")

    recorder.record(model, [note("a"), None, note("c")], [feeds] * 3, [error, result, result])

    assert 1 == recorder.flush()
    assert [["c"]] == [list(b.request_ids) for b in sink.items]  # type: ignore[union-attr]


def test_each_policy_is_its_own_record(model: ServedModel) -> None:
    sink = ListSink()
    recorder = PredictionRecorder(sink, clock=FakeClock(T0))
    feeds, result = answer(model, [[1, 2, 3]])

    recorder.record(
        model, [note("a"), note("b", "shadow", "shadow"), note("c")], [feeds] * 3, [result] * 3
    )
    recorder.flush()

    assert [("", ["a", "c"]), ("shadow", ["b"])] == [
        (b.policy, list(b.request_ids))  # type: ignore[union-attr]
        for b in sink.items
    ]


def test_answers_that_cannot_be_logged_are_left_out_without_raising(model: ServedModel) -> None:
    sink = ListSink()
    recorder = PredictionRecorder(sink, clock=FakeClock(T0))
    _, result = answer(model, [[1, 2, 3]])

    recorder.record(model, [note("a")], [{}], [result])  # feeds without an input

    assert 0 == recorder.flush()
    assert [] == sink.items


def test_recorded_answers_read_back_one_row_per_input_row(model: ServedModel) -> None:
    clock = FakeClock(T0)
    store = InMemoryArtifactStore()
    log = PredictionLog(store, clock=clock)
    recorder = PredictionRecorder(log, clock=clock)
    started = clock.monotonic()
    first = answer(model, [[0.5, 1.0, -1.0], [2.0, 3.0, 4.0]])
    second = answer(model, [[-3.0, 0.0, 1.0]])

    clock.advance(0.004)  # the first batch ends 4 ms after both requests arrived
    recorder.record(model, [("r1", started, "champion", "canary", "")], [first[0]], [first[1]])
    clock.advance(0.001)
    recorder.record(model, [("r2", started, "challenger", "canary", "")], [second[0]], [second[1]])
    recorder.flush()
    log.close()
    df = read(store, "fraud")

    expected: dict[str, Any] = {
        "request_id": ["r1", "r1", "r2"],
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
