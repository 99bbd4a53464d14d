"""LightGBM and XGBoost: onnxmltools' converters, registered with skl2onnx.

Registering them through ``skl2onnx.update_registered_converter`` (the recipe of the
skl2onnx documentation) lets one code path, ``skl2onnx.convert_sklearn``, convert a bare
booster and a Pipeline ending in one alike, with skl2onnx's classifier parser: with the
``zipmap`` option off, probabilities come out as a plain ``[-1, n_classes]`` tensor.

Each function imports its library only when called, and is called only when that library
is already imported (a model from it exists).
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from bascule.core.errors import UnsupportedModelError

__all__ = ["register_lightgbm", "register_xgboost", "without_xgboost_feature_names"]

INSTALL_HINT = "pip install 'bascule[convert]'"
_CLASSIFIER_OPTIONS: dict[str, Any] = {
    "nocl": [True, False],
    "zipmap": [True, False, "columns"],
}


def _missing(package: str, exc: ImportError) -> UnsupportedModelError:
    return UnsupportedModelError(
        f"Converting this model to ONNX needs the '{package}' package, which is not "
        f"installed ({exc}). Install the converters with `{INSTALL_HINT}`.",
        field="model",
        expected=INSTALL_HINT,
    )


@functools.cache
def register_lightgbm() -> None:
    """Register onnxmltools' converter for ``LGBMClassifier`` and ``LGBMRegressor``.

    Raises:
        UnsupportedModelError: onnxmltools is not installed.
    """
    from lightgbm import LGBMClassifier, LGBMRegressor
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    try:
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    except ImportError as exc:
        raise _missing("onnxmltools", exc) from exc

    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        convert_lightgbm,
        options=_CLASSIFIER_OPTIONS,
    )
    update_registered_converter(
        LGBMRegressor,
        "LightGbmLGBMRegressor",
        calculate_linear_regressor_output_shapes,
        convert_lightgbm,
        options={"split": None},
    )


@functools.cache
def register_xgboost() -> None:
    """Register onnxmltools' converter for ``XGBClassifier`` and ``XGBRegressor``.

    Raises:
        UnsupportedModelError: onnxmltools is not installed.
    """
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    from xgboost import XGBClassifier, XGBRegressor

    try:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    except ImportError as exc:
        raise _missing("onnxmltools", exc) from exc

    update_registered_converter(
        XGBClassifier,
        "XGBoostXGBClassifier",
        calculate_linear_classifier_output_shapes,
        convert_xgboost,
        options=_CLASSIFIER_OPTIONS,
    )
    update_registered_converter(
        XGBRegressor,
        "XGBoostXGBRegressor",
        calculate_linear_regressor_output_shapes,
        convert_xgboost,
    )


def without_xgboost_feature_names(model: Any, estimators: list[Any]) -> Any:
    """Return ``model``, or a copy whose XGBoost boosters forget their feature names.

    onnxmltools reads feature indices from the booster's tree dump, which names features
    ``f0, f1...`` only when the booster has no feature names; fitted on a DataFrame, it
    would show column names (failing to convert, or worse, a column named ``f3`` at
    position 0 read as feature 3). The copy leaves the caller's model untouched.

    Args:
        model: The fitted model.
        estimators: ``model`` and its nested estimators, outermost first.

    Returns:
        ``model`` itself when no XGBoost booster has feature names, else a deep copy.
    """
    named = [
        i
        for i, e in enumerate(estimators)
        if type(e).__module__.startswith("xgboost") and e.get_booster().feature_names is not None
    ]
    if not named:
        return model
    clone = copy.deepcopy(estimators)
    for i in named:
        clone[i].get_booster().feature_names = None
    return clone[0]
