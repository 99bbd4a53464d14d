"""The run searches' SQL, built once per query shape or per dialect: the search statement
(filters and orderings as bound parameters) and the one statement that reads every child row
(params, tags, latest metrics, artifacts, data sets) of a page of runs.
:class:`bascule.store.db.runs.RunRepository` executes them."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Float,
    Integer,
    String,
    and_,
    asc,
    bindparam,
    desc,
    func,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement

from bascule.store.db.tables import (
    DatasetInputRow,
    LatestMetricRow,
    ParamRow,
    RunArtifactRow,
    RunRow,
    RunTagRow,
)

__all__ = ["CHILDREN_POSTGRES", "CHILDREN_SQLITE", "RUN_COLUMNS", "search_statement"]

_ATTR_COLUMNS = {
    "status": RunRow.status,
    "run_name": RunRow.name,
    "start_time": RunRow.start_time,
    "end_time": RunRow.end_time,
    "run_id": RunRow.id,
    "user": RunRow.user,
}


def _compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    match op:
        case "=":
            return column == value  # type: ignore[no-any-return]
        case "!=":
            return column != value  # type: ignore[no-any-return]
        case "<":
            return column < value  # type: ignore[no-any-return]
        case "<=":
            return column <= value  # type: ignore[no-any-return]
        case ">":
            return column > value  # type: ignore[no-any-return]
        case ">=":
            return column >= value  # type: ignore[no-any-return]
        case "LIKE":
            return column.like(value)  # type: ignore[no-any-return]
        case _:
            return column.ilike(value)  # type: ignore[no-any-return]


# The columns of a run, in the order of the Run record's first fields.
RUN_COLUMNS = (
    RunRow.id,
    RunRow.experiment_id,
    RunRow.name,
    RunRow.status,
    RunRow.start_time,
    RunRow.end_time,
    RunRow.parent_run_id,
    RunRow.user,
    RunRow.lifecycle_stage,
)


@functools.lru_cache(maxsize=256)
def search_statement(
    by_experiment: bool,
    include_deleted: bool,
    filters: tuple[tuple[str, str, str], ...],
    order_by: tuple[tuple[str, str, bool], ...],
) -> Any:
    """The search statement for one query shape, with every key and value as a parameter."""
    tables = {"metric": LatestMetricRow, "param": ParamRow, "tag": RunTagRow}
    q = select(*RUN_COLUMNS)
    if by_experiment:
        q = q.where(RunRow.experiment_id.in_(bindparam("experiment_ids", expanding=True)))
    if not include_deleted:
        q = q.where(RunRow.lifecycle_stage == "active")
    for i, (kind, attr, op) in enumerate(filters):
        value: Any = bindparam(f"f{i}_value")
        if kind == "attribute":
            q = q.where(_compare(_ATTR_COLUMNS[attr], op, value))
            continue
        table = tables[kind].__table__.alias(f"f{i}")
        q = q.join(
            table,
            and_(
                table.c.run_id == RunRow.id,
                table.c.key == bindparam(f"f{i}_key"),
                _compare(table.c.value, op, value),
            ),
        )
    for i, (kind, attr, ascending) in enumerate(order_by):
        direction = asc if ascending else desc
        if kind == "attribute":
            q = q.order_by(direction(_ATTR_COLUMNS[attr]))
            continue
        table = tables[kind].__table__.alias(f"o{i}")
        q = q.outerjoin(
            table, and_(table.c.run_id == RunRow.id, table.c.key == bindparam(f"o{i}_key"))
        )
        # Runs without the key sort last either way, as in MLflow.
        q = q.order_by(table.c.value.is_(None), direction(table.c.value))
    return (
        q.order_by(desc(RunRow.start_time), RunRow.id)
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )


def _children_query(run_ids: Any, extra: Any) -> Any:
    """One statement for the params, tags, latest metrics, artifacts and data sets of runs.

    Columns: kind ('p', 't', 'm', 'a', 'd'), run_id, key, text, number, two integers and a
    JSON text for data sets (schema, source, context); a data set's second integer is its
    row id, which orders data sets as they were logged.
    """
    p, t, m = ParamRow.__table__.c, RunTagRow.__table__.c, LatestMetricRow.__table__.c
    a, d = RunArtifactRow.__table__.c, DatasetInputRow.__table__.c
    text_null, num_null, int_null = (
        null().cast(String),
        null().cast(Float),
        null().cast(BigInteger),
    )
    return union_all(
        select(
            literal("p"), p.run_id, p.key, p.value, num_null, int_null, int_null, text_null
        ).where(p.run_id.in_(run_ids)),
        select(
            literal("t"), t.run_id, t.key, t.value, num_null, int_null, int_null, text_null
        ).where(t.run_id.in_(run_ids)),
        select(
            literal("m"), m.run_id, m.key, text_null, m.value, m.step, m.timestamp, text_null
        ).where(m.run_id.in_(run_ids)),
        select(
            literal("a"), a.run_id, a.path, a.digest, num_null, a.size, int_null, text_null
        ).where(a.run_id.in_(run_ids)),
        select(literal("d"), d.run_id, d.name, d.digest, num_null, d.num_rows, d.id, extra).where(
            d.run_id.in_(run_ids)
        ),
    )


def _dataset_meta(json_object: Any) -> Any:
    d = DatasetInputRow.__table__.c
    return json_object("schema", d.schema, "source", d.source, "context", d.context).cast(String)


# Built once: only the bound list of run ids changes between calls.
CHILDREN_SQLITE = _children_query(
    select(func.json_each(bindparam("run_ids", type_=String)).table_valued("value").c.value),
    _dataset_meta(func.json_object),
)
CHILDREN_POSTGRES = _children_query(
    select(func.unnest(bindparam("run_ids", type_=ARRAY(String(32))))),
    _dataset_meta(func.json_build_object),
)
