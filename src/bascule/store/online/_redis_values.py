"""How the Redis online store's rows become values and commands, and back.

A row is one JSON array in the order of its layout. Arrow builds the JSON text of whole
columns and the RESP bulk strings of whole chunks, so Python touches neither rows nor values
on the write path; :func:`values` maps a stored row back onto the asked features.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from bascule.core.errors import InvalidInputError
from bascule.store.online.base import Column

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "Layout",
    "Plan",
    "arrow",
    "bulk",
    "bulk_text",
    "dumps",
    "encode_column",
    "layout_id",
    "packed",
    "plan",
    "spans",
    "text",
    "typed",
    "values",
]


Layout = tuple[tuple[str, str], ...]
"""The features of a stored row, in order, with their types."""

Plan = tuple[tuple[int, ...], tuple[int, ...]]
"""How to read asked features from a layout: the position of each (-1: null), and which of
the asked features are floats (JSON may hold ``"inf"`` for them)."""


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def layout_id(layout: Layout) -> str:
    return hashlib.sha256(orjson.dumps(layout)).hexdigest()[:16]


def bulk_text(value: str) -> str:
    """One RESP bulk string."""
    return f"${len(value.encode())}\r\n{value}\r\n"


def bulk(values: pa.Array) -> pa.Array:
    """RESP bulk strings of a string array, element-wise (lengths in UTF-8 bytes)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lengths = pc.cast(pc.binary_length(values), pa.string())
    out: pa.Array = pc.binary_join_element_wise("$", lengths, "\r\n", values, "\r\n", "")
    return out


def arrow(values: Column, arrow_type: pa.DataType, dtype: str) -> pa.Array:
    """``values`` as an Arrow array of ``arrow_type`` (Arrow input is cast, never copied out).

    Raises:
        InvalidInputError: a value does not fit the feature's type.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if isinstance(values, pa.Array):
            return values if values.type == arrow_type else pc.cast(values, arrow_type)
        return pa.array(values, type=arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError) as exc:
        raise InvalidInputError(f"values do not fit type {dtype}: {exc}") from exc


def typed(dtype: str, values: Column) -> pa.Array:
    """A column as an Arrow array of its feature's storage type (NaN already null); strings
    are JSON-encoded here, numbers and booleans when a slice is encoded.

    Raises:
        InvalidInputError: a value does not fit the feature's type.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if dtype == "string":
        plain = values.to_pylist() if hasattr(values, "to_pylist") else values
        encoded = ["null" if v is None else orjson.dumps(str(v)).decode() for v in plain]
        return pa.array(encoded, type=pa.string())
    if dtype == "bool":
        if not isinstance(values, (pa.Array, pa.ChunkedArray)):
            values = [None if v is None else bool(v) for v in values]
        return arrow(values, pa.bool_(), dtype)
    if dtype.startswith("float"):
        arr = arrow(values, pa.float64(), dtype)
        if pc.any(pc.is_nan(arr)).as_py():
            arr = pc.if_else(pc.is_nan(arr), pa.scalar(None, pa.float64()), arr)  # NaN → null
        return arr
    return arrow(values, pa.int64(), dtype)


def encode_column(dtype: str, values: pa.Array) -> pa.Array:
    """JSON text of a typed column, element-wise (``null`` for nulls; infinities as the
    strings ``"inf"`` and ``"-inf"``). A whole float may be written as an integer: reads turn
    float features back into floats."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if dtype == "string":
        return values  # encoded by typed
    if dtype == "bool":
        text = pc.if_else(values, "true", "false")
    else:
        text = pc.cast(values, pa.string())
        if dtype.startswith("float") and pc.any(pc.is_inf(values)).as_py():
            text = pc.replace_substring_regex(text, r"^(-?inf)$", r'"\1"')
    encoded: pa.Array = pc.fill_null(text, "null")
    return encoded


def spans(values: pa.Array, step: int) -> tuple[memoryview, list[int]]:
    """The UTF-8 bytes of a string array without nulls, and the byte offset of every
    ``step``-th element (and of the end), so a run of elements is one slice of the bytes."""
    import numpy as np

    _, offsets, data = values.buffers()
    n = len(values)
    ends = np.frombuffer(offsets, dtype=np.int32)[values.offset : values.offset + n + 1]
    marks = [int(ends[i]) for i in range(0, n, step)] + [int(ends[n])]
    return memoryview(data) if data is not None else memoryview(b""), marks


def plan(layout: Layout, features: Sequence[str], schema: Mapping[str, str]) -> Plan:
    """Where each asked feature sits in a stored layout (-1 when absent or retyped since)."""
    where = {name: (i, dtype) for i, (name, dtype) in enumerate(layout)}
    positions = []
    for f in features:
        found = where.get(f)
        positions.append(found[0] if found is not None and found[1] == schema.get(f) else -1)
    floats = tuple(j for j, f in enumerate(features) if schema.get(f, "").startswith("float"))
    return tuple(positions), floats


def values(row: Sequence[Any], plan: Plan) -> tuple[Any, ...]:
    positions, floats = plan
    out = [None if i < 0 else row[i] for i in positions]
    for j in floats:
        v = out[j]
        if v is not None and v.__class__ is not float:
            out[j] = float(v)  # a whole number written without a point, or "inf" / "-inf"
    return tuple(out)


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def packed(args: Sequence[str]) -> bytes:
    """One command in RESP."""
    return (f"*{len(args)}\r\n" + "".join(bulk_text(a) for a in args)).encode()
