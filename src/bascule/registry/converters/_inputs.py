"""From a sample of the training data to the ONNX inputs and the signature's columns.

Two layouts (see ``bascule.core.schema``):

* ``tensor``: a 2-D numpy array, or a DataFrame of numeric columns fed to a model that
  takes a plain matrix. One ``FP32`` input named ``input``, shape ``[-1, n]``.
* ``columns``: a DataFrame holding string or category columns, or fed to a Pipeline whose
  ColumnTransformer selects columns by name. One ``[-1, 1]`` input per column, named after
  it: ``BYTES`` for strings and categories, ``INT64`` for integers and booleans, ``FP32``
  for floats (and for integers holding missing values).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from bascule.core.errors import InvalidInputError, UnsupportedModelError
from bascule.core.schema import ColumnSpec, TensorSpec, V2Datatype
from bascule.registry.converters._sklearn import (
    has_column_transformer,
    selects_columns_by_name,
)

__all__ = ["TENSOR_INPUT", "InputPlan", "plan_inputs", "tensor_specs"]

TENSOR_INPUT = "input"
_EXPECTED_SAMPLE = "a non-empty pandas DataFrame or 2-D numeric numpy array"

# onnx.TensorProto element types -> Open Inference Protocol v2 datatypes.
_ONNX_TO_V2: dict[int, V2Datatype] = {
    1: "FP32",
    2: "UINT8",
    3: "INT8",
    4: "UINT16",
    5: "INT16",
    6: "INT32",
    7: "INT64",
    8: "BYTES",
    9: "BOOL",
    10: "FP16",
    11: "FP64",
    12: "UINT32",
    13: "UINT64",
}


@dataclass(frozen=True)
class InputPlan:
    """How the sample becomes ONNX inputs: the layout, the columns and skl2onnx's input types."""

    layout: Literal["tensor", "columns"]
    columns: list[ColumnSpec]
    initial_types: list[tuple[str, Any]]


def plan_inputs(model: Any, sample: Any, model_type: str) -> InputPlan:
    """Choose the input layout for ``model`` and describe its columns from ``sample``.

    Args:
        model: The fitted estimator or Pipeline.
        sample: A pandas DataFrame or a 2-D numeric numpy array of training rows.
        model_type: ``module.qualname`` of the model, for messages.

    Returns:
        The layout, one ColumnSpec per feature and the matching skl2onnx input types.

    Raises:
        InvalidInputError: The sample is empty, of the wrong type or shape, lacks columns
            the model was fitted on, or holds values the layout cannot carry.
    """
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType

    names, datatypes = _describe_sample(model, sample, model_type)
    by_name = isinstance(sample, pd.DataFrame) and selects_columns_by_name(model)
    if "BYTES" in datatypes and not has_column_transformer(model):
        strings = [n for n, d in zip(names, datatypes, strict=True) if d == "BYTES"]
        raise InvalidInputError(
            f"Columns {strings} hold strings or categories but model '{model_type}' takes a "
            "numeric matrix; encode them in a Pipeline with a ColumnTransformer "
            "(e.g. OneHotEncoder(handle_unknown='ignore')) or pass numbers.",
            field="sample",
            value=strings,
            expected="numeric columns",
        )
    if by_name or "BYTES" in datatypes:
        onnx_types = {"FP32": FloatTensorType, "INT64": Int64TensorType, "BYTES": StringTensorType}
        columns = [
            ColumnSpec(
                name=name,
                datatype=datatype,
                kind="categorical" if datatype == "BYTES" else "numeric",
            )
            for name, datatype in zip(names, datatypes, strict=True)
        ]
        initial = [(c.name, onnx_types[c.datatype]([None, 1])) for c in columns]
        return InputPlan(layout="columns", columns=columns, initial_types=initial)
    columns = [ColumnSpec(name=name, datatype="FP32", kind="numeric") for name in names]
    initial = [(TENSOR_INPUT, FloatTensorType([None, len(names)]))]
    return InputPlan(layout="tensor", columns=columns, initial_types=initial)


def _describe_sample(
    model: Any, sample: Any, model_type: str
) -> tuple[list[str], list[V2Datatype]]:
    fitted_names = getattr(model, "feature_names_in_", None)
    n_features = getattr(model, "n_features_in_", None)
    if isinstance(sample, pd.DataFrame):
        if len(sample) == 0 or sample.shape[1] == 0:
            raise InvalidInputError.for_field("sample", sample.shape, _EXPECTED_SAMPLE)
        if not all(isinstance(c, str) for c in sample.columns):
            raise InvalidInputError.for_field(
                "sample.columns", list(sample.columns), "string column names"
            )
        names = [str(c) for c in fitted_names] if fitted_names is not None else list(sample.columns)
        missing = [n for n in names if n not in sample.columns]
        if missing:
            raise InvalidInputError(
                f"The sample lacks columns {missing} that model '{model_type}' was fitted "
                f"on; expected columns: {names}.",
                field="sample",
                value=list(sample.columns),
                expected=str(names),
            )
        datatypes = [_column_datatype(name, sample[name]) for name in names]
    elif isinstance(sample, np.ndarray):
        if sample.ndim != 2 or sample.shape[0] == 0 or sample.dtype.kind not in "biuf":
            raise InvalidInputError.for_field(
                "sample",
                f"array of shape {list(sample.shape)} and dtype {sample.dtype}",
                _EXPECTED_SAMPLE,
            )
        width = sample.shape[1]
        if fitted_names is not None and len(fitted_names) == width:
            names = [str(c) for c in fitted_names]
        else:
            names = [f"f{i}" for i in range(width)]
        datatypes = ["FP32"] * width
    else:
        raise InvalidInputError.for_field("sample", type(sample).__name__, _EXPECTED_SAMPLE)
    if n_features is not None and int(n_features) != len(names):
        raise InvalidInputError(
            f"The sample has {len(names)} columns but model '{model_type}' was fitted on "
            f"{int(n_features)}.",
            field="sample",
            value=len(names),
            expected=str(int(n_features)),
        )
    return names, datatypes


def _column_datatype(name: str, series: pd.Series) -> V2Datatype:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "BYTES"
    if pd.api.types.is_bool_dtype(dtype):
        return "INT64"
    if pd.api.types.is_integer_dtype(dtype):
        return "FP32" if series.isna().any() else "INT64"
    if pd.api.types.is_float_dtype(dtype):
        return "FP32"
    if not pd.api.types.is_object_dtype(dtype) and pd.api.types.is_string_dtype(dtype):
        return "BYTES"
    if pd.api.types.is_object_dtype(dtype):
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred in ("integer", "boolean") and not series.isna().any():
            return "INT64"
        if inferred in ("integer", "floating", "mixed-integer-float", "boolean", "empty"):
            return "FP32"
        if inferred in ("string", "bytes", "mixed", "mixed-integer"):
            return "BYTES"
    raise InvalidInputError(
        f"Column '{name}' has dtype {dtype}, which cannot be fed to an ONNX model; "
        "expected numbers, booleans, strings or categories.",
        field=name,
        value=str(dtype),
        expected="a numeric, boolean, string or category column",
    )


def tensor_specs(values: Any) -> list[TensorSpec]:
    """Describe ONNX graph inputs or outputs as TensorSpecs.

    Args:
        values: ``onnx.ValueInfoProto`` items (``model.graph.input`` or ``.output``).

    Returns:
        One TensorSpec per value, ``-1`` for dimensions that are not fixed.

    Raises:
        UnsupportedModelError: A value is not a tensor of a V2 datatype (a ZipMap output).
    """
    specs = []
    for value in values:
        tensor_type = value.type.tensor_type
        datatype = (
            _ONNX_TO_V2.get(tensor_type.elem_type) if value.type.HasField("tensor_type") else None
        )
        if datatype is None:
            raise UnsupportedModelError(
                f"ONNX value '{value.name}' is not a tensor of a supported datatype; "
                "bascule serves tensors only.",
                field=value.name,
            )
        shape = [d.dim_value if d.dim_value > 0 else -1 for d in tensor_type.shape.dim]
        specs.append(TensorSpec(name=value.name, datatype=datatype, shape=shape))
    return specs
