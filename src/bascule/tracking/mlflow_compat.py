"""Pure mapping between MLflow's REST API 2.0 JSON and bascule's domain records.

The ``/api/2.0/mlflow`` routes of the control plane parse a request, call
:class:`~bascule.tracking.service.TrackingService` and render its records with these
functions, so that the stock ``mlflow`` client works against bascule unmodified. The JSON
follows MLflow's protos (``mlflow.protos.service_pb2``): ids are strings, times are
milliseconds, enums are their names, tags and params are ``{"key", "value"}`` lists, and
non-finite doubles are ``"NaN"``, ``"Infinity"`` or ``"-Infinity"`` as protobuf's JSON mapping
wants. Nothing here does I/O or imports a web framework.
"""

from __future__ import annotations

import functools
import json
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from bascule.core.errors import (
    BasculeError,
    ConfigError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    NotReadyError,
    OverloadedError,
    StorageError,
)
from bascule.core.records import DatasetInput, Experiment, Metric, Run
from bascule.core.search import Filter, parse_filter
from bascule.tracking.service import MAX_SEARCH_RESULTS, RunPage

__all__ = [
    "TAG_PARENT_RUN_ID",
    "TAG_RUN_NAME",
    "RunStart",
    "ViewType",
    "double_to_json",
    "experiment_to_json",
    "metric_to_json",
    "mlflow_error_code",
    "paginate",
    "parse_run_status",
    "parse_view_type",
    "run_info_to_json",
    "run_start",
    "run_to_json",
    "search_deleted_runs",
    "search_experiments",
    "translate_filter",
    "translate_order_by",
]

JSON = dict[str, Any]
ViewType = Literal["active", "deleted", "all"]
T = TypeVar("T")

TAG_RUN_NAME = "mlflow.runName"
TAG_PARENT_RUN_ID = "mlflow.parentRunId"
TAG_USER = "mlflow.user"
TAG_DATA_CONTEXT = "mlflow.data.context"
# Numbers of the RunStatus and ViewType enums in MLflow's service.proto.
_RUN_STATUS_NUMBERS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
_VIEW_TYPE_NUMBERS = {1: "ACTIVE_ONLY", 2: "DELETED_ONLY", 3: "ALL"}
_VIEWS: dict[str, ViewType] = {"ACTIVE_ONLY": "active", "DELETED_ONLY": "deleted", "ALL": "all"}
_DELETED_PREFIX = "deleted:"
_DELETED_CHUNK = 1000


# -- enums, numbers, errors ---------------------------------------------------------------------


def _enum(value: str | int | None, names: Mapping[int, str], field: str) -> str:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value in names:
        return names[value]
    if isinstance(value, str) and value.strip().upper() in names.values():
        return value.strip().upper()
    raise InvalidInputError.for_field(field, value, f"one of {', '.join(names.values())}")


def parse_run_status(value: str | int) -> str:
    """A run status given by name (``"FINISHED"``) or proto number (``3``) as bascule's name.

    Raises:
        InvalidInputError: not one of MLflow's run statuses.
    """
    return _enum(value, _RUN_STATUS_NUMBERS, "status")


def parse_view_type(value: str | int | None) -> ViewType:
    """MLflow's ``ViewType`` by name or number as a view; None means ACTIVE_ONLY.

    Raises:
        InvalidInputError: not ACTIVE_ONLY, DELETED_ONLY or ALL.
    """
    if value is None or value == "":
        return "active"
    return _VIEWS[_enum(value, _VIEW_TYPE_NUMBERS, "view type")]


def double_to_json(value: float) -> float | str:
    """A double as protobuf JSON: NaN and infinities become the strings protobuf expects."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def mlflow_error_code(exc: BasculeError) -> str:
    """The MLflow ``error_code`` name for a bascule error (``RESOURCE_DOES_NOT_EXIST`` …)."""
    if isinstance(exc, NotFoundError):
        return "RESOURCE_DOES_NOT_EXIST"
    if isinstance(exc, InvalidInputError | ConfigError):
        return "INVALID_PARAMETER_VALUE"
    if isinstance(exc, ConflictError):
        return "RESOURCE_ALREADY_EXISTS"
    if isinstance(exc, OverloadedError):
        return "REQUEST_LIMIT_EXCEEDED"
    if isinstance(exc, StorageError | NotReadyError):
        return "TEMPORARILY_UNAVAILABLE"
    return "INTERNAL_ERROR"


def paginate(
    items: Sequence[T], max_results: int | None, token: str | None
) -> tuple[list[T], str | None]:
    """One page of ``items`` from the offset in ``token``; ``max_results`` None or 0 means all.

    Raises:
        InvalidInputError: the token is not one this function returned, or max_results < 0.
    """
    if max_results is not None and max_results < 0:
        raise InvalidInputError.for_field("max_results", max_results, "a positive integer")
    offset = 0
    if token:
        if not token.isdigit():
            raise InvalidInputError.for_field("page_token", token, "a token from a previous page")
        offset = int(token)
    end = len(items) if not max_results else offset + max_results
    return list(items[offset:end]), (str(end) if end < len(items) else None)


# -- records → JSON -----------------------------------------------------------------------------


def _pairs(values: Mapping[str, str]) -> list[JSON]:
    return [{"key": k, "value": v} for k, v in values.items()]


def experiment_to_json(exp: Experiment) -> JSON:
    """An ``mlflow.Experiment`` message; without an artifact location, a ``bascule:`` URI."""
    return {
        "experiment_id": str(exp.id),
        "name": exp.name,
        "artifact_location": exp.artifact_location or f"bascule:/experiments/{exp.id}",
        "lifecycle_stage": exp.lifecycle_stage,
        "creation_time": exp.created_at,
        "last_update_time": exp.created_at,
        "tags": _pairs(exp.tags),
    }


def metric_to_json(metric: Metric, run_id: str | None = None) -> JSON:
    """An ``mlflow.Metric`` message."""
    out: JSON = {
        "key": metric.key,
        "value": double_to_json(metric.value),
        "timestamp": metric.timestamp,
        "step": metric.step,
    }
    if run_id is not None:
        out["run_id"] = run_id
    return out


def run_info_to_json(run: Run, *, artifact_location: str = "") -> JSON:
    """An ``mlflow.RunInfo`` message.

    Args:
        run: The run.
        artifact_location: Its experiment's artifact location; when empty the artifact URI
            uses the ``bascule:`` scheme, which the MLflow client refuses to write to (bascule
            stores artifacts by digest through its own SDK and REST API).
    """
    root = artifact_location.rstrip("/")
    out: JSON = {
        "run_id": run.id,
        "run_uuid": run.id,
        "run_name": run.name,
        "experiment_id": str(run.experiment_id),
        "user_id": run.user,
        "status": run.status,
        "start_time": run.start_time,
        "artifact_uri": f"{root}/{run.id}/artifacts"
        if root
        else f"bascule:/runs/{run.id}/artifacts",
        "lifecycle_stage": run.lifecycle_stage,
    }
    if run.end_time is not None:
        out["end_time"] = run.end_time
    return out


def _dataset_input_to_json(ds: DatasetInput) -> JSON:
    colspec = [{"name": name, "type": dtype} for name, dtype in ds.schema.items()]
    return {
        "tags": [{"key": TAG_DATA_CONTEXT, "value": ds.context}] if ds.context else [],
        "dataset": {
            "name": ds.name,
            "digest": ds.digest,
            "source_type": "",
            "source": ds.source,
            "schema": json.dumps({"mlflow_colspec": colspec}),
            "profile": json.dumps({"num_rows": ds.num_rows}),
        },
    }


def run_to_json(run: Run, *, artifact_location: str = "") -> JSON:
    """An ``mlflow.Run`` message: info, data (latest metrics, params, tags) and inputs.

    The ``mlflow.runName`` tag always carries the run's current name and ``mlflow.parentRunId``
    its parent, as MLflow's own server does.
    """
    tags = dict(run.tags)
    tags[TAG_RUN_NAME] = run.name
    if run.parent_run_id:
        tags.setdefault(TAG_PARENT_RUN_ID, run.parent_run_id)
    return {
        "info": run_info_to_json(run, artifact_location=artifact_location),
        "data": {
            "metrics": [metric_to_json(m) for m in run.metrics.values()],
            "params": _pairs(run.params),
            "tags": _pairs(tags),
        },
        "inputs": {"dataset_inputs": [_dataset_input_to_json(d) for d in run.datasets]},
    }


# -- JSON → records -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunStart:
    """What ``TrackingService.start_run`` needs from an MLflow ``CreateRun`` request."""

    name: str | None
    parent_run_id: str | None
    user: str | None
    tags: dict[str, str]


def run_start(*, run_name: str | None, user_id: str | None, tags: Mapping[str, str]) -> RunStart:
    """Read the run name, parent and user from ``CreateRun`` fields and MLflow's system tags.

    Raises:
        InvalidInputError: ``run_name`` and the ``mlflow.runName`` tag disagree (as in MLflow).
    """
    clean = dict(tags)
    tag_name = clean.get(TAG_RUN_NAME) or None
    if run_name and tag_name and run_name != tag_name:
        raise InvalidInputError.for_field(
            "run_name", run_name, f"the same value as the {TAG_RUN_NAME!r} tag ({tag_name!r})"
        )
    name = run_name or tag_name
    if name:
        clean[TAG_RUN_NAME] = name
    return RunStart(
        name=name,
        parent_run_id=clean.get(TAG_PARENT_RUN_ID) or None,
        user=user_id or clean.get(TAG_USER) or None,
        tags=clean,
    )


# -- search ------------------------------------------------------------------------------------

_ATTRIBUTE_ALIASES = {
    "user_id": "user",
    "created": "start_time",
    "Created": "start_time",
    "run name": "run_name",
    "Run name": "run_name",
    "Run Name": "run_name",
}
_BARE_ATTRIBUTES = {"status", "name", "run_name", "start_time", "end_time", "run_id"}
_BARE_ATTRIBUTES.update(_ATTRIBUTE_ALIASES)
_AND = re.compile(r"(\s+(?i:and)\s+)")
_LEAD = re.compile(
    r"""^(?P<space>\s*)(?:(?P<kind>(?i:attributes|attribute|attr|run))\.)?
        (?P<key>`[^`]+`|"[^"]+"|[A-Za-z_]\w*(?:\ [Nn]ame)?)
        (?P<rest>\s*(?:[<>=!]|(?i:i?like)\s).*)$""",
    re.VERBOSE | re.DOTALL,
)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"`":
        return text[1:-1]
    return text


def _attribute(kind: str | None, key: str) -> str | None:
    """``attributes.<key>`` for an MLflow attribute identifier, None when it is not one."""
    plain = _unquote(key)
    if kind is None and plain not in _BARE_ATTRIBUTES:
        return None
    return f"attributes.{_ATTRIBUTE_ALIASES.get(plain, key)}"


def translate_filter(text: str | None) -> str | None:
    """Rewrite MLflow-only spellings for bascule's parser.

    Bare attributes (``status = 'FINISHED'``) get their ``attributes.`` prefix, ``user_id``
    becomes ``user`` and ``created`` becomes ``start_time``; the rest is left as written.
    """
    if text is None or not text.strip():
        return None
    parts = _AND.split(text.strip())
    for i in range(0, len(parts), 2):
        m = _LEAD.match(parts[i])
        if m is None:
            continue
        ident = _attribute(m["kind"], m["key"])
        if ident is not None:
            parts[i] = f"{m['space']}{ident}{m['rest']}"
    return "".join(parts)


def translate_order_by(items: Sequence[str] | None) -> list[str]:
    """Rewrite MLflow order-by clauses (``start_time DESC``, ``attributes.created``) for bascule."""
    out: list[str] = []
    for item in items or []:
        words = item.strip().rsplit(None, 1)
        direction = ""
        if len(words) == 2 and words[1].upper() in ("ASC", "DESC"):
            direction = " " + words[1].upper()
            item = words[0]
        m = _LEAD.match(item.strip() + " =")
        ident = _attribute(m["kind"], m["key"]) if m and m["rest"].strip() == "=" else None
        out.append((ident or item.strip()) + direction)
    return out


def search_deleted_runs(
    search: Callable[[int, str | None], RunPage], *, max_results: int, page_token: str | None
) -> RunPage:
    """MLflow's DELETED_ONLY view on top of a search that includes deleted runs.

    Args:
        search: Returns one page of the search with deleted runs included, given its size
            and the service's page token.
        max_results: Runs per page.
        page_token: A token returned by this function (it wraps the service's own token).

    Raises:
        InvalidInputError: the page token did not come from this function.
    """
    if not 1 <= max_results <= MAX_SEARCH_RESULTS:
        raise InvalidInputError.for_field("max_results", max_results, f"1..{MAX_SEARCH_RESULTS}")
    inner: str | None = None
    skip = 0
    if page_token:
        head, _, tail = page_token.rpartition(":")
        if not page_token.startswith(_DELETED_PREFIX) or not tail.isdigit():
            raise InvalidInputError.for_field(
                "page_token", page_token, "a token from a previous page"
            )
        inner, skip = head[len(_DELETED_PREFIX) :] or None, int(tail)
    found: list[Run] = []
    while True:
        page = search(_DELETED_CHUNK, inner)
        for index in range(skip, len(page.runs)):
            if page.runs[index].lifecycle_stage != "deleted":
                continue
            if len(found) == max_results:
                return RunPage(found, f"{_DELETED_PREFIX}{inner or ''}:{index}")
            found.append(page.runs[index])
        if page.next_page_token is None:
            return RunPage(found, None)
        inner, skip = page.next_page_token, 0


_EXP_ORDER_KEYS = ("name", "creation_time", "last_update_time", "experiment_id")
_COMPARISONS: dict[str, Callable[[str, str], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _exp_sort_value(exp: Experiment, key: str) -> str | int:
    return exp.name if key == "name" else exp.id if key == "experiment_id" else exp.created_at


def _exp_matches(exp: Experiment, clause: Filter) -> bool:
    actual = exp.tags.get(clause.key) if clause.kind == "tag" else exp.name
    if actual is None:
        return False
    expected = str(clause.value)
    if clause.op in ("LIKE", "ILIKE"):
        body = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in expected)
        flags = re.DOTALL | (re.IGNORECASE if clause.op == "ILIKE" else 0)
        return re.fullmatch(body, actual, flags) is not None
    return _COMPARISONS[clause.op](actual, expected)


def search_experiments(
    experiments: Sequence[Experiment],
    *,
    view: ViewType = "active",
    filter_string: str | None = None,
    order_by: Sequence[str] | None = None,
) -> list[Experiment]:
    """MLflow's experiment search over a list: view, filter on name and tags, and order.

    Filters look like ``name LIKE 'fraud%' and tags.team = 'risk'``; order keys are
    ``name``, ``creation_time``, ``last_update_time`` and ``experiment_id``. The default
    order is MLflow's: newest first, then by id.

    Raises:
        InvalidInputError: a malformed filter or order-by clause.
    """
    clauses = parse_filter(translate_filter(filter_string))
    for clause in clauses:
        if clause.kind != "tag" and (clause.kind, clause.key) != ("attribute", "run_name"):
            raise InvalidInputError.for_field(
                "experiment filter", filter_string, "clauses on name or tags.<key>"
            )
    found = [
        e
        for e in experiments
        if (view == "all" or (e.lifecycle_stage == "deleted") == (view == "deleted"))
        and all(_exp_matches(e, c) for c in clauses)
    ]
    keys: list[tuple[str, bool]] = []
    for item in order_by or []:
        words = item.strip().rsplit(None, 1)
        descending = len(words) == 2 and words[1].upper() == "DESC"
        if len(words) == 2 and words[1].upper() in ("ASC", "DESC"):
            item = words[0]
        key = _unquote(item.strip().split(".", 1)[-1])
        if key not in _EXP_ORDER_KEYS:
            raise InvalidInputError.for_field("order_by", item, f"one of {_EXP_ORDER_KEYS}")
        keys.append((key, not descending))
    keys += [("creation_time", False), ("experiment_id", True)]
    for key, ascending in reversed(keys):
        found.sort(key=functools.partial(_exp_sort_value, key=key), reverse=not ascending)
    return found
