"""The prediction log: bounded buffer, flush by size and time, Parquet partitions, DuckDB reads."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bascule.core.errors import InvalidInputError, NotReadyError, StorageError
from bascule.store.artifacts import InMemoryArtifactStore, LocalArtifactStore
from bascule.store.predictions import (
    META_COLUMNS,
    PredictionBatch,
    PredictionLog,
    PredictionRecord,
    read_predictions,
)
from bascule.testing import FakeClock

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "local"])
def store(request, tmp_path):
    if request.param == "memory":
        return InMemoryArtifactStore()
    return LocalArtifactStore(tmp_path / "artifacts")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


def record(
    request_id: str = "r1",
    *,
    model: str = "fraud",
    version: int = 1,
    at: datetime = T0,
    rows: int = 2,
    inputs: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
    **kw: Any,
) -> PredictionRecord:
    if inputs is None:
        inputs = {"amount": np.arange(rows, dtype=np.float64), "n": np.arange(rows)}
    else:
        rows = len(next(iter(inputs.values())))
    if outputs is None:
        outputs = {"prediction": np.array(["ok"] * rows, dtype=object)}
    return PredictionRecord(
        request_id=request_id,
        model_name=model,
        model_version=version,
        timestamp=at,
        inputs=inputs,
        outputs=outputs,
        latency_ms=kw.pop("latency_ms", 1.25),
        route=kw.pop("route", "champion"),
        policy=kw.pop("policy", ""),
        **kw,
    )


def us(at: datetime) -> int:
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def batch(
    ids: list[str],
    rows: list[int],
    *,
    at: list[datetime] | None = None,
    model: str = "fraud",
    version: int = 1,
    inputs: Mapping[str, Any] | None = None,
    **kw: Any,
) -> PredictionBatch:
    total = sum(rows)
    if inputs is None:
        inputs = {"amount": np.arange(total, dtype=np.float64), "n": np.arange(total)}
    return PredictionBatch(
        model_name=model,
        model_version=version,
        request_ids=ids,
        request_rows=np.array(rows),
        timestamps_us=np.array([us(t) for t in (at or [T0] * len(ids))]),
        latencies_ms=kw.pop("latencies_ms", np.full(len(ids), 2.5)),
        routes=kw.pop("routes", ["champion"] * len(ids)),
        inputs=inputs,
        outputs=kw.pop("outputs", {"prediction": np.arange(total) * 10}),
        **kw,
    )


def make_log(store, clock, **kw: Any) -> PredictionLog:
    return PredictionLog(store, clock=clock, **kw)


def read_all(store, model: str = "fraud", **kw: Any) -> pd.DataFrame:
    return read_predictions(store, model, **kw)


# -- round trip and layout ------------------------------------------------------------------------


def test_round_trip_one_row_per_input_row_with_meta_columns(store, clock):
    plog = make_log(store, clock)
    assert plog.append(record("a", rows=2, route="challenger", policy="canary"))
    assert plog.append(record("b", rows=1, features_from="customers"))

    written = plog.flush()
    df = read_all(store)

    assert 3 == written
    assert [*META_COLUMNS, "amount", "n", "prediction"] == list(df.columns)
    assert ["a", "a", "b"] == df["request_id"].tolist()
    assert [0, 1, 0] == df["row"].tolist()
    assert [0.0, 1.0, 0.0] == df["amount"].tolist()
    assert ["challenger", "challenger", "champion"] == df["route"].tolist()
    assert ["canary", "canary", ""] == df["policy"].tolist()
    assert ["", "", "customers"] == df["features_from"].tolist()
    assert [T0] * 3 == df["timestamp"].tolist()
    assert "datetime64[us, UTC]" == str(df["timestamp"].dtype)
    assert (3, 1, 0, 0) == (
        plog.written_rows,
        plog.files_written,
        plog.dropped_rows,
        plog.buffered_rows,
    )


def test_rows_are_partitioned_by_model_and_hour(store, clock):
    plog = make_log(store, clock)
    plog.append(record("a", at=T0 + timedelta(minutes=59)))
    plog.append(record("b", at=T0 + timedelta(minutes=61)))
    plog.append(record("c", model="churn", at=T0 + timedelta(minutes=5)))
    plog.append(record("d", model="team/fraud v2", at=T0))

    plog.flush()
    folders = sorted({k.rpartition("/")[0] for k in store.list("predictions/")})

    assert [
        "predictions/model=churn/date=2026-03-01/hour=10",
        "predictions/model=fraud/date=2026-03-01/hour=10",
        "predictions/model=fraud/date=2026-03-01/hour=11",
        "predictions/model=team%2Ffraud%20v2/date=2026-03-01/hour=10",
    ] == folders
    assert all(re.fullmatch(r".*/part-[0-9a-f]{32}\.parquet", k) for k in store.list(""))
    assert ["a", "b"] == read_all(store)["request_id"].unique().tolist()
    assert ["d"] == read_all(store, "team/fraud v2")["request_id"].unique().tolist()


def test_time_window_is_start_inclusive_end_exclusive(store, clock):
    plog = make_log(store, clock)
    times = [T0, T0 + timedelta(minutes=30), T0 + timedelta(minutes=75), T0 + timedelta(hours=3)]
    for i, at in enumerate(times):
        plog.append(record(f"r{i}", at=at, rows=1))
    plog.flush()

    def ids(**kw: Any) -> list[str]:
        return read_all(store, **kw)["request_id"].tolist()

    assert ["r1", "r2"] == ids(start=times[1], end=times[3])
    assert ["r0", "r1"] == ids(end=times[2])
    assert ["r2", "r3"] == ids(start=times[2])
    assert ["r0", "r1", "r2", "r3"] == ids()
    assert [] == ids(start=times[1], end=times[1])


def test_window_across_midnight_reads_both_days(store, clock):
    plog = make_log(store, clock)
    late, early = datetime(2026, 3, 1, 23, 30, tzinfo=UTC), datetime(2026, 3, 2, 0, 30, tzinfo=UTC)
    plog.append(record("late", at=late, rows=1))
    plog.append(record("early", at=early, rows=1))
    plog.flush()

    df = read_all(store, start=late - timedelta(minutes=1), end=early + timedelta(minutes=1))

    assert ["late", "early"] == df["request_id"].tolist()
    assert [late, early] == df["timestamp"].tolist()


def test_partitions_outside_the_window_are_never_read(tmp_path, clock):
    store = LocalArtifactStore(tmp_path)
    plog = make_log(store, clock)
    plog.append(record("in", at=T0))
    plog.flush()
    store.write("predictions/model=fraud/date=2026-03-01/hour=13/part-x.parquet", b"not parquet")

    df = read_all(store, start=T0, end=T0 + timedelta(hours=1))

    assert ["in"] == df["request_id"].unique().tolist()
    with pytest.raises(StorageError, match="cannot read the prediction log") as e:
        read_all(store, start=T0, end=T0 + timedelta(hours=4))
    assert "storage_error" == e.value.code


def test_unknown_model_gives_an_empty_frame_with_the_meta_columns(store, clock):
    df = read_all(store, "nobody", start=T0, end=T0 + timedelta(hours=1))

    assert list(META_COLUMNS) == list(df.columns)
    assert 0 == len(df)
    assert "datetime64[us, UTC]" == str(df["timestamp"].dtype)


def test_bad_window_is_refused(store):
    with pytest.raises(InvalidInputError, match=r"start .* is after end") as e:
        read_all(store, start=T0, end=T0 - timedelta(seconds=1))
    assert "invalid_input" == e.value.code
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        read_all(store, start=datetime(2026, 3, 1))


# -- columns --------------------------------------------------------------------------------------


def test_schema_evolution_across_versions_is_read_together(store, clock):
    plog = make_log(store, clock)
    v1 = record("v1", version=1, inputs={"a": np.array([1, 2]), "b": np.array(["x", "y"])})
    plog.append(v1)
    plog.flush()  # its own file
    v2_inputs = {"a": np.array([0.5]), "c": np.array([7.0])}
    plog.append(record("v2", version=2, inputs=v2_inputs, outputs={"proba_1": np.array([0.9])}))
    plog.append(record("v1b", version=1, inputs={"a": np.array([3]), "b": np.array(["z"])}))
    plog.flush()  # two versions in one file

    df = read_all(store).set_index("request_id")

    assert {"a", "b", "c", "prediction", "proba_1"} <= set(df.columns)
    assert [1.0, 2.0, 3.0, 0.5] == df["a"].tolist()  # ordered by time, then request id
    assert 0.9 == df.loc["v2", "proba_1"]
    assert [False, False, False, True] == df["b"].isna().tolist()
    assert [1, 1, 1, 2] == df["model_version"].tolist()


def test_a_column_whose_type_changed_is_still_readable(store, clock):
    plog = make_log(store, clock)
    plog.append(record("text", inputs={"x": np.array(["a"], dtype=object)}))
    plog.append(record("number", inputs={"x": np.array([5])}))
    plog.flush()

    df = read_all(store)

    assert ["number", "text"] == sorted(df["request_id"])
    assert 2 == plog.files_written


def test_string_and_categorical_inputs_keep_their_values(store, clock):
    plog = make_log(store, clock)
    inputs = {
        "city": np.array(["Paris", None, "Lyon"], dtype=object),
        "plan": np.asarray(pd.Categorical(["gold", "free", "gold"])),
        "code": np.array(["A1", "B2", "C3"]),
        "flag": np.array([True, False, True]),
        "score": np.array([[0.1], [0.2], [0.3]], dtype=np.float32),  # [rows, 1] is accepted
    }
    plog.append(record("s", inputs=inputs, rows=3))
    plog.flush()

    df = read_all(store)

    assert ["Paris", None, "Lyon"] == [None if pd.isna(v) else v for v in df["city"]]
    assert ["gold", "free", "gold"] == df["plan"].tolist()
    assert ["A1", "B2", "C3"] == df["code"].tolist()
    assert [True, False, True] == df["flag"].tolist()
    assert pytest.approx([0.1, 0.2, 0.3]) == df["score"].tolist()


def test_columns_named_like_meta_columns_are_prefixed(store, clock):
    plog = make_log(store, clock)
    plog.append(
        record("m", inputs={"timestamp": np.array([1])}, outputs={"timestamp": np.array([2])})
    )
    plog.flush()

    df = read_all(store)

    assert (1, 2) == (df["input.timestamp"][0], df["output.timestamp"][0])


def test_ten_thousand_row_request(store, clock):
    plog = make_log(store, clock, flush_rows=1000)
    plog.append(record("big", rows=10_000))

    assert plog.flush_due()
    plog.flush()
    df = read_all(store)

    assert 10_000 == len(df)
    assert list(range(10_000)) == df["row"].tolist()
    assert float(9_999) == df["amount"].iloc[-1]


def test_malformed_record_is_dropped_and_counted_and_others_are_written(store, clock):
    plog = make_log(store, clock)
    plog.append(record("bad", inputs={"a": np.arange(3), "b": np.arange(2)}, rows=3))
    plog.append(record("good", rows=2))

    assert 2 == plog.flush()
    assert ["good"] == read_all(store)["request_id"].unique().tolist()
    assert 3 == plog.dropped_rows


def test_ragged_records_are_found_even_when_their_lengths_add_up(store, clock):
    plog = make_log(store, clock)
    plog.append(record("long b", inputs={"a": np.arange(2), "b": np.arange(3)}))
    plog.append(record("short b", inputs={"a": np.arange(2), "b": np.arange(1)}))
    plog.append(record("good", inputs={"a": np.arange(2), "b": np.arange(2)}))

    assert 2 == plog.flush()
    assert ["good", "good"] == read_all(store)["request_id"].tolist()
    assert 4 == plog.dropped_rows


# -- batches --------------------------------------------------------------------------------------


def test_batch_round_trip_one_row_per_input_row(store, clock):
    plog = make_log(store, clock)
    later = T0 + timedelta(milliseconds=3)
    b = batch(
        ["a", "b", "c"],
        [2, 1, 1],
        at=[T0, later, later],
        latencies_ms=[1.5, 2.0, 3.0],
        routes=["champion", "challenger", "champion"],
        policy="canary",
    )

    assert 4 == b.rows
    assert plog.append(b)
    assert 4 == plog.flush()
    df = read_all(store)

    assert [*META_COLUMNS, "amount", "n", "prediction"] == list(df.columns)
    assert ["a", "a", "b", "c"] == df["request_id"].tolist()
    assert [0, 1, 0, 0] == df["row"].tolist()
    assert [T0, T0, later, later] == df["timestamp"].tolist()
    assert [1.5, 1.5, 2.0, 3.0] == df["latency_ms"].tolist()
    assert ["champion", "champion", "challenger", "champion"] == df["route"].tolist()
    assert {"canary"} == set(df["policy"])
    assert [0.0, 1.0, 2.0, 3.0] == df["amount"].tolist()
    assert [0, 10, 20, 30] == df["prediction"].tolist()
    assert (4, 1, 0) == (plog.written_rows, plog.files_written, plog.dropped_rows)
    # ids repeated per row are written as a dictionary, and read back as plain text
    (key,) = store.list("predictions/")
    as_read_by_pandas = pd.read_parquet(io.BytesIO(store.read(key)))
    for frame in (df, as_read_by_pandas):
        for column in ("request_id", "route", "model_name"):
            assert not isinstance(frame[column].dtype, pd.CategoricalDtype)
            assert {str} == set(map(type, frame[column]))


def test_batches_and_records_of_a_model_and_hour_share_one_file(store, clock):
    plog = make_log(store, clock)
    plog.append(batch(["a", "b"], [1, 1]))
    plog.append(record("r", rows=2, outputs={"prediction": np.array([0, 10])}))
    plog.append(batch(["c"], [3], version=2))

    assert 7 == plog.flush()
    df = read_all(store)

    assert 1 == plog.files_written
    assert ["a", "b", "c", "c", "c", "r", "r"] == df["request_id"].tolist()
    assert [1, 1, 2, 2, 2, 1, 1] == df["model_version"].tolist()


def test_batch_across_the_hour_is_split_by_request(store, clock):
    plog = make_log(store, clock)
    before, after = T0 + timedelta(minutes=59, seconds=59), T0 + timedelta(hours=1)
    plog.append(batch(["a", "b", "c"], [1, 2, 1], at=[before, after, before]))

    plog.flush()
    df = read_all(store)
    folders = sorted({k.rpartition("/")[0] for k in store.list("predictions/")})

    assert [
        "predictions/model=fraud/date=2026-03-01/hour=10",
        "predictions/model=fraud/date=2026-03-01/hour=11",
    ] == folders
    assert ["a", "c", "b", "b"] == df["request_id"].tolist()
    assert [0.0, 3.0, 1.0, 2.0] == df["amount"].tolist()


class CountingColumns(Mapping[str, np.ndarray]):
    """Columns that count how often they are read."""

    def __init__(self, columns: dict[str, np.ndarray]) -> None:
        self.columns = columns
        self.reads = 0

    def __getitem__(self, key: str) -> np.ndarray:
        self.reads += 1
        return self.columns[key]

    def __iter__(self) -> Iterator[str]:
        self.reads += 1
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)


def test_batch_columns_are_read_only_when_flushed(store, clock):
    plog = make_log(store, clock)
    inputs = CountingColumns({"amount": np.array([1.0, 2.0])})

    plog.append(batch(["a", "b"], [1, 1], inputs=inputs))
    assert 0 == inputs.reads
    plog.flush()

    assert inputs.reads > 0
    assert [1.0, 2.0] == read_all(store)["amount"].tolist()


def test_malformed_batches_are_dropped_and_counted(store, clock):
    plog = make_log(store, clock)
    plog.append(batch(["short"], [3], inputs={"amount": np.arange(2.0)}))
    plog.append(batch(["a", "b"], [1, 1], routes=["champion"]))  # one route for two requests
    plog.append(batch(["good"], [2]))
    plog.append(batch(["x"], [1], latencies_ms=["slow"]))

    assert 2 == plog.flush()
    assert ["good"] == read_all(store)["request_id"].unique().tolist()
    assert 6 == plog.dropped_rows


def test_a_large_buffer_is_written_in_few_large_files(store, clock):
    plog = make_log(store, clock, flush_rows=20_000, max_buffer_rows=100_000)
    for i in range(50):
        ids = [f"r{i}-{j}" for j in range(1000)]
        assert plog.append(batch(ids, [1] * 1000))

    assert 50_000 == plog.flush()

    assert 3 == plog.files_written  # chunks of about flush_rows rows: 20k, 20k, 10k
    assert 50_000 == len(read_all(store))


# -- the bounded buffer ---------------------------------------------------------------------------


def test_full_buffer_drops_counts_and_never_grows(store, clock):
    plog = make_log(store, clock, max_buffer_rows=10, flush_rows=100)

    accepted = [plog.append(record(f"r{i}", rows=3)) for i in range(5)]

    assert [True, True, True, False, False] == accepted
    assert 9 == plog.buffered_rows
    assert 6 == plog.dropped_rows
    assert plog.append(record("fits", rows=1))
    assert not plog.append(record("too big", rows=11))
    assert 10 == plog.buffered_rows
    assert 10 == plog.flush()
    assert 0 == plog.buffered_rows


def test_full_buffer_drops_whole_batches_counted_by_row(store, clock):
    plog = make_log(store, clock, max_buffer_rows=10, flush_rows=100)

    assert plog.append(batch(["a", "b"], [3, 3]))
    assert not plog.append(batch(["c", "d"], [2, 3]))

    assert (6, 5) == (plog.buffered_rows, plog.dropped_rows)


def test_concurrent_appends_never_exceed_the_buffer(store, clock):
    plog = make_log(store, clock, max_buffer_rows=1000, flush_rows=10_000)
    barrier = threading.Barrier(8)

    def producer() -> None:
        barrier.wait()
        for i in range(500):
            plog.append(record(f"r{i}", rows=1))

    threads = [threading.Thread(target=producer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert 1000 == plog.buffered_rows
    assert 3000 == plog.dropped_rows


# -- flushing -------------------------------------------------------------------------------------


def test_flush_is_due_by_size_or_after_the_interval(store, clock):
    plog = make_log(store, clock, flush_rows=100, flush_interval_s=5.0)

    assert not plog.flush_due()  # nothing buffered, however long ago
    plog.append(record(rows=1))
    clock.advance(4.9)
    assert not plog.flush_due()
    clock.advance(0.1)
    assert plog.flush_due()
    plog.flush()
    assert not plog.flush_due()
    plog.append(record(rows=100))
    assert plog.flush_due()


class FailingStore(InMemoryArtifactStore):
    """Fails the first ``failures`` writes."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.written = threading.Event()

    def write(self, key: str, data: bytes | memoryview) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise StorageError("disk full")
        super().write(key, data)
        self.written.set()


def test_failed_write_is_retried_once(clock):
    store = FailingStore(failures=1)
    plog = make_log(store, clock)
    plog.append(record(rows=2))

    assert 2 == plog.flush()
    assert (1, 0) == (plog.files_written, plog.flush_errors)


def test_write_failing_twice_drops_the_rows_counted_without_raising(clock):
    store = FailingStore(failures=2)
    plog = make_log(store, clock)
    plog.append(record(rows=2))

    assert 0 == plog.flush()
    stats = plog.stats()
    assert (0, 2, 1, 0) == (
        stats.written_rows,
        stats.dropped_rows,
        stats.flush_errors,
        stats.buffered_rows,
    )


def test_flusher_thread_writes_once_flush_rows_are_buffered(clock):
    store = FailingStore(failures=0)
    plog = make_log(store, clock, flush_rows=10, flush_interval_s=3600)
    plog.start()
    plog.start()  # idempotent
    try:
        plog.append(record(rows=10))
        assert store.written.wait(timeout=10)  # a safety net, not a timing assertion
    finally:
        plog.close()

    assert 10 == plog.written_rows


def test_close_flushes_everything_and_refuses_later_records(store, clock):
    plog = make_log(store, clock, flush_interval_s=3600)
    plog.start()
    plog.append(record("last", rows=2))

    plog.close()
    plog.close()  # idempotent

    assert ["last", "last"] == read_all(store)["request_id"].tolist()
    assert not plog.append(record(rows=1))
    assert 1 == plog.dropped_rows
    with pytest.raises(NotReadyError, match="closed"):
        plog.start()


def test_bad_settings_are_refused(store, clock):
    with pytest.raises(InvalidInputError, match="flush_rows"):
        make_log(store, clock, flush_rows=0)
    with pytest.raises(InvalidInputError, match="flush_interval_s"):
        make_log(store, clock, flush_interval_s=0)
    with pytest.raises(InvalidInputError, match="artifact key"):
        make_log(store, clock, prefix="../elsewhere")
    with pytest.raises(InvalidInputError, match=r"compression.*'brotli'.*lz4 or zstd"):
        make_log(store, clock, compression="brotli")


def test_local_files_are_plain_parquet(tmp_path: Path, clock):
    store = LocalArtifactStore(tmp_path)
    plog = make_log(store, clock)
    plog.append(record(rows=4))
    plog.flush()

    (key,) = list(store.list("predictions/"))
    df = pd.read_parquet(store.path_for_key(key))

    assert 4 == len(df)


@pytest.mark.parametrize(("codec", "written"), [("lz4", "LZ4"), ("zstd", "ZSTD")])
def test_files_use_the_chosen_codec_and_read_back(tmp_path: Path, clock, codec, written):
    import pyarrow.parquet as pq

    store = LocalArtifactStore(tmp_path)
    plog = make_log(store, clock, compression=codec)
    plog.append(record(rows=4))
    plog.flush()

    (key,) = list(store.list("predictions/"))
    meta = pq.ParquetFile(store.path_for_key(key)).metadata
    codecs = {meta.row_group(0).column(i).compression for i in range(meta.num_columns)}

    assert {written} == codecs
    assert 4 == len(read_all(store))


def test_every_codec_the_settings_accept_is_one_the_log_writes(tmp_path: Path, clock):
    from typing import get_args

    from bascule.core.settings import PredictionLogSettings
    from bascule.store._prediction_parquet import CODECS

    accepted = get_args(PredictionLogSettings.model_fields["compression"].annotation)

    assert set(CODECS) == set(accepted)  # the two lists live in two layers: keep them equal
    for codec in accepted:
        plog = make_log(LocalArtifactStore(tmp_path / codec), clock, compression=codec)
        plog.append(record(rows=2))
        assert 2 == plog.flush()


def test_batches_joined_into_one_file_keep_their_rows_in_order(tmp_path: Path, clock):
    import pyarrow.parquet as pq

    store = LocalArtifactStore(tmp_path)
    plog = make_log(store, clock)
    values = np.arange(12, dtype=np.float32)
    for k in range(3):  # numeric columns of one dtype: written from the batches' own arrays
        part = values[4 * k : 4 * k + 4]
        at = [T0 + timedelta(seconds=2 * k), T0 + timedelta(seconds=2 * k + 1)]
        plog.append(batch([f"r{k}a", f"r{k}b"], [2, 2], at=at, inputs={"x": part, "n": part * 10}))
    last = {"x": np.array([99.0]), "n": np.array([7.0])}
    plog.append(batch(["r3"], [1], at=[T0 + timedelta(seconds=9)], inputs=last))

    assert 13 == plog.flush()
    (key,) = list(store.list("predictions/"))
    meta = pq.ParquetFile(store.path_for_key(key)).metadata
    df = read_all(store)

    assert 1 == meta.num_row_groups
    assert [*range(12), 99] == df.x.tolist()  # float32 and float64 parts: one float64 column
    assert [*(v * 10 for v in range(12)), 7] == df.n.tolist()
    assert ["r0a", "r0a", "r0b", "r0b"] == df.request_id.head(4).tolist()
