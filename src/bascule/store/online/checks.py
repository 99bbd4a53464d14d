"""``check_online_store``: the contract every :class:`OnlineStore` must pass.

Like scikit-learn's ``check_estimator``, it exercises every protocol method on a real
instance and raises :class:`AssertionError` naming the first broken promise. It works in
tables named ``check_<random>`` and drops them at the end, so it may run against a store
that holds other data.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from bascule.core.errors import BasculeError, InvalidInputError
from bascule.store.online.base import OnlineStore

__all__ = ["check_online_store"]

_FEATURES = {
    "f_bool": "bool",
    "f_f32": "float32",
    "f_f64": "float64",
    "f_i32": "int32",
    "f_i64": "int64",
    "f_str": "string",
}
_KEYS = ["1", "2", "a:b/c", "ünïcode ✓", "", "  spaced  "]


def _expect(condition: bool, store: object, message: str) -> None:
    if not condition:
        raise AssertionError(f"{store!r}: {message}")


def _expect_error(
    store: object, error: type[BasculeError], call: Callable[..., Any], *args: Any
) -> None:
    shown = f"{call.__name__}({', '.join(repr(a)[:60] for a in args)})"
    try:
        call(*args)
    except error:
        return
    except Exception as exc:
        raise AssertionError(
            f"{store!r}: {shown} raised {type(exc).__name__}: {exc}, expected {error.__name__}"
        ) from exc
    raise AssertionError(f"{store!r}: {shown} returned normally, expected {error.__name__}")


def _row(i: int) -> tuple[Any, ...]:
    return (i % 2 == 0, i + 0.5, i / 3, i * 7, 2**40 + i, f"v{i} ✓")


def _check_round_trip(store: OnlineStore, table: str) -> None:
    names = list(_FEATURES)
    rows = [_row(i) for i in range(len(_KEYS))]
    columns = [[r[c] for r in rows] for c in range(len(names))]
    ts = [1_700_000_000_000 + i for i in range(len(_KEYS))]
    written = store.write(table, names, _KEYS, ts, columns)
    _expect(written == len(_KEYS), store, f"write() returned {written}, not {len(_KEYS)}")
    got = store.read(table, [*_KEYS, "missing", _KEYS[0]], names)
    expected: list[Any] = [(t, r) for t, r in zip(ts, rows, strict=True)]
    expected += [None, expected[0]]
    _expect(got == expected, store, f"read() gave {got}, expected {expected}")
    for row in got:
        if row is None:
            continue
        b, f32, f64, i32, i64, s = row[1]
        _expect(type(b) is bool, store, f"a bool feature came back as {type(b).__name__}")
        _expect(type(f32) is float and type(f64) is float, store, "floats did not come back float")
        _expect(type(i32) is int and type(i64) is int, store, "ints did not come back int")
        _expect(type(s) is str, store, f"a string feature came back as {type(s).__name__}")
    _expect(store.count(table) == len(_KEYS), store, f"count() is not {len(_KEYS)}")
    one = store.read(table, [_KEYS[3]], ["f_str", "f_i64"])
    _expect(
        one == [(ts[3], (rows[3][5], rows[3][4]))],
        store,
        f"read() of a feature subset in another order gave {one}",
    )
    _expect(store.read(table, [], names) == [], store, "read() of no keys is not []")
    single_missing = store.read(table, ["nope"], names)
    _expect(single_missing == [None], store, f"read() of one missing key gave {single_missing}")


def _check_nulls(store: OnlineStore, table: str) -> None:
    names = list(_FEATURES)
    columns: list[list[Any]] = [[None, None] for _ in names]
    columns[2] = [float("nan"), None]  # NaN is stored as null
    columns[5] = ["", None]  # the empty string is a value, not a null
    store.write(table, names, ["n1", "n2"], [5, 5], columns)
    got = store.read(table, ["n1", "n2"], names)
    expected = [
        (5, (None, None, None, None, None, "")),
        (5, (None, None, None, None, None, None)),
    ]
    _expect(got == expected, store, f"nulls read back as {got}, expected {expected}")


def _check_newer_wins(store: OnlineStore, table: str) -> None:
    names = ["f_i64", "f_str"]
    store.write(table, names, ["w"], [100], [[1], ["first"]])
    store.write(table, names, ["w"], [50], [[2], ["older"]])
    got = store.read(table, ["w"], names)
    _expect(got == [(100, (1, "first"))], store, f"an older write replaced a newer row: {got}")
    store.write(table, names, ["w"], [100], [[3], ["same time"]])
    got = store.read(table, ["w"], names)
    _expect(got == [(100, (3, "same time"))], store, f"a write at the same time was lost: {got}")
    store.write(table, names, ["w", "w2"], [200, 10], [[4, 5], ["newer", "x"]])
    got = store.read(table, ["w", "w2"], names)
    _expect(got == [(200, (4, "newer")), (10, (5, "x"))], store, f"a newer write was lost: {got}")


def _check_whole_rows(store: OnlineStore, table: str) -> None:
    names = ["f_i64", "f_str", "f_f64"]
    store.write(table, names, ["r"], [10], [[1], ["all"], [0.5]])
    store.write(table, ["f_str"], ["r"], [20], [["only"]])
    got = store.read(table, ["r"], names)
    _expect(
        got == [(20, (None, "only", None))],
        store,
        f"a write of some features kept older values of the others: {got}",
    )
    store.write(table, names, ["r"], [15], [[2], ["older"], [1.5]])
    got = store.read(table, ["r"], names)
    _expect(got == [(20, (None, "only", None))], store, f"an older whole row won: {got}")


def _check_arrow(store: OnlineStore, table: str) -> None:
    import pyarrow as pa

    names = list(_FEATURES)
    rows = [_row(i) for i in range(3)]
    columns = [pa.array([r[c] for r in rows]) for c in range(len(names))]
    keys = pa.array(["arrow-0", "arrow-1", "arrow-2"])
    ts = pa.array([7, 8, 9], type=pa.int64())
    columns[2] = pa.array([0.25, None, float("nan")])
    columns[1] = pa.array([1.5, 2.5, 3.5], type=pa.float32())
    store.write(table, names, keys, ts, columns)
    got = store.read(table, keys.to_pylist(), names)
    expected = [
        (7 + i, (r[0], 1.5 + i, [0.25, None, None][i], r[3], r[4], r[5]))
        for i, r in enumerate(rows)
    ]
    _expect(got == expected, store, f"Arrow columns read back as {got}, expected {expected}")


def _check_odd_values(store: OnlineStore, table: str) -> None:
    names = ["f_f64", "f_str", "f_i64"]
    floats = [float("inf"), float("-inf"), 1.0, -0.0, 1e300, 5e-324, 2.0**53]
    texts = ['"quoted"', "back\\slash", "line\nbreak", "\x00\x1f", "ünïcode ✓", "[1,2]", "="]
    ints = [-(2**63), 2**63 - 1, 0, -1, 10**15, 3, 4]
    keys = [f"odd-{i}" for i in range(len(floats))]
    store.write(table, names, keys, [1] * len(keys), [floats, texts, ints])
    got = store.read(table, keys, names)
    expected = [(1, v) for v in zip(floats, texts, ints, strict=True)]
    _expect(got == expected, store, f"odd values read back as {got}, expected {expected}")
    for row in got:
        if row is not None:
            _expect(type(row[1][0]) is float, store, f"{row[1][0]!r} did not read back float")


def _check_bulk(store: OnlineStore, table: str) -> None:
    n = 5000
    keys = [f"bulk-{i}" for i in range(n)]
    store.write(
        table,
        ["f_f64", "f_i64"],
        keys,
        list(range(n)),
        [[i * 0.25 for i in range(n)], list(range(n))],
    )
    got = store.read(table, keys[::-1], ["f_i64", "f_f64"])
    expected = [(i, (i, i * 0.25)) for i in range(n)][::-1]
    _expect(got == expected, store, "a 5,000-row write did not read back in the asked order")


def _check_schema_changes(store: OnlineStore, table: str) -> None:
    store.write(table, ["f_i64"], ["s"], [1], [[42]])
    store.ensure_table(table, {**_FEATURES, "f_new": "float64", "f_i32": "string"})
    got = store.read(table, ["s"], ["f_i64", "f_new"])
    _expect(got == [(1, (42, None))], store, f"adding a feature lost values or filled one: {got}")
    store.write(table, ["f_i32"], ["s"], [1], [["now text"]])
    got = store.read(table, ["s"], ["f_i32"])
    _expect(got == [(1, ("now text",))], store, f"a retyped feature read back as {got}")


def _check_errors(store: OnlineStore, table: str) -> None:
    _expect_error(store, InvalidInputError, store.ensure_table, "bad name;", {"x": "int64"})
    _expect_error(store, InvalidInputError, store.ensure_table, table, {"x": "complex128"})
    _expect_error(
        store, InvalidInputError, store.write, table, ["f_i64"], ["a", "b"], [1], [[1, 2]]
    )
    _expect_error(store, InvalidInputError, store.write, table, ["f_i64"], ["a"], [1], [])
    _expect_error(store, InvalidInputError, store.write, table, ["nope"], ["a"], [1], [[1]])
    missing_table = f"{table}_never"
    _expect_error(store, InvalidInputError, store.write, missing_table, ["x"], ["a"], [1], [[1]])
    got = store.read(missing_table, ["a", "b"], ["x"])
    _expect(got == [None, None], store, f"read() of a table never created gave {got}")
    _expect(store.count(missing_table) == 0, store, "count() of a table never created is not 0")


def check_online_store(store: OnlineStore) -> None:
    """Check that ``store`` keeps every promise of the :class:`OnlineStore` protocol.

    Covers every feature type, nulls and NaN, keys with odd characters, reads in the asked
    order with duplicates and missing keys, feature subsets, newer-wins upserts of whole rows,
    Arrow columns, extreme and odd values, a bulk write, adding and retyping features, bad
    input, and dropping tables.

    Raises:
        AssertionError: the store breaks the contract; the message says how.
    """
    _expect(isinstance(store, OnlineStore), store, "does not implement OnlineStore")
    _expect(bool(store.url), store, "url is empty")
    store.ping()
    table = f"check_{uuid.uuid4().hex[:12]}"
    try:
        store.ensure_table(table, _FEATURES)
        store.ensure_table(table, _FEATURES)  # idempotent
        _check_round_trip(store, table)
        _check_nulls(store, table)
        _check_newer_wins(store, table)
        _check_whole_rows(store, table)
        _check_arrow(store, table)
        _check_odd_values(store, table)
        _check_bulk(store, table)
        _check_schema_changes(store, table)
        _check_errors(store, table)
        store.drop_table(table)
        _expect(store.count(table) == 0, store, "count() after drop_table() is not 0")
        got = store.read(table, ["1"], ["f_i64"])
        _expect(got == [None], store, f"read() after drop_table() gave {got}")
        store.drop_table(table)  # dropping twice is not an error
    finally:
        store.drop_table(table)
