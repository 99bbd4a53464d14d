"""``/api/v1/runs``: start, log, end, get and search runs; metric history."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from bascule.core.errors import InvalidInputError
from bascule.core.records import DatasetInput, Metric
from bascule.http.control.deps import get_services, render
from bascule.wiring import Services

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])
Svc = Annotated[Services, Depends(get_services)]
MAX_ARTIFACT_BYTES = 512 * 1024 * 1024


class RunIn(BaseModel):
    experiment: str | None = None
    experiment_id: int | None = None
    name: str | None = Field(default=None, max_length=250)
    tags: dict[str, str] = {}
    parent_run_id: str | None = None


class RunPatch(BaseModel):
    status: str | None = None
    name: str | None = Field(default=None, max_length=250)
    end: bool = False


class MetricIn(BaseModel):
    key: str
    value: float
    step: int = 0
    timestamp: int


class BatchIn(BaseModel):
    metrics: list[MetricIn] = Field(default=[], max_length=100_000)
    params: dict[str, str] = {}
    tags: dict[str, str] = {}


class DatasetIn(BaseModel):
    name: str
    digest: str
    num_rows: int
    schema_: dict[str, str] = Field(alias="schema")
    source: str = ""
    context: str = "training"


@router.post("", status_code=201)
def start_run(body: RunIn, services: Svc) -> Response:
    """Start a run in an experiment given by id or by name (created if new)."""
    run = services.tracking.start_run(
        experiment=body.experiment,
        experiment_id=body.experiment_id,
        name=body.name,
        tags=body.tags,
        parent_run_id=body.parent_run_id,
    )
    return render(run, 201)


@router.get("")
def search_runs(
    services: Svc,
    experiment: Annotated[list[str] | None, Query(description="experiment names")] = None,
    experiment_id: Annotated[list[int] | None, Query()] = None,
    filter: Annotated[
        str | None, Query(description="e.g. metrics.auc > 0.9 and params.lr = '0.1'")
    ] = None,
    order_by: Annotated[list[str] | None, Query(description="e.g. metrics.auc DESC")] = None,
    max_results: Annotated[int, Query(ge=1, le=50_000)] = 100,
    page_token: str | None = None,
) -> Response:
    """Search runs by experiment, metric/param/tag filters, ordered by a metric or attribute."""
    page = services.tracking.search_runs(
        experiment_ids=experiment_id,
        experiment_names=experiment,
        filter_string=filter,
        order_by=order_by,
        max_results=max_results,
        page_token=page_token,
    )
    return render({"runs": page.runs, "next_page_token": page.next_page_token})


@router.get("/{run_id}")
def get_run(run_id: str, services: Svc) -> Response:
    return render(services.tracking.get_run(run_id))


@router.patch("/{run_id}")
def update_run(run_id: str, body: RunPatch, services: Svc) -> Response:
    """Rename a run, set its status, or end it (``end: true`` stamps the end time)."""
    if body.end:
        services.tracking.end_run(run_id, status=body.status or "FINISHED")
        if body.name:
            services.tracking.update_run(run_id, name=body.name)
    else:
        services.tracking.update_run(run_id, status=body.status, name=body.name)
    return render(services.tracking.get_run(run_id))


@router.post("/{run_id}/batch", status_code=204)
def log_batch(run_id: str, body: BatchIn, services: Svc) -> None:
    """Log metrics, params and tags in one transaction."""
    services.tracking.log_batch(
        run_id,
        metrics=[Metric(m.key, m.value, m.step, m.timestamp) for m in body.metrics],
        params=body.params,
        tags=body.tags,
    )


@router.post("/{run_id}/datasets", status_code=204)
def log_dataset(run_id: str, body: DatasetIn, services: Svc) -> None:
    services.tracking.log_dataset(
        run_id,
        DatasetInput(
            body.name, body.digest, body.num_rows, body.schema_, body.source, body.context
        ),
    )


@router.post("/{run_id}/artifacts", status_code=201)
async def log_artifact(
    run_id: str, request: Request, services: Svc, name: str, artifact_path: str = ""
) -> Response:
    """Upload a file as the raw request body (``?name=model.txt&artifact_path=plots``)."""
    if "/" in name or name in ("", ".", ".."):
        raise InvalidInputError.for_field("name", name, "a file name without '/'")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        size = 0
        with path.open("wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_ARTIFACT_BYTES:
                    raise InvalidInputError.for_field(
                        "artifact size", size, f"at most {MAX_ARTIFACT_BYTES} bytes"
                    )
                fh.write(chunk)
        artifact = services.tracking.log_artifact(run_id, path, artifact_path=artifact_path or None)
    return render(artifact, 201)


@router.get("/{run_id}/metrics/{key:path}")
def metric_history(run_id: str, key: str, services: Svc) -> Response:
    """Every value logged for one metric of a run, by step."""
    return render(services.tracking.metric_history(run_id, key))
