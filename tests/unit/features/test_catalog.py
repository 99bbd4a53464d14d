from __future__ import annotations

import pytest

from bascule.core.errors import InvalidInputError, NotFoundError
from bascule.features import Entity, FeatureService, FeatureView, FileSource
from bascule.features.catalog import Catalog

CUSTOMER = Entity("customer", ["customer_id"])


def _catalog() -> Catalog:
    a = FeatureView(
        name="a",
        entities=["customer"],
        schema={"x": "float64", "y": "int64"},
        source=FileSource("a.parquet"),
    )
    b = FeatureView(
        name="b", entities=["customer"], schema={"x": "float64"}, source=FileSource("b.parquet")
    )
    return Catalog(
        [
            (CUSTOMER, 1, "e"),
            (a, 3, "fa"),
            (b, 1, "fb"),
            (FeatureService("svc", ["a:y", "b"]), 1, "s"),
        ]
    )


def test_a_view_name_stands_for_all_its_features() -> None:
    assert ("a:x", "a:y") == _catalog().refs_of(["a"])


def test_a_service_name_expands_to_its_refs() -> None:
    sel = _catalog().select("svc")

    assert ("a:y", "b:x") == sel.refs
    assert ("y", "x") == sel.outputs
    assert ("customer_id",) == sel.join_keys
    assert [3, 1] == [p.version for p in sel.views]


def test_unknown_names_list_what_exists() -> None:
    cat = _catalog()

    with pytest.raises(NotFoundError, match="feature view 'c' not found; available: 'a', 'b'") as e:
        cat.select(["c:x"])
    assert "not_found" == e.value.code
    with pytest.raises(NotFoundError, match="feature 'a:z' not found; available: 'a:x', 'a:y'"):
        cat.select(["a:z"])
    with pytest.raises(NotFoundError, match="feature service 'nope' not found; available: 'svc'"):
        cat.select("nope")


def test_same_feature_name_from_two_views_needs_full_names() -> None:
    cat = _catalog()

    with pytest.raises(InvalidInputError, match="full_feature_names=True"):
        cat.select(["a:x", "b:x"])
    assert ("a__x", "b__x") == cat.select(["a:x", "b:x"], full_feature_names=True).outputs


@pytest.mark.parametrize("bad", [[], ["a:x:y"], [":"], ["::"]])
def test_malformed_requests_are_invalid_input(bad: list[str]) -> None:
    with pytest.raises(InvalidInputError):
        _catalog().select(bad)
