"""V2 responses: output tensors encoded as JSON, or as binary data after a JSON header.

A client asks for binary outputs with ``parameters.binary_data_output`` (all outputs) or an
output's ``parameters.binary_data``; the body is then the JSON header (its length in the
``Inference-Header-Content-Length`` response header) followed by each binary output's bytes,
in output order, each announced by its ``binary_data_size`` parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from bascule.core.tensor_data import BYTES_LENGTH, LITTLE_ENDIAN

__all__ = ["OutputTensor", "encode_response", "serialize_bytes"]


@dataclass(slots=True)
class OutputTensor:
    """An output to encode: name, V2 datatype, data and whether it goes as binary."""

    name: str
    datatype: str
    array: np.ndarray
    binary: bool = False


def serialize_bytes(array: np.ndarray) -> bytes:
    """Encode a ``BYTES`` tensor as 4-byte little-endian lengths, each followed by its bytes."""
    parts: list[bytes] = []
    for item in array.ravel().tolist():
        raw = item if isinstance(item, bytes) else str(item).encode()
        parts.append(BYTES_LENGTH.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def _json_data(array: np.ndarray) -> Any:
    flat = array.ravel()
    if flat.dtype.kind == "O":
        return [v.decode() if isinstance(v, bytes) else str(v) for v in flat.tolist()]
    if flat.dtype.kind in "SU":
        return [str(v) for v in flat.tolist()]
    return np.ascontiguousarray(flat)


def encode_response(
    head: Mapping[str, Any], outputs: Sequence[OutputTensor]
) -> tuple[bytes, int | None]:
    """Encode an inference response.

    Args:
        head: ``model_name``, ``model_version``, ``id``, ``parameters``…
        outputs: The output tensors, each marked JSON or binary.

    Returns:
        The body, and the length of its JSON part when binary data follows it (the value
        of ``Inference-Header-Content-Length``), else None.
    """
    items: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for out in outputs:
        item: dict[str, Any] = {
            "name": out.name,
            "datatype": out.datatype,
            "shape": list(out.array.shape),
        }
        if out.binary:
            if out.datatype == "BYTES":
                raw = serialize_bytes(out.array)
            else:
                raw = np.ascontiguousarray(out.array, dtype=LITTLE_ENDIAN[out.datatype]).tobytes()
            item["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            item["data"] = _json_data(out.array)
        items.append(item)
    header = orjson.dumps({**head, "outputs": items}, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)
