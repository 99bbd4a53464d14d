"""V2 inference requests → numpy: request validation and the binary extension.

The infer hot path parses the body with orjson into plain dicts and validates it here by
hand (building pydantic models per request costs more than the model run). What is
accepted is exactly what :class:`bascule.core.v2.InferenceRequest` documents:

* ``data`` flat or nested as deep as the shape; its element count must match the shape
  (:mod:`bascule.core.tensor_data` decodes it, and holds the datatype table);
* the binary tensor data extension: the JSON header is the first
  ``Inference-Header-Content-Length`` bytes of the body, and every input with a
  ``binary_data_size`` parameter takes that many of the bytes that follow, in input order;
* outputs are returned as JSON, or as binary when the request asks with
  ``parameters.binary_data_output`` or an output's ``parameters.binary_data``
  (:mod:`bascule.core.outputs` encodes them).

Every problem raises :class:`~bascule.core.errors.InvalidInputError` naming the input, what
was sent and what is expected.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import orjson

from bascule.core.errors import InvalidInputError
from bascule.core.tensor_data import (
    DATATYPES,
    LITTLE_ENDIAN,
    check_shape,
    deserialize_bytes,
    input_error,
    json_numbers,
    json_strings,
    shown,
)

__all__ = [
    "HEADER_LENGTH",
    "ParsedRequest",
    "RequestedOutput",
    "Tensor",
    "decode_tensor",
    "load_json",
    "parse_request",
    "split_body",
]

HEADER_LENGTH: Final = "inference-header-content-length"
"""HTTP header of the binary extension: length of the JSON part of the body (lowercase)."""


@dataclass(slots=True)
class Tensor:
    """A decoded input tensor: its name, V2 datatype and data (already shaped)."""

    name: str
    datatype: str
    array: np.ndarray


@dataclass(slots=True)
class RequestedOutput:
    """An output the client asked for, and whether it wants it as binary data."""

    name: str
    binary: bool


@dataclass(slots=True)
class ParsedRequest:
    """A validated inference request."""

    id: str | None
    inputs: list[Tensor]
    outputs: list[RequestedOutput] | None
    """Requested outputs, or None for all."""
    binary_output: bool
    """``parameters.binary_data_output``: outputs not listed come back as binary."""
    parameters: dict[str, Any]


def load_json(raw: bytes | memoryview) -> Any:
    """Parse JSON with orjson; fall back to the standard library for ``NaN``/``Infinity``.

    Raises:
        InvalidInputError: not JSON (the message gives the parser's position).
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as first:
        try:  # Python clients (tritonclient's JSON mode) write NaN and Infinity tokens.
            return json.loads(bytes(raw))
        except (ValueError, RecursionError):
            raise InvalidInputError(
                f"request body is not valid JSON: {first}",
                field="body",
                expected="a JSON object",
            ) from None


def split_body(body: bytes, header_length: str | None) -> tuple[memoryview, memoryview]:
    """Split a body into its JSON part and binary part (binary extension).

    Args:
        body: The whole request body.
        header_length: The ``Inference-Header-Content-Length`` header, if sent.

    Returns:
        ``(json_part, binary_part)``; the binary part is empty without the header.

    Raises:
        InvalidInputError: the header is not an integer between 0 and the body length.
    """
    view = memoryview(body)
    if header_length is None:
        return view, view[:0]
    text = header_length.strip()
    if not text.isdigit() or int(text) > len(body):
        raise InvalidInputError(
            f"header Inference-Header-Content-Length: sent {header_length!r} for a body of "
            f"{len(body)} bytes; expected the length of the JSON part, at most {len(body)}",
            field="Inference-Header-Content-Length",
            value=header_length,
            expected=f"an integer in [0, {len(body)}]",
        )
    n = int(text)
    return view[:n], view[n:]


def decode_tensor(spec: Any, binary: memoryview, offset: int) -> tuple[Tensor, int]:
    """Decode one ``inputs`` entry.

    Args:
        spec: The parsed JSON object of the input.
        binary: The binary part of the body (may be empty).
        offset: Where this input's binary data starts, if it has any.

    Returns:
        The tensor, and the offset after its binary data.

    Raises:
        InvalidInputError: anything about the input is wrong (see the module docstring).
    """
    if not isinstance(spec, Mapping):
        raise InvalidInputError.for_field("inputs[]", spec, "an object with name, shape, datatype")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInputError.for_field("input name", name, "a non-empty string")
    datatype = spec.get("datatype")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise input_error(
            name,
            f"sent datatype {shown(datatype)}; expected one of {', '.join(DATATYPES)}",
            sent=datatype,
            expected=f"one of {', '.join(DATATYPES)}",
        )
    shape = check_shape(name, spec.get("shape"))
    params = spec.get("parameters")
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise input_error(
            name, f"sent parameters {shown(params)}", sent=params, expected="an object"
        )
    size = params.get("binary_data_size")
    data = spec.get("data")
    if size is None:
        if not isinstance(data, list):
            raise input_error(
                name,
                f"sent data {shown(data)}; expected a list of values "
                "(or parameters.binary_data_size with binary data after the JSON)",
                sent=shown(data),
                expected="a list",
            )
        if datatype == "BYTES":
            return Tensor(name, datatype, json_strings(name, shape, data)), offset
        return Tensor(name, datatype, json_numbers(name, datatype, shape, data)), offset
    if data is not None:
        raise input_error(
            name,
            "sent both data and parameters.binary_data_size; expected one of them",
            sent="data and binary_data_size",
            expected="one of them",
        )
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise input_error(
            name,
            f"sent binary_data_size {shown(size)}",
            sent=size,
            expected="a non-negative integer",
        )
    if offset + size > len(binary):
        raise input_error(
            name,
            f"binary_data_size {size} at offset {offset} runs past the {len(binary)} bytes "
            "of binary data after the JSON header",
            sent=size,
            expected=f"at most {len(binary) - offset} bytes",
        )
    chunk = binary[offset : offset + size]
    count = math.prod(shape)
    if datatype == "BYTES":
        return Tensor(name, datatype, deserialize_bytes(name, chunk, count).reshape(shape)), (
            offset + size
        )
    dtype = LITTLE_ENDIAN[datatype]
    if size != count * dtype.itemsize:
        raise input_error(
            name,
            f"sent {size} bytes of binary data for shape {list(shape)}; expected "
            f"{count * dtype.itemsize} bytes ({count} {datatype} values of {dtype.itemsize} "
            "bytes)",
            sent=size,
            expected=f"{count * dtype.itemsize} bytes",
        )
    arr = np.frombuffer(chunk, dtype=dtype).reshape(shape)
    return Tensor(name, datatype, arr), offset + size


def _flag(params: Any, key: str, where: str) -> bool:
    value = params.get(key, False) if isinstance(params, Mapping) else False
    if not isinstance(value, bool):
        raise InvalidInputError.for_field(f"{where}.{key}", value, "true or false")
    return value


def parse_request(body: Any, binary: memoryview | None = None) -> ParsedRequest:
    """Validate a parsed inference request and decode its input tensors.

    Args:
        body: The JSON part of the request, parsed (see :func:`load_json`).
        binary: The binary part of the body (binary extension), or None.

    Returns:
        The request with its inputs as numpy arrays.

    Raises:
        InvalidInputError: the request is malformed; the message names what and where.
    """
    if not isinstance(body, Mapping):
        raise InvalidInputError.for_field(
            "request body", body, 'a JSON object like {"inputs": [...]}'
        )
    rid = body.get("id")
    if rid is not None and not isinstance(rid, str):
        raise InvalidInputError.for_field("id", rid, "a string")
    params = body.get("parameters")
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise InvalidInputError.for_field("parameters", params, "an object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInputError.for_field("inputs", inputs, "a non-empty list of input tensors")
    data = binary if binary is not None else memoryview(b"")
    tensors: list[Tensor] = []
    offset = 0
    seen: set[str] = set()
    for spec in inputs:
        tensor, offset = decode_tensor(spec, data, offset)
        if tensor.name in seen:
            raise input_error(
                tensor.name, "sent twice", sent="two tensors", expected="each input once"
            )
        seen.add(tensor.name)
        tensors.append(tensor)
    if offset != len(data):
        raise InvalidInputError(
            f"binary data after the JSON header holds {len(data)} bytes but the inputs' "
            f"binary_data_size add up to {offset}",
            field="binary data",
            value=len(data),
            expected=f"{offset} bytes",
        )
    return ParsedRequest(
        id=rid,
        inputs=tensors,
        outputs=_requested(body.get("outputs")),
        binary_output=_flag(params, "binary_data_output", "parameters"),
        parameters=dict(params),
    )


def _requested(outputs: Any) -> list[RequestedOutput] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list):
        raise InvalidInputError.for_field("outputs", outputs, "a list of {name: ...}")
    wanted: list[RequestedOutput] = []
    for item in outputs:
        name = item.get("name") if isinstance(item, Mapping) else None
        if not isinstance(name, str) or not name:
            raise InvalidInputError.for_field(
                "outputs[].name", item, 'an object like {"name": "label"}'
            )
        params = item.get("parameters")
        if params is not None and not isinstance(params, Mapping):
            raise InvalidInputError.for_field(f"outputs[{name!r}].parameters", params, "an object")
        wanted.append(
            RequestedOutput(name, _flag(params, "binary_data", f"outputs[{name!r}].parameters"))
        )
    return wanted
