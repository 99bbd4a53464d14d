"""TrackingService: experiments, runs and what they log.

This is the logic behind the SDK, the REST API and the MLflow API.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bascule.core.clock import Clock, now_ms
from bascule.core.errors import ExperimentNotFoundError, InvalidInputError
from bascule.core.records import RUN_STATUSES, DatasetInput, Experiment, Metric, Run, RunArtifact
from bascule.core.search import parse_filter, parse_order_by
from bascule.store.artifacts.base import ArtifactStore
from bascule.store.db.runs import RunRepository
from bascule.tracking.validation import (
    check_key,
    check_metric_value,
    check_param_value,
    check_step,
    check_tag_value,
)

__all__ = ["RunPage", "TrackingService"]

MAX_SEARCH_RESULTS = 50_000
_ADJECTIVES = (
    "brave",
    "calm",
    "eager",
    "fair",
    "gentle",
    "keen",
    "lucid",
    "merry",
    "proud",
    "swift",
)
_NOUNS = ("otter", "heron", "lynx", "finch", "marten", "ibis", "wren", "stoat", "crane", "vole")


@dataclass(frozen=True)
class RunPage:
    """One page of search results and the token of the next page (None at the end)."""

    runs: list[Run]
    next_page_token: str | None


def _run_name() -> str:
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.randbelow(1000)}"


class TrackingService:
    """Experiment tracking. Every call validates all of its input before writing anything."""

    def __init__(
        self, runs: RunRepository, artifacts: ArtifactStore, clock: Clock, *, default_user: str
    ) -> None:
        self._runs = runs
        self._artifacts = artifacts
        self._clock = clock
        self._user = default_user

    # -- experiments ----------------------------------------------------------------------------

    def create_experiment(
        self, name: str, *, tags: dict[str, str] | None = None, artifact_location: str = ""
    ) -> Experiment:
        """Raises: InvalidInputError, ConflictError."""
        self._check_experiment_name(name)
        clean = {check_key(k, what="tag"): check_tag_value(k, v) for k, v in (tags or {}).items()}
        return self._runs.create_experiment(
            name, now=now_ms(self._clock), artifact_location=artifact_location, tags=clean
        )

    @staticmethod
    def _check_experiment_name(name: object) -> None:
        if not isinstance(name, str) or not name.strip() or len(name) > 250:
            raise InvalidInputError.for_field(
                "experiment name", name, "a non-empty string of at most 250 characters"
            )

    def get_experiment(self, experiment_id: int | str) -> Experiment:
        """Raises: ExperimentNotFoundError, InvalidInputError (an id that is not an integer)."""
        return self._runs.get_experiment(_experiment_id(experiment_id))

    def get_experiment_by_name(self, name: str) -> Experiment:
        """Raises: ExperimentNotFoundError (listing the experiments that exist)."""
        exp = self._runs.find_experiment(name)
        if exp is None:
            raise ExperimentNotFoundError(name, available=self._runs.experiment_names())
        return exp

    def get_or_create_experiment(self, name: str) -> Experiment:
        """The experiment with that name, created if new (safe against a concurrent creator)."""
        from bascule.core.errors import ConflictError

        exp = self._runs.find_experiment(name)
        if exp is not None:
            return exp
        try:
            return self.create_experiment(name)
        except ConflictError:
            return self.get_experiment_by_name(name)

    def list_experiments(self, *, include_deleted: bool = False) -> list[Experiment]:
        return self._runs.list_experiments(include_deleted=include_deleted)

    def rename_experiment(self, experiment_id: int | str, name: str) -> None:
        """Raises: ExperimentNotFoundError, ConflictError, InvalidInputError."""
        self._check_experiment_name(name)
        self._runs.update_experiment(
            _experiment_id(experiment_id), now=now_ms(self._clock), name=name
        )

    def set_experiment_stage(self, experiment_id: int | str, stage: str) -> None:
        """Delete (``deleted``) or restore (``active``) an experiment."""
        self._runs.update_experiment(
            _experiment_id(experiment_id), now=now_ms(self._clock), stage=stage
        )

    def set_experiment_tag(self, experiment_id: int | str, key: str, value: str) -> None:
        exp = self.get_experiment(experiment_id)
        self._runs.set_experiment_tag(
            exp.id, check_key(key, what="tag"), check_tag_value(key, value)
        )

    # -- runs -----------------------------------------------------------------------------------

    def start_run(
        self,
        *,
        experiment: str | None = None,
        experiment_id: int | str | None = None,
        name: str | None = None,
        tags: dict[str, str] | None = None,
        parent_run_id: str | None = None,
        user: str | None = None,
        start_time: int | None = None,
    ) -> Run:
        """Create a RUNNING run in an experiment (by id, by name — created if new — or "Default").

        Raises:
            ExperimentNotFoundError, RunNotFoundError (parent), InvalidInputError.
        """
        if experiment_id is not None:
            exp_id = self.get_experiment(experiment_id).id
        elif experiment is not None:
            exp_id = self.get_or_create_experiment(experiment).id
        else:
            exp_id = 0
        run_name = name or _run_name()
        if len(run_name) > 250:
            raise InvalidInputError.for_field("run name", run_name, "at most 250 characters")
        clean_tags = {
            check_key(k, what="tag"): check_tag_value(k, v) for k, v in (tags or {}).items()
        }
        run_id = uuid.uuid4().hex
        self._runs.create_run(
            run_id=run_id,
            experiment_id=exp_id,
            name=run_name,
            user=user or self._user,
            start_time=start_time if start_time is not None else now_ms(self._clock),
            parent_run_id=parent_run_id,
            tags=clean_tags,
        )
        return self._runs.get_run(run_id)

    def end_run(
        self, run_id: str, *, status: str = "FINISHED", end_time: int | None = None
    ) -> None:
        """Raises: RunNotFoundError, InvalidInputError (unknown status)."""
        self.update_run(
            run_id,
            status=status,
            end_time=end_time if end_time is not None else now_ms(self._clock),
        )

    def update_run(
        self,
        run_id: str,
        *,
        status: str | None = None,
        end_time: int | None = None,
        name: str | None = None,
    ) -> None:
        """Raises: RunNotFoundError, InvalidInputError."""
        if status is not None and status not in RUN_STATUSES:
            raise InvalidInputError.for_field("run status", status, f"one of {RUN_STATUSES}")
        self._runs.update_run(run_id, status=status, end_time=end_time, name=name)

    def delete_run(self, run_id: str) -> None:
        self._runs.update_run(run_id, lifecycle_stage="deleted")

    def restore_run(self, run_id: str) -> None:
        self._runs.update_run(run_id, lifecycle_stage="active")

    def get_run(self, run_id: str) -> Run:
        """Raises: RunNotFoundError."""
        return self._runs.get_run(run_id)

    # -- logging --------------------------------------------------------------------------------

    def log_batch(
        self,
        run_id: str,
        *,
        metrics: Iterable[Metric | tuple[str, Any, int, int]] = (),
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
    ) -> None:
        """Validate everything, then write it in one transaction (nothing is half-written).

        Raises:
            InvalidInputError: a key or value is invalid.
            ConflictError: a param was already logged with another value.
            RunNotFoundError: no such run.
        """
        clean_metrics: list[Metric] = []
        for m in metrics:
            key, value, step, ts = (
                (m.key, m.value, m.step, m.timestamp) if isinstance(m, Metric) else m
            )
            check_key(key, what="metric")
            clean_metrics.append(
                Metric(key, check_metric_value(key, value), check_step(key, step), int(ts))
            )
        clean_params = {
            check_key(k, what="param"): check_param_value(k, v) for k, v in (params or {}).items()
        }
        clean_tags = {
            check_key(k, what="tag"): check_tag_value(k, v) for k, v in (tags or {}).items()
        }
        self._runs.log_batch(run_id, metrics=clean_metrics, params=clean_params, tags=clean_tags)

    def log_metrics(
        self, run_id: str, metrics: dict[str, Any], *, step: int = 0, timestamp: int | None = None
    ) -> None:
        ts = timestamp if timestamp is not None else now_ms(self._clock)
        self.log_batch(run_id, metrics=[(k, v, step, ts) for k, v in metrics.items()])

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        self.log_batch(run_id, params=params)

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        self.log_batch(run_id, tags=tags)

    def delete_tag(self, run_id: str, key: str) -> None:
        self._runs.delete_tag(run_id, key)

    def log_artifact(
        self, run_id: str, path: str | Path, *, artifact_path: str | None = None
    ) -> RunArtifact:
        """Store a file (by content digest) and record it on the run.

        Raises:
            InvalidInputError: the path is not a readable file.
            RunNotFoundError: no such run.
        """
        p = Path(path)
        if not p.is_file():
            raise InvalidInputError.for_field("artifact path", str(p), "an existing file")
        self._runs.get_run(run_id)
        digest = self._artifacts.put_file(p)
        rel = f"{artifact_path.strip('/')}/{p.name}" if artifact_path else p.name
        artifact = RunArtifact(rel, digest, p.stat().st_size)
        self._runs.add_artifact(run_id, artifact)
        return artifact

    def log_dataset(self, run_id: str, dataset: DatasetInput) -> None:
        """Raises: RunNotFoundError."""
        self._runs.add_dataset(run_id, dataset)

    # -- reads ----------------------------------------------------------------------------------

    def metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Raises: RunNotFoundError."""
        return self._runs.metric_history(run_id, key)

    def search_runs(
        self,
        *,
        experiment_ids: Sequence[int | str] | None = None,
        experiment_names: Sequence[str] | None = None,
        filter_string: str | None = None,
        order_by: list[str] | None = None,
        max_results: int = 1000,
        page_token: str | None = None,
        include_deleted: bool = False,
    ) -> RunPage:
        """Search runs with MLflow's filter language subset (see ``bascule.core.search``).

        Raises:
            InvalidInputError: a malformed filter, order or page token; max_results out of range.
            ExperimentNotFoundError: a named experiment does not exist.
        """
        if not 1 <= max_results <= MAX_SEARCH_RESULTS:
            raise InvalidInputError.for_field(
                "max_results", max_results, f"1..{MAX_SEARCH_RESULTS}"
            )
        ids: list[int] | None = None
        if experiment_ids is not None:
            ids = [_experiment_id(i) for i in experiment_ids]
        if experiment_names:
            found = self._runs.experiment_ids(list(experiment_names))
            missing = [n for n in experiment_names if n not in found]
            if missing:
                raise ExperimentNotFoundError(missing[0], available=self._runs.experiment_names())
            ids = (ids or []) + [found[n] for n in experiment_names]
        offset = 0
        if page_token:
            if not page_token.isdigit():
                raise InvalidInputError.for_field(
                    "page_token", page_token, "a token from a previous page"
                )
            offset = int(page_token)
        runs = self._runs.search_runs(
            experiment_ids=ids,
            filters=parse_filter(filter_string),
            order_by=parse_order_by(order_by),
            max_results=max_results + 1,
            offset=offset,
            include_deleted=include_deleted,
        )
        more = len(runs) > max_results
        return RunPage(runs[:max_results], str(offset + max_results) if more else None)


def _experiment_id(value: object) -> int:
    if isinstance(value, bool):
        raise InvalidInputError.for_field("experiment id", value, "an integer id")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise InvalidInputError.for_field("experiment id", value, "an integer id such as '0' or '12'")
