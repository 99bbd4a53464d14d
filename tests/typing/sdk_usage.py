"""Typed use of the public SDK, checked by mypy (scripts/check), never run by pytest."""

from __future__ import annotations

import numpy as np

import bascule
from bascule.core.records import ModelEvent, ModelVersion
from bascule.registry.predictor import OnnxPredictor
from bascule.sdk import ActiveRun


def train_and_register(model: object, sample: np.ndarray) -> tuple[ModelVersion, ModelEvent]:
    run: ActiveRun
    with bascule.start_run(experiment="fraud", name="typed") as run:
        run.log_params({"max_depth": 6})
        run.log_metrics({"loss": 0.5}, step=1)
        version: ModelVersion = bascule.register_model("fraud", model, sample=sample, run=run)
    event: ModelEvent = bascule.set_alias("fraud", "champion", version.version, reason="typed")
    return version, event


def score(rows: np.ndarray) -> np.ndarray:
    predictor: OnnxPredictor = bascule.load_model("fraud@champion")
    name: str = predictor.name
    assert name
    return predictor.predict_proba(rows)
