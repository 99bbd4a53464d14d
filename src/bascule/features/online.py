"""Online lookups: the latest values of features for entity rows, with freshness and status.

Every requested feature comes back for every entity row, with a status:

- ``PRESENT``: a stored value within the view's TTL;
- ``NULL_VALUE``: the stored value is null;
- ``NOT_FOUND``: the online store holds nothing for the entity (or its key is null);
- ``OUTSIDE_MAX_AGE``: the stored value is older than the TTL, so it is withheld (null) —
  as the point-in-time join would have done in training.

A missing entity is an explicit null with its status, never a filled-in value; a store that
cannot be reached raises :class:`StorageError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bascule.core.errors import InvalidInputError
from bascule.features.catalog import OnDemandPart, Selection
from bascule.features.transform import run_on_demand_frame
from bascule.store.online.base import OnlineStore

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "NOT_FOUND",
    "NULL_VALUE",
    "OUTSIDE_MAX_AGE",
    "PRESENT",
    "FeatureValues",
    "OnlineFeatures",
    "entity_columns",
    "online_key",
    "read_online",
]

PRESENT = "PRESENT"
NULL_VALUE = "NULL_VALUE"
NOT_FOUND = "NOT_FOUND"
OUTSIDE_MAX_AGE = "OUTSIDE_MAX_AGE"
KEY_SEPARATOR = "\x1f"


@dataclass(frozen=True)
class FeatureValues:
    """One feature for every entity row: values, statuses and event times (UTC)."""

    values: list[Any]
    statuses: list[str]
    event_timestamps: list[datetime | None]


@dataclass(frozen=True)
class OnlineFeatures:
    """The answer of ``get_online_features``: entity columns as given, then features."""

    entities: dict[str, list[Any]]
    features: dict[str, FeatureValues]

    def to_dict(self, *, include_event_timestamps: bool = False) -> dict[str, list[Any]]:
        """Columns by name, as Feast's ``OnlineResponse.to_dict()``; timestamps as ``name__ts``."""
        out: dict[str, list[Any]] = dict(self.entities)
        for name, fv in self.features.items():
            out[name] = fv.values
            if include_event_timestamps:
                out[f"{name}__ts"] = fv.event_timestamps
        return out

    def to_df(self) -> pd.DataFrame:
        """The values as a pandas DataFrame, one row per entity row."""
        import pandas as pd

        return pd.DataFrame(self.to_dict())


def entity_columns(
    entity_rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
) -> tuple[int, dict[str, list[Any]]]:
    """Entity rows as columns: ``[{"id": 1}, {"id": 2}]`` or ``{"id": [1, 2]}``.

    Raises:
        InvalidInputError: rows with different keys, columns of different lengths, or no rows.
    """
    if isinstance(entity_rows, Mapping):
        cols = {str(k): list(v) for k, v in entity_rows.items()}
        lengths = {len(v) for v in cols.values()}
        if len(lengths) > 1:
            raise InvalidInputError(f"entity columns differ in length: {sorted(lengths)}")
        return (lengths.pop() if lengths else 0), cols
    rows = list(entity_rows)
    if not rows:
        return 0, {}
    names = list(rows[0])
    cols = {n: [] for n in names}
    for i, row in enumerate(rows):
        if len(row) != len(names) or any(n not in row for n in names):
            raise InvalidInputError(
                f"entity row {i} has keys {sorted(row)}; row 0 has {sorted(names)}"
            )
        for n in names:
            cols[n].append(row[n])
    return len(rows), cols


def online_key(values: Sequence[Any]) -> str | None:
    """The online store key of one entity: its join-key values as text (None if any is null).

    It matches DuckDB's ``CAST(… AS VARCHAR)`` used when materialising: integers in decimal,
    strings as they are; a float with an integral value counts as that integer (JSON ids).
    """
    parts: list[str] = []
    for v in values:
        if v is None:
            return None
        if type(v) is float and v.is_integer():
            v = int(v)
        parts.append(str(v))
    return parts[0] if len(parts) == 1 else KEY_SEPARATOR.join(parts)


def _missing(cols: Mapping[str, Any], needed: Sequence[str], what: str) -> None:
    missing = [k for k in dict.fromkeys(needed) if k not in cols]
    if missing:
        raise InvalidInputError(
            f"entity rows lack {what} {', '.join(repr(m) for m in missing)}; "
            f"they have: {', '.join(repr(c) for c in cols) or 'nothing'}",
            field="entity_rows",
            missing=missing,
        )


def read_online(
    store: OnlineStore, selection: Selection, n: int, cols: Mapping[str, list[Any]], now_ms: int
) -> OnlineFeatures:
    """Look the selection up for ``n`` entity rows given as columns.

    Raises:
        InvalidInputError: a join key or request field is missing from the rows.
        StorageError: the online store failed.
    """
    _missing(cols, selection.join_keys, "join key(s)")
    _missing(cols, selection.request, "request field(s)")
    found: dict[tuple[str, str], FeatureValues] = {}
    outputs: dict[str, FeatureValues] = {}
    for part in selection.views:
        key_cols = [cols[k] for k in part.join_keys]
        keys = [online_key(v) for v in zip(*key_cols, strict=True)]
        asked = [k for k in keys if k is not None]
        rows = iter(store.read(part.view.name, asked, [f.name for f in part.features]))
        ttl = part.view.ttl
        oldest = None if ttl is None else now_ms - int(ttl.total_seconds() * 1000)
        nf = len(part.features)
        values: list[list[Any]] = [[] for _ in range(nf)]
        statuses: list[list[str]] = [[] for _ in range(nf)]
        stamps: list[datetime | None] = []
        for key in keys:
            row = None if key is None else next(rows)
            if row is None:
                stamps.append(None)
                for i in range(nf):
                    values[i].append(None)
                    statuses[i].append(NOT_FOUND)
                continue
            ms, vals = row
            stamps.append(datetime.fromtimestamp(ms / 1000, UTC))
            stale = oldest is not None and ms < oldest
            for i in range(nf):
                v = vals[i]
                if stale:
                    values[i].append(None)
                    statuses[i].append(OUTSIDE_MAX_AGE)
                else:
                    values[i].append(v)
                    statuses[i].append(PRESENT if v is not None else NULL_VALUE)
        for i, (f, out) in enumerate(zip(part.features, part.outputs, strict=True)):
            fv = FeatureValues(values[i], statuses[i], stamps)
            found[(part.view.name, f.name)] = fv
            if out is not None:
                outputs[out] = fv
    for od in selection.on_demand:
        outputs.update(_on_demand(od, found, cols, n))
    entities = {k: cols[k] for k in (*selection.join_keys, *selection.request)}
    return OnlineFeatures(entities, {o: outputs[o] for o in selection.outputs})


def _series(values: list[Any], dtype: str) -> pd.Series[Any]:
    """A column typed as the same feature comes out of a training set (nulls as NaN)."""
    import pandas as pd

    if dtype in ("float32", "float64"):
        return pd.Series([float("nan") if v is None else v for v in values], dtype=dtype)
    if dtype in ("int32", "int64"):
        if any(v is None for v in values):
            return pd.Series([float("nan") if v is None else v for v in values], dtype="float64")
        return pd.Series(values, dtype=dtype)
    return pd.Series(values, dtype=object)


def _on_demand(
    part: OnDemandPart,
    found: Mapping[tuple[str, str], FeatureValues],
    cols: Mapping[str, list[Any]],
    n: int,
) -> dict[str, FeatureValues]:
    import pandas as pd

    dtypes = {f.name: f.dtype for f in part.view.request_fields}
    data: dict[str, pd.Series[Any]] = {}
    for view_name, feat in part.inputs:
        dtypes[feat] = next(x.dtype for x in part.view_fields[view_name] if x.name == feat)
        data[feat] = _series(found[(view_name, feat)].values, dtypes[feat])
    for r in part.request:
        data[r] = _series(cols[r], dtypes.get(r, "string"))
    result = run_on_demand_frame(part, pd.DataFrame(data, index=range(n)))
    out: dict[str, FeatureValues] = {}
    for f, name in zip(part.features, part.outputs, strict=True):
        raw = result[f.name].tolist()
        values = [None if v is None or v != v else v for v in raw]  # NaN → None
        statuses = [PRESENT if v is not None else NULL_VALUE for v in values]
        out[name] = FeatureValues(values, statuses, [None] * n)
    return out
