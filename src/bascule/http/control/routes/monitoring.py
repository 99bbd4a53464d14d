"""Monitoring on the control plane: feedback in, runs and results, alerts.

* ``POST /api/v1/feedback`` — one record, a list, or ``{"records": [...]}``; each record is
  ``{"request_id", "label", "row"?, "model"?, "outcome"?, "timestamp"?}``. A field of the
  wrong type is a 400 naming it (``records.3.label``); labels that are not a class of the
  model that answered are counted as invalid with their reason, unknown request ids are
  counted and listed. When no record could be stored at all, the answer is a 400.
* ``GET /api/v1/models/{name}/monitoring`` — the latest runs and the results of the newest
  one; filter results with ``metric``, ``feature``, ``status``, ``run_id``, ``since``, ``until``.
* ``POST /api/v1/models/{name}/monitoring/runs`` — run the monitor now.
* ``GET /api/v1/alerts`` — stored alerts, newest first (``model``, ``state``, ``limit``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
)

from bascule.core.errors import InvalidInputError
from bascule.http.control.deps import get_services, render
from bascule.wiring import Services

router = APIRouter(prefix="/api/v1", tags=["monitoring"])
Svc = Annotated[Services, Depends(get_services)]
MAX_RECORDS = 100_000


class FeedbackIn(BaseModel):
    """One label that arrived for a prediction, by the request id the server returned."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=128)
    label: StrictBool | StrictInt | StrictFloat | StrictStr
    row: int = Field(default=0, ge=0, description="Row within a request of several rows.")
    model: str | None = Field(default=None, min_length=1, max_length=250)
    outcome: float | None = Field(default=None, allow_inf_nan=False)
    timestamp: datetime | None = None


class FeedbackBatch(BaseModel):
    """Many feedback records."""

    model_config = ConfigDict(extra="forbid")

    records: list[FeedbackIn] = Field(max_length=MAX_RECORDS)


class RunIn(BaseModel):
    """A monitoring run: one window ending now, or a range cut into windows."""

    model_config = ConfigDict(extra="forbid")

    window: str | None = Field(default=None, description="Window length, e.g. 1h.")
    since: datetime | None = None
    until: datetime | None = None


_ONE = TypeAdapter(FeedbackIn)
_MANY = TypeAdapter(list[FeedbackIn])
_BATCH = TypeAdapter(FeedbackBatch)


def _records(body: Any) -> list[FeedbackIn]:
    try:
        if isinstance(body, list):
            if len(body) > MAX_RECORDS:
                raise InvalidInputError.for_field("body", len(body), f"at most {MAX_RECORDS}")
            return _MANY.validate_python(body)
        if isinstance(body, dict) and "records" in body:
            return _BATCH.validate_python(body).records
        return [_ONE.validate_python(body)]
    except ValidationError as exc:
        errors = exc.errors()
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']} (got {e.get('input')!r})"
            for e in errors[:10]
        ]
        first = ".".join(str(p) for p in errors[0]["loc"]) if errors else "body"
        raise InvalidInputError(
            "invalid feedback: " + "; ".join(parts),
            field=first,
            expected="records of {request_id, label, row?, model?, outcome?, timestamp?}",
        ) from None


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _ms(value: datetime | None) -> int | None:
    value = _utc(value)
    return None if value is None else int(value.timestamp() * 1000)


@router.post("/feedback")
def ingest_feedback(services: Svc, body: Annotated[Any, Body()]) -> Response:
    """Store labels (and business outcomes) that arrived late, joined by request id."""
    records = [r.model_dump() for r in _records(body)]
    result = services.monitoring.ingest_feedback(records)
    if result.invalid and not (result.accepted or result.updated):
        raise InvalidInputError(
            f"no feedback stored: {result.invalid} invalid record(s): "
            + "; ".join(result.invalid_reasons[:5]),
            field="label",
            expected="labels that are classes of the model (or numbers for a regressor)",
            reasons=result.invalid_reasons,
        )
    return render(result.to_dict())


@router.get("/models/{name}/monitoring")
def monitoring_results(
    name: str,
    services: Svc,
    metric: Annotated[str | None, Query(description="Only this metric.")] = None,
    feature: Annotated[str | None, Query(description="Only this feature.")] = None,
    status: Annotated[Literal["ok", "warn", "alert", "finding"] | None, Query()] = None,
    run_id: Annotated[int | None, Query(ge=1)] = None,
    since: Annotated[datetime | None, Query(description="Windows ending after this time.")] = None,
    until: Annotated[datetime | None, Query(description="Windows starting before it.")] = None,
    runs: Annotated[int, Query(ge=1, le=1000, description="Runs listed.")] = 20,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> Response:
    """The latest runs of a model and their results (the newest run's unless filtered)."""
    services.registry.get_model(name)
    mon = services.monitoring
    a, b = _ms(since), _ms(until)
    latest = run_id is None and a is None and b is None
    results = mon.results(
        name, run_id=run_id, metric=metric, feature=feature, status=status, since=a, until=b,
        latest_run=latest, limit=limit,
    )  # fmt: skip
    listed = mon.runs(name, since=a, until=b, limit=runs)
    alerts = mon.alerts(name, state="firing")
    return render({"model": name, "runs": listed, "results": results, "firing": alerts})


@router.post("/models/{name}/monitoring/runs")
def run_monitor(name: str, services: Svc, body: RunIn | None = None) -> Response:
    """Run the monitor of a model now and return the stored run, results and alerts."""
    spec = body or RunIn()
    report = services.monitoring.run(
        name, window=spec.window, since=_utc(spec.since), until=_utc(spec.until), trigger="api"
    )
    return render(report.to_dict())


@router.get("/alerts")
def list_alerts(
    services: Svc,
    model: Annotated[str | None, Query(description="Only this model's alerts.")] = None,
    state: Annotated[Literal["firing", "resolved"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> Response:
    """Stored alerts, newest first."""
    return render(services.monitoring.alerts(model, state=state, limit=limit))
