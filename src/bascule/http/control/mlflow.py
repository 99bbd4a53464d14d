"""The MLflow REST API 2.0 subset at ``/api/2.0/mlflow``, so the stock ``mlflow`` client works.

Covered: experiments (create, get, get-by-name, search, update, delete, restore, set tag) and
runs (create, get, update, delete, restore, search, log-metric, log-parameter, set-tag,
delete-tag, log-batch) and metric history. Requests and responses follow MLflow's protos;
the mapping lives in :mod:`bascule.tracking.mlflow_compat`.

Errors use MLflow's shape ``{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "..."}`` with
MLflow's HTTP statuses; any other path under the prefix answers ``ENDPOINT_NOT_FOUND`` (404),
which is how MLflow's client recognizes an API a server does not offer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Iterable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from bascule.core.errors import BasculeError, ConflictError, InvalidInputError
from bascule.core.records import Metric, Run
from bascule.http.control.deps import get_services
from bascule.http.errors import request_id_of
from bascule.tracking import mlflow_compat as compat
from bascule.tracking.service import RunPage
from bascule.wiring import Services

__all__ = ["MlflowRoute", "router"]

log = logging.getLogger("bascule.http.mlflow")
Svc = Annotated[Services, Depends(get_services)]
JSON = dict[str, Any]

# MLflow's own table (mlflow.exceptions.ERROR_CODE_TO_HTTP_STATUS) for the codes used here.
STATUS_BY_MLFLOW_CODE = {
    "RESOURCE_DOES_NOT_EXIST": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "INVALID_PARAMETER_VALUE": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "REQUEST_LIMIT_EXCEEDED": 429,
    "TEMPORARILY_UNAVAILABLE": 503,
    "INTERNAL_ERROR": 500,
}


def mlflow_error(code: str, message: str) -> JSONResponse:
    """A response in MLflow's error shape with MLflow's status for ``code``."""
    return JSONResponse(
        {"error_code": code, "message": message},
        status_code=STATUS_BY_MLFLOW_CODE.get(code, 500),
    )


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query")) or "body"
        if err.get("type") == "missing":
            parts.append(f"Missing value for required parameter '{loc}'.")
        else:
            shown = repr(err.get("input"))
            shown = shown if len(shown) <= 200 else shown[:200] + "…"
            parts.append(f"Invalid value {shown} for parameter '{loc}': {err.get('msg')}.")
    return " ".join(parts)


class MlflowRoute(APIRoute):
    """A route that renders every failure in MLflow's error shape instead of bascule's."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return mlflow_error("INVALID_PARAMETER_VALUE", _validation_message(exc))
            except BasculeError as exc:
                return mlflow_error(compat.mlflow_error_code(exc), exc.message)
            except Exception:
                rid = request_id_of(request)
                log.exception(
                    "unhandled error in %s %s (request id %s)",
                    request.method,
                    request.url.path,
                    rid,
                )
                return mlflow_error(
                    "INTERNAL_ERROR", f"internal error; quote request id {rid} when reporting it"
                )

        return route


router = APIRouter(prefix="/api/2.0/mlflow", tags=["mlflow"], route_class=MlflowRoute)


@contextmanager
def _conflicts_are_invalid() -> Iterator[None]:
    """MLflow reports a param logged twice with different values as INVALID_PARAMETER_VALUE."""
    try:
        yield
    except ConflictError as exc:
        raise InvalidInputError(exc.message, **exc.details) from exc


# -- request bodies (field names as in service.proto) ---------------------------------------------


class KeyValue(BaseModel):
    key: str
    value: str = ""


class RunRef(BaseModel):
    run_id: str | None = None
    run_uuid: str | None = None

    def id(self) -> str:
        """The run id from ``run_id`` or the older ``run_uuid``."""
        rid = self.run_id or self.run_uuid
        if not rid:
            raise InvalidInputError(
                "Missing value for required parameter 'run_id'.", field="run_id"
            )
        return rid


class CreateExperimentIn(BaseModel):
    name: str
    artifact_location: str = ""
    tags: list[KeyValue] = []


class ExperimentIdIn(BaseModel):
    experiment_id: str


class UpdateExperimentIn(ExperimentIdIn):
    new_name: str


class ExperimentTagIn(ExperimentIdIn):
    key: str
    value: str = ""


class SearchExperimentsIn(BaseModel):
    max_results: int | None = Field(default=None, ge=0, le=50_000)
    page_token: str | None = None
    filter: str | None = None
    order_by: list[str] = []
    view_type: str | int | None = None


class CreateRunIn(BaseModel):
    experiment_id: str | None = None
    user_id: str | None = None
    run_name: str | None = None
    start_time: int | None = None
    tags: list[KeyValue] = []


class UpdateRunIn(RunRef):
    status: str | int | None = None
    end_time: int | None = None
    run_name: str | None = None


class MetricIn(BaseModel):
    key: str
    value: float
    timestamp: int
    step: int = 0


class LogMetricIn(RunRef, MetricIn):
    pass


class LogParamIn(RunRef, KeyValue):
    pass


class DeleteTagIn(RunRef):
    key: str


class LogBatchIn(RunRef):
    metrics: list[MetricIn] = Field(default=[], max_length=1000)
    params: list[KeyValue] = Field(default=[], max_length=100)
    tags: list[KeyValue] = Field(default=[], max_length=100)


class SearchRunsIn(BaseModel):
    experiment_ids: list[str] = []
    filter: str | None = None
    run_view_type: str | int | None = None
    max_results: int = 1000
    order_by: list[str] = []
    page_token: str | None = None


def _pairs(items: Iterable[KeyValue]) -> dict[str, str]:
    return {kv.key: kv.value for kv in items}


def _render_runs(services: Services, runs: list[Run]) -> list[JSON]:
    """Runs as MLflow JSON, each with its experiment's artifact location."""
    locations: dict[int, str] = {}
    out = []
    for run in runs:
        if run.experiment_id not in locations:
            exp = services.tracking.get_experiment(run.experiment_id)
            locations[run.experiment_id] = exp.artifact_location
        out.append(compat.run_to_json(run, artifact_location=locations[run.experiment_id]))
    return out


def _page(key: str, items: list[JSON], token: str | None) -> JSON:
    return {key: items, "next_page_token": token} if token else {key: items}


# -- experiments --------------------------------------------------------------------------------


@router.post("/experiments/create")
def create_experiment(body: CreateExperimentIn, services: Svc) -> JSON:
    exp = services.tracking.create_experiment(
        body.name, tags=_pairs(body.tags), artifact_location=body.artifact_location
    )
    return {"experiment_id": str(exp.id)}


@router.get("/experiments/get")
def get_experiment(experiment_id: str, services: Svc) -> JSON:
    return {
        "experiment": compat.experiment_to_json(services.tracking.get_experiment(experiment_id))
    }


@router.get("/experiments/get-by-name")
def get_experiment_by_name(experiment_name: str, services: Svc) -> JSON:
    exp = services.tracking.get_experiment_by_name(experiment_name)
    return {"experiment": compat.experiment_to_json(exp)}


@router.post("/experiments/search")
def search_experiments(body: SearchExperimentsIn, services: Svc) -> JSON:
    view = compat.parse_view_type(body.view_type)
    found = compat.search_experiments(
        services.tracking.list_experiments(include_deleted=view != "active"),
        view=view,
        filter_string=body.filter,
        order_by=body.order_by,
    )
    page, token = compat.paginate(found, body.max_results or 1000, body.page_token)
    return _page("experiments", [compat.experiment_to_json(e) for e in page], token)


@router.post("/experiments/update")
def update_experiment(body: UpdateExperimentIn, services: Svc) -> JSON:
    services.tracking.rename_experiment(body.experiment_id, body.new_name)
    return {}


@router.post("/experiments/delete")
def delete_experiment(body: ExperimentIdIn, services: Svc) -> JSON:
    services.tracking.set_experiment_stage(body.experiment_id, "deleted")
    return {}


@router.post("/experiments/restore")
def restore_experiment(body: ExperimentIdIn, services: Svc) -> JSON:
    services.tracking.set_experiment_stage(body.experiment_id, "active")
    return {}


@router.post("/experiments/set-experiment-tag")
def set_experiment_tag(body: ExperimentTagIn, services: Svc) -> JSON:
    services.tracking.set_experiment_tag(body.experiment_id, body.key, body.value)
    return {}


# -- runs ---------------------------------------------------------------------------------------


@router.post("/runs/create")
def create_run(body: CreateRunIn, services: Svc) -> JSON:
    start = compat.run_start(run_name=body.run_name, user_id=body.user_id, tags=_pairs(body.tags))
    run = services.tracking.start_run(
        experiment_id=body.experiment_id or None,
        name=start.name,
        tags=start.tags,
        parent_run_id=start.parent_run_id,
        user=start.user,
        start_time=body.start_time or None,
    )
    return {"run": _render_runs(services, [run])[0]}


@router.get("/runs/get")
def get_run(services: Svc, run_id: str | None = None, run_uuid: str | None = None) -> JSON:
    run = services.tracking.get_run(RunRef(run_id=run_id, run_uuid=run_uuid).id())
    return {"run": _render_runs(services, [run])[0]}


def _rename(services: Services, run_id: str, name: str) -> None:
    """Rename a run and keep its ``mlflow.runName`` tag in step, as MLflow does."""
    services.tracking.update_run(run_id, name=name)
    services.tracking.set_tags(run_id, {compat.TAG_RUN_NAME: name})


@router.post("/runs/update")
def update_run(body: UpdateRunIn, services: Svc) -> JSON:
    run_id = body.id()
    status = compat.parse_run_status(body.status) if body.status is not None else None
    services.tracking.update_run(run_id, status=status, end_time=body.end_time or None)
    if body.run_name:
        _rename(services, run_id, body.run_name)
    run = services.tracking.get_run(run_id)
    location = services.tracking.get_experiment(run.experiment_id).artifact_location
    return {"run_info": compat.run_info_to_json(run, artifact_location=location)}


@router.post("/runs/delete")
def delete_run(body: RunRef, services: Svc) -> JSON:
    services.tracking.delete_run(body.id())
    return {}


@router.post("/runs/restore")
def restore_run(body: RunRef, services: Svc) -> JSON:
    services.tracking.restore_run(body.id())
    return {}


@router.post("/runs/log-metric")
def log_metric(body: LogMetricIn, services: Svc) -> JSON:
    metric = Metric(body.key, body.value, body.step, body.timestamp)
    services.tracking.log_batch(body.id(), metrics=[metric])
    return {}


@router.post("/runs/log-parameter")
def log_param(body: LogParamIn, services: Svc) -> JSON:
    with _conflicts_are_invalid():
        services.tracking.log_params(body.id(), {body.key: body.value})
    return {}


@router.post("/runs/set-tag")
def set_tag(body: LogParamIn, services: Svc) -> JSON:
    if body.key == compat.TAG_RUN_NAME and body.value:
        _rename(services, body.id(), body.value)
    else:
        services.tracking.set_tags(body.id(), {body.key: body.value})
    return {}


@router.post("/runs/delete-tag")
def delete_tag(body: DeleteTagIn, services: Svc) -> JSON:
    services.tracking.delete_tag(body.id(), body.key)
    return {}


@router.post("/runs/log-batch")
def log_batch(body: LogBatchIn, services: Svc) -> JSON:
    """Metrics, params and tags in one transaction; renaming via ``mlflow.runName`` follows."""
    run_id = body.id()
    tags = _pairs(body.tags)
    with _conflicts_are_invalid():
        services.tracking.log_batch(
            run_id,
            metrics=[Metric(m.key, m.value, m.step, m.timestamp) for m in body.metrics],
            params=_pairs(body.params),
            tags=tags,
        )
    if tags.get(compat.TAG_RUN_NAME):
        services.tracking.update_run(run_id, name=tags[compat.TAG_RUN_NAME])
    return {}


@router.post("/runs/search")
def search_runs(body: SearchRunsIn, services: Svc) -> JSON:
    view = compat.parse_view_type(body.run_view_type)
    filter_string = compat.translate_filter(body.filter)
    order_by = compat.translate_order_by(body.order_by)

    def search(max_results: int, token: str | None, *, include_deleted: bool = True) -> RunPage:
        return services.tracking.search_runs(
            experiment_ids=body.experiment_ids,
            filter_string=filter_string,
            order_by=order_by,
            max_results=max_results,
            page_token=token,
            include_deleted=include_deleted,
        )

    if view == "deleted":
        page = compat.search_deleted_runs(
            search, max_results=body.max_results, page_token=body.page_token
        )
    else:
        page = search(body.max_results, body.page_token, include_deleted=view == "all")
    return _page("runs", _render_runs(services, page.runs), page.next_page_token)


@router.get("/metrics/get-history")
def get_metric_history(
    services: Svc,
    metric_key: str,
    run_id: str | None = None,
    run_uuid: str | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
) -> JSON:
    rid = RunRef(run_id=run_id, run_uuid=run_uuid).id()
    history = services.tracking.metric_history(rid, metric_key)
    page, token = compat.paginate(history, max_results, page_token)
    return _page("metrics", [compat.metric_to_json(m, rid) for m in page], token)


@router.api_route(
    "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
)
def not_implemented(path: str, request: Request) -> JSONResponse:
    """Anything else: MLflow's ENDPOINT_NOT_FOUND, so the client reports an unsupported API."""
    return mlflow_error(
        "ENDPOINT_NOT_FOUND",
        f"{request.method} /api/2.0/mlflow/{path} is not part of bascule's MLflow API subset "
        "(experiments, runs, params, metrics, tags). Artifacts, datasets, models, traces and "
        "the model registry go through bascule's own SDK and /api/v1.",
    )
