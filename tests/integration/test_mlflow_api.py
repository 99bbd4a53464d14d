"""The MLflow REST API subset at /api/2.0/mlflow: request and response shapes, MLflow's errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bascule.http.control.app import create_app
from bascule.testing import make_services
from bascule.wiring import Services

API = "/api/2.0/mlflow"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    built = make_services(tmp_path / "home")
    yield built
    built.close()


@pytest.fixture
async def client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://bascule") as c:
        yield c


async def ok(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
    """Call an MLflow endpoint and return its JSON, failing on any non-200 answer."""
    response = await client.request(method, API + path, **kwargs)
    assert 200 == response.status_code, response.text
    return response.json()


async def new_run(client: httpx.AsyncClient, experiment_id: str, name: str, **extra: Any) -> str:
    body = {"experiment_id": experiment_id, "run_name": name, "start_time": 1000, **extra}
    return str((await ok(client, "POST", "/runs/create", json=body))["run"]["info"]["run_id"])


async def new_experiment(client: httpx.AsyncClient, name: str) -> str:
    return str(
        (await ok(client, "POST", "/experiments/create", json={"name": name}))["experiment_id"]
    )


def pairs(items: list[dict[str, str]]) -> dict[str, str]:
    return {item["key"]: item["value"] for item in items}


# -- experiments --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_experiment_create_get_and_get_by_name_use_mlflow_shapes(
    client: httpx.AsyncClient,
) -> None:
    created = await ok(
        client,
        "POST",
        "/experiments/create",
        json={"name": "fraud", "tags": [{"key": "team", "value": "risk"}]},
    )
    by_id = await ok(client, "GET", "/experiments/get", params={"experiment_id": "1"})
    by_name = await ok(
        client, "GET", "/experiments/get-by-name", params={"experiment_name": "fraud"}
    )

    assert {"experiment_id": "1"} == created
    exp = by_id["experiment"]
    assert by_name == by_id
    assert "1" == exp["experiment_id"]
    assert "fraud" == exp["name"]
    assert "active" == exp["lifecycle_stage"]
    assert [{"key": "team", "value": "risk"}] == exp["tags"]
    assert isinstance(exp["creation_time"], int)
    assert exp["last_update_time"] >= exp["creation_time"]
    assert "bascule:/experiments/1" == exp["artifact_location"]


@pytest.mark.anyio
async def test_duplicate_experiment_is_resource_already_exists(client: httpx.AsyncClient) -> None:
    await new_experiment(client, "dup")

    response = await client.post(f"{API}/experiments/create", json={"name": "dup"})

    assert 400 == response.status_code
    assert "RESOURCE_ALREADY_EXISTS" == response.json()["error_code"]
    assert "'dup'" in response.json()["message"]


@pytest.mark.anyio
async def test_unknown_experiment_is_resource_does_not_exist(client: httpx.AsyncClient) -> None:
    by_name = await client.get(f"{API}/experiments/get-by-name", params={"experiment_name": "nope"})
    by_id = await client.get(f"{API}/experiments/get", params={"experiment_id": "42"})
    bad_id = await client.get(f"{API}/experiments/get", params={"experiment_id": "abc"})

    assert (404, "RESOURCE_DOES_NOT_EXIST") == (by_name.status_code, by_name.json()["error_code"])
    assert (404, "RESOURCE_DOES_NOT_EXIST") == (by_id.status_code, by_id.json()["error_code"])
    assert (400, "INVALID_PARAMETER_VALUE") == (bad_id.status_code, bad_id.json()["error_code"])


@pytest.mark.anyio
async def test_experiment_rename_tag_delete_restore_and_search(client: httpx.AsyncClient) -> None:
    a = await new_experiment(client, "churn-a")
    b = await new_experiment(client, "churn-b")
    await new_experiment(client, "other")
    await ok(
        client, "POST", "/experiments/update", json={"experiment_id": a, "new_name": "churn-z"}
    )
    await ok(
        client,
        "POST",
        "/experiments/set-experiment-tag",
        json={"experiment_id": a, "key": "team", "value": "growth"},
    )
    await ok(client, "POST", "/experiments/delete", json={"experiment_id": b})

    async def names(**body: Any) -> list[str]:
        found = await ok(client, "POST", "/experiments/search", json=body)
        return [e["name"] for e in found["experiments"]]

    active = await names(filter="name LIKE 'churn%'")
    deleted = await names(view_type="DELETED_ONLY")
    every = await names(view_type="ALL", filter="name ILIKE 'CHURN%'", order_by=["name DESC"])
    tagged = await names(filter="tags.team = 'growth'")
    await ok(client, "POST", "/experiments/restore", json={"experiment_id": b})
    restored = await names(filter="name = 'churn-b'")
    first = await ok(client, "POST", "/experiments/search", json={"max_results": 2})
    rest = await ok(
        client,
        "POST",
        "/experiments/search",
        json={"max_results": 2, "page_token": first["next_page_token"]},
    )

    assert ["churn-z"] == active
    assert ["churn-b"] == deleted
    assert ["churn-z", "churn-b"] == every
    assert ["churn-z"] == tagged
    assert ["churn-b"] == restored
    assert 2 == len(first["experiments"])
    assert "next_page_token" not in rest
    assert {"Default", "churn-z", "churn-b", "other"} == {
        e["name"] for e in first["experiments"] + rest["experiments"]
    }


# -- runs ---------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_create_run_returns_an_mlflow_run(client: httpx.AsyncClient) -> None:
    exp = await new_experiment(client, "shapes")

    body = await ok(
        client,
        "POST",
        "/runs/create",
        json={
            "experiment_id": exp,
            "user_id": "ada",
            "run_name": "first",
            "start_time": 1234,
            "tags": [{"key": "mlflow.source.type", "value": "LOCAL"}],
        },
    )

    info = body["run"]["info"]
    assert info["run_id"] == info["run_uuid"]
    assert {
        "run_name": "first",
        "experiment_id": exp,
        "user_id": "ada",
        "status": "RUNNING",
        "start_time": 1234,
        "lifecycle_stage": "active",
        "artifact_uri": f"bascule:/runs/{info['run_id']}/artifacts",
    }.items() <= info.items()
    assert "end_time" not in info
    assert {"metrics": [], "params": []}.items() <= body["run"]["data"].items()
    assert {"mlflow.source.type": "LOCAL", "mlflow.runName": "first"} == pairs(
        body["run"]["data"]["tags"]
    )
    assert {"dataset_inputs": []} == body["run"]["inputs"]


@pytest.mark.anyio
async def test_nested_run_records_its_parent_from_the_mlflow_tag(
    client: httpx.AsyncClient, services: Services
) -> None:
    exp = await new_experiment(client, "nested")
    parent = await new_run(client, exp, "parent")

    child = await new_run(
        client, exp, "child", tags=[{"key": "mlflow.parentRunId", "value": parent}]
    )
    got = await ok(client, "GET", "/runs/get", params={"run_id": child})

    assert parent == services.tracking.get_run(child).parent_run_id
    assert parent == pairs(got["run"]["data"]["tags"])["mlflow.parentRunId"]


@pytest.mark.anyio
async def test_run_name_and_its_tag_must_agree(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/runs/create",
        json={"run_name": "a", "tags": [{"key": "mlflow.runName", "value": "b"}]},
    )

    assert 400 == response.status_code
    assert "INVALID_PARAMETER_VALUE" == response.json()["error_code"]


@pytest.mark.anyio
async def test_logged_params_metrics_and_tags_show_up_in_get_run(
    client: httpx.AsyncClient,
) -> None:
    run_id = await new_run(client, "0", "logging")
    for step, value in enumerate([0.5, 0.25]):
        await ok(
            client,
            "POST",
            "/runs/log-metric",
            json={
                "run_id": run_id,
                "key": "loss",
                "value": value,
                "timestamp": 10 + step,
                "step": step,
            },
        )
    await ok(
        client,
        "POST",
        "/runs/log-parameter",
        json={"run_uuid": run_id, "key": "lr", "value": "0.1"},
    )
    await ok(
        client, "POST", "/runs/set-tag", json={"run_id": run_id, "key": "team", "value": "risk"}
    )
    await ok(
        client,
        "POST",
        "/runs/log-batch",
        json={
            "run_id": run_id,
            "metrics": [{"key": "odd", "value": "NaN", "timestamp": 5, "step": 0}],
            "params": [{"key": "depth", "value": "3"}],
            "tags": [{"key": "gone", "value": "soon"}],
        },
    )
    await ok(client, "POST", "/runs/delete-tag", json={"run_id": run_id, "key": "gone"})

    run = (await ok(client, "GET", "/runs/get", params={"run_uuid": run_id}))["run"]

    metrics = {m["key"]: m for m in run["data"]["metrics"]}
    assert {"key": "loss", "value": 0.25, "timestamp": 11, "step": 1} == metrics["loss"]
    assert "NaN" == metrics["odd"]["value"]
    assert {"lr": "0.1", "depth": "3"} == pairs(run["data"]["params"])
    assert {"team": "risk", "mlflow.runName": "logging"} == pairs(run["data"]["tags"])


@pytest.mark.anyio
async def test_changing_a_param_is_invalid_parameter_value(client: httpx.AsyncClient) -> None:
    run_id = await new_run(client, "0", "params")
    await ok(
        client, "POST", "/runs/log-parameter", json={"run_id": run_id, "key": "lr", "value": "1"}
    )

    response = await client.post(
        f"{API}/runs/log-batch", json={"run_id": run_id, "params": [{"key": "lr", "value": "2"}]}
    )

    assert 400 == response.status_code
    assert "INVALID_PARAMETER_VALUE" == response.json()["error_code"]


@pytest.mark.anyio
async def test_update_run_sets_status_end_time_and_name(
    client: httpx.AsyncClient, services: Services
) -> None:
    run_id = await new_run(client, "0", "before")

    updated = await ok(
        client,
        "POST",
        "/runs/update",
        json={"run_id": run_id, "status": "FAILED", "end_time": 5000, "run_name": "after"},
    )
    by_number = await ok(client, "POST", "/runs/update", json={"run_uuid": run_id, "status": 3})
    await ok(
        client,
        "POST",
        "/runs/set-tag",
        json={"run_id": run_id, "key": "mlflow.runName", "value": "final"},
    )
    bad = await client.post(f"{API}/runs/update", json={"run_id": run_id, "status": "DONE"})

    assert {"status": "FAILED", "end_time": 5000, "run_name": "after"}.items() <= updated[
        "run_info"
    ].items()
    assert "FINISHED" == by_number["run_info"]["status"]
    run = services.tracking.get_run(run_id)
    assert ("final", "final") == (run.name, run.tags["mlflow.runName"])
    assert (400, "INVALID_PARAMETER_VALUE") == (bad.status_code, bad.json()["error_code"])


@pytest.mark.anyio
async def test_metric_history_is_paged_with_tokens(client: httpx.AsyncClient) -> None:
    run_id = await new_run(client, "0", "history")
    metrics = [
        {"key": "loss", "value": 1 / (s + 1), "timestamp": 100 + s, "step": s} for s in range(5)
    ]
    await ok(client, "POST", "/runs/log-batch", json={"run_id": run_id, "metrics": metrics})

    params = {"run_id": run_id, "metric_key": "loss", "max_results": 3}
    first = await ok(client, "GET", "/metrics/get-history", params=params)
    second = await ok(
        client,
        "GET",
        "/metrics/get-history",
        params={**params, "page_token": first["next_page_token"]},
    )
    everything = await ok(
        client, "GET", "/metrics/get-history", params={"run_id": run_id, "metric_key": "loss"}
    )

    assert [0, 1, 2] == [m["step"] for m in first["metrics"]]
    assert [3, 4] == [m["step"] for m in second["metrics"]]
    assert "next_page_token" not in second
    assert {**metrics[0], "run_id": run_id} == everything["metrics"][0]
    assert 5 == len(everything["metrics"])


@pytest.mark.anyio
async def test_search_runs_filters_orders_and_pages(client: httpx.AsyncClient) -> None:
    exp = await new_experiment(client, "search")
    for name, acc in [("low", 0.5), ("mid", 0.7), ("high", 0.9)]:
        run_id = await new_run(client, exp, name)
        await ok(
            client,
            "POST",
            "/runs/log-metric",
            json={"run_id": run_id, "key": "acc", "value": acc, "timestamp": 1},
        )
        await ok(client, "POST", "/runs/update", json={"run_id": run_id, "status": "FINISHED"})
    query = {
        "experiment_ids": [exp],
        "filter": "metrics.acc > 0.6 and status = 'FINISHED'",
        "order_by": ["metrics.acc DESC"],
        "max_results": 1,
        "run_view_type": "ACTIVE_ONLY",
    }

    first = await ok(client, "POST", "/runs/search", json=query)
    second = await ok(
        client, "POST", "/runs/search", json={**query, "page_token": first["next_page_token"]}
    )
    by_start = await ok(
        client,
        "POST",
        "/runs/search",
        json={"experiment_ids": [exp], "order_by": ["attributes.run_name ASC"]},
    )

    assert ["high"] == [r["info"]["run_name"] for r in first["runs"]]
    assert ["mid"] == [r["info"]["run_name"] for r in second["runs"]]
    assert "next_page_token" not in second
    assert ["high", "low", "mid"] == [r["info"]["run_name"] for r in by_start["runs"]]


@pytest.mark.anyio
async def test_a_malformed_search_is_invalid_parameter_value(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/runs/search", json={"experiment_ids": ["0"], "filter": "metrics.acc >> 1"}
    )

    assert 400 == response.status_code
    assert "INVALID_PARAMETER_VALUE" == response.json()["error_code"]
    assert "metrics.acc >> 1" in response.json()["message"]


@pytest.mark.anyio
async def test_deleted_runs_leave_active_searches_until_restored(
    client: httpx.AsyncClient,
) -> None:
    exp = await new_experiment(client, "lifecycle")
    kept = await new_run(client, exp, "kept")
    dropped = [await new_run(client, exp, f"dropped-{i}") for i in range(3)]
    for run_id in dropped:
        await ok(client, "POST", "/runs/delete", json={"run_id": run_id})

    async def ids(view: str, **extra: Any) -> Any:
        body = {"experiment_ids": [exp], "run_view_type": view, **extra}
        return await ok(client, "POST", "/runs/search", json=body)

    active = await ids("ACTIVE_ONLY")
    every = await ids("ALL")
    deleted_1 = await ids("DELETED_ONLY", max_results=2)
    deleted_2 = await ids("DELETED_ONLY", max_results=2, page_token=deleted_1["next_page_token"])
    got = await ok(client, "GET", "/runs/get", params={"run_id": dropped[0]})
    await ok(client, "POST", "/runs/restore", json={"run_id": dropped[0]})
    after = await ids("ACTIVE_ONLY")

    assert [kept] == [r["info"]["run_id"] for r in active["runs"]]
    assert 4 == len(every["runs"])
    assert set(dropped) == {r["info"]["run_id"] for r in deleted_1["runs"] + deleted_2["runs"]}
    assert "next_page_token" not in deleted_2
    assert "deleted" == got["run"]["info"]["lifecycle_stage"]
    assert {kept, dropped[0]} == {r["info"]["run_id"] for r in after["runs"]}


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_unknown_run_is_resource_does_not_exist(client: httpx.AsyncClient) -> None:
    get = await client.get(f"{API}/runs/get", params={"run_id": "nope"})
    log = await client.post(
        f"{API}/runs/log-metric", json={"run_id": "nope", "key": "a", "value": 1, "timestamp": 1}
    )
    history = await client.get(
        f"{API}/metrics/get-history", params={"run_id": "nope", "metric_key": "a"}
    )

    for response in (get, log, history):
        assert 404 == response.status_code
        assert {"error_code", "message"} == set(response.json())
        assert "RESOURCE_DOES_NOT_EXIST" == response.json()["error_code"]
        assert "'nope'" in response.json()["message"]


@pytest.mark.anyio
async def test_bad_requests_are_invalid_parameter_value_in_mlflow_shape(
    client: httpx.AsyncClient,
) -> None:
    run_id = await new_run(client, "0", "bad")

    missing_key = await client.post(
        f"{API}/runs/log-metric", json={"run_id": run_id, "value": 1, "timestamp": 1}
    )
    wrong_type = await client.post(
        f"{API}/runs/log-metric",
        json={"run_id": run_id, "key": "a", "value": "high", "timestamp": 1},
    )
    no_run_id = await client.get(f"{API}/runs/get")
    not_json = await client.post(
        f"{API}/runs/log-batch", content=b"{", headers={"content-type": "application/json"}
    )
    bad_key = await client.post(
        f"{API}/runs/log-parameter", json={"run_id": run_id, "key": "/abs", "value": "1"}
    )

    assert "Missing value for required parameter 'key'." == missing_key.json()["message"]
    assert "'value'" in wrong_type.json()["message"]
    assert "'run_id'" in no_run_id.json()["message"]
    for response in (missing_key, wrong_type, no_run_id, not_json, bad_key):
        assert 400 == response.status_code
        assert "INVALID_PARAMETER_VALUE" == response.json()["error_code"]


@pytest.mark.anyio
async def test_unsupported_mlflow_endpoints_are_endpoint_not_found(
    client: httpx.AsyncClient,
) -> None:
    logged_models = await client.post(f"{API}/logged-models", json={"experiment_id": "0"})
    artifacts = await client.get(f"{API}/artifacts/list", params={"run_id": "x"})
    wrong_method = await client.get(f"{API}/runs/create")

    for response in (logged_models, artifacts, wrong_method):
        assert 404 == response.status_code
        assert "ENDPOINT_NOT_FOUND" == response.json()["error_code"]


@pytest.mark.anyio
async def test_bascule_routes_keep_their_own_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/runs/nope")

    assert 404 == response.status_code
    assert "not_found" == response.json()["code"]
    assert "error_code" not in response.json()
