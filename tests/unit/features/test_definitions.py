from __future__ import annotations

from datetime import timedelta

import pytest

from bascule.core.errors import ConfigError, InvalidInputError
from bascule.features import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    OnDemandFeatureView,
    SqlSource,
    load_definitions,
    parse_duration,
)
from bascule.features.definitions import definition_from_spec
from bascule.features.views import fingerprint, function_ref


def test_field_rejects_unknown_types_and_bad_names() -> None:
    with pytest.raises(InvalidInputError, match="complex") as e:
        Field("x", "complex")
    assert "invalid_input" == e.value.code
    with pytest.raises(InvalidInputError, match="field name"):
        Field("bad-name")


def test_entity_join_key_defaults_to_its_name() -> None:
    assert ("customer",) == Entity("customer").join_keys
    assert ("a", "b") == Entity("pair", ["a", "b"]).join_keys


def test_feature_view_checks_entities_and_ttl() -> None:
    src = FileSource("x.parquet")
    with pytest.raises(InvalidInputError, match="names no entity"):
        FeatureView(name="v", entities=[], schema={"a": "float64"}, source=src)
    with pytest.raises(InvalidInputError, match="ttl"):
        FeatureView(name="v", entities=["e"], schema={}, source=src, ttl=timedelta(0))


def test_schema_fields_named_like_join_keys_declare_key_types() -> None:
    view = FeatureView(
        name="v",
        entities=[Entity("customer", ["customer_id"])],
        schema=[Field("customer_id", "int64"), Field("spend")],
        source=FileSource("x.parquet"),
    )

    assert ["spend"] == [f.name for f in view.fields(["customer_id"])]
    assert ("customer",) == view.entity_names


def test_specs_round_trip_with_the_same_fingerprint() -> None:
    objs = [
        Entity("customer", ["customer_id"], "people"),
        FeatureView(
            name="v",
            entities=["customer"],
            schema={"a": "float64", "b": "int32"},
            source=SqlSource("SELECT 1", timestamp_field="ts"),
            ttl=timedelta(hours=12),
            tags={"team": "risk"},
        ),
        FeatureService("svc", ["v:a", "v"]),
    ]
    kinds = ["entity", "view", "service"]

    for kind, obj in zip(kinds, objs, strict=True):
        again = definition_from_spec(kind, obj.to_spec())
        assert obj.to_spec() == again.to_spec()
        assert fingerprint(obj.to_spec()) == fingerprint(again.to_spec())


def test_function_ref_rejects_lambdas() -> None:
    with pytest.raises(InvalidInputError, match="module level"):
        function_ref(lambda df: df)
    assert "builtins:len" == function_ref(len)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (90, timedelta(seconds=90)),
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
        ("1d12h", timedelta(days=1, hours=12)),
        (None, None),
    ],
)
def test_parse_duration(text: object, expected: timedelta | None) -> None:
    assert expected == parse_duration(text)  # type: ignore[arg-type]


def test_parse_duration_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration("soon")


def test_yaml_definitions_load_into_objects() -> None:
    defs = load_definitions(
        entities=[{"name": "customer", "join_keys": ["customer_id"]}],
        views=[
            {
                "name": "stats",
                "entities": ["customer"],
                "source": "data/*.parquet",
                "timestamp_field": "ts",
                "ttl": "7d",
                "features": {"spend": "float64"},
            }
        ],
        on_demand_views=[
            {
                "name": "odfv",
                "function": "math:fabs",
                "sources": ["stats"],
                "request": {"amount": "float64"},
                "features": {"x": "float64"},
            }
        ],
        services={"model": ["stats:spend"]},
    )

    entity, view, odfv, svc = defs
    assert isinstance(view, FeatureView)
    assert FileSource("data/*.parquet", "ts") == view.source
    assert timedelta(days=7) == view.ttl
    assert isinstance(odfv, OnDemandFeatureView)
    assert ("stats",) == odfv.view_sources
    assert ["amount"] == [f.name for f in odfv.request_fields]
    assert ("stats:spend",) == svc.refs  # type: ignore[union-attr]
    assert ("customer_id",) == entity.join_keys  # type: ignore[union-attr]


def test_yaml_mistakes_are_all_listed_with_their_place() -> None:
    with pytest.raises(ConfigError) as e:
        load_definitions(
            entities=[{"name": "customer", "keys": ["id"]}],
            views=[
                {
                    "name": "v",
                    "entities": ["customer"],
                    "source": {"path": "a", "query": "b"},
                    "features": {},
                },
                {
                    "name": "w",
                    "entities": ["customer"],
                    "source": "x",
                    "features": {},
                    "ttl": "soon",
                },
            ],
            on_demand_views=[{"name": "o", "function": "no_such_module:f", "features": {}}],
            services={},
        )

    problems = e.value.details["problems"]
    assert 4 == len(problems)
    assert problems[0].startswith("features.entities[0].keys")
    assert problems[1].startswith("features.views[0]")
    assert "exactly one of 'path'" in problems[1]
    assert problems[2].startswith("features.views[1]: feature view 'w': ttl")
    assert "cannot be imported" in problems[3]
    assert "config_error" == e.value.code
