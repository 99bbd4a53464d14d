"""V2 tensors ↔ numpy: datatypes and request decoding (JSON and the binary extension).

The infer hot path parses the body with orjson into plain dicts and validates it here by
hand (building pydantic models per request costs more than the model run). What is
accepted is exactly what :class:`bascule.core.v2.InferenceRequest` documents:

* ``data`` flat or nested as deep as the shape; its element count must match the shape;
  numeric data becomes an array with the tensor's dtype in one ``np.asarray`` call;
  ``null`` in a floating-point tensor is a missing value (NaN), in a ``BYTES`` tensor
  ``None``;
* the binary tensor data extension: the JSON header is the first
  ``Inference-Header-Content-Length`` bytes of the body, and every input with a
  ``binary_data_size`` parameter takes that many of the bytes that follow, in input order;
  ``BYTES`` elements are 4-byte little-endian lengths each followed by that many bytes;
* outputs are returned as JSON, or as binary when the request asks with
  ``parameters.binary_data_output`` or an output's ``parameters.binary_data``
  (:mod:`bascule.core.outputs` encodes them).

Every problem raises :class:`~bascule.core.errors.InvalidInputError` naming the input, what
was sent and what is expected.
"""

from __future__ import annotations

import functools
import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import orjson

from bascule.core.errors import InvalidInputError

__all__ = [
    "BYTES_LENGTH",
    "DATATYPES",
    "HEADER_LENGTH",
    "LITTLE_ENDIAN",
    "ParsedRequest",
    "RequestedOutput",
    "Tensor",
    "datatype_of",
    "decode_tensor",
    "deserialize_bytes",
    "load_json",
    "parse_request",
    "split_body",
]

HEADER_LENGTH: Final = "inference-header-content-length"
"""HTTP header of the binary extension: length of the JSON part of the body (lowercase)."""

DATATYPES: Final[dict[str, np.dtype[Any]]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
"""V2 datatype → numpy dtype (``BYTES`` holds Python ``str`` objects)."""

LITTLE_ENDIAN: Final = {k: v.newbyteorder("<") for k, v in DATATYPES.items() if k != "BYTES"}
_BY_DTYPE: Final = {v: k for k, v in DATATYPES.items()}
_INTEGER: Final = {k for k, v in DATATYPES.items() if v.kind in "iu"}
_FLOAT: Final = {"FP16", "FP32", "FP64"}
_ARRAY_CODES: Final = {"FP32": "f", "FP64": "d"}  # struct codes of the same dtypes
BYTES_LENGTH = struct.Struct("<I")
"""The 4-byte little-endian length before each element of binary ``BYTES`` data."""
_MAX_SHOWN = 60


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


def datatype_of(array: np.ndarray) -> str:
    """The V2 datatype of an array (strings and other objects are ``BYTES``).

    Raises:
        InvalidInputError: the dtype has no V2 datatype (complex numbers, dates).
    """
    found = _BY_DTYPE.get(array.dtype.newbyteorder("="))
    if found is not None:
        return found
    if array.dtype.kind in "OUS":
        return "BYTES"
    raise InvalidInputError.for_field("array dtype", str(array.dtype), "a V2 datatype")


def _shown(value: Any) -> str:
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "…"


def _bad(name: str, message: str, *, sent: Any, expected: str) -> InvalidInputError:
    return InvalidInputError(
        f"input {name!r}: {message}", field=f"input {name!r}", value=sent, expected=expected
    )


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


def _check_shape(name: str, shape: Any) -> tuple[int, ...]:
    if (
        not isinstance(shape, list)
        or len(shape) > 32
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise _bad(
            name,
            f"sent shape {_shown(shape)}; expected a list of non-negative integers",
            sent=shape,
            expected="a list of non-negative integers",
        )
    return tuple(shape)


def _first_offender(data: Any, ok: Any) -> Any:
    stack: list[Any] = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif not ok(item):
            return item
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    """A number a floating-point tensor can hold (not an integer beyond float64)."""
    if isinstance(value, float):
        return True
    try:
        return _is_number(value) and math.isfinite(float(value))
    except OverflowError:
        return False


def _flat_floats(datatype: str, shape: tuple[int, ...], data: list[Any]) -> np.ndarray | None:
    """``data`` as an array when it is a flat list of JSON numbers for an FP32/FP64 tensor of
    that shape (the common JSON request), else None for the general path.

    ``struct`` converts the Python floats in C straight to the tensor's dtype, with no
    float64 intermediate, and refuses what :func:`_json_numbers` would have to look at
    (strings, nulls, nested lists, integers beyond float64); a list starting with ``true``
    or ``false`` is left to it too (all booleans are refused there).
    """
    code = _ARRAY_CODES.get(datatype)
    if code is None or not data or type(data[0]) is bool or len(data) != math.prod(shape):
        return None
    packer = _packer(code, len(data))
    buffer = bytearray(packer.size)  # writable, as every decoded tensor is
    try:
        packer.pack_into(buffer, 0, *data)
    except struct.error:  # a string, a null, an integer beyond float64: the general path
        return None
    return np.frombuffer(buffer, dtype=DATATYPES[datatype]).reshape(shape)


@functools.lru_cache(maxsize=64)
def _packer(code: str, n: int) -> struct.Struct:
    """``n`` native floats: ``pack_into`` converts a list of floats faster than
    ``array.array`` (which parses every item through ``PyArg_Parse``), with the same
    conversions."""
    return struct.Struct(f"={n}{code}")


def _json_numbers(name: str, datatype: str, shape: tuple[int, ...], data: Any) -> np.ndarray:
    fast = _flat_floats(datatype, shape, data)
    if fast is not None:
        return fast
    dtype = DATATYPES[datatype]
    expected = f"{math.prod(shape)} {datatype} values for shape {list(shape)}"
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise _bad(
            name,
            f"sent ragged or too deeply nested data {_shown(data)}; expected {expected}, "
            "flat or nested with equal-length rows",
            sent=_shown(data),
            expected=expected,
        ) from None
    kind = arr.dtype.kind
    if datatype == "BOOL":
        ok = kind == "b"
    elif datatype in _FLOAT:
        ok = kind in "fiu"
        if kind == "O":  # null marks a missing value
            offender = _first_offender(data, lambda v: v is None or _is_real(v))
            if offender is None:
                arr = np.array(data, dtype=np.float64)
                ok = True
    else:  # integers: JSON integers, or floats holding whole numbers
        ok = kind in "iu" or (kind == "f" and bool(np.all(np.mod(arr, 1) == 0)))
    if not ok:
        if datatype == "BOOL":
            offender = _first_offender(data, lambda v: isinstance(v, bool))
        elif datatype in _INTEGER:
            offender = _first_offender(
                data,
                lambda v: (
                    _is_number(v)
                    and (float(v).is_integer() if isinstance(v, float) else -(2**63) <= v < 2**64)
                ),
            )
        else:
            offender = _first_offender(data, _is_real)
        raise _bad(
            name,
            f"sent {_shown(offender)} in data; expected {expected}",
            sent=_shown(offender),
            expected=expected,
        )
    if arr.size != math.prod(shape):
        raise _bad(
            name,
            f"sent {arr.size} values in data for shape {list(shape)}; expected {expected}",
            sent=arr.size,
            expected=expected,
        )
    if datatype in _INTEGER and arr.size and arr.dtype != dtype:
        info = np.iinfo(dtype)
        low, high = arr.min(), arr.max()
        if low < info.min or high > info.max:
            raise _bad(
                name,
                f"sent {_shown(low if low < info.min else high)}, out of the {datatype} range; "
                f"expected integers in [{info.min}, {info.max}]",
                sent=_shown(low if low < info.min else high),
                expected=f"integers in [{info.min}, {info.max}]",
            )
    return arr.astype(dtype, copy=False).reshape(shape)


def _json_strings(name: str, shape: tuple[int, ...], data: Any) -> np.ndarray:
    expected = f"{math.prod(shape)} strings for shape {list(shape)}"
    flat: list[Any] = []
    stack: list[Any] = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, str) or item is None:
            flat.append(item)
        else:
            raise _bad(
                name,
                f"sent {_shown(item)} in BYTES data; expected {expected}",
                sent=_shown(item),
                expected=expected,
            )
    if len(flat) != math.prod(shape):
        raise _bad(
            name,
            f"sent {len(flat)} strings in data for shape {list(shape)}; expected {expected}",
            sent=len(flat),
            expected=expected,
        )
    arr = np.empty(len(flat), dtype=object)
    arr[:] = flat
    return arr.reshape(shape)


def deserialize_bytes(name: str, buffer: memoryview, count: int) -> np.ndarray:
    """Decode ``count`` length-prefixed UTF-8 strings filling ``buffer`` exactly.

    Raises:
        InvalidInputError: lengths run past the buffer, bytes are left over, or not UTF-8.
    """
    pos, end = 0, len(buffer)
    if count * BYTES_LENGTH.size > end:  # checked before allocating: the shape is untrusted
        raise _bad(
            name,
            f"binary BYTES data of {end} bytes cannot hold {count} elements",
            sent=end,
            expected=f"at least {count * BYTES_LENGTH.size} bytes (4 per element)",
        )
    out = np.empty(count, dtype=object)
    for i in range(count):
        if pos + 4 > end:
            break
        (size,) = BYTES_LENGTH.unpack_from(buffer, pos)
        pos += 4
        if pos + size > end:
            break
        try:
            out[i] = str(buffer[pos : pos + size], "utf-8")
        except UnicodeDecodeError:
            raise _bad(
                name,
                f"BYTES element {i} is not UTF-8 text",
                sent=bytes(buffer[pos : pos + min(size, 20)]),
                expected="UTF-8 strings",
            ) from None
        pos += size
    else:
        if pos == end:
            return out
    raise _bad(
        name,
        f"binary BYTES data of {end} bytes does not hold exactly {count} length-prefixed elements",
        sent=end,
        expected=f"{count} elements, each a 4-byte little-endian length then its bytes",
    )


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
        raise _bad(
            name,
            f"sent datatype {_shown(datatype)}; expected one of {', '.join(DATATYPES)}",
            sent=datatype,
            expected=f"one of {', '.join(DATATYPES)}",
        )
    shape = _check_shape(name, spec.get("shape"))
    params = spec.get("parameters")
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise _bad(name, f"sent parameters {_shown(params)}", sent=params, expected="an object")
    size = params.get("binary_data_size")
    data = spec.get("data")
    if size is None:
        if not isinstance(data, list):
            raise _bad(
                name,
                f"sent data {_shown(data)}; expected a list of values "
                "(or parameters.binary_data_size with binary data after the JSON)",
                sent=_shown(data),
                expected="a list",
            )
        if datatype == "BYTES":
            return Tensor(name, datatype, _json_strings(name, shape, data)), offset
        return Tensor(name, datatype, _json_numbers(name, datatype, shape, data)), offset
    if data is not None:
        raise _bad(
            name,
            "sent both data and parameters.binary_data_size; expected one of them",
            sent="data and binary_data_size",
            expected="one of them",
        )
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _bad(
            name,
            f"sent binary_data_size {_shown(size)}",
            sent=size,
            expected="a non-negative integer",
        )
    if offset + size > len(binary):
        raise _bad(
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
        raise _bad(
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
            raise _bad(tensor.name, "sent twice", sent="two tensors", expected="each input once")
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
