from __future__ import annotations

from pathlib import Path

import pytest

from bascule.core.errors import ConfigError
from bascule.core.settings import Settings, explain_settings, load_settings


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("BASCULE_HOME", "BASCULE_DATABASE_URL", "BASCULE_ARTIFACTS", "BASCULE_CONFIG"):
        monkeypatch.delenv(var, raising=False)


def test_defaults_live_under_home() -> None:
    s = load_settings()

    assert Path(".bascule") == s.home
    assert s.database_url_value.endswith(".bascule/bascule.db")
    assert s.database_url_value.startswith("sqlite:///")
    assert s.artifacts_value.endswith(".bascule/artifacts")


def test_env_beats_yaml_beats_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "bascule.yaml").write_text(
        "home: from-yaml\nserver:\n  port: 7000\n  host: 0.0.0.0\n"
    )
    monkeypatch.setenv("BASCULE_SERVER__PORT", "8080")

    s = load_settings()

    assert Path("from-yaml") == s.home
    assert 8080 == s.server.port
    assert "0.0.0.0" == s.server.host


def test_flat_env_names_from_the_docs_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASCULE_HOME", "/data/b")
    monkeypatch.setenv("BASCULE_DATABASE_URL", "postgresql://u:hunter2@db/x")
    monkeypatch.setenv("BASCULE_ARTIFACTS", "s3://bucket/prefix")

    s = load_settings()

    assert "postgresql://u:hunter2@db/x" == s.database_url_value
    assert "s3://bucket/prefix" == s.artifacts_value
    assert "hunter2" not in repr(s)


def test_every_mistake_is_reported_with_its_source(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "bascule.yaml").write_text("serverr:\n  port: 1\ndatabase_url: mysql://x\n")
    monkeypatch.setenv("BASCULE_SERVER__PORT", "99999")

    with pytest.raises(ConfigError) as e:
        load_settings()

    problems = e.value.details["problems"]
    assert 3 == len(problems)
    text = "\n".join(problems)
    assert "serverr: unknown setting" in text
    assert "bascule.yaml (key serverr)" in text
    assert "database_url" in text
    assert "mysql" in text
    assert "environment variable BASCULE_SERVER__PORT" in text
    assert "config_error" == e.value.code


def test_explain_names_the_source_of_each_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "bascule.yaml").write_text("artifacts: /srv/blobs\n")
    monkeypatch.setenv("BASCULE_HOME", str(tmp_path / "h"))

    sources = {s.field: s.source for s in explain_settings()}

    assert "environment variable BASCULE_HOME" == sources["home"]
    assert sources["artifacts"].endswith("bascule.yaml (key artifacts)")
    assert "default" == sources["server.port"]


def test_missing_explicit_config_file_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"nope.yaml"):
        load_settings("nope.yaml")


def test_yaml_that_is_not_a_mapping_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "bascule.yaml").write_text("- a\n- b\n")

    with pytest.raises(ConfigError, match="mapping"):
        load_settings()


def test_settings_built_in_code_read_no_file(tmp_path: Path) -> None:
    (tmp_path / "bascule.yaml").write_text("home: ignored\n")

    assert Path("x") == Settings(home=Path("x")).home


@pytest.mark.parametrize("bad", ["ftp://host/x", "s3:///prefix-without-bucket"])
def test_bad_artifact_roots_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="artifacts"):
        load_settings(None, artifacts=bad)
