from __future__ import annotations

import pytest

from bascule.core.errors import InvalidInputError
from bascule.core.refs import ModelRef
from bascule.core.search import Filter, OrderBy, parse_filter, parse_order_by


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fraud", ModelRef("fraud")),
        ("fraud@champion", ModelRef("fraud", alias="champion")),
        ("fraud:3", ModelRef("fraud", version=3)),
        ("my.model-2:12", ModelRef("my.model-2", version=12)),
    ],
)
def test_model_refs_parse(text: str, expected: ModelRef) -> None:
    assert expected == ModelRef.parse(text)
    assert text == str(ModelRef.parse(text))


@pytest.mark.parametrize(
    "bad", ["", "fraud:0", "fraud:x", "fraud@", "@champion", "a b", "fraud:-1"]
)
def test_bad_model_refs_are_invalid_input(bad: str) -> None:
    with pytest.raises(InvalidInputError) as e:
        ModelRef.parse(bad)

    assert "invalid_input" == e.value.code


def test_filter_parses_all_kinds() -> None:
    got = parse_filter(
        "metrics.auc >= 0.9 AND params.model = 'rf' and tags.`team name` != \"x\" "
        "and attributes.status = 'FINISHED'"
    )

    assert [
        Filter("metric", "auc", ">=", 0.9),
        Filter("param", "model", "=", "rf"),
        Filter("tag", "team name", "!=", "x"),
        Filter("attribute", "status", "=", "FINISHED"),
    ] == got


def test_order_by_parses_direction() -> None:
    assert [
        OrderBy("metric", "auc", False),
        OrderBy("attribute", "start_time", True),
    ] == parse_order_by(["metrics.auc DESC", "attributes.start_time"])
