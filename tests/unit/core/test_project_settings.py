"""The project section of the settings: defaults, and mistakes explained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bascule.core.errors import ConfigError
from bascule.core.settings import Settings, find_config_file, load_settings

PROJECT: dict[str, Any] = {
    "model": "fraud",
    "training": {"entrypoint": "train:train"},
    "data": {
        "source": "data/*.parquet",
        "label": "is_fraud",
        "timestamp": "timestamp",
        "features": ["amount", "channel"],
        "categorical": ["channel"],
    },
}


def project(**sections: Any) -> dict[str, Any]:
    out = {**PROJECT}
    for key, value in sections.items():
        out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else value
    return out


def test_no_project_by_default() -> None:
    assert Settings().project is None


def test_a_minimal_project_gets_documented_defaults() -> None:
    p = Settings(project=PROJECT).project

    assert p is not None
    assert ("business_cost", 0.02, {"roc_auc": 0.01}) == (
        p.gate.metric,
        p.gate.margin,
        p.gate.guard_metrics,
    )
    assert 1 == p.retraining.max_concurrent
    assert ["."] == p.training.python_path
    assert (None, 0.2, 0.2) == (
        p.data.holdout_days,
        p.data.holdout_fraction,
        p.data.validation_fraction,
    )
    assert p.price_per_core_hour is None


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"data": {"sql": "SELECT 1"}}, "exactly one of 'source'"),
        ({"data": {"features": ["amount", "amount"]}}, "listed twice"),
        ({"data": {"features": ["is_fraud"], "categorical": []}}, "cannot also be a feature"),
        ({"data": {"categorical": ["country"]}}, "not among the features"),
        ({"training": {"entrypoint": "train"}}, "should match pattern"),
        ({"training": {"params": {"features": []}}}, "set by bascule"),
        ({"gate": {"guard_metrics": {"auc": 0.1}}}, "roc_auc"),
        ({"gate": {"guard_metrics": {"roc_auc": -0.1}}}, ">= 0"),
        ({"retraining": {"schedule": "every monday"}}, "cron expression"),
        ({"retraining": {"max_concurrent": 2}}, "max_concurrent"),
        ({"rollout": {"canary_percent": 0}}, "canary_percent"),
        ({"model": "no spaces"}, "model"),
    ],
)
def test_mistakes_are_named(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(project=project(**section))


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"gate\.margins"):
        Settings(project=project(gate={"margins": 0.1}))


def test_yaml_mistakes_name_the_setting_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bascule.yaml"
    path.write_text(
        "project:\n  model: fraud\n  training: {entrypoint: 'train:train'}\n"
        "  data: {source: x.parquet, label: y, timestamp: ts, features: [a]}\n"
        "  gate: {margin: -1}\n",
        encoding="utf-8",
    )

    with pytest.raises(ConfigError, match=r"project\.gate\.margin") as e:
        load_settings(path)

    assert "config_error" == e.value.code
    assert str(path) in e.value.message


def test_find_config_file_names_the_file_in_effect(tmp_path: Path) -> None:
    path = tmp_path / "bascule.yaml"
    path.write_text("{}\n", encoding="utf-8")

    assert path == find_config_file(path)
    with pytest.raises(ConfigError, match="not found"):
        find_config_file(tmp_path / "missing.yaml")
