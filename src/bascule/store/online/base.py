"""The online store contract: the latest feature values per entity, one table per feature view.

A table holds, for each entity key, the event time of its values (milliseconds since the
epoch) and one value per feature. Writes are bulk upserts that never replace a newer row with
an older one, so materialising the same window twice, or an older window after a newer one,
changes nothing. Reads return ``None`` for keys the table does not hold: the caller turns that
into an explicit null with a status, never a filled-in value.

Feature types are the feature store's: ``int32``, ``int64``, ``float32``, ``float64``,
``bool`` and ``string``. Floats that are NaN are stored and read back as ``None``.

Keys, times and columns given to a write are Python sequences or Arrow arrays (what
materialisation reads from DuckDB): adapters that can encode Arrow directly do, so a bulk
write never turns a million values into Python objects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

from bascule.core.errors import InvalidInputError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "ONLINE_DTYPES",
    "Column",
    "OnlineRow",
    "OnlineStore",
    "check_columns",
    "check_table_name",
    "to_list",
]

ONLINE_DTYPES = ("bool", "float32", "float64", "int32", "int64", "string")
"""Feature types an online store can hold."""

Column: TypeAlias = "Sequence[Any] | pa.Array | pa.ChunkedArray"
"""Values of a write: a Python sequence or an Arrow array."""

OnlineRow = tuple[int, tuple[Any, ...]]
"""What a read returns for a key it holds: ``(event time in ms, values in the asked order)``."""

_TABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def check_table_name(name: str) -> str:
    """Validate a table (feature view) or feature name for use in an online store.

    Raises:
        InvalidInputError: it is not a letter or ``_`` followed by up to 62 letters, digits
            or ``_``.
    """
    if not _TABLE_RE.match(str(name)):
        raise InvalidInputError.for_field(
            "online table or feature name", name, "a letter or _ then letters, digits or _"
        )
    return name


def to_list(values: Column) -> Sequence[Any]:
    """Python values of a column (Arrow arrays are converted, sequences returned as they are)."""
    to_pylist = getattr(values, "to_pylist", None)
    if to_pylist is not None:
        out: list[Any] = to_pylist()
        return out
    seq: Sequence[Any] = values
    return seq


def check_columns(
    table: str,
    features: Sequence[str],
    keys: Column,
    event_ms: Column,
    columns: Sequence[Column],
) -> None:
    """Check that the columns of a write line up (every adapter calls this first).

    Raises:
        InvalidInputError: a bad table name, or names, keys, times and columns that differ
            in count or length.
    """
    check_table_name(table)
    if len(columns) != len(features):
        raise InvalidInputError(
            f"write to {table!r}: {len(features)} feature name(s) but {len(columns)} column(s)"
        )
    lengths = {len(keys), len(event_ms), *(len(c) for c in columns)}
    if len(lengths) > 1:
        raise InvalidInputError(
            f"write to {table!r}: keys, event times and columns differ in length "
            f"({sorted(lengths)})"
        )


@runtime_checkable
class OnlineStore(Protocol):
    """Where the latest feature values live for serving. Implementations: SQLite, Redis."""

    @property
    def url(self) -> str:
        """Where the store is, with any password masked; also names it in watermarks."""
        ...

    def ensure_table(self, table: str, features: Mapping[str, str]) -> None:
        """Create the table for a view, or bring its columns to ``features`` (name → type).

        Rows already stored keep their values for features that kept their type.

        Raises:
            InvalidInputError: a name or type is not supported.
            StorageError: the store is unreachable.
        """
        ...

    def write(
        self,
        table: str,
        features: Sequence[str],
        keys: Column,
        event_ms: Column,
        columns: Sequence[Column],
    ) -> int:
        """Upsert rows given column by column; a stored row with a newer event time is kept.

        A row is replaced whole: after a write, the table's features not in ``features`` read
        as null for the keys written (a row never mixes values of two event times).

        ``columns[i][j]`` is the value of ``features[i]`` for ``keys[j]``; keys, times and
        columns are Python sequences or Arrow arrays.

        Returns:
            The number of rows given.

        Raises:
            InvalidInputError: the table does not exist or the columns do not line up.
            StorageError: the store is unreachable or the write failed.
        """
        ...

    def read(
        self, table: str, keys: Sequence[str], features: Sequence[str]
    ) -> list[OnlineRow | None]:
        """The stored row of each key (in order, duplicates allowed), ``None`` where absent.

        Raises:
            StorageError: the store is unreachable.
        """
        ...

    def count(self, table: str) -> int:
        """How many keys the table holds (0 for a table never created).

        Raises:
            StorageError: the store is unreachable.
        """
        ...

    def drop_table(self, table: str) -> None:
        """Remove a table and its rows (no error if absent).

        Raises:
            StorageError: the store is unreachable.
        """
        ...

    def ping(self) -> None:
        """Check the store answers.

        Raises:
            StorageError: it does not.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...
