"""``bascule init``, ``validate``, ``retrain``, ``models history`` and ``models rollback`` in
subprocesses, as a user runs them."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import as_json

Cli = Callable[..., subprocess.CompletedProcess[str]]
FAST = {"OMP_NUM_THREADS": "1"}  # training on a busy box: no OpenMP threads fighting


def test_init_validate_retrain_and_the_gate_on_the_history(cli: Cli, tmp_path: Path) -> None:
    init = cli("init", ".", "--model", "fraud")
    assert 0 == init.returncode, init.stderr
    assert (tmp_path / "bascule.yaml").is_file()
    again = cli("init", ".")
    assert 5 == again.returncode
    assert "--force" in again.stderr

    checked = as_json(cli("validate", "--json"))
    assert checked["ok"]
    assert any("project 'fraud'" in c for c in checked["checks"])

    first = as_json(cli("retrain", "fraud", "--json", env_extra=FAST))
    assert ("finished", 1, "champion") == (first["status"], first["version"], first["alias"])
    assert "no champion" == first["gate"]["reason"]
    assert ["champion", "load", "validate", "split", "train"] == [
        s["name"] for s in first["steps"][:5]
    ]

    history = as_json(cli("models", "history", "fraud", "--json"))
    gate = [e for e in history if e["kind"] == "gate_passed"]
    assert 1 == len(gate)
    assert 1 == gate[0]["version"]
    assert gate[0]["details"]["challenger"]["business_cost"] > 0
    assert ("champion", 1) == next(
        (e["alias"], e["version"]) for e in history if e["kind"] == "alias_set"
    )

    shown = as_json(cli("models", "show", "fraud@champion", "--json"))
    assert float(shown["tags"]["decision_threshold"]) == shown["metrics"]["decision_threshold"]

    nothing_before = cli("models", "rollback", "fraud")
    assert 5 == nothing_before.returncode
    assert "no previous champion" in nothing_before.stderr


def test_a_failing_training_function_exits_non_zero_naming_the_step(
    cli: Cli, tmp_path: Path
) -> None:
    assert 0 == cli("init", ".", "--rows", "2000").returncode
    (tmp_path / "train.py").write_text(
        "def train(df, params):\n    raise ValueError('the labels look wrong')\n", encoding="utf-8"
    )

    human = cli("retrain", env_extra=FAST)
    machine = cli("retrain", "--json", env_extra=FAST)

    assert 1 == human.returncode, human.stderr
    assert "retraining stopped" in human.stdout
    assert "step 'train' failed: ValueError: the labels look wrong" in " ".join(
        human.stdout.split()
    )
    assert 1 == machine.returncode
    body = json.loads(machine.stdout)
    assert ("failed", "train", None) == (body["status"], body["failed_step"], body["version"])
    listed = cli("models", "list", "--json")
    assert [] == as_json(listed)


def test_retrain_without_a_project_says_how_to_start_one(cli: Cli) -> None:
    proc = cli("retrain", "fraud")

    assert 78 == proc.returncode
    assert "bascule init" in proc.stderr
