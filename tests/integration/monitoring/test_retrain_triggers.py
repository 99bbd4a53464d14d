"""RetrainAutomation listening to a real MonitoringService: alert rules over real runs and
feedback ingests joined to the prediction log start retrainings (recorded, not run)."""

from __future__ import annotations

from typing import Any

from tests.integration.monitoring.conftest import HOUR, T0, MakeWorld, World, sample, truth

from bascule.core.project_settings import RetrainPolicy
from bascule.pipelines import RetrainAutomation, RetrainRequest, run_inline

RULES = [
    {"name": "drift", "metric": "drifted_features", "comparison": ">=", "threshold": 1},
    {"name": "amount-drift", "metric": "feature_drift", "feature": "*", "comparison": ">",
     "threshold": 0.15, "for_windows": 2},
]  # fmt: skip


def automate(world: World, **policy: Any) -> tuple[RetrainAutomation, list[RetrainRequest]]:
    seen: list[RetrainRequest] = []
    automation = RetrainAutomation(
        "fraud",
        RetrainPolicy(**policy),
        retrain=seen.append,
        registry=world.services.registry,
        monitoring=world.services.monitoring,
        clock=world.clock,
        spawn=run_inline,
    )
    return automation, seen


def test_a_firing_rule_in_on_alerts_retrains_once_and_resolves_do_not(
    make_world: MakeWorld,
) -> None:
    world = make_world(models={"fraud": {"alerts": RULES}})
    _, seen = automate(world, on_alerts=["drift"])
    world.log(sample(300, seed=1), hour=0)
    world.log(sample(300, seed=2, shift=2.5), hour=1)
    world.log(sample(300, seed=3, shift=2.5), hour=2)
    world.log(sample(300, seed=4), hour=3)
    world.clock.advance(5 * 3600)

    runs = [
        world.services.monitoring.run("fraud", since=T0 + h * HOUR, until=T0 + (h + 1) * HOUR)
        for h in range(4)
    ]

    fired = [[(e.status, e.alert.rule) for e in r.events] for r in runs]
    assert [
        [],
        [("firing", "drift")],
        [("firing", "amount-drift")],
        [("resolved", "drift"), ("resolved", "amount-drift")],
    ] == fired
    assert 1 == len(seen)
    trigger = seen[0].triggers[0]
    assert ("alert", "drift") == (trigger.kind, trigger.details["rule"])
    assert trigger.reason.startswith("alert 'drift' fired: ")
    history = world.services.registry.history("fraud")
    started = [e for e in history if e.kind == "retrain_started"]
    assert 1 == len(started)
    assert "alert" == started[0].details["triggers"][0]["kind"]
    assert ["retrain_started", "retrain_finished"] == [
        e.kind for e in history if e.kind.startswith("retrain_")
    ]


def test_feedback_joined_to_the_log_counts_towards_min_new_labels(make_world: MakeWorld) -> None:
    world = make_world()
    automation, seen = automate(world, min_new_labels=250)
    rows = world.log(sample(300, seed=5), hour=0)
    world.clock.advance(2 * 3600)
    labels = truth(rows, seed=6)
    feedback = [
        {"request_id": rid, "label": int(y)} for rid, y in zip(rows.request_id, labels, strict=True)
    ]
    monitoring = world.services.monitoring

    monitoring.ingest_feedback(feedback[:200])
    monitoring.ingest_feedback(feedback[:200])  # the same labels again: updates, not new rows
    monitoring.ingest_feedback([{"request_id": "nope", "label": 1, "model": "fraud"}])
    counted = automation.state()["labels_since_last_run"]
    assert [] == seen
    monitoring.ingest_feedback(feedback[200:])

    assert 200 == counted
    assert 1 == len(seen)
    assert ("new_labels", {"rows": 300, "threshold": 250}) == (
        seen[0].triggers[0].kind,
        seen[0].triggers[0].details,
    )
    assert 0 == automation.state()["labels_since_last_run"]
