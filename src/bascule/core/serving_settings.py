"""The ``serving:`` section of the settings: the inference server, its adaptive batching, its
prediction log and the traffic policy of each served model.

Kept apart from :mod:`bascule.core.settings` only to keep that module under the size the
style guide asks for; :class:`ServingSettings` is a field of the one ``Settings`` object like
every other section, and :mod:`bascule.core.settings` exports these classes too. Example
``bascule.yaml``::

    serving:
      refs: [fraud@champion]
      port: 8080
      batching: {max_batch_size: 256, max_wait_ms: 2}
      prediction_log: {flush_rows: 200000, compression: lz4}
      models:
        fraud: {challenger: fraud@challenger, mode: canary, canary_percent: 10}
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from bascule.core._section import Section

__all__ = ["BatchingSettings", "ModelServingSettings", "PredictionLogSettings", "ServingSettings"]


class BatchingSettings(Section):
    """Adaptive batching of inference requests, per loaded model version."""

    enabled: bool = True
    """Merge concurrent requests into one onnxruntime call; off runs each request alone."""
    max_batch_size: int = Field(default=256, ge=1, le=65_536)
    """Most rows run in one onnxruntime call (a larger single request still runs whole).
    Above the 64 rows of a typical multi-row request, so that several such requests share
    one call and its thread hop."""
    max_wait_ms: float = Field(default=2.0, ge=0, le=1000)
    """Longest a request waits for others to join its batch (milliseconds); an idle
    server runs a lone request at once, so batching adds no latency at concurrency 1."""
    max_queue: int = Field(default=1024, ge=1, le=1_000_000)
    """Requests waiting per model version; more are refused with 503 and Retry-After."""


class PredictionLogSettings(Section):
    """The prediction log: inputs, outputs and request ids of served predictions."""

    enabled: bool = True
    """Write every answered request (and shadow answers) to the log under the artifact root."""
    flush_rows: int = Field(default=200_000, ge=1, le=10_000_000)
    """A buffer holding this many rows is written at once, one Parquet file per model and
    hour (larger buffers in chunks of this many rows). Encoding is column-wise and yields to
    the request path between columns, so larger chunks mean fewer, larger files and no
    longer pauses; each file has a fixed cost (writer set-up, two fsyncs, a rename)."""
    flush_interval_s: float = Field(default=5.0, gt=0, le=3600)
    """Buffered rows are written at least this often (seconds)."""
    max_buffer_rows: int = Field(default=600_000, ge=1, le=100_000_000)
    """Rows held in memory at most, counting a flush in progress; beyond that rows are dropped
    and counted, never blocking (room for about three flushes' worth)."""
    compression: Literal["lz4", "zstd", "snappy", "none"] = "lz4"
    """Parquet codec of the log's files. ``lz4`` costs the server about a quarter less CPU per
    logged row than ``zstd`` for slightly larger files (``benchmarks/prediction_log.py`` prints
    both); choose ``zstd`` where storage matters more than CPU."""


class ModelServingSettings(Section):
    """Traffic policy of one served model: a champion and an optional challenger."""

    challenger: str | None = None
    """Reference of the challenger (``name@alias`` or ``name:version``); unset: no challenger."""
    mode: Literal["canary", "shadow"] | None = None
    """``canary``: the challenger answers ``canary_percent`` % of requests; ``shadow``: it
    gets a copy of every request and the client gets the champion's answer."""
    canary_percent: float = Field(default=10.0, ge=0, le=100)
    """Share of requests the challenger answers in canary mode (percent)."""
    shadow_queue: int = Field(default=1024, ge=1, le=1_000_000)
    """Shadow copies waiting for the challenger; more are dropped and counted."""

    @model_validator(mode="after")
    def _check_policy(self) -> ModelServingSettings:
        if self.challenger is not None and self.mode is None:
            raise ValueError("a challenger needs a mode: 'canary' or 'shadow'")
        if self.mode is not None and self.challenger is None:
            raise ValueError(f"mode {self.mode!r} needs a challenger reference")
        return self


class ServingSettings(Section):
    """The inference server (``bascule serve``): Open Inference Protocol v2 over REST."""

    refs: list[str] = []
    """Model references served when ``bascule serve`` is given none (``fraud@champion``)."""
    host: str = "127.0.0.1"
    """Interface to bind; use 0.0.0.0 to accept connections from other machines."""
    port: int = Field(default=8080, ge=1, le=65535)
    """TCP port of the inference server."""
    workers: int = Field(default=1, ge=1, le=256)
    """Server processes sharing the port; each loads every served model."""
    poll_interval_s: float = Field(default=1.0, gt=0, le=3600)
    """How often a server following an alias checks whether it moved (seconds)."""
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024, le=2**31)
    """Largest request body accepted; larger ones get 413."""
    intra_op_threads: int | None = Field(default=None, ge=1, le=1024)
    """onnxruntime threads per model session; unset: the CPU count divided by twice the
    number of workers, at least 1 (one core is left to the event loop)."""
    shutdown_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    """On SIGTERM, how long in-flight requests may take to finish (seconds)."""
    metrics_dir: Path | None = None
    """Directory through which the worker processes of one server share their metrics
    (prometheus_client's multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` must name the same
    empty directory when the processes start). ``bascule serve --workers N`` (N > 1) sets
    both to a fresh temporary directory each start and removes it at exit; unset: each
    process keeps its own metrics in memory."""
    batching: BatchingSettings = BatchingSettings()
    """Adaptive batching."""
    prediction_log: PredictionLogSettings = PredictionLogSettings()
    """Prediction log."""
    models: dict[str, ModelServingSettings] = {}
    """Traffic policy per served model name (challenger, canary or shadow)."""
