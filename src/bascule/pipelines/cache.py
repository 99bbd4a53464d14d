"""The step cache: results of steps, content-addressed in the artifact store, never pickled.

A step's cache key is the sha256 of:

* the step's name and its free-text ``version``;
* its **code fingerprint** (:func:`bascule.pipelines.code_fingerprint`: bytecode,
  constants, names, defaults and closure values; see ``bascule.pipelines.fingerprint``);
* the digest of every input value (upstream outputs and pipeline parameters).

Values are serialised without pickle:

=================================  =============  ==============================
value                              format         read back with
=================================  =============  ==============================
``pandas.DataFrame``               Parquet        ``pandas.read_parquet``
``numpy.ndarray`` (not object)     ``.npy``       ``numpy.load(allow_pickle=False)``
numpy scalar                       ``.npy``       same, as a scalar
JSON values (dict with str keys,   JSON           ``json.loads``
list, str, int, float, bool, None)
``bascule.core.records`` record    JSON           the record class
=================================  =============  ==============================

A DataFrame is cached only when it reads back equal (same columns, dtypes, index and
values). Any other value (a fitted estimator, a tuple, a generator) is **not cacheable**:
the step that returns it runs again on every run, the reason is recorded on its tracked
run (tag ``bascule.cache_reason``), and the steps that read it are not cached either.

The digest of a value is the sha256 of its serialised bytes, which is also the digest it
is stored under. A cache entry is a JSON manifest under ``pipelines/cache/<key>.json``,
written after the blobs it names, so a process killed mid-write leaves no entry.
"""

from __future__ import annotations

import dataclasses
import io
import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bascule.core import records
from bascule.core.errors import ArtifactNotFoundError, IntegrityError, InvalidInputError
from bascule.core.records import DatasetInput
from bascule.store.artifacts.base import ArtifactStore, sha256_hex

__all__ = [
    "CACHE_FORMAT",
    "CacheEntry",
    "Encoded",
    "StepCache",
    "Uncacheable",
    "decode_value",
    "encode_value",
    "step_key",
]

CACHE_FORMAT = "bascule.step-cache/1"
_PREFIX = "pipelines/cache"
_RECORD_TYPES: dict[str, type[Any]] = {
    name: obj
    for name in records.__all__
    if dataclasses.is_dataclass(obj := getattr(records, name)) and isinstance(obj, type)
}


@dataclass(frozen=True)
class Encoded:
    """A value serialised for the cache: its format, bytes, and their sha256 digest."""

    format: str
    data: bytes = field(repr=False)
    digest: str


@dataclass(frozen=True)
class Uncacheable:
    """Why a value cannot be cached (it has no digest, so the steps reading it rerun too)."""

    reason: str


def _encoded(fmt: str, data: bytes) -> Encoded:
    return Encoded(fmt, data, sha256_hex(data))


def encode_value(value: Any) -> Encoded | Uncacheable:
    """Serialise ``value`` for the cache without pickle, or say why it cannot be.

    Args:
        value: A step output or a pipeline parameter.

    Returns:
        The serialised value, or the reason it is not cacheable.
    """
    if _RECORD_TYPES.get(type(value).__name__) is type(value):
        body = {"record": type(value).__name__, "fields": dataclasses.asdict(value)}
        return _encoded("record", json.dumps(body).encode())
    if _is_json(value):
        return _encoded("json", json.dumps(value, allow_nan=True).encode())
    module = type(value).__module__.split(".", 1)[0]
    if module == "pandas":
        return _encode_frame(value)
    if module == "numpy":
        return _encode_numpy(value)
    return Uncacheable(
        f"{_type_name(value)} has no safe serialisation (cacheable: DataFrame, numpy array, "
        "JSON values, bascule records); the step reruns on every run"
    )


def _type_name(value: object) -> str:
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_json(value: Any, depth: int = 0) -> bool:
    if depth > 100:
        return False
    if value is None or isinstance(value, bool | str):
        return True
    if isinstance(value, int | float):
        # numpy's float64 subclasses float and reads back as float: same value.
        return type(value) in (int, float) or type(value).__module__ == "numpy"
    if type(value) is list:
        return all(_is_json(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(isinstance(k, str) and _is_json(v, depth + 1) for k, v in value.items())
    return False


def _encode_frame(value: Any) -> Encoded | Uncacheable:
    import pandas as pd

    if not isinstance(value, pd.DataFrame):
        return Uncacheable(f"{_type_name(value)} is not cacheable (only DataFrames of pandas)")
    buf = io.BytesIO()
    try:
        value.to_parquet(buf)
        back = pd.read_parquet(io.BytesIO(buf.getvalue()))
    except (ValueError, TypeError, NotImplementedError, OverflowError) as exc:
        return Uncacheable(f"DataFrame cannot be written as Parquet: {exc}")
    same = (
        list(back.columns) == list(value.columns)
        and list(back.dtypes) == list(value.dtypes)
        and back.equals(value)
        and back.index.equals(value.index)
    )
    if not same:
        return Uncacheable("DataFrame does not read back equal from Parquet (dtypes or index)")
    return _encoded("parquet", buf.getvalue())


def _encode_numpy(value: Any) -> Encoded | Uncacheable:
    import numpy as np

    if isinstance(value, np.generic):
        fmt, arr = "npy-scalar", np.asarray(value)
    elif isinstance(value, np.ndarray):
        fmt, arr = "npy", value
    else:
        return Uncacheable(f"{_type_name(value)} is not cacheable")
    if arr.dtype.hasobject:
        return Uncacheable(f"numpy array of dtype {arr.dtype} holds Python objects")
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return _encoded(fmt, buf.getvalue())


def decode_value(fmt: str, data: bytes) -> Any:
    """Read back a value written by :func:`encode_value`.

    Raises:
        InvalidInputError: an unknown format or a record type that no longer exists.
    """
    if fmt == "json":
        return json.loads(data)
    if fmt == "parquet":
        import pandas as pd

        return pd.read_parquet(io.BytesIO(data))
    if fmt in ("npy", "npy-scalar"):
        import numpy as np

        arr = np.load(io.BytesIO(data), allow_pickle=False)
        return arr[()] if fmt == "npy-scalar" else arr
    if fmt == "record":
        body = json.loads(data)
        cls = _RECORD_TYPES.get(body.get("record", ""))
        if cls is None:
            raise InvalidInputError.for_field(
                "cached record type", body.get("record"), f"one of {sorted(_RECORD_TYPES)}"
            )
        return _build_record(cls, body["fields"])
    raise InvalidInputError.for_field(
        "cached value format", fmt, "parquet, npy, npy-scalar, json or record"
    )


def _build_record(cls: type[Any], fields: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in fields.items():
        kwargs[name] = _rebuild(hints.get(name), value)
    return cls(**kwargs)


def _rebuild(hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return _build_record(hint, value)
    if origin is list and args and isinstance(value, list):
        return [_rebuild(args[0], v) for v in value]
    if origin is dict and len(args) == 2 and isinstance(value, dict):
        return {k: _rebuild(args[1], v) for k, v in value.items()}
    return value


def step_key(name: str, code: str, version: str, input_digests: Mapping[str, str]) -> str:
    """The cache key of one execution of a step.

    Args:
        name: The step's name.
        code: Its :func:`code_fingerprint`.
        version: Its free-text version.
        input_digests: Input name → digest of the value (parameters and upstream outputs).

    Returns:
        64 hex digits.
    """
    body = {
        "format": CACHE_FORMAT,
        "step": name,
        "code": code,
        "version": version,
        "inputs": dict(sorted(input_digests.items())),
    }
    return sha256_hex(json.dumps(body, sort_keys=True).encode())


# -- the cache itself ------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheEntry:
    """A cached step result: where its outputs are stored and what the step reported."""

    key: str
    step: str
    created_at: int
    outputs: dict[str, tuple[str, str]]
    """Output name → (format, digest)."""
    metrics: list[tuple[str, float, int]] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    datasets: list[DatasetInput] = field(default_factory=list)


class StepCache:
    """Step results in an :class:`ArtifactStore`: blobs by digest plus one manifest per key."""

    def __init__(self, store: ArtifactStore, *, prefix: str = _PREFIX) -> None:
        self._store = store
        self._prefix = prefix.strip("/")

    def _manifest_key(self, key: str) -> str:
        return f"{self._prefix}/{key}.json"

    def lookup(self, key: str) -> CacheEntry | None:
        """The entry stored under ``key``, or None (also for an unreadable manifest)."""
        try:
            raw = json.loads(self._store.read(self._manifest_key(key)))
        except (ArtifactNotFoundError, ValueError):
            return None
        if not isinstance(raw, dict) or raw.get("format") != CACHE_FORMAT:
            return None
        try:
            return CacheEntry(
                key=key,
                step=str(raw["step"]),
                created_at=int(raw["created_at"]),
                outputs={k: (str(v[0]), str(v[1])) for k, v in raw["outputs"].items()},
                metrics=[(str(k), float(v), int(s)) for k, v, s in raw["metrics"]],
                params={str(k): str(v) for k, v in raw["params"].items()},
                tags={str(k): str(v) for k, v in raw["tags"].items()},
                datasets=[DatasetInput(**d) for d in raw["datasets"]],
            )
        except (KeyError, TypeError, ValueError):
            return None

    def load(self, entry: CacheEntry) -> dict[str, Any]:
        """Read the output values of an entry, each verified against its digest.

        Raises:
            ArtifactNotFoundError: a blob is gone.
            IntegrityError: a blob is corrupted.
            InvalidInputError: a blob is in an unknown format.
        """
        values: dict[str, Any] = {}
        for name, (fmt, digest) in entry.outputs.items():
            data = self._store.get(digest)
            if sha256_hex(data) != digest:  # stores verify too; this guards odd adapters
                raise IntegrityError(f"cached output {name!r} does not match its digest")
            values[name] = decode_value(fmt, data)
        return values

    def save(
        self,
        key: str,
        *,
        step: str,
        created_at: int,
        outputs: Mapping[str, Encoded],
        metrics: list[tuple[str, float, int]],
        params: Mapping[str, str],
        tags: Mapping[str, str],
        datasets: list[DatasetInput],
    ) -> CacheEntry:
        """Store the output blobs, then the manifest that makes the entry visible.

        Raises:
            StorageError: the store cannot be written.
        """
        for enc in outputs.values():
            self._store.put(enc.data)
        entry = CacheEntry(
            key=key,
            step=step,
            created_at=created_at,
            outputs={k: (v.format, v.digest) for k, v in outputs.items()},
            metrics=list(metrics),
            params=dict(params),
            tags=dict(tags),
            datasets=list(datasets),
        )
        body = {
            "format": CACHE_FORMAT,
            "step": step,
            "created_at": created_at,
            "outputs": {k: list(v) for k, v in entry.outputs.items()},
            "metrics": [list(m) for m in entry.metrics],
            "params": entry.params,
            "tags": entry.tags,
            "datasets": [dataclasses.asdict(d) for d in entry.datasets],
        }
        self._store.write(self._manifest_key(key), json.dumps(body, allow_nan=True).encode())
        return entry

    def forget(self, key: str) -> None:
        """Drop the entry under ``key`` (its blobs stay: other entries may share them)."""
        self._store.delete(self._manifest_key(key))
