"""The demo project's training function (``bascule.demo.training:train``).

Called by the retraining pipeline as ``train(df, params)`` with the training rows (the
feature columns and the label) and ``params`` (``label``, ``features``, ``categorical``
from the project's data section, plus the project's own training params).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["train"]


def train(df: pd.DataFrame, params: dict[str, Any]) -> Any:
    """A scikit-learn Pipeline: one-hot categories, then gradient-boosted trees.

    Params: ``max_iter`` (trees, default 100), ``learning_rate`` (0.1), ``seed`` (0).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    features = list(params["features"])
    categorical = [c for c in features if c in set(params.get("categorical", []))]
    numeric = [c for c in features if c not in categorical]
    prepare = ColumnTransformer(
        [
            ("num", "passthrough", numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
        ]
    )
    trees = HistGradientBoostingClassifier(
        max_iter=int(params.get("max_iter", 100)),
        learning_rate=float(params.get("learning_rate", 0.1)),
        max_leaf_nodes=31,
        early_stopping=False,
        random_state=int(params.get("seed", 0)),
    )
    model = Pipeline([("prepare", prepare), ("model", trees)])
    model.fit(df[features], df[params["label"]])
    return model
