"""The run search language (the subset of MLflow's that people use), parsed into plain filters.

Filter: clauses joined by ``and``::

    metrics.auc > 0.9 and params.model = 'rf'
    and tags.team = "fraud" and attributes.status = 'FINISHED'

Order by: ``["metrics.auc DESC", "attributes.start_time"]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bascule.core.errors import InvalidInputError

__all__ = ["Filter", "OrderBy", "parse_filter", "parse_order_by"]

Kind = Literal["metric", "param", "tag", "attribute"]
_KINDS: dict[str, Kind] = {
    "metric": "metric",
    "metrics": "metric",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "tag": "tag",
    "tags": "tag",
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "run": "attribute",
}
ATTRIBUTES = ("status", "run_name", "start_time", "end_time", "run_id", "user")
_OPS = ("<=", ">=", "!=", "=", "<", ">", "LIKE", "ILIKE")
_EXPECTED = (
    'clauses like "metrics.auc > 0.9", "params.lr = \'0.1\'", "tags.team = \'x\'" '
    "or \"attributes.status = 'FINISHED'\", joined by AND"
)
_CLAUSE = re.compile(
    r"""^\s*(?P<ident>`[^`]+`|[A-Za-z_][\w]*)\.(?P<key>`[^`]+`|"[^"]+"|[\w.\-/ ]+?)\s*
        (?P<op><=|>=|!=|=|<|>|(?i:ilike)|(?i:like))\s*
        (?P<value>'[^']*'|"[^"]*"|[-+]?[\w.eE+\-]+)\s*$""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Filter:
    """One clause: ``kind.key op value``; metric values are floats, everything else strings."""

    kind: Kind
    key: str
    op: str
    value: str | float


@dataclass(frozen=True)
class OrderBy:
    """One ordering key."""

    kind: Kind
    key: str
    ascending: bool = True


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"`":
        return text[1:-1]
    return text


def _kind(ident: str, source: str) -> Kind:
    kind = _KINDS.get(_unquote(ident).lower())
    if kind is None:
        raise InvalidInputError.for_field(
            "filter", source, "an identifier of metrics., params., tags. or attributes."
        )
    return kind


def parse_filter(text: str | None) -> list[Filter]:
    """Parse a search filter string.

    Raises:
        InvalidInputError: a clause is malformed, names an unknown attribute, or compares a
            metric with something that is not a number.
    """
    if text is None or not text.strip():
        return []
    clauses = re.split(r"\s+(?i:and)\s+", text.strip())
    out: list[Filter] = []
    for clause in clauses:
        m = _CLAUSE.match(clause)
        if m is None:
            raise InvalidInputError.for_field("filter clause", clause, _EXPECTED)
        kind = _kind(m["ident"], clause)
        key = _unquote(m["key"].strip())
        op = m["op"].upper()
        raw = m["value"]
        value: str | float
        if kind == "metric":
            if raw[:1] in "'\"":
                raise InvalidInputError.for_field(f"metrics.{key} value", raw, "a number")
            try:
                value = float(raw)
            except ValueError:
                raise InvalidInputError.for_field(f"metrics.{key} value", raw, "a number") from None
            if op in ("LIKE", "ILIKE"):
                raise InvalidInputError.for_field(
                    "operator", op, "one of = != < <= > >= for metrics"
                )
        else:
            value = _unquote(raw)
            if kind == "attribute":
                if key == "run_name" or key == "name":
                    key = "run_name"
                if key == "id":
                    key = "run_id"
                if key not in ATTRIBUTES:
                    raise InvalidInputError.for_field("attribute", key, f"one of {ATTRIBUTES}")
                if key in ("start_time", "end_time"):
                    value = float(value)
            if kind in ("param", "tag") and op not in ("=", "!=", "LIKE", "ILIKE"):
                raise InvalidInputError.for_field(
                    "operator", op, f"one of = != LIKE ILIKE for {kind}s"
                )
        if op not in _OPS:
            raise InvalidInputError.for_field("operator", op, f"one of {_OPS}")
        out.append(Filter(kind, key, op, value))
    return out


def parse_order_by(items: list[str] | None) -> list[OrderBy]:
    """Parse order-by clauses such as ``metrics.auc DESC``.

    Raises:
        InvalidInputError: a clause is malformed.
    """
    out: list[OrderBy] = []
    for item in items or []:
        parts = item.strip().rsplit(None, 1)
        ascending = True
        if len(parts) == 2 and parts[1].upper() in ("ASC", "DESC"):
            ascending = parts[1].upper() == "ASC"
            item = parts[0]
        if "." not in item:
            raise InvalidInputError.for_field(
                "order_by", item, "'metrics.<key> [ASC|DESC]' or 'attributes.start_time DESC'"
            )
        ident, key = item.strip().split(".", 1)
        kind = _kind(ident, item)
        key = _unquote(key.strip())
        if kind == "attribute":
            if key in ("name", "run_name"):
                key = "run_name"
            if key not in ATTRIBUTES:
                raise InvalidInputError.for_field("order_by attribute", key, f"one of {ATTRIBUTES}")
        out.append(OrderBy(kind, key, ascending))
    return out
