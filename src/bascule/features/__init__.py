"""The feature store: definitions, point-in-time training sets, materialisation, online lookups.

Definitions are light to import; :class:`FeatureStore` and the result types load DuckDB,
SQLAlchemy and pandas only when first touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bascule.features.definitions import load_definitions, parse_duration
from bascule.features.views import (
    DTYPES,
    Bool,
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    Float32,
    Float64,
    Int32,
    Int64,
    OnDemandFeatureView,
    RequestSource,
    SqlSource,
    String,
    on_demand_feature_view,
)

if TYPE_CHECKING:
    from bascule.features.materialize import MaterializeResult
    from bascule.features.online import FeatureValues, OnlineFeatures
    from bascule.features.store import FeatureStore
    from bascule.features.training import FeatureLineage, TrainingSet

__all__ = [
    "DTYPES",
    "Bool",
    "Entity",
    "FeatureLineage",
    "FeatureService",
    "FeatureStore",
    "FeatureValues",
    "FeatureView",
    "Field",
    "FileSource",
    "Float32",
    "Float64",
    "Int32",
    "Int64",
    "MaterializeResult",
    "OnDemandFeatureView",
    "OnlineFeatures",
    "RequestSource",
    "SqlSource",
    "String",
    "TrainingSet",
    "load_definitions",
    "on_demand_feature_view",
    "parse_duration",
]

_LAZY = {
    "FeatureLineage": "bascule.features.training",
    "FeatureStore": "bascule.features.store",
    "FeatureValues": "bascule.features.online",
    "MaterializeResult": "bascule.features.materialize",
    "OnlineFeatures": "bascule.features.online",
    "TrainingSet": "bascule.features.training",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bascule.features' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
