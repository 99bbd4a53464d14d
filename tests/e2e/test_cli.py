"""The CLI end to end: the demo, then the listings it leaves behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import as_json

pytestmark = pytest.mark.slow


def test_demo_then_listings_show_what_happened(cli) -> None:
    demo = cli("demo", "--seed", "3")

    assert 0 == demo.returncode, demo.stderr
    assert "fraud@champion" in demo.stdout
    runs = as_json(cli("runs", "list", "--json", "-e", "fraud"))
    assert 1 == len(runs)
    assert "FINISHED" == runs[0]["status"]
    assert "roc_auc" in runs[0]["metrics"]
    history = as_json(cli("models", "history", "fraud", "--json"))
    assert ["registered", "alias_set"] == [e["kind"] for e in history]
    assert {"version", "alias", "previous_version", "at", "actor", "reason"} <= set(history[1])
    assert "champion" == history[1]["alias"]
    models = as_json(cli("models", "list", "--json"))
    assert {"champion": 1} == models[0]["aliases"]
    version = as_json(cli("models", "show", "fraud@champion", "--json"))
    assert runs[0]["id"] == version["run_id"]
    assert version["dataset_digest"] == runs[0]["datasets"][0]["digest"]


def test_alias_move_by_cli_is_audited(cli) -> None:
    assert 0 == cli("demo", "--seed", "1").returncode
    assert 0 == cli("demo", "--seed", "2").returncode

    moved = as_json(
        cli("models", "alias", "fraud", "champion", "1", "--reason", "rollback drill", "--json")
    )
    history = as_json(cli("models", "history", "fraud", "--json"))

    assert (2, 1) == (moved["previous_version"], moved["version"])
    assert "rollback drill" == history[-1]["reason"]


def test_not_found_has_its_own_exit_code_and_lists_what_exists(cli) -> None:
    assert 0 == cli("demo").returncode

    proc = cli("models", "show", "frud")
    alias = cli("models", "show", "fraud@champ")

    assert 4 == proc.returncode
    assert "'frud' not found" in proc.stderr
    assert "'fraud'" in proc.stderr
    assert 4 == alias.returncode
    assert "'champion'" in alias.stderr


def test_validate_reports_every_mistake_with_its_source(cli, tmp_path: Path) -> None:
    (tmp_path / "bascule.yaml").write_text("hoem: x\nserver:\n  port: nope\n")

    bad = cli("validate", env_extra={"BASCULE_DATABASE_URL": "mysql://x"})
    good = cli("validate", "--json")

    assert 78 == bad.returncode
    assert "3 problem(s)" in bad.stdout
    assert "hoem" in bad.stdout
    assert "bascule.yaml" in bad.stdout
    assert "BASCULE_DATABASE_URL" in bad.stdout
    assert 78 == good.returncode  # the same yaml is still wrong


def test_validate_passes_and_checks_the_backends(cli, tmp_path: Path) -> None:
    report = as_json(cli("validate", "--json"))

    assert report["ok"] is True
    assert any("metadata DB reachable" in c for c in report["checks"])
    sources = {s["field"]: s["source"] for s in report["settings"]}
    assert "environment variable BASCULE_HOME" == sources["home"]


def test_help_has_examples(cli) -> None:
    out = cli("models", "history", "--help")

    assert 0 == out.returncode
    assert "Example: bascule models history fraud --json" in out.stdout
