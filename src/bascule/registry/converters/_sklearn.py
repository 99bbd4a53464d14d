"""scikit-learn specifics: the HistGradientBoosting converter fix and estimator traversal.

**Why the HistGradientBoosting converters are re-registered.** skl2onnx 1.20 builds the
``nodes_missing_value_tracks_true`` attribute of ``TreeEnsembleClassifier`` /
``TreeEnsembleRegressor`` from two sources
(``skl2onnx.common.tree_ensemble.add_tree_to_attribute_pairs_hist_gradient_boosting``):
split nodes contribute ``node["missing_go_to_left"]`` (a ``numpy.uint8`` taken from
sklearn's predictor node array) and leaves contribute the Python literal ``False``.
Since onnx 1.23, ``onnx.helper.make_attribute`` hands that list straight to protobuf's
repeated ``int64`` field, which rejects ``bool`` ("Expected an int, got a boolean"), so
every HistGradientBoosting model fails to convert.

The fix wraps skl2onnx's own converter functions and gives them a container whose
``add_node`` casts that one attribute to ``int`` before the node is made. The values keep
their meaning: ``1`` sends a missing value (NaN) down the *true* branch of ``BRANCH_LEQ``,
i.e. sklearn's left child, exactly when ``missing_go_to_left`` is set. The wrapped
converters are registered with skl2onnx's public ``update_registered_converter``, with the
same shape calculators and options as the originals, so they are used inside Pipelines too.
The cast is harmless once skl2onnx emits ints itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "final_estimator",
    "has_column_transformer",
    "iter_estimators",
    "register_histgb_fix",
    "selects_columns_by_name",
]

_TRACKS_TRUE = "nodes_missing_value_tracks_true"
_CLASSIFIER_OPTIONS: dict[str, Any] = {
    "zipmap": [True, False, "columns"],
    "raw_scores": [True, False],
    "output_class_labels": [False, True],
    "nocl": [True, False],
}
_REGRESSOR_OPTIONS: dict[str, Any] = {"raw_scores": [True, False]}

Converter = Callable[[Any, Any, Any], None]


class _IntTracksContainer:
    """Proxy of a skl2onnx ``ModelComponentContainer`` that emits integer missing-value flags.

    Every attribute is delegated to the wrapped container except ``add_node``.
    """

    def __init__(self, container: Any) -> None:
        self._container = container

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def add_node(
        self,
        op_type: str,
        inputs: Any,
        outputs: Any,
        op_domain: str = "",
        op_version: int | None = None,
        name: str | None = None,
        **attrs: Any,
    ) -> Any:
        tracks = attrs.get(_TRACKS_TRUE)
        if tracks is not None:
            attrs[_TRACKS_TRUE] = [int(flag) for flag in tracks]
        return self._container.add_node(
            op_type,
            inputs,
            outputs,
            op_domain=op_domain,
            op_version=op_version,
            name=name,
            **attrs,
        )


def _with_int_tracks(convert: Converter) -> Converter:
    # skl2onnx checks that a converter's parameters are named (scope, operator, container).
    def converter(scope: Any, operator: Any, container: Any) -> None:
        convert(scope, operator, _IntTracksContainer(container))

    converter.__name__ = f"bascule_{convert.__name__}"
    return converter


@functools.cache
def register_histgb_fix() -> None:
    """Register the HistGradientBoosting converters that emit integer missing-value flags.

    Idempotent; see the module docstring for why it is needed.
    """
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    from skl2onnx.operator_converters.random_forest import (
        convert_sklearn_random_forest_classifier,
        convert_sklearn_random_forest_regressor_converter,
    )
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    update_registered_converter(
        HistGradientBoostingClassifier,
        "SklearnHistGradientBoostingClassifier",
        calculate_linear_classifier_output_shapes,
        _with_int_tracks(convert_sklearn_random_forest_classifier),
        options=_CLASSIFIER_OPTIONS,
    )
    update_registered_converter(
        HistGradientBoostingRegressor,
        "SklearnHistGradientBoostingRegressor",
        calculate_linear_regressor_output_shapes,
        _with_int_tracks(convert_sklearn_random_forest_regressor_converter),
        options=_REGRESSOR_OPTIONS,
    )


def iter_estimators(model: Any) -> Iterator[Any]:
    """Yield ``model`` and every estimator nested in Pipelines, ColumnTransformers, FeatureUnions.

    Args:
        model: A fitted estimator.

    Yields:
        The estimators, outermost first. ``"drop"`` and ``"passthrough"`` are skipped.
    """
    if model is None or isinstance(model, str):
        return
    yield model
    children: list[Any] = []
    if hasattr(model, "steps"):  # Pipeline
        children = [step for _, step in model.steps]
    elif hasattr(model, "transformers_"):  # fitted ColumnTransformer
        children = [transformer for _, transformer, _ in model.transformers_]
    elif hasattr(model, "transformer_list"):  # FeatureUnion
        children = [transformer for _, transformer in model.transformer_list]
    for child in children:
        yield from iter_estimators(child)


def final_estimator(model: Any) -> Any:
    """Return the last step of a (possibly nested) Pipeline, or ``model`` itself.

    Args:
        model: A fitted estimator.

    Returns:
        The estimator that produces the predictions.
    """
    while hasattr(model, "steps"):
        model = model.steps[-1][1]
    return model


def has_column_transformer(model: Any) -> bool:
    """Tell whether ``model`` contains a fitted ColumnTransformer.

    Args:
        model: A fitted estimator.

    Returns:
        True when a step of ``model`` (or ``model`` itself) routes columns.
    """
    return any(hasattr(e, "transformers_") for e in iter_estimators(model))


def selects_columns_by_name(model: Any) -> bool:
    """Tell whether any ColumnTransformer in ``model`` selects its columns by name.

    Args:
        model: A fitted estimator.

    Returns:
        True when a fitted ColumnTransformer uses string column selectors.
    """
    for estimator in iter_estimators(model):
        for _, _, columns in getattr(estimator, "transformers_", ()):
            values = [columns] if isinstance(columns, str) else list(_as_list(columns))
            if any(isinstance(value, str) for value in values):
                return True
    return False


def _as_list(columns: Any) -> list[Any]:
    if isinstance(columns, slice) or callable(columns):
        return []
    try:
        return list(columns)
    except TypeError:
        return [columns]
