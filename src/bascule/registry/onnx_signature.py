"""Signatures read from an ONNX graph, for models that arrive as ONNX files
(``bascule models register``).
"""

from __future__ import annotations

from typing import Any

from bascule.core.errors import InvalidInputError
from bascule.core.schema import ColumnSpec, ModelSignature, TensorSpec, V2Datatype

__all__ = ["signature_from_onnx"]

# onnx.TensorProto element types → V2 datatypes
_ELEM: dict[int, V2Datatype] = {
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


def _spec(value_info: Any) -> TensorSpec:
    t = value_info.type
    if not t.HasField("tensor_type"):
        raise InvalidInputError.for_field(
            f"ONNX value {value_info.name!r}",
            "a sequence or map",
            "plain tensors (convert with zipmap disabled)",
        )
    elem = t.tensor_type.elem_type
    if elem not in _ELEM:
        raise InvalidInputError.for_field(
            f"ONNX value {value_info.name!r} element type", elem, "a V2 datatype"
        )
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.tensor_type.shape.dim]
    return TensorSpec(name=value_info.name, datatype=_ELEM[elem], shape=dims)


def signature_from_onnx(onnx_bytes: bytes, column_names: list[str] | None = None) -> ModelSignature:
    """Infer a signature from the graph.

    One 2-D input → ``tensor`` layout; ``[-1, 1]`` inputs → ``columns``.

    A model with an output named ``probabilities`` (or a second 2-D float output) is a classifier;
    class labels come from the ``classes`` metadata entry when present (comma-separated).

    Raises:
        InvalidInputError: the bytes are not ONNX, or the graph's inputs fit neither layout.
    """
    import onnx

    try:
        model = onnx.load_model_from_string(onnx_bytes)
    except Exception as exc:  # noqa: BLE001  # onnx raises DecodeError and others; all mean "not ONNX"
        raise InvalidInputError.for_field(
            "model file", f"{len(onnx_bytes)} bytes", f"an ONNX model ({exc})"
        ) from None
    init_names = {i.name for i in model.graph.initializer}
    inputs = [_spec(v) for v in model.graph.input if v.name not in init_names]
    outputs = [_spec(v) for v in model.graph.output]
    if not inputs or not outputs:
        raise InvalidInputError.for_field(
            "ONNX graph", "no inputs or outputs", "at least one of each"
        )
    if len(inputs) == 1 and len(inputs[0].shape) == 2 and inputs[0].shape[1] > 0:
        n = inputs[0].shape[1]
        names = (
            column_names if column_names and len(column_names) == n else [f"f{i}" for i in range(n)]
        )
        columns = [ColumnSpec(name=c, datatype=inputs[0].datatype, kind="numeric") for c in names]
        layout = "tensor"
    elif all(len(i.shape) == 2 and i.shape[1] == 1 for i in inputs):
        columns = [
            ColumnSpec(
                name=i.name,
                datatype=i.datatype,
                kind="categorical" if i.datatype == "BYTES" else "numeric",
            )
            for i in inputs
        ]
        layout = "columns"
    else:
        raise InvalidInputError.for_field(
            "ONNX inputs",
            [(i.name, i.shape) for i in inputs],
            "one 2-D input [-1, n] or one [-1, 1] input per column",
        )
    meta = {p.key: p.value for p in model.metadata_props}
    proba = next((o for o in outputs if o.name == "probabilities"), None)
    if (
        proba is None
        and len(outputs) >= 2
        and outputs[1].datatype in ("FP32", "FP64")
        and len(outputs[1].shape) == 2
    ):
        proba = outputs[1]
    classes: list[str] | list[int] | None = None
    if "classes" in meta:
        raw = [c.strip() for c in meta["classes"].split(",")]
        classes = [int(c) for c in raw] if all(c.lstrip("-").isdigit() for c in raw) else raw
    return ModelSignature(
        layout=layout,
        columns=columns,
        inputs=inputs,
        outputs=outputs,
        task="classification" if proba is not None else "regression",
        classes=classes,
        label_output=outputs[0].name,
        proba_output=proba.name if proba is not None else None,
    )
