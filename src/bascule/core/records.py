"""Domain records returned by the stores and services: plain frozen dataclasses, no I/O.

Times are integers of milliseconds since the epoch, as in MLflow's REST API.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "DatasetInput",
    "Experiment",
    "Metric",
    "ModelEvent",
    "ModelVersion",
    "RegisteredModel",
    "Run",
    "RunArtifact",
    "RunStatus",
    "to_dict",
]

RunStatus = Literal["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"]
RUN_STATUSES: tuple[str, ...] = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")


def to_dict(record: Any) -> dict[str, Any]:
    """A record as a JSON-friendly dict."""
    return asdict(record)


@dataclass(frozen=True)
class Experiment:
    """A named group of runs."""

    id: int
    name: str
    created_at: int
    lifecycle_stage: str = "active"
    artifact_location: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    """One logged value of a metric: its key, value, step and time."""

    key: str
    value: float
    step: int
    timestamp: int


@dataclass(frozen=True)
class RunArtifact:
    """A file logged by a run, stored by content digest."""

    path: str
    digest: str
    size: int


@dataclass(frozen=True)
class DatasetInput:
    """A data set a run used: its name, content fingerprint, schema and size."""

    name: str
    digest: str
    num_rows: int
    schema: dict[str, str]
    source: str = ""
    context: str = "training"


@dataclass(frozen=True)
class Run:
    """One execution of training code, with what it logged.

    ``metrics`` holds the latest value of each metric; the full history is read separately.
    """

    id: str
    experiment_id: int
    name: str
    status: str
    start_time: int
    end_time: int | None
    parent_run_id: str | None
    user: str
    lifecycle_stage: str = "active"
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Metric] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: list[RunArtifact] = field(default_factory=list)
    datasets: list[DatasetInput] = field(default_factory=list)


@dataclass(frozen=True)
class ModelVersion:
    """An immutable registered version of a model, stored as ONNX."""

    name: str
    version: int
    digest: str
    flavor: str
    task: str
    signature: dict[str, Any]
    created_at: int
    created_by: str
    run_id: str | None = None
    dataset_digest: str | None = None
    git_commit: str | None = None
    profile_digest: str | None = None
    sample_digest: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    aliases: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RegisteredModel:
    """A model name with its versions' count and aliases."""

    name: str
    created_at: int
    description: str
    latest_version: int
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelEvent:
    """One entry of a model's audit history: a registration or an alias move."""

    id: int
    name: str
    kind: str
    version: int | None
    alias: str | None
    previous_version: int | None
    actor: str
    reason: str
    at: int
    details: dict[str, Any] = field(default_factory=dict)
