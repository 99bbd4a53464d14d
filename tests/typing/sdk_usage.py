"""Typed use of the public SDK, checked by mypy (scripts/check), never run by pytest."""

from __future__ import annotations

import numpy as np
import pandas as pd

import bascule
import bascule.sdk
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


def register_with_features(model: object, entity_df: pd.DataFrame) -> ModelVersion:
    store = bascule.sdk.feature_store()
    training = store.get_historical_features(entity_df, "fraud_features")
    frame = training.to_df()
    return bascule.register_model(
        "fraud",
        model,
        sample=frame[["spend_7d", "amount"]],
        feature_service="fraud_features",
        feature_lineage=training.lineage,
        missing_features="refuse",
    )
