"""``bascule demo`` end to end, as a new user runs it: the story, its figures, its report,
then the CLI listings it leaves behind; the same seed tells the same story."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import as_json

pytestmark = pytest.mark.slow

BASCULE = [sys.executable, "-m", "bascule.cli.main"]


def bascule(home: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASCULE_")}
    env.update(BASCULE_HOME=str(home), COLUMNS="200", NO_COLOR="1")
    return subprocess.run(
        [*BASCULE, *args],
        capture_output=True,
        text=True,
        cwd=home.parent,
        env=env,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    home = tmp_path_factory.mktemp("demo") / "home"
    proc = bascule(home, "demo", "--seed", "7", "--json")
    assert 0 == proc.returncode, proc.stderr[-3000:]
    return home, json.loads(proc.stdout)


def test_the_loop_detects_the_shift_retrains_and_recovers_most_of_the_cost(story) -> None:
    _, figures = story

    shift = figures["shift_day"]
    assert shift <= figures["drift_alert_day"] <= shift + 1  # the inputs moved at once
    assert shift < figures["cost_alert_day"] < figures["promotion_day"] < 21
    assert figures["before"] < figures["after"] < figures["during"]
    assert figures["after"] < figures["v1_after"]  # better than keeping v1, same traffic
    assert figures["recovered"] > 0.5
    days = figures["daily"]
    assert 21 == len(days)
    assert all(d["served"] > 0 and d["keep_v1"] > 0 for d in days)


def test_the_report_shows_costs_drift_alerts_and_decisions(story) -> None:
    home, figures = story

    page = Path(figures["report"]).read_text(encoding="utf-8")

    assert Path(figures["report"]).parent == home / "demo"
    assert page.count("<svg") >= 3
    for text in ("had we kept v1", "gate passed", "fraud_cost_high", "canary", "champion"):
        assert text in page


def test_the_listings_show_everything_that_happened(story) -> None:
    home, _ = story

    history = as_json(bascule(home, "models", "history", "fraud", "--json"))
    runs = as_json(bascule(home, "runs", "list", "--json", "-e", "fraud"))
    alerts = as_json(bascule(home, "alerts", "list", "--json"))

    kinds = [e["kind"] for e in history]
    assert {"registered", "gate_passed", "rollout", "retrain_started"} <= set(kinds)
    stages = [e["details"]["stage"] for e in history if e["kind"] == "rollout"]
    assert ["shadow", "canary", "full"] == stages
    champion = [e for e in history if e["kind"] == "alias_set" and e["alias"] == "champion"]
    assert [None, 1] == [e["previous_version"] for e in champion]
    assert 2 == champion[-1]["version"]
    assert len(runs) >= 2
    assert all(r["status"] == "FINISHED" for r in runs)
    assert {"inputs_drifted", "fraud_cost_high"} <= {a["rule"] for a in alerts}


def test_a_second_run_on_the_same_home_is_refused_with_a_clear_error(story) -> None:
    home, _ = story

    again = bascule(home, "demo", "--seed", "7")

    assert 0 != again.returncode
    assert "already holds a model 'fraud'" in again.stderr
    assert "--home" in again.stderr


def test_the_same_seed_tells_the_same_story(story, tmp_path: Path) -> None:
    _, first = story

    proc = bascule(tmp_path / "home", "demo", "--seed", "7", "--json")
    second = json.loads(proc.stdout)

    assert 0 == proc.returncode, proc.stderr[-3000:]
    for key in ("drift_alert_day", "cost_alert_day", "promotion_day", "before", "after"):
        assert first[key] == second[key]
    assert first["daily"] == second["daily"]
