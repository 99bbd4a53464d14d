"""SDK tracking backends: straight to the TrackingService, or to a bascule server over HTTP."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from bascule.core.errors import InvalidInputError, StorageError, error_from_code
from bascule.core.records import DatasetInput, Metric, Run, RunArtifact
from bascule.tracking.service import TrackingService

__all__ = ["LocalBackend", "RemoteBackend", "run_from_json"]


class LocalBackend:
    """Writes through the in-process TrackingService (the laptop default)."""

    def __init__(self, tracking: TrackingService) -> None:
        self._t = tracking

    def start_run(
        self,
        *,
        experiment: str | None,
        name: str | None,
        tags: dict[str, str],
        parent_run_id: str | None,
    ) -> Run:
        return self._t.start_run(
            experiment=experiment, name=name, tags=tags, parent_run_id=parent_run_id
        )

    def log_batch(
        self, run_id: str, *, metrics: list[Metric], params: dict[str, Any], tags: dict[str, Any]
    ) -> None:
        self._t.log_batch(run_id, metrics=metrics, params=params, tags=tags)

    def end_run(self, run_id: str, *, status: str) -> None:
        self._t.end_run(run_id, status=status)

    def log_artifact(self, run_id: str, path: Path, *, artifact_path: str | None) -> RunArtifact:
        return self._t.log_artifact(run_id, path, artifact_path=artifact_path)

    def log_dataset(self, run_id: str, dataset: DatasetInput) -> None:
        self._t.log_dataset(run_id, dataset)

    def get_run(self, run_id: str) -> Run:
        return self._t.get_run(run_id)


def run_from_json(data: dict[str, Any]) -> Run:
    """A Run from the control plane's JSON form."""
    metrics = {k: Metric(**m) for k, m in data.get("metrics", {}).items()}
    return Run(
        **{k: v for k, v in data.items() if k not in ("metrics", "artifacts", "datasets")},
        metrics=metrics,
        artifacts=[RunArtifact(**a) for a in data.get("artifacts", [])],
        datasets=[DatasetInput(**d) for d in data.get("datasets", [])],
    )


class RemoteBackend:
    """Writes to a bascule control-plane server (``BASCULE_TRACKING__URI``) over keep-alive HTTP."""

    def __init__(
        self, uri: str, *, timeout_s: float = 30.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._client = httpx.Client(base_url=uri, timeout=timeout_s, transport=transport)
        self._uri = uri

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self._client.request(method, f"/api/v1{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise StorageError(
                f"tracking server {self._uri} unreachable: {exc}", uri=self._uri
            ) from exc
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = {}
            code = body.get("code") or ("not_found" if resp.status_code == 404 else "storage_error")
            raise error_from_code(code, body.get("error") or resp.text)
        return resp.json() if resp.content else None

    def start_run(
        self,
        *,
        experiment: str | None,
        name: str | None,
        tags: dict[str, str],
        parent_run_id: str | None,
    ) -> Run:
        body = {
            "experiment": experiment,
            "name": name,
            "tags": tags,
            "parent_run_id": parent_run_id,
        }
        return run_from_json(self._call("POST", "/runs", json=body))

    def log_batch(
        self, run_id: str, *, metrics: list[Metric], params: dict[str, Any], tags: dict[str, Any]
    ) -> None:
        body = {
            "metrics": [asdict(m) for m in metrics],
            "params": {k: str(v) for k, v in params.items()},
            "tags": {k: str(v) for k, v in tags.items()},
        }
        self._call("POST", f"/runs/{run_id}/batch", json=body)

    def end_run(self, run_id: str, *, status: str) -> None:
        self._call("PATCH", f"/runs/{run_id}", json={"status": status, "end": True})

    def log_artifact(self, run_id: str, path: Path, *, artifact_path: str | None) -> RunArtifact:
        if not path.is_file():
            raise InvalidInputError.for_field("artifact path", str(path), "an existing file")
        data = self._call(
            "POST",
            f"/runs/{run_id}/artifacts",
            params={"name": path.name, "artifact_path": artifact_path or ""},
            content=path.read_bytes(),
        )
        return RunArtifact(**data)

    def log_dataset(self, run_id: str, dataset: DatasetInput) -> None:
        self._call("POST", f"/runs/{run_id}/datasets", json=asdict(dataset))

    def get_run(self, run_id: str) -> Run:
        return run_from_json(self._call("GET", f"/runs/{run_id}"))
