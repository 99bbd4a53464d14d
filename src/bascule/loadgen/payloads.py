"""The requests a load run sends: built once from the model's V2 metadata, or from Parquet rows.

From metadata, every input of ``GET /v2/models/{name}`` gets one tensor: the first ``-1``
dimension becomes the rows per request (other ``-1`` dimensions become 1), numbers are
random (normal for floating point, 0-9 for integers), ``BOOL`` values are coin flips and
``BYTES`` values come from a small vocabulary. From a table, each input takes the column of
the same name; a model with a single 2-D input takes its feature columns (the metadata's
``parameters.columns``, else every column of the table in order) as one matrix.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import numpy as np
import orjson

from bascule.core.errors import (
    BasculeError,
    InvalidInputError,
    StorageError,
    error_from_code,
)
from bascule.core.tensor_data import DATATYPES
from bascule.loadgen.connection import encode_request

if TYPE_CHECKING:
    import pyarrow as pa

    from bascule.loadgen.runner import LoadConfig

__all__ = ["VOCABULARY", "Body", "build_bodies", "build_requests", "fetch_metadata"]

VOCABULARY: Final = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")
"""Values of random ``BYTES`` inputs."""
_MAX_DATA_PAYLOADS: Final = 1024
_CODE_BY_STATUS: Final = {400: "invalid_input", 404: "not_found", 503: "not_ready"}
_LENGTH: Final = struct.Struct("<I")


def fetch_metadata(
    url: str, model: str, version: str | None = None, *, timeout_s: float = 30.0
) -> dict[str, Any]:
    """``GET /v2/models/{model}[/versions/{version}]`` from the server at ``url``.

    Raises:
        NotFoundError: the server does not serve that model or version.
        NotReadyError: the model is not ready yet.
        StorageError: the server cannot be reached, or its answer is not V2 metadata.
    """
    import httpx

    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "")
    where = url.rstrip("/") + path
    try:
        response = httpx.get(where, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise StorageError(f"cannot reach the server at {url}: {exc}", url=url) from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200:
        message = body.get("error") if isinstance(body, dict) else None
        code = body.get("code") if isinstance(body, dict) else None
        code = code or _CODE_BY_STATUS.get(response.status_code)
        text = f"GET {where} answered {response.status_code}: {message or response.text[:200]}"
        if code is None:
            raise StorageError(text, url=url, status=response.status_code)
        raise error_from_code(str(code), text, status=response.status_code, model=model)
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise StorageError(
            f"GET {where} did not answer V2 model metadata with 'inputs'; "
            "the load generator builds its requests from them",
            url=url,
        )
    return body


def _shape(spec: dict[str, Any], rows: int) -> list[int]:
    name = spec.get("name")
    dims = [int(d) for d in spec.get("shape") or [-1]]
    if dims[0] >= 0 and dims[0] != rows:
        raise InvalidInputError.for_field(
            f"rows (input {name!r} has a fixed batch size)", rows, f"--rows {dims[0]}"
        )
    return [rows, *(1 if d < 0 else d for d in dims[1:])]


def _check_datatype(spec: dict[str, Any]) -> str:
    datatype = str(spec.get("datatype"))
    if datatype not in DATATYPES:
        raise InvalidInputError.for_field(
            f"datatype of input {spec.get('name')!r}", datatype, f"one of {sorted(DATATYPES)}"
        )
    return datatype


def _random(datatype: str, shape: list[int], rng: np.random.Generator) -> Any:
    n = math.prod(shape)
    if datatype == "BYTES":
        return [VOCABULARY[i] for i in rng.integers(0, len(VOCABULARY), n)]
    if datatype == "BOOL":
        return rng.random(n) < 0.5
    dtype = DATATYPES[datatype]
    if dtype.kind == "f":
        return rng.standard_normal(n).astype(dtype)
    return rng.integers(0, 10, n).astype(dtype)


class Body(NamedTuple):
    """One request body, and the length of its JSON part when binary tensor data follows."""

    content: bytes
    json_length: int | None = None


def _raw(datatype: str, data: Any) -> bytes:
    if datatype == "BYTES":
        items = [("" if v is None else str(v)).encode() for v in data]
        return b"".join(_LENGTH.pack(len(b)) + b for b in items)
    array = np.asarray(data, dtype=DATATYPES[datatype])
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def _dump(inputs: list[dict[str, Any]], binary: bool) -> Body:
    if not binary:
        return Body(orjson.dumps({"inputs": inputs}, option=orjson.OPT_SERIALIZE_NUMPY))
    chunks, heads = [], []
    for tensor in inputs:
        raw = _raw(tensor["datatype"], tensor["data"])
        chunks.append(raw)
        head = {k: v for k, v in tensor.items() if k != "data"}
        heads.append({**head, "parameters": {"binary_data_size": len(raw)}})
    header = orjson.dumps({"inputs": heads, "parameters": {"binary_data_output": True}})
    return Body(header + b"".join(chunks), len(header))


def _from_metadata(
    metadata: dict[str, Any], rows: int, count: int, seed: int, binary: bool
) -> list[Body]:
    rng = np.random.default_rng(seed)
    specs = [(s["name"], _check_datatype(s), _shape(s, rows)) for s in metadata["inputs"]]
    return [
        _dump(
            [
                {"name": name, "shape": shape, "datatype": dt, "data": _random(dt, shape, rng)}
                for name, dt, shape in specs
            ],
            binary,
        )
        for _ in range(count)
    ]


def _as_data(column: pa.ChunkedArray, datatype: str) -> Any:
    if datatype == "BYTES":
        return np.asarray([None if v is None else str(v) for v in column.to_pylist()], dtype=object)
    values = column.to_numpy()
    return values.astype(DATATYPES[datatype], copy=False) if datatype != "BOOL" else values != 0


def _from_table(
    metadata: dict[str, Any], table: pa.Table, rows: int, count: int, binary: bool
) -> list[Body]:
    inputs = metadata["inputs"]
    names = list(table.column_names)
    if table.num_rows == 0:
        raise InvalidInputError.for_field("data", "an empty table", "at least one row")
    columns: list[tuple[dict[str, Any], str, list[Any]]] = []  # spec, datatype, arrays
    if all(s["name"] in names for s in inputs):
        for spec in inputs:
            dt = _check_datatype(spec)
            columns.append((spec, dt, [_as_data(table.column(spec["name"]), dt)]))
    elif len(inputs) == 1 and len(inputs[0].get("shape") or []) == 2:
        spec = inputs[0]
        dt = _check_datatype(spec)
        width = int(spec["shape"][1])
        features = [c.get("name") for c in (metadata.get("parameters") or {}).get("columns") or []]
        if not (features and all(f in names for f in features)):
            features = names
        if width >= 0 and len(features) != width:
            raise InvalidInputError.for_field(
                "data columns", names[:40], f"{width} feature columns for input {spec['name']!r}"
            )
        columns.append((spec, dt, [_as_data(table.column(f), dt) for f in features]))
    else:
        wanted = [s["name"] for s in inputs]
        raise InvalidInputError.for_field(
            "data columns", names[:40], f"one column per model input, named {wanted}"
        )
    n = table.num_rows
    total = max(1, min(max(count, math.ceil(n / rows)), _MAX_DATA_PAYLOADS))
    bodies = []
    for k in range(total):
        index = (np.arange(rows) + k * rows) % n
        tensors = []
        for spec, dt, arrays in columns:
            shape = _shape(spec, rows)
            if len(arrays) == 1:
                data = arrays[0][index]
            else:
                data = np.stack([a[index] for a in arrays], axis=1).ravel()
            if dt == "BYTES":
                data = data.tolist()
            tensors.append({"name": spec["name"], "shape": shape, "datatype": dt, "data": data})
        bodies.append(_dump(tensors, binary))
    return bodies


def build_bodies(
    metadata: dict[str, Any],
    *,
    rows: int = 1,
    count: int = 64,
    seed: int = 0,
    data: Path | str | pa.Table | None = None,
    binary: bool = False,
) -> list[Body]:
    """V2 inference request bodies for the model described by ``metadata``.

    Args:
        metadata: The model's V2 metadata (``inputs`` with ``name``, ``datatype``, ``shape``).
        rows: Rows per request.
        count: Bodies to build with random values (with ``data``: at least this many, more
            when the table has more rows, at most 1,024).
        seed: Seed of the random values.
        data: A Parquet file, or a pyarrow table, whose rows to send instead.
        binary: Use the binary tensor data extension (inputs and outputs as raw bytes after
            the JSON header) instead of JSON ``data``.

    Raises:
        InvalidInputError: an unknown datatype, a fixed batch size other than ``rows``, an
            unreadable file, or columns that match no input.
    """
    if data is None:
        return _from_metadata(metadata, rows, count, seed, binary)
    if isinstance(data, Path | str):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(data)
        except (OSError, ValueError) as exc:
            raise InvalidInputError.for_field("data", str(data), f"a Parquet file ({exc})") from exc
    else:
        table = data
    return _from_table(metadata, table, rows, count, binary)


def build_requests(
    metadata: dict[str, Any],
    config: LoadConfig,
    *,
    host: str,
    path_prefix: str = "",
    data: Path | str | pa.Table | None = None,
) -> list[bytes]:
    """Whole HTTP requests (line, headers, body) for ``config``, ready to write.

    Raises:
        InvalidInputError: see :func:`build_bodies`.
    """
    try:
        bodies = build_bodies(
            metadata,
            rows=config.rows,
            count=config.distinct_payloads,
            seed=config.seed,
            data=data,
            binary=config.binary,
        )
    except BasculeError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise InvalidInputError.for_field(
            "model metadata or data", str(exc), "V2 inputs that a request can be built for"
        ) from exc
    path = path_prefix + config.infer_path
    return [
        encode_request("POST", path, host, b.content, json_length=b.json_length) for b in bodies
    ]
