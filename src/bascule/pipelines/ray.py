"""The Ray runner: each step attempt runs as a Ray task on a Ray cluster (extra ``bascule[ray]``).

The driver (this process) keeps everything else: the DAG order, the step cache, retries
and their backoff, and tracking. Only the call of the step's function moves to a worker,
with its input values; its return value, reported metrics and error come back. Ray
carries functions and values between its processes with its own serialisation; the step
cache and the registry never load pickles.

The runner connects on first use: to ``address`` (``"auto"``, ``"127.0.0.1:6379"``,
``"ray://host:10001"``; settings ``pipelines.ray_address`` or ``BASCULE_RAY_ADDRESS``),
or, without one, to the Ray already initialised in this process, else to a new local
Ray. :meth:`RayRunner.close` shuts Ray down only if the runner started it.

Step functions must be importable on the workers (defined in a module of an installed
package), or registered with ``ray.cloudpickle.register_pickle_by_value(module)``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from bascule.core.clock import Clock
from bascule.core.errors import ConfigError
from bascule.pipelines._execution import Attempt, execute_step
from bascule.pipelines.results import StepError
from bascule.pipelines.runner import PipelineRunner
from bascule.pipelines.steps import Step, StepContext
from bascule.store.artifacts.base import ArtifactStore
from bascule.tracking.service import TrackingService

__all__ = ["RayRunner"]


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "the Ray runner needs the 'ray' package: pip install 'bascule[ray]'"
        ) from None
    return ray


class RayRunner(PipelineRunner):
    """Runs each step attempt as a Ray task; caching, retries and tracking stay in the driver."""

    def __init__(
        self,
        tracking: TrackingService,
        artifacts: ArtifactStore,
        *,
        address: str | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] | None = None,
        max_retries: int = 0,
        backoff_s: float = 1.0,
        max_backoff_s: float = 300.0,
        num_cpus: float = 1.0,
        init_options: Mapping[str, Any] | None = None,
    ) -> None:
        """Build a Ray runner (nothing connects until the first step runs).

        Args:
            tracking: Where runs are recorded.
            artifacts: Where the step cache lives.
            address: The Ray cluster; None: the Ray of this process, else a new local one.
            clock: Measures durations.
            sleep: Waits between retries.
            max_retries: Retries of a step that does not set its own.
            backoff_s: First wait of a step that does not set its own.
            max_backoff_s: Upper bound of any wait.
            num_cpus: CPUs each step task reserves.
            init_options: Extra keyword arguments of ``ray.init`` when the runner connects.
        """
        super().__init__(
            tracking,
            artifacts,
            clock=clock,
            sleep=sleep,
            max_retries=max_retries,
            backoff_s=backoff_s,
            max_backoff_s=max_backoff_s,
        )
        self._address = address
        self._num_cpus = num_cpus
        self._init_options = dict(init_options or {})
        self._lock = threading.Lock()
        self._remote: Any = None
        self._owns_ray = False

    def _connect(self) -> Any:
        """Raises: ConfigError when Ray is not installed or the cluster cannot be reached."""
        ray = _import_ray()
        with self._lock:
            if self._remote is None:
                if not ray.is_initialized():
                    try:
                        ray.init(address=self._address, **self._init_options)
                    except (ConnectionError, RuntimeError, ValueError) as exc:
                        raise ConfigError(
                            f"cannot connect to the Ray cluster at {self._address!r}: {exc}",
                            address=self._address,
                        ) from exc
                    self._owns_ray = True
                self._remote = ray.remote(num_cpus=self._num_cpus, max_retries=0)(execute_step)
            return ray

    def _execute(self, step: Step, kwargs: dict[str, Any], ctx: StepContext) -> Attempt:
        ray = self._connect()
        try:
            attempt: Attempt = ray.get(self._remote.remote(step, kwargs, ctx))
        except ray.exceptions.RayError as exc:  # a worker died, or the task could not start
            return Attempt(None, StepError.from_exception(exc), ctx)
        return attempt

    def close(self) -> None:
        """Shut Ray down if this runner started it."""
        with self._lock:
            if self._owns_ray:
                _import_ray().shutdown()
                self._owns_ray = False
            self._remote = None

    def __enter__(self) -> RayRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
