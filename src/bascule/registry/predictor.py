"""OnnxPredictor: runs a registered ONNX model on a DataFrame, an array or records.

Departure from STYLE.md, which puts the onnxruntime wrapper in ``serving/runtime.py``:
the registry, a layer below serving, must run models itself (the parity check at
registration, ``load_model`` in the SDK), and a layer cannot import from the one above
it. So the predictor lives here and ``bascule.serving`` builds on it.

onnxruntime errors are translated here into ``InvalidInputError``; none escapes untranslated.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
from onnxruntime.capi.onnxruntime_pybind11_state import (
    Fail,
    InvalidArgument,
    InvalidGraph,
    InvalidProtobuf,
    RuntimeException,
)
from onnxruntime.capi.onnxruntime_pybind11_state import NotImplemented as OrtNotImplemented

from bascule.core.errors import InvalidInputError
from bascule.core.schema import ModelSignature
from bascule.registry.profile import numeric_column, text_column, to_frame

__all__ = ["OnnxPredictor"]

_ORT_ERRORS = (
    Fail,
    InvalidArgument,
    InvalidGraph,
    InvalidProtobuf,
    OrtNotImplemented,
    RuntimeException,
    RuntimeError,
    TypeError,
    ValueError,
)
_NUMPY_DTYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": object,
}


class OnnxPredictor:
    """An onnxruntime session plus the signature that says how tables become its inputs.

    Thread-safe: any number of threads may call ``predict``, ``predict_proba`` and ``run``
    at once (onnxruntime sessions are; the predictor holds no mutable state).

    Args:
        onnx_bytes: A serialized ONNX model.
        signature: Its signature, as made by ``bascule.registry.converters.convert``.
        name: Model name, for messages.
        version: Model version, for messages.
        intra_op_threads: Threads onnxruntime uses inside one operator (0: its default).

    Raises:
        InvalidInputError: The bytes are not a model onnxruntime can load, the signature
            does not match the graph's inputs and outputs, or ``intra_op_threads < 0``.
    """

    def __init__(
        self,
        onnx_bytes: bytes,
        signature: ModelSignature,
        *,
        name: str = "",
        version: int = 0,
        intra_op_threads: int = 1,
    ) -> None:
        self._name = name
        self._version = version
        self._signature = signature
        self._target = f"model '{name}:{version}'" if name else "the model"
        if intra_op_threads < 0:
            raise InvalidInputError.for_field(
                "intra_op_threads", intra_op_threads, "an integer >= 0 (0: onnxruntime chooses)"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except _ORT_ERRORS as exc:
            raise InvalidInputError(
                f"onnxruntime cannot load the ONNX bytes of {self._target}: {exc}",
                field="onnx_bytes",
                expected="a serialized ONNX model",
            ) from exc
        self._input_names = [i.name for i in signature.inputs]
        self._output_names = [o.name for o in self._session.get_outputs()]
        self._check_signature()

    def _check_signature(self) -> None:
        graph_inputs = sorted(i.name for i in self._session.get_inputs())
        wanted = [self._signature.label_output]
        if self._signature.proba_output is not None:
            wanted.append(self._signature.proba_output)
        if graph_inputs != sorted(self._input_names) or not set(wanted) <= set(self._output_names):
            raise InvalidInputError(
                f"The signature of {self._target} does not match its ONNX graph: the graph "
                f"has inputs {graph_inputs} and outputs {self._output_names}; the signature "
                f"names inputs {self._input_names} and outputs {wanted}.",
                field="signature",
            )

    @property
    def name(self) -> str:
        """The model name given at construction."""
        return self._name

    @property
    def version(self) -> int:
        """The model version given at construction."""
        return self._version

    @property
    def signature(self) -> ModelSignature:
        """The model signature."""
        return self._signature

    @property
    def classes(self) -> list[int] | list[str] | None:
        """Class labels in ``predict_proba`` column order; None for regressors."""
        return self._signature.classes

    def __repr__(self) -> str:
        return f"OnnxPredictor(name={self._name!r}, version={self._version})"

    def to_feeds(self, X: Any) -> dict[str, np.ndarray]:
        """Turn rows into the ONNX inputs, following the signature's layout.

        Args:
            X: A DataFrame (columns selected by name, extra ones ignored), a 2-D numpy
                array with one column per signature column, or a list of dicts.

        Returns:
            Input name → array, with each input's dtype and shape.

        Raises:
            InvalidInputError: Columns are missing, the array has the wrong shape, or a
                numeric column holds something that is not a number.
        """
        signature = self._signature
        names = signature.column_names
        if signature.layout == "tensor":
            spec = signature.inputs[0]
            dtype = _NUMPY_DTYPES[spec.datatype]
            if isinstance(X, np.ndarray) and X.dtype.kind in "biuf":
                if X.ndim != 2 or X.shape[1] != len(names):
                    raise InvalidInputError(
                        f"Input has shape {list(X.shape)} but {self._target} expects "
                        f"[-1, {len(names)}] (columns {names}).",
                        field="X",
                        value=list(X.shape),
                        expected=f"[-1, {len(names)}]",
                    )
                return {spec.name: X.astype(dtype, copy=False)}
            frame = to_frame(X, signature, target=self._target)
            matrix = np.empty((len(frame), len(names)), dtype=dtype)
            for j, name in enumerate(names):
                matrix[:, j] = numeric_column(frame.iloc[:, j], name)
            return {spec.name: matrix}
        frame = to_frame(X, signature, target=self._target)
        feeds: dict[str, np.ndarray] = {}
        for j, column in enumerate(signature.columns):
            series = frame.iloc[:, j]
            column_dtype = _NUMPY_DTYPES[column.datatype]
            if column.datatype == "BYTES":
                values = text_column(series)
            elif column.datatype in ("INT8", "INT16", "INT32", "INT64"):
                values = _integer_column(series, column.name).astype(column_dtype)
            else:
                values = numeric_column(series, column.name).astype(column_dtype)
            feeds[column.name] = values.reshape(-1, 1)
        return feeds

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the ONNX graph on raw inputs.

        Args:
            feeds: Input name → array, as ``to_feeds`` makes them.

        Returns:
            Output name → array, for every graph output.

        Raises:
            InvalidInputError: Inputs are missing or unknown, or onnxruntime rejects them
                (wrong dtype or shape).
        """
        missing = [n for n in self._input_names if n not in feeds]
        unknown = [n for n in feeds if n not in self._input_names]
        if missing or unknown:
            raise InvalidInputError(
                f"Inputs of {self._target} do not match: missing {missing}, unknown "
                f"{unknown}; expected {self._input_names}.",
                field="feeds",
                value=list(feeds),
                expected=str(self._input_names),
            )
        try:
            outputs = self._session.run(self._output_names, feeds)
        except _ORT_ERRORS as exc:
            raise InvalidInputError(
                f"onnxruntime rejected the inputs of {self._target}: {exc}",
                field="feeds",
            ) from exc
        return dict(zip(self._output_names, outputs, strict=True))

    def predict(self, X: Any) -> np.ndarray:
        """Predict labels (classifiers) or values (regressors).

        Args:
            X: Rows, as ``to_feeds`` accepts them.

        Returns:
            A 1-D array: class labels with the original values (int64 or ``str``
            objects), or predicted values (2-D for multi-output regressors).

        Raises:
            InvalidInputError: The rows do not match the signature (see ``to_feeds``).
        """
        output = np.asarray(self.run(self.to_feeds(X))[self._signature.label_output])
        if output.ndim == 2 and output.shape[1] == 1:
            output = output.ravel()
        classes = self._signature.classes
        if self._signature.task != "classification" or classes is None:
            return output
        if output.dtype.kind in "iu" and classes and isinstance(classes[0], str):
            # A converter that outputs class indices: map them back to the labels.
            labels: np.ndarray = np.asarray(classes, dtype=object)[output]
            return labels
        if output.dtype.kind in "iu":
            return output.astype(np.int64, copy=False)
        return output.astype(object, copy=False)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Predict class probabilities.

        Args:
            X: Rows, as ``to_feeds`` accepts them.

        Returns:
            A 2-D float array, one column per class in ``classes`` order.

        Raises:
            InvalidInputError: The model is a regressor, or the rows do not match.
        """
        proba_output = self._signature.proba_output
        if self._signature.task != "classification" or proba_output is None:
            raise InvalidInputError(
                f"predict_proba needs a classifier, but {self._target} is a "
                f"{self._signature.task} model; use predict().",
                field="task",
                value=self._signature.task,
                expected="classification",
            )
        return np.asarray(self.run(self.to_feeds(X))[proba_output])


def _integer_column(series: pd.Series, name: str) -> np.ndarray:
    if pd.api.types.is_integer_dtype(series.dtype) and not series.isna().any():
        return np.asarray(series.to_numpy(dtype=np.int64), dtype=np.int64)
    values = numeric_column(series, name)
    bad = np.flatnonzero(~np.isfinite(values) | (values != np.round(values)))
    if bad.size:
        row = int(bad[0])
        value = series.iloc[row]
        value = value.item() if isinstance(value, np.generic) else value
        raise InvalidInputError(
            f"Column '{name}' must hold integers (no missing values) but row {row} holds "
            f"{value!r}.",
            field=name,
            value=value,
            expected="an integer",
            row=row,
        )
    return values.astype(np.int64)
