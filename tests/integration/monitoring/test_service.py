"""MonitoringService over a real prediction log and metadata DB: drift, late feedback,
performance and business cost against hand-computed figures, findings for bad input."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LinearRegression
from tests.integration.monitoring.conftest import HOUR, T0, MakeWorld, World, sample, truth

from bascule.store.predictions import PredictionLog, PredictionRecord
from bascule.testing import FakeClock

DAY = 86_400


def test_drift_is_flagged_in_the_shifted_window_only(make_world: MakeWorld) -> None:
    world = make_world(multivariate=True)
    world.log(sample(400, seed=2), hour=0)
    world.log(sample(400, seed=3, shift=2.0), hour=1)
    world.clock.advance(3 * 3600)

    report = world.services.monitoring.run("fraud", since=T0, until=T0 + 2 * HOUR)
    r = report.results

    assert ["ok", "alert"] == World.statuses(r, "feature_drift", feature="amount")
    assert ["ok", "ok"] == World.statuses(r, "feature_drift", feature="age")
    assert [0.0, 1.0] == World.values(r, "dataset_drift")
    assert ["ok", "alert"] == World.statuses(r, "prediction_drift", feature="proba_1")
    assert [400.0, 400.0] == World.values(r, "rows")
    assert (2, 800, 0) == (report.run.windows, report.run.rows, report.run.labelled_rows)
    assert ["amount"] == report.run.summary["drifted_features"]
    assert ["ok", "alert"] == World.statuses(r, "multivariate_auc")
    hist = World.pick(r, "feature_drift", feature="amount")[1].details["histogram"]
    assert len(hist["labels"]) == len(hist["reference"]) == len(hist["current"])


def test_late_feedback_gives_realised_performance_and_business_cost(make_world: MakeWorld) -> None:
    cost = {"fp_cost": 5, "fn_cost_column": "outcome", "tp_value": 1, "currency": "EUR"}
    world = make_world(models={"fraud": {"cost": cost}})
    rows = world.log(sample(400, seed=10), hour=0)
    world.clock.advance(6 * 3600)  # the labels arrive hours later
    labelled = rows.iloc[:300]
    actual = truth(labelled, seed=11)
    feedback = [
        {"request_id": rid, "label": int(y), "outcome": float(amount)}
        for rid, y, amount in zip(labelled.request_id, actual, labelled.amount, strict=True)
    ]

    ingested = world.services.monitoring.ingest_feedback(feedback)
    report = world.services.monitoring.run("fraud", window="1h", since=T0, until=T0 + HOUR)
    r = report.results

    predicted = labelled.label.to_numpy()
    tp = int(np.sum((predicted == 1) & (actual == 1)))
    fp = int(np.sum((predicted == 1) & (actual == 0)))
    fn = int(np.sum((predicted == 0) & (actual == 1)))
    net = 5.0 * fp + float(labelled.amount.to_numpy()[(predicted == 0) & (actual == 1)].sum()) - tp
    assert (300, 0, 0, 0) == (
        ingested.accepted,
        ingested.updated,
        ingested.unknown,
        ingested.invalid,
    )
    assert [300.0] == World.values(r, "labelled_rows", segment=None)
    assert World.values(r, "accuracy")[0] == pytest.approx(np.mean(predicted == actual))
    assert World.values(r, "precision")[0] == pytest.approx(tp / (tp + fp))
    assert World.values(r, "recall")[0] == pytest.approx(tp / (tp + fn))
    assert World.values(r, "business_cost")[0] == pytest.approx(net)
    assert World.values(r, "cost_per_1000")[0] == pytest.approx(net / 300 * 1000)
    assert "EUR" == World.pick(r, "business_cost")[0].details["currency"]
    assert 0.5 < World.values(r, "estimated_accuracy")[0] <= 1.0
    assert [0.0] == World.values(r, "concept_drift")
    assert 300 == report.run.labelled_rows


def test_segments_get_their_own_figures(make_world: MakeWorld) -> None:
    world = make_world(models={"fraud": {"segment_column": "channel"}})
    rows = world.log(sample(300, seed=20), hour=0)
    actual = truth(rows, seed=21)
    world.services.monitoring.ingest_feedback(
        [{"request_id": i, "label": int(y)} for i, y in zip(rows.request_id, actual, strict=True)]
    )

    r = world.services.monitoring.run("fraud", since=T0, until=T0 + HOUR).results

    web = (rows.channel == "web").to_numpy()
    assert 300.0 == sum(
        v for s in ("app", "shop", "web") for v in World.values(r, "rows", segment=s)
    )
    assert [float(web.sum())] == World.values(r, "labelled_rows", segment="web")
    assert World.values(r, "accuracy", segment="web")[0] == pytest.approx(
        np.mean(rows.label.to_numpy()[web] == actual[web])
    )


def test_unknown_and_invalid_feedback_is_counted_and_a_second_label_updates(
    make_world: MakeWorld,
) -> None:
    world = make_world()
    rows = world.log(sample(50, seed=4), hour=0)
    world.clock.advance(2 * 3600)
    ids = rows.request_id.tolist()
    monitoring = world.services.monitoring

    first = monitoring.ingest_feedback(
        [
            {"request_id": ids[0], "label": 1},
            {"request_id": "nope-1", "label": 0, "model": "fraud"},
            {"request_id": ids[1], "label": "fraud"},
            {"request_id": ids[2], "label": [1]},
        ]
    )
    again = monitoring.ingest_feedback([{"request_id": ids[0], "label": 0}])
    world.clock.advance(31 * DAY)  # past the 30-day lookback
    late = monitoring.ingest_feedback([{"request_id": ids[3], "label": 1}])

    assert (4, 2, 0) == (first.received, first.accepted, first.updated)
    assert (1, ["nope-1"]) == (first.unknown, first.unknown_request_ids)
    assert 2 == first.invalid
    assert "got 'fraud', expected a class of model 'fraud:1' (one of [0, 1])" in " ".join(
        first.invalid_reasons
    )
    assert "record 3 (request_id" in first.invalid_reasons[0] + first.invalid_reasons[1]
    assert (0, 1, 0) == (again.accepted, again.updated, again.unknown)
    assert ([ids[3]], "30d") == (late.unknown_request_ids, late.lookback)
    assert [{"fraud": 1}, {}, {}] == [r.labelled for r in (first, again, late)]


def test_bad_input_becomes_named_findings_not_crashes(make_world: MakeWorld) -> None:
    world = make_world()
    world.log(sample(200, seed=30), hour=0)
    # hour 1: nothing logged
    missing = sample(200, seed=31)
    missing["age"] = np.nan
    world.log(missing, hour=2)
    odd = sample(200, seed=32)
    odd.loc[:9, "amount"] = np.inf
    odd.loc[10:19, "channel"] = "phone"
    world.log(odd, hour=3)
    stuck = sample(200, seed=33)
    stuck["age"] = 40.0
    world.log(stuck, hour=4)
    world.log(sample(200, seed=34), hour=5, drop=("age",))
    world.clock.advance(7 * 3600)

    r = world.services.monitoring.run("fraud", since=T0, until=T0 + 6 * HOUR).results

    def found(hour: int) -> set[tuple[str, str | None]]:
        start = int((T0 + hour * HOUR).timestamp() * 1000)
        return {
            (x.metric, x.feature) for x in r if x.status == "finding" and x.window_start == start
        }

    assert {("empty_window", None)} == found(1)
    assert ("all_missing", "age") in found(2)
    assert {("non_finite", "amount"), ("unseen_categories", "channel")} <= found(3)
    assert ("constant_current", "age") in found(4)
    assert ("schema_mismatch", None) in found(5)
    assert ("missing_column", "age") in found(5)
    assert [200.0, 0.0, 200.0, 200.0, 200.0, 200.0] == World.values(r, "rows")


def test_labels_of_the_wrong_type_that_join_later_become_a_finding(make_world: MakeWorld) -> None:
    world = make_world()
    # feedback first (unknown ids, stored as given), then the log shows the predictions
    early = [{"request_id": f"h0v1-{i}", "label": "fraud" if i < 10 else i % 2} for i in range(40)]
    result = world.services.monitoring.ingest_feedback(early)
    world.log(sample(100, seed=40), hour=0)

    r = world.services.monitoring.run("fraud", since=T0, until=T0 + HOUR).results

    assert (40, 0) == (result.unknown, result.invalid)
    assert [10.0] == World.values(r, "unknown_labels")
    assert [30.0] == World.values(r, "labelled_rows", segment=None)


def test_concept_drift_is_flagged_from_the_feedback(make_world: MakeWorld) -> None:
    world = make_world()
    rows = world.log(sample(400, seed=50), hour=0)
    flipped = 1 - rows.label.to_numpy()  # the world changed: the model is now wrong
    flipped[::3] = rows.label.to_numpy()[::3]
    world.services.monitoring.ingest_feedback(
        [{"request_id": i, "label": int(y)} for i, y in zip(rows.request_id, flipped, strict=True)]
    )

    r = world.services.monitoring.run("fraud", since=T0, until=T0 + HOUR).results

    assert [0.0] == World.values(r, "dataset_drift")
    assert [1.0] == World.values(r, "concept_drift")
    assert ["alert"] == World.statuses(r, "concept_drift")
    assert [1.0] == World.values(r, "concept_drift_suspected")


def test_each_version_is_compared_with_its_own_reference(make_world: MakeWorld) -> None:
    world = make_world()
    other = clone(world.model).set_params(logisticregression__C=0.01)
    v2 = world.register(other.fit(world.reference, truth(world.reference, 2)), alias=None)
    world.log(sample(200, seed=60), hour=0, version=1)
    world.log(sample(100, seed=61), hour=0, version=v2, route="", prefix="direct")
    world.log(sample(100, seed=62), hour=0, version=v2, route="shadow", prefix="shadow")

    r = world.services.monitoring.run("fraud", since=T0, until=T0 + HOUR).results

    assert [200.0] == World.values(r, "version_rows", model_version=1)
    assert [100.0] == World.values(r, "version_rows", model_version=2)
    assert [300.0] == World.values(r, "rows")
    assert {1, 2} == {x.model_version for x in World.pick(r, "feature_drift")}


def test_results_are_stored_and_read_back(make_world: MakeWorld) -> None:
    world = make_world()
    world.log(sample(100, seed=70), hour=0)
    monitoring = world.services.monitoring

    report = monitoring.run("fraud", since=T0, until=T0 + HOUR)
    stored = monitoring.results("fraud", latest_run=True)

    assert report.results == stored
    assert [report.run] == monitoring.runs("fraud")
    assert {r.run_id for r in stored} == {report.run.id}
    assert [] == monitoring.results("fraud", metric="feature_drift", status="alert")


def test_a_regressor_gets_errors_and_its_labels_must_be_numbers(make_svc) -> None:
    clock = FakeClock(T0)
    services = make_svc(clock=clock, monitoring={"models": {"price": {"multivariate": False}}})
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500)})
    model = LinearRegression().fit(frame, 3 * frame.a - frame.b)
    services.registry.register("price", model, sample=frame)
    current = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    predicted = services.registry.load("price:1").predict(current).astype(np.float32)
    log = PredictionLog(services.artifacts, clock=clock)
    for i in range(200):
        inputs = {c: current[c].to_numpy()[i : i + 1] for c in ("a", "b")}
        at = T0 + timedelta(seconds=i)
        log.append(
            PredictionRecord(
                f"p{i}", "price", 1, at, inputs, {"prediction": predicted[i : i + 1]}, 1.0
            )
        )
    log.close()
    actual = 3 * current.a.to_numpy() - current.b.to_numpy() + rng.normal(0, 0.5, 200)

    ingested = services.monitoring.ingest_feedback(
        [{"request_id": f"p{i}", "label": float(actual[i])} for i in range(100)]
        + [{"request_id": "p150", "label": "high"}]
    )
    r = services.monitoring.run("price", since=T0, until=T0 + HOUR).results

    assert (100, 0, 1) == (ingested.accepted, ingested.unknown, ingested.invalid)
    assert (
        "expected a finite number (model 'price:1' is a regressor)" in ingested.invalid_reasons[0]
    )
    assert World.values(r, "mae")[0] == pytest.approx(
        np.mean(np.abs(predicted[:100] - actual[:100]))
    )
    assert {"rmse", "r2"} <= {x.metric for x in r}
    assert [100.0] == World.values(r, "labelled_rows", segment=None)
