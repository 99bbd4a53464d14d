"""V2 input tensors → the ONNX feeds of one model version.

A request sends either one 2-D numeric tensor holding every feature column in signature
order (named ``input``), or one tensor per feature column named after it (``[rows]`` or
``[rows, 1]``; ``BYTES`` for strings and categories). :class:`FeedMapper` turns either into
what the ONNX graph itself takes (one matrix, or one ``[rows, 1]`` input per column), and
names the input, what was sent and what the model expects when they do not fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

from bascule.core.errors import InvalidInputError
from bascule.core.schema import ModelSignature
from bascule.core.tensor_data import DATATYPES
from bascule.core.tensors import Tensor

__all__ = ["MATRIX_INPUT", "MISSING_TEXT", "FeedMapper", "Feeds", "column_values"]

MATRIX_INPUT: Final = "input"
"""Name of the single 2-D input holding every feature column in order."""
Feeds = dict[str, np.ndarray]
"""ONNX input name → array, ready for onnxruntime."""
MISSING_TEXT: Final = "nan"
"""What a missing category is fed as: what the converters feed for it (see registry.profile)."""

_NUMERIC = {k for k in DATATYPES if k not in ("BYTES", "BOOL")}


class FeedMapper:
    """Maps the V2 input tensors of a request to the feeds of one model version.

    Args:
        signature: The version's signature (its columns, and the ONNX graph's inputs).
        name: The model's name, for messages.
        version: The version, for messages.
    """

    def __init__(self, signature: ModelSignature, *, name: str, version: int) -> None:
        self._signature = signature
        self.name = name
        self.version = version
        self._columns = signature.columns
        self._column_index = {c.name: i for i, c in enumerate(signature.columns)}
        self._expected_inputs = (
            f"one 2-D tensor {MATRIX_INPUT!r} of shape [rows, {len(signature.columns)}] "
            f"(columns {signature.column_names}) or one tensor per column named "
            f"{signature.column_names}"
        )

    def feeds(self, inputs: Sequence[Tensor]) -> Feeds:
        """Map decoded V2 input tensors to the ONNX feeds.

        Raises:
            InvalidInputError: unknown or missing inputs, a wrong shape or datatype, rows
                that differ between inputs, or an empty batch; the message names the input,
                what was sent and what the model expects.
        """
        if len(inputs) == 1 and inputs[0].name == MATRIX_INPUT:
            return self._from_matrix(inputs[0])
        unknown = [t.name for t in inputs if t.name not in self._column_index]
        if unknown:
            raise InvalidInputError(
                f"input {unknown[0]!r} is not an input of model '{self.name}' version "
                f"{self.version}; expected {self._expected_inputs}",
                field=f"input {unknown[0]!r}",
                value=unknown,
                expected=self._expected_inputs,
            )
        got = {t.name: t for t in inputs}
        missing = [c.name for c in self._columns if c.name not in got]
        if missing:
            raise InvalidInputError(
                f"inputs {missing} are missing; model '{self.name}' version {self.version} "
                f"expects {self._expected_inputs}",
                field=f"input {missing[0]!r}",
                value=sorted(got),
                expected=self._expected_inputs,
                missing=missing,
            )
        columns = [self._column(got[c.name], c.datatype) for c in self._columns]
        rows = columns[0].shape[0]
        for tensor, col in zip((got[c.name] for c in self._columns), columns, strict=True):
            if col.shape[0] != rows:
                raise InvalidInputError(
                    f"input {tensor.name!r}: sent {col.shape[0]} rows; expected {rows} rows "
                    f"like input {self._columns[0].name!r}",
                    field=f"input {tensor.name!r}",
                    value=col.shape[0],
                    expected=f"{rows} rows",
                )
        _check_rows(self._columns[0].name, rows)
        if self._signature.layout == "columns":
            return {c.name: v.reshape(-1, 1) for c, v in zip(self._columns, columns, strict=True)}
        spec = self._signature.inputs[0]
        matrix = np.empty((rows, len(columns)), dtype=DATATYPES[spec.datatype])
        for j, values in enumerate(columns):
            matrix[:, j] = values
        return {spec.name: matrix}

    def _from_matrix(self, tensor: Tensor) -> Feeds:
        n = len(self._columns)
        arr = tensor.array
        if arr.ndim != 2 or arr.shape[1] != n:
            raise InvalidInputError(
                f"input {MATRIX_INPUT!r}: sent shape {list(arr.shape)}; expected [rows, {n}] "
                f"with columns {self._signature.column_names}",
                field=f"input {MATRIX_INPUT!r}",
                value=list(arr.shape),
                expected=f"[rows, {n}]",
            )
        _check_numeric(
            MATRIX_INPUT,
            tensor.datatype,
            "FP32 or FP64",
            "send one tensor per column for text columns",
        )
        _check_rows(MATRIX_INPUT, arr.shape[0])
        if self._signature.layout == "tensor":
            spec = self._signature.inputs[0]
            return {spec.name: arr.astype(DATATYPES[spec.datatype], copy=False)}
        if any(c.datatype == "BYTES" for c in self._columns):
            text = [c.name for c in self._columns if c.datatype == "BYTES"]
            raise InvalidInputError(
                f"input {MATRIX_INPUT!r}: model '{self.name}' has text columns {text}; "
                f"expected one tensor per column named {self._signature.column_names}",
                field=f"input {MATRIX_INPUT!r}",
                expected="one tensor per column",
            )
        return {
            c.name: self._column(Tensor(c.name, tensor.datatype, arr[:, j]), c.datatype).reshape(
                -1, 1
            )
            for j, c in enumerate(self._columns)
        }

    def _column(self, tensor: Tensor, datatype: str) -> np.ndarray:
        arr = column_values(tensor)
        if datatype == "BYTES":
            if tensor.datatype != "BYTES":
                raise InvalidInputError(
                    f"input {tensor.name!r}: sent datatype {tensor.datatype}; expected BYTES "
                    "(strings)",
                    field=f"input {tensor.name!r}",
                    value=tensor.datatype,
                    expected="BYTES",
                )
            if any(v is None for v in arr):
                arr = np.array([MISSING_TEXT if v is None else v for v in arr], dtype=object)
            return arr
        _check_numeric(tensor.name, tensor.datatype, datatype, "numbers")
        dtype = DATATYPES[datatype]
        if dtype.kind in "iu" and arr.dtype.kind == "f":
            whole = np.isfinite(arr) & (arr == np.round(arr))
            if not whole.all():
                row = int(np.flatnonzero(~whole)[0])
                raise InvalidInputError(
                    f"input {tensor.name!r}: sent {arr[row].item()!r} at row {row}; expected "
                    f"{datatype} whole numbers",
                    field=f"input {tensor.name!r}",
                    value=arr[row].item(),
                    expected=f"{datatype} whole numbers",
                )
        return arr.astype(dtype, copy=False)


def _check_numeric(name: str, sent: str, expected: str, hint: str) -> None:
    if sent not in _NUMERIC:
        raise InvalidInputError(
            f"input {name!r}: sent datatype {sent}; expected {expected} ({hint})",
            field=f"input {name!r}",
            value=sent,
            expected=expected,
        )


def _check_rows(name: str, rows: int) -> None:
    if rows < 1:
        raise InvalidInputError(
            f"input {name!r}: sent an empty batch (0 rows); expected at least one row",
            field=f"input {name!r}",
            value=0,
            expected="at least one row",
        )


def column_values(tensor: Tensor) -> np.ndarray:
    """The 1-D values of a per-column input tensor (shape ``[rows]`` or ``[rows, 1]``).

    Raises:
        InvalidInputError: another shape (named, with what was sent and what is expected).
    """
    arr = tensor.array
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InvalidInputError(
            f"input {tensor.name!r}: sent shape {list(tensor.array.shape)}; expected "
            "[rows] or [rows, 1]",
            field=f"input {tensor.name!r}",
            value=list(tensor.array.shape),
            expected="[rows] or [rows, 1]",
        )
    return arr
