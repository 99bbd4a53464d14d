"""A V2 tensor's data → numpy: the datatype table, and the decoding of JSON ``data`` and of
binary ``BYTES`` elements, with the checks that name the input, what was sent and what is
expected (:mod:`bascule.core.tensors` parses the request around them).

Numeric JSON data becomes an array with the tensor's dtype in one ``np.asarray`` call (flat
FP32/FP64 lists in one ``struct`` call); ``null`` in a floating-point tensor is a missing value
(NaN), in a ``BYTES`` tensor ``None``. Binary ``BYTES`` elements are 4-byte little-endian
lengths each followed by that many bytes of UTF-8.
"""

from __future__ import annotations

import functools
import math
import struct
from typing import Any, Final

import numpy as np

from bascule.core.errors import InvalidInputError

__all__ = [
    "BYTES_LENGTH",
    "DATATYPES",
    "LITTLE_ENDIAN",
    "check_shape",
    "datatype_of",
    "deserialize_bytes",
    "input_error",
    "json_numbers",
    "json_strings",
    "shown",
]

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


def shown(value: Any) -> str:
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "…"


def input_error(name: str, message: str, *, sent: Any, expected: str) -> InvalidInputError:
    return InvalidInputError(
        f"input {name!r}: {message}", field=f"input {name!r}", value=sent, expected=expected
    )


def check_shape(name: str, shape: Any) -> tuple[int, ...]:
    if (
        not isinstance(shape, list)
        or len(shape) > 32
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise input_error(
            name,
            f"sent shape {shown(shape)}; expected a list of non-negative integers",
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


def json_numbers(name: str, datatype: str, shape: tuple[int, ...], data: Any) -> np.ndarray:
    fast = _flat_floats(datatype, shape, data)
    if fast is not None:
        return fast
    dtype = DATATYPES[datatype]
    expected = f"{math.prod(shape)} {datatype} values for shape {list(shape)}"
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise input_error(
            name,
            f"sent ragged or too deeply nested data {shown(data)}; expected {expected}, "
            "flat or nested with equal-length rows",
            sent=shown(data),
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
        raise input_error(
            name,
            f"sent {shown(offender)} in data; expected {expected}",
            sent=shown(offender),
            expected=expected,
        )
    if arr.size != math.prod(shape):
        raise input_error(
            name,
            f"sent {arr.size} values in data for shape {list(shape)}; expected {expected}",
            sent=arr.size,
            expected=expected,
        )
    if datatype in _INTEGER and arr.size and arr.dtype != dtype:
        info = np.iinfo(dtype)
        low, high = arr.min(), arr.max()
        if low < info.min or high > info.max:
            raise input_error(
                name,
                f"sent {shown(low if low < info.min else high)}, out of the {datatype} range; "
                f"expected integers in [{info.min}, {info.max}]",
                sent=shown(low if low < info.min else high),
                expected=f"integers in [{info.min}, {info.max}]",
            )
    return arr.astype(dtype, copy=False).reshape(shape)


def json_strings(name: str, shape: tuple[int, ...], data: Any) -> np.ndarray:
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
            raise input_error(
                name,
                f"sent {shown(item)} in BYTES data; expected {expected}",
                sent=shown(item),
                expected=expected,
            )
    if len(flat) != math.prod(shape):
        raise input_error(
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
        raise input_error(
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
            raise input_error(
                name,
                f"BYTES element {i} is not UTF-8 text",
                sent=bytes(buffer[pos : pos + min(size, 20)]),
                expected="UTF-8 strings",
            ) from None
        pos += size
    else:
        if pos == end:
            return out
    raise input_error(
        name,
        f"binary BYTES data of {end} bytes does not hold exactly {count} length-prefixed elements",
        sent=end,
        expected=f"{count} elements, each a 4-byte little-endian length then its bytes",
    )
