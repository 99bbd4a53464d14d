"""Conversion of fitted models to ONNX, with the signature the registry stores beside them.

Every model goes through one code path, ``skl2onnx.convert_sklearn``: scikit-learn models
with skl2onnx's own converters, LightGBM and XGBoost models with onnxmltools' converters
registered into skl2onnx (so Pipelines ending in a booster convert too). Classifiers come
out with two plain tensors, ``label`` and ``probabilities`` (ZipMap disabled); regressors
with one, ``variable``. Whether the ONNX model reproduces the source model is checked
separately, by ``bascule.registry.parity.check_parity``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from bascule.core.errors import InvalidInputError, UnsupportedModelError
from bascule.core.schema import ModelSignature
from bascule.registry.converters._boosters import (
    INSTALL_HINT,
    register_lightgbm,
    register_xgboost,
    without_xgboost_feature_names,
)
from bascule.registry.converters._inputs import InputPlan, plan_inputs, tensor_specs
from bascule.registry.converters._sklearn import (
    final_estimator,
    iter_estimators,
    register_histgb_fix,
)

__all__ = ["SUPPORTED_MODELS", "ConvertedModel", "convert"]

Flavor = Literal["sklearn", "lightgbm", "xgboost"]

SUPPORTED_MODELS: tuple[str, ...] = (
    "scikit-learn classifiers and regressors that skl2onnx converts, e.g. "
    "LogisticRegression, LinearRegression, Ridge, DecisionTreeClassifier/Regressor, "
    "RandomForestClassifier/Regressor, HistGradientBoostingClassifier/Regressor "
    "(numeric features)",
    "scikit-learn Pipeline, ColumnTransformer and FeatureUnion around them, with "
    "transformers that skl2onnx converts, e.g. OneHotEncoder, StandardScaler, SimpleImputer",
    "lightgbm.LGBMClassifier and lightgbm.LGBMRegressor (numeric features)",
    "xgboost.XGBClassifier and xgboost.XGBRegressor",
)
_SUPPORTED_TEXT = "; ".join(SUPPORTED_MODELS)
_FLAVORS: dict[str, Flavor] = {"sklearn": "sklearn", "lightgbm": "lightgbm", "xgboost": "xgboost"}
_CLASSIFIER_OUTPUTS = ("label", "probabilities")
ML_OPSET = 3
"""``ai.onnx.ml`` opset: the highest skl2onnx 1.20 supports."""


@dataclass(frozen=True)
class ConvertedModel:
    """A model converted to ONNX.

    Attributes:
        onnx_bytes: The serialized ``onnx.ModelProto``.
        signature: How a table maps to the model's inputs, and what comes out.
        flavor: The library of the converted object's class (a Pipeline is ``sklearn``
            whatever its last step).
        opset: The ``ai.onnx`` opset the model imports.
    """

    onnx_bytes: bytes
    signature: ModelSignature
    flavor: Flavor
    opset: int


def convert(model: Any, sample: pd.DataFrame | np.ndarray) -> ConvertedModel:
    """Convert a fitted classifier or regressor to ONNX.

    The input layout follows the sample (see ``bascule.core.schema``): a numeric matrix
    becomes one ``FP32`` tensor named ``input``; a DataFrame with string or category
    columns, or fed to a ColumnTransformer that selects columns by name, becomes one
    ``[-1, 1]`` input per column.

    Args:
        model: A fitted scikit-learn, LightGBM or XGBoost estimator, or a Pipeline.
        sample: Rows like the training data: a DataFrame or a 2-D numeric numpy array.
            Only its columns and dtypes are used.

    Returns:
        The ONNX bytes, the signature, the flavor and the opset.

    Raises:
        UnsupportedModelError: The object is not a classifier or regressor of a supported
            library, contains a step no installed converter handles, or a converter
            package is missing.
        InvalidInputError: The model is not fitted, or the sample does not match it.
    """
    model_type = _type_name(model)
    flavor = _flavor(model, model_type)
    task = _task(model, model_type)
    _check_fitted(model, model_type)
    _register_converters(model)
    _check_convertible(model, model_type)
    plan = plan_inputs(model, sample, model_type)
    classes = _classes(model, model_type) if task == "classification" else None
    source = without_xgboost_feature_names(model, list(iter_estimators(model)))
    onnx_model = _to_onnx(source, plan, task, model_type)
    outputs = tensor_specs(onnx_model.graph.output)
    output_names = [o.name for o in outputs]
    if task == "classification":
        label_output, proba_output = _CLASSIFIER_OUTPUTS
        if not set(_CLASSIFIER_OUTPUTS) <= set(output_names):
            raise UnsupportedModelError(
                f"The ONNX graph of '{model_type}' has outputs {output_names}; expected "
                f"{list(_CLASSIFIER_OUTPUTS)}.",
                field="model",
            )
    else:
        label_output, proba_output = output_names[0], None
    signature = ModelSignature(
        layout=plan.layout,
        columns=plan.columns,
        inputs=tensor_specs(onnx_model.graph.input),
        outputs=outputs,
        task=task,
        classes=classes,
        label_output=label_output,
        proba_output=proba_output,
    )
    opset = max(o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx"))
    return ConvertedModel(
        onnx_bytes=onnx_model.SerializeToString(),
        signature=signature,
        flavor=flavor,
        opset=int(opset),
    )


def _type_name(obj: object) -> str:
    """Return ``module.qualname`` of the object's class, as error messages show it."""
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _unsupported(model_type: str, why: str) -> UnsupportedModelError:
    return UnsupportedModelError(
        f"Cannot convert a '{model_type}' to ONNX: {why}. Supported: {_SUPPORTED_TEXT}.",
        field="model",
        value=model_type,
        expected=_SUPPORTED_TEXT,
    )


def _flavor(model: Any, model_type: str) -> Flavor:
    flavor = _FLAVORS.get(type(model).__module__.split(".")[0])
    if flavor is None:
        raise _unsupported(model_type, "it is not a model of a supported library")
    from sklearn.base import BaseEstimator

    if not isinstance(model, BaseEstimator):
        raise _unsupported(model_type, "it is not a scikit-learn compatible estimator")
    return flavor


def _task(model: Any, model_type: str) -> Literal["classification", "regression"]:
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(model):
        return "classification"
    if is_regressor(model):
        return "regression"
    raise _unsupported(model_type, "it is neither a classifier nor a regressor")


def _check_fitted(model: Any, model_type: str) -> None:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except NotFittedError as exc:
        raise InvalidInputError(
            f"Model '{model_type}' is not fitted; call fit() on it before converting it.",
            field="model",
            value=model_type,
            expected="a fitted estimator",
        ) from exc


def _register_converters(model: Any) -> None:
    try:
        import skl2onnx  # noqa: F401
    except ImportError as exc:
        raise UnsupportedModelError(
            f"Converting models to ONNX needs skl2onnx, which is not installed ({exc}). "
            f"Install the converters with `{INSTALL_HINT}`.",
            field="model",
            expected=INSTALL_HINT,
        ) from exc
    register_histgb_fix()
    libraries = {type(e).__module__.split(".")[0] for e in iter_estimators(model)}
    if "lightgbm" in libraries:
        register_lightgbm()
    if "xgboost" in libraries:
        register_xgboost()


def _check_convertible(model: Any, model_type: str) -> None:
    from skl2onnx import get_model_alias

    for estimator in iter_estimators(model):
        inner = _type_name(estimator)
        where = "" if estimator is model else f" (a step of '{model_type}')"
        try:
            get_model_alias(type(estimator))
        except RuntimeError as exc:
            raise _unsupported(inner, f"no ONNX converter is registered for it{where}") from exc
        categorical = getattr(estimator, "is_categorical_", None)
        if categorical is not None and bool(np.any(categorical)):
            raise _unsupported(
                inner,
                f"its native categorical splits cannot be expressed in ONNX{where}; "
                "one-hot encode those columns in a Pipeline or fit with "
                "categorical_features=None",
            )


def _classes(model: Any, model_type: str) -> list[int] | list[str]:
    values = np.asarray(model.classes_)
    if values.dtype.kind in "iu":
        return [int(v) for v in values]
    if all(isinstance(v, str) for v in values.tolist()):
        return [str(v) for v in values]
    raise _unsupported(
        model_type,
        f"its class labels {values.tolist()[:10]} (dtype {values.dtype}) are not all "
        "integers or strings; encode the target with integers or strings",
    )


def _to_onnx(model: Any, plan: InputPlan, task: str, model_type: str) -> Any:
    import onnx
    import skl2onnx

    # The highest opsets skl2onnx is tested with (onnxruntime runs them); onnxmltools would
    # otherwise pick ai.onnx.ml 5, which skl2onnx refuses.
    opset = min(skl2onnx.__max_supported_opset__, onnx.defs.onnx_opset_version())
    target_opset = {"": opset, "ai.onnx.ml": ML_OPSET}
    options = {id(final_estimator(model)): {"zipmap": False}} if task == "classification" else None
    try:
        return skl2onnx.convert_sklearn(
            model, initial_types=plan.initial_types, target_opset=target_opset, options=options
        )
    except (RuntimeError, NotImplementedError, ValueError, TypeError) as exc:
        reason = str(exc).strip().rstrip(".")
        reason = reason if len(reason) <= 500 else reason[:500] + "…"
        raise _unsupported(model_type, f"skl2onnx failed: {reason}") from exc
