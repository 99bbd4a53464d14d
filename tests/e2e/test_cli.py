"""The CLI end to end: alias moves, errors, validation (the demo: test_demo.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.e2e.conftest import as_json

pytestmark = pytest.mark.slow


def register_versions(home: Path, count: int) -> None:
    """``fraud`` v1..v``count`` (v1 champion), registered through the services as the SDK does."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from bascule.testing import make_services

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=["amount", "age", "risk"])
    services = make_services(home)
    try:
        for i in range(count):
            y = (frame["amount"] + i * frame["risk"] > 0).astype(int)
            services.registry.register("fraud", LogisticRegression().fit(frame, y), sample=frame)
        services.registry.set_alias("fraud", "champion", 1, reason="first model")
    finally:
        services.close()


def test_alias_move_by_cli_is_audited(cli, tmp_path: Path) -> None:
    register_versions(tmp_path / "home", 2)
    assert 0 == cli("models", "alias", "fraud", "champion", "2").returncode

    moved = as_json(
        cli("models", "alias", "fraud", "champion", "1", "--reason", "rollback drill", "--json")
    )
    history = as_json(cli("models", "history", "fraud", "--json"))

    assert (2, 1) == (moved["previous_version"], moved["version"])
    assert "rollback drill" == history[-1]["reason"]


def test_not_found_has_its_own_exit_code_and_lists_what_exists(cli, tmp_path: Path) -> None:
    register_versions(tmp_path / "home", 1)

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
