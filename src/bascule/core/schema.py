"""Model signatures: the named inputs and outputs of a registered model.

A signature says how a table of features becomes the ONNX model's inputs:

* ``layout="tensor"``: one 2-D input (``shape [-1, n_columns]``) holding every column
  in ``columns`` order, all of one numeric datatype;
* ``layout="columns"``: one ``[-1, 1]`` input per column, named after the column, each
  with its own datatype (``BYTES`` for strings and categories).

Datatypes are Open Inference Protocol v2 names (``FP32``, ``INT64``, ``BYTES``…).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "V2_DATATYPES",
    "ColumnSpec",
    "ModelSignature",
    "TensorSpec",
]

V2_DATATYPES = (
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
)

V2Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TensorSpec(_Frozen):
    """One named tensor of the model: name, V2 datatype and shape (``-1`` for any size)."""

    name: str
    datatype: V2Datatype
    shape: list[int]


class ColumnSpec(_Frozen):
    """One feature column the model reads from a table."""

    name: str
    datatype: V2Datatype
    kind: Literal["numeric", "categorical"]


class ModelSignature(_Frozen):
    """How a table maps to the ONNX model's inputs, and what comes out."""

    layout: Literal["tensor", "columns"]
    columns: list[ColumnSpec]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    task: Literal["classification", "regression"]
    classes: list[str] | list[int] | None = Field(default=None)
    label_output: str = "label"
    """Name of the ONNX output holding the predicted label (or value, for regression)."""
    proba_output: str | None = None
    """Name of the ONNX output holding class probabilities (classifiers only)."""

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]
