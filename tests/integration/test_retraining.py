"""The closed loop on a project made by ``bascule init``: retrain, gate, promote, roll back.

One module-scoped project gets its first champion (v1); every test works on a copy of it
(project folder, SQLite metadata and artifacts), so each pays for one retraining only.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from threadpoolctl import threadpool_limits

from bascule.cli.init import write_project
from bascule.core.errors import ConflictError
from bascule.core.settings import Settings
from bascule.demo import generate_transactions
from bascule.pipelines import RetrainCoordinator, RetrainRequest, Trigger
from bascule.pipelines.retrain import Retrainer, RetrainOutcome, retrain_lock
from bascule.pipelines.rollout import current_rollout, promote, rollback
from bascule.testing import make_services, make_settings
from bascule.wiring import Services, build_services

MODEL = "fraud"


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Training on a busy two-core box is much faster without OpenMP threads fighting."""
    with threadpool_limits(limits=1):
        yield


def project_settings(folder: Path, **project: Any) -> Settings:
    """The settings ``bascule init`` wrote, with ``project`` sections overridden."""
    data = yaml.safe_load((folder / "bascule.yaml").read_text(encoding="utf-8"))
    for key, value in project.items():
        data["project"][key] = {**data["project"].get(key, {}), **value}
    return make_settings(folder / ".bascule", **data)


def make_retrainer(services: Services, folder: Path, **options: Any) -> Retrainer:
    settings = services.settings
    assert settings.project is not None
    return Retrainer(
        registry=services.registry,
        tracking=services.tracking,
        artifacts=services.artifacts,
        project=settings.project,
        cost=settings.monitoring.models[MODEL].cost,
        base_dir=folder,
        lock_dir=settings.home / "locks",
        **options,
    )


def manual(reason: str = "by hand") -> RetrainRequest:
    return RetrainRequest(MODEL, (Trigger(MODEL, "manual", reason, pd.Timestamp.now("UTC")),))


def retrain(folder: Path, **project: Any) -> tuple[RetrainOutcome, Services]:
    services = build_services(project_settings(folder, **project))
    return make_retrainer(services, folder)(manual()), services


@pytest.fixture(scope="module")
def champion_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("champion") / "project"
    write_project(folder, model=MODEL)
    outcome, services = retrain(folder)
    services.close()
    assert ("finished", "champion", 1) == (outcome.status, outcome.alias, outcome.version)
    return folder


@pytest.fixture
def project(champion_project: Path, tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "project"
    shutil.copytree(champion_project, folder)
    return folder


def add_rows(folder: Path, n: int, days: int, *, shift: float = 0.0, seed: int = 100) -> None:
    newest = pd.read_parquet(folder / "data" / "transactions.parquet")["timestamp"].max()
    more = generate_transactions(n, seed=seed, days=days, start=newest.to_pydatetime(), shift=shift)
    more.to_parquet(folder / "data" / "later.parquet", index=False)


def test_first_retraining_makes_v1_champion_with_its_threshold_and_lineage(
    champion_project: Path,
) -> None:
    services = make_services(champion_project / ".bascule")
    try:
        mv = services.registry.resolve(f"{MODEL}@champion")
        history = services.registry.history(MODEL)
        run = services.tracking.get_run(mv.run_id or "")
    finally:
        services.close()

    assert 1 == mv.version
    assert float(mv.tags["decision_threshold"]) == mv.metrics["decision_threshold"]
    assert 0.0 < mv.metrics["decision_threshold"] < 1.0
    assert "1" == mv.tags["positive_label"]
    assert pd.Timestamp(mv.tags["training_data_until"]).tzinfo is not None
    assert mv.dataset_digest is not None
    assert 64 == len(mv.dataset_digest)
    assert "FINISHED" == run.status
    assert "manual" == run.tags["bascule.triggers"]
    gate = next(e for e in history if e.kind == "gate_passed")
    assert "no champion" == gate.reason
    assert gate.details["champion"] is None
    assert gate.details["challenger"]["business_cost"] > 0
    moves = [(e.alias, e.version) for e in history if e.kind == "alias_set"]
    assert [("champion", 1)] == moves


def test_drifted_data_gives_a_better_challenger_that_passes_the_gate(project: Path) -> None:
    add_rows(project, 8400, 21, shift=1.0)

    outcome, services = retrain(project)
    try:
        model = services.registry.get_model(MODEL)
        history = services.registry.history(MODEL)
        rollout = current_rollout(services.registry, MODEL)
        champion = services.registry.resolve(f"{MODEL}@champion")
    finally:
        services.close()

    decision = outcome.decision
    assert decision is not None
    assert decision.passed, outcome.reason
    assert (2, "challenger") == (outcome.version, outcome.alias)
    assert {"champion": 1, "challenger": 2} == model.aliases
    assert decision.challenger["business_cost"] < 0.98 * (decision.champion or {})["business_cost"]
    assert decision.challenger["rows"] == (decision.champion or {})["rows"] >= 200
    assert ["registered", "gate_passed", "alias_set", "rollout"] == [e.kind for e in history[-4:]]
    event = history[-3]
    assert 2 == event.version
    assert {"challenger", "champion", "margin", "guards", "holdout_rows"} <= set(event.details)
    assert 1 == event.details["champion_version"]
    assert 0.02 == event.details["margin"]
    assert event.details["guards"]["roc_auc"]["ok"]
    assert rollout is not None
    assert ("shadow", 2, 1) == (
        rollout.stage,
        rollout.challenger_version,
        rollout.champion_version,
    )
    holdout_start = pd.Timestamp(outcome.result.outputs["split_info"]["holdout_start"])
    assert holdout_start > pd.Timestamp(champion.tags["training_data_until"])


def test_a_worse_challenger_is_registered_but_not_promoted(project: Path) -> None:
    add_rows(project, 4000, 14)

    outcome, services = retrain(project, training={"params": {"min_samples_leaf": 100_000}})
    try:
        versions = services.registry.list_versions(MODEL)
        history = services.registry.history(MODEL)
    finally:
        services.close()

    decision = outcome.decision
    assert "finished" == outcome.status
    assert decision is not None
    assert not decision.passed
    assert "business_cost" in decision.reason
    assert "guard roc_auc regressed" in decision.reason
    assert (2, None) == (outcome.version, outcome.alias)
    assert [["champion"], []] == [v.aliases for v in versions]
    assert "failed" == versions[1].tags["gate"]
    failed = history[-1]
    assert ("gate_failed", 2) == (failed.kind, failed.version)
    assert (
        failed.details["challenger"]["business_cost"] > failed.details["champion"]["business_cost"]
    )
    assert not [e for e in history if e.kind == "alias_set" and e.version == 2]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("raise ValueError('the labels look wrong')", "ValueError: the labels look wrong"),
        ("return None", "NotFittedModelError"),
        (
            "from sklearn.linear_model import LogisticRegression\n    return LogisticRegression()",
            "is not fitted",
        ),
    ],
    ids=["raises", "returns-none", "returns-unfitted"],
)
def test_a_bad_training_function_stops_at_train_and_the_champion_keeps_serving(
    project: Path, body: str, error: str
) -> None:
    (project / "train.py").write_text(f"def train(df, params):\n    {body}\n", encoding="utf-8")

    outcome, services = retrain(project)
    try:
        model = services.registry.get_model(MODEL)
        event = services.registry.history(MODEL)[-1]
        run = services.tracking.get_run(outcome.run_id or "")
    finally:
        services.close()

    assert ("failed", "train") == (outcome.status, outcome.failed_step)
    assert error in outcome.reason
    assert (1, {"champion": 1}) == (model.latest_version, model.aliases)
    assert ("retrain_failed", "train") == (event.kind, event.details["failed_step"])
    assert ("FAILED", "train") == (run.status, run.tags["bascule.failed_step"])
    assert outcome.result is not None
    assert ("threshold", "evaluate", "gate", "register", "promote") == outcome.result.skipped


def test_data_missing_a_column_stops_at_validate(project: Path) -> None:
    path = project / "data" / "transactions.parquet"
    pd.read_parquet(path).drop(columns=["channel"]).to_parquet(path, index=False)

    outcome, services = retrain(project)
    try:
        model = services.registry.get_model(MODEL)
    finally:
        services.close()

    assert ("failed", "validate", "invalid_input") == (
        outcome.status,
        outcome.failed_step,
        outcome.error_code,
    )
    assert "missing columns ['channel']" in outcome.reason
    assert (1, {"champion": 1}) == (model.latest_version, model.aliases)


SLOW_TRAIN = """
import time
from pathlib import Path

import train as starter


def train(df, params):
    while not Path(params["release"]).exists():
        time.sleep(0.02)
    return starter.train(df, params)
"""


def test_one_retraining_per_model_at_a_time(project: Path) -> None:
    release = project / "release"
    (project / "slow_train.py").write_text(SLOW_TRAIN, encoding="utf-8")
    training = {"entrypoint": "slow_train:train", "params": {"release": str(release)}}
    settings = project_settings(project, training=training)
    services = build_services(settings)
    in_train = threading.Event()

    def seen(step: str) -> None:
        if step == "train":
            in_train.set()

    try:
        here = RetrainCoordinator(make_retrainer(services, project, on_step=seen))
        assert "started" == here.trigger(MODEL, "manual", "first")
        assert in_train.wait(timeout=60)
        # the same process: coalesced into one follow-up run
        assert "coalesced" == here.trigger(MODEL, "alert", "drift")
        # another process (its own coordinator): refused by the lock
        elsewhere = make_retrainer(services, project)(manual("elsewhere"))
        release.touch()
        assert here.wait_idle(timeout=120)
        runs = here.history(MODEL)
    finally:
        services.close()

    assert "refused" == elsewhere.status
    assert "already running" in elsewhere.reason
    assert elsewhere.run_id is None
    assert ["finished", "finished"] == [r.status for r in runs]
    assert [["manual"], ["alert"]] == [[t.kind for t in r.triggers] for r in runs]
    free = retrain_lock(project / ".bascule" / "locks", MODEL)
    assert free.try_acquire()
    free.release()


def test_waiting_for_the_lock_instead_of_refusing(project: Path) -> None:
    services = build_services(project_settings(project))
    lock = retrain_lock(services.settings.home / "locks", MODEL)
    assert lock.try_acquire({"who": "another process"})
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            lock.release()

    try:
        outcome = make_retrainer(services, project, wait_for_lock=True, sleep=sleep)(manual())
    finally:
        lock.release()
        services.close()

    assert 3 == len(waits)
    assert "finished" == outcome.status


def test_rollback_moves_the_champion_back_and_is_audited(project: Path) -> None:
    add_rows(project, 8400, 21, shift=1.0)
    outcome, services = retrain(project)
    try:
        assert "challenger" == outcome.alias
        promote(services.registry, MODEL, reason="canary passed")
        promoted = services.registry.get_model(MODEL).aliases
        event = rollback(services.registry, MODEL, reason="too many false alarms", actor="ops")
        after = services.registry.get_model(MODEL).aliases
        rollout = current_rollout(services.registry, MODEL)
        with pytest.raises(ConflictError, match="no previous champion") as e:
            rollback(services.registry, MODEL)
        history = services.registry.history(MODEL)
    finally:
        services.close()

    assert {"champion": 2} == promoted
    assert {"champion": 1} == after
    assert ("champion", 1, 2, "ops") == (
        event.alias,
        event.version,
        event.previous_version,
        event.actor,
    )
    assert {"rollback": True, "rolled_back_from": 2} == event.details
    assert "rollback: too many false alarms" == event.reason
    assert rollout is not None
    assert "full" == rollout.stage
    assert "conflict" == e.value.code
    assert history[-1].id == event.id
