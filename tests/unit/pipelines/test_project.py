"""A project's data source, training entrypoint, and what ``bascule validate`` says of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bascule.core.errors import ConfigError, InvalidInputError
from bascule.core.project_settings import DataSettings, TrainingSettings
from bascule.core.settings import Settings
from bascule.pipelines.project import (
    check_project,
    load_entrypoint,
    read_project_data,
    training_params,
)

TRAIN = "def train(df, params):\n    return ('trained', len(df), params.get('depth'))\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    (tmp_path / "data").mkdir()
    for part in range(2):
        pd.DataFrame(
            {
                "ts": pd.date_range(f"2026-01-0{part + 1}", periods=50, freq="h", tz="UTC"),
                "amount": rng.random(50),
                "channel": rng.choice(["web", "shop"], size=50),
                "y": np.arange(50) % 2,
            }
        ).to_parquet(tmp_path / "data" / f"part-{part}.parquet", index=False)
    (tmp_path / "trainer.py").write_text(TRAIN, encoding="utf-8")
    return tmp_path


def settings(**project: Any) -> Settings:
    base: dict[str, Any] = {
        "model": "fraud",
        "training": {"entrypoint": "trainer:train", "params": {"depth": 3}},
        "data": {
            "source": "data/*.parquet",
            "label": "y",
            "timestamp": "ts",
            "features": ["amount", "channel"],
            "categorical": ["channel"],
        },
        "gate": {"metric": "roc_auc", "guard_metrics": {}},
    }
    for key, value in project.items():
        base[key] = {**base[key], **value} if isinstance(base.get(key), dict) else value
    return Settings(project=base)


def data(**fields: Any) -> DataSettings:
    base = {"label": "y", "timestamp": "ts", "features": ["amount"], "source": "data/*.parquet"}
    return DataSettings(**{**base, **fields})


def test_a_glob_reads_every_file(folder: Path) -> None:
    frame = read_project_data(data(), base_dir=folder)

    assert 100 == len(frame)
    assert {"ts", "amount", "channel", "y"} == set(frame.columns)


def test_sql_reads_relative_to_the_project_folder(folder: Path) -> None:
    sql = "SELECT * FROM read_parquet('data/*.parquet') WHERE channel = 'web'"

    frame = read_project_data(data(source=None, sql=sql), base_dir=folder)

    assert 0 < len(frame) < 100
    assert {"web"} == set(frame["channel"])


def test_no_matching_file_names_the_setting(folder: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"project\.data\.source") as e:
        read_project_data(data(source="nowhere/*.parquet"), base_dir=folder)

    assert "invalid_input" == e.value.code


def test_a_broken_query_carries_duckdbs_message(folder: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"project\.data\.sql: DuckDB cannot read"):
        read_project_data(data(source=None, sql="SELECT * FROM nope"), base_dir=folder)


def test_entrypoint_is_imported_and_called_with_df_and_params(folder: Path) -> None:
    fn = load_entrypoint(TrainingSettings(entrypoint="trainer:train"), base_dir=folder)

    assert ("trained", 2, 3) == fn(pd.DataFrame({"a": [1, 2]}), {"depth": 3})


def test_an_edited_training_module_is_imported_afresh(folder: Path) -> None:
    training = TrainingSettings(entrypoint="trainer:train")
    load_entrypoint(training, base_dir=folder)
    (folder / "trainer.py").write_text(
        "def train(df, params):\n    return 'edited, longer'\n", encoding="utf-8"
    )

    assert "edited, longer" == load_entrypoint(training, base_dir=folder)(pd.DataFrame(), {})


@pytest.mark.parametrize(
    ("source", "entrypoint", "message"),
    [
        ("x = 1\n", "trainer:missing", "has no 'missing'"),
        ("train = 3\n", "trainer:train", "is not callable"),
        ("def train(df):\n    pass\n", "trainer:train", r"train\(df, params\)"),
        ("raise RuntimeError('boom')\n", "trainer:train", "RuntimeError: boom"),
        (TRAIN, "absent_module:train", "cannot import module 'absent_module'"),
    ],
)
def test_entrypoint_mistakes_are_config_errors(
    folder: Path, source: str, entrypoint: str, message: str
) -> None:
    (folder / "trainer.py").write_text(source, encoding="utf-8")

    with pytest.raises(ConfigError, match=message) as e:
        load_entrypoint(TrainingSettings(entrypoint=entrypoint), base_dir=folder)

    assert "config_error" == e.value.code


def test_training_params_add_the_data_columns() -> None:
    project = settings().project
    assert project is not None

    params = training_params(project)

    assert 3 == params["depth"]
    assert ("y", ["amount", "channel"], ["channel"]) == (
        params["label"],
        params["features"],
        params["categorical"],
    )


def test_a_sound_project_has_no_problems(folder: Path) -> None:
    assert [] == check_project(settings(), base_dir=folder)


def test_no_project_section_has_no_problems(folder: Path) -> None:
    assert [] == check_project(Settings(), base_dir=folder)


def test_every_project_mistake_is_listed(folder: Path) -> None:
    bad = settings(
        training={"entrypoint": "trainer:nothing"},
        data={"features": ["amount", "channel", "hour"], "categorical": []},
        gate={"metric": "business_cost"},
        retraining={"on_alerts": ["drift"], "schedule": "61 * * * *"},
    )

    problems = check_project(bad, base_dir=folder)
    text = "\n".join(problems)

    assert 6 == len(problems), text
    assert "monitoring.models.fraud.cost is not set" in text
    assert "['drift'] are not alert rules" in text
    assert "project.retraining.schedule" in text
    assert "has no 'nothing'" in text
    assert "column 'hour' is not in the data" in text
    assert "column 'channel' is VARCHAR; list it in project.data.categorical" in text


def test_price_columns_and_binary_labels_are_checked(folder: Path) -> None:
    frame = pd.read_parquet(folder / "data" / "part-0.parquet").assign(y=lambda f: f["y"] * 2)
    frame.to_parquet(folder / "data" / "part-0.parquet", index=False)
    base = settings(gate={"metric": "business_cost"})
    with_cost = Settings(
        project=base.project,
        monitoring={"models": {"fraud": {"cost": {"fp_cost": 1, "fn_cost_column": "price"}}}},
    )

    problems = check_project(with_cost, base_dir=folder)

    assert 2 == len(problems), problems
    assert "column 'price' prices each row but is not in the training data" in problems[0]
    assert "has 3 distinct values" in problems[1]
