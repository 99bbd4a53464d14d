"""``bascule serve``: the Open Inference Protocol v2 server for registered models.

One worker runs in this process. With ``--workers N`` (N > 1) uvicorn's supervisor binds
the port once and starts N worker processes that share it; each builds its own services
through ``bascule.http.inference.app:build_app``, reading the effective serving settings
this command passes in ``BASCULE_SERVING`` (and ``BASCULE_CONFIG`` for ``--config``).
The workers share their metrics through a fresh temporary directory (``serving.metrics_dir``
and prometheus_client's ``PROMETHEUS_MULTIPROC_DIR``), removed when the server stops, so
``GET /metrics`` counts every worker whichever answers; one worker keeps them in memory.
A worker accepts connections once its models are loaded and warm (until then the shared
socket's connections go to the others, or wait); one process alone answers liveness while it
loads and readiness once it is warm.
SIGTERM stops accepting connections, lets in-flight requests finish, flushes the
prediction log and exits 0.
"""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from bascule.cli.context import config_path, get_services
from bascule.cli.errors import run_guarded
from bascule.cli.output import console
from bascule.cli.process import keep_freed_memory, pin_math_threads

if TYPE_CHECKING:
    from bascule.core.settings import ServingSettings

__all__ = ["serve"]


def serve(
    refs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Models to serve: name@alias (follows the alias), name:version or name "
            "(default: serving.refs in the settings).",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Interface (default from settings: 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Port (default from settings: 8080).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Server processes sharing the port (default 1)."),
    ] = None,
    challenger: Annotated[
        str | None,
        typer.Option("--challenger", help="Challenger reference, e.g. fraud@challenger."),
    ] = None,
    mode: Annotated[
        Literal["canary", "shadow"] | None,
        typer.Option(
            "--mode",
            help="canary: it answers --canary-percent of requests; shadow: "
            "it gets copies (default canary).",
        ),
    ] = None,
    canary_percent: Annotated[
        float | None,
        typer.Option("--canary-percent", min=0, max=100, help="Share for the challenger (10)."),
    ] = None,
    no_batching: Annotated[
        bool, typer.Option("--no-batching", help="Run every request alone (no merging).")
    ] = False,
    no_prediction_log: Annotated[
        bool, typer.Option("--no-prediction-log", help="Do not log predictions.")
    ] = False,
) -> None:
    """Serve registered models over the Open Inference Protocol v2 (REST), with /metrics.

    Example: bascule serve fraud@champion --workers 2 --challenger fraud@challenger --mode shadow
    """
    pin_math_threads()
    keep_freed_memory()

    def go() -> None:
        from bascule.core.errors import ConfigError
        from bascule.core.settings import ServingSettings

        services = get_services()
        base = services.settings.serving
        data = base.model_dump()
        if refs:
            data["refs"] = list(refs)
        for key, value in (("host", host), ("port", port), ("workers", workers)):
            if value is not None:
                data[key] = value
        if no_batching:
            data["batching"]["enabled"] = False
        if no_prediction_log:
            data["prediction_log"]["enabled"] = False
        if challenger is not None or mode is not None or canary_percent is not None:
            data["models"] = _with_challenger(data, challenger, mode, canary_percent)
        try:
            serving = ServingSettings.model_validate(data)
        except ValueError as exc:
            raise ConfigError(f"bad serving options: {exc}") from None
        _check_refs(serving)
        _run(serving)

    run_guarded(go)


def _with_challenger(
    data: dict[str, Any], challenger: str | None, mode: str | None, percent: float | None
) -> dict[str, Any]:
    """Fold --challenger/--mode/--canary-percent into the per-model policies."""
    from bascule.core.errors import ConfigError
    from bascule.core.refs import ModelRef

    models: dict[str, Any] = dict(data.get("models") or {})
    served = [ModelRef.parse(r).name for r in data["refs"]]
    if challenger is None:
        if len(served) != 1 or served[0] not in models:
            raise ConfigError("--mode and --canary-percent need --challenger REF")
        target = served[0]
        policy = dict(models[target])
    else:
        name = ModelRef.parse(challenger).name
        if name in served:
            target = name
        elif len(served) == 1:
            target = served[0]
        else:
            raise ConfigError(
                f"--challenger {challenger!r}: which served model does it challenge? Serve one "
                f"model, or name the challenger after one of {served}"
            )
        policy = dict(models.get(target) or {})
        policy["challenger"] = challenger
    if mode is not None:
        policy["mode"] = mode
    if policy.get("mode") is None:
        policy["mode"] = "canary"
    if percent is not None:
        policy["canary_percent"] = percent
    models[target] = policy
    return models


def _check_refs(serving: ServingSettings) -> None:
    """Resolve every reference now, so a typo fails here (exit 4) and not as a 503 later."""
    from bascule.core.refs import ModelRef

    registry = get_services().registry
    if not serving.refs:
        from bascule.core.errors import ConfigError

        raise ConfigError(
            "no model to serve: give references like 'fraud@champion', or list them under "
            "serving.refs in bascule.yaml"
        )
    for text in serving.refs:
        ref = ModelRef.parse(text)
        registry.resolve(ref)
        policy = serving.models.get(ref.name)
        if policy is not None and policy.challenger is not None:
            registry.resolve(policy.challenger)


def _run(serving: ServingSettings) -> None:
    import uvicorn

    url = f"http://{serving.host}:{serving.port}"
    policies = ", ".join(
        f"{name}: {p.mode} with {p.challenger}" for name, p in serving.models.items() if p.mode
    )
    console.print(
        f"serving {', '.join(serving.refs)} on {url} ({serving.workers} worker"
        f"{'s' if serving.workers > 1 else ''}"
        f"{'; ' + policies if policies else ''}) — V2 at {url}/v2, metrics at {url}/metrics",
        highlight=False,
    )
    common: dict[str, Any] = {
        "host": serving.host,
        "port": serving.port,
        "loop": "uvloop",
        "http": "httptools",
        "log_level": "warning",
        "access_log": False,
        "timeout_graceful_shutdown": int(serving.shutdown_timeout_s),
        "lifespan": "on",
    }
    if serving.workers > 1:
        # A fresh directory each start: prometheus_client merges every file in it, so files
        # of an earlier server (same pids, or counters of exited workers) must not be there.
        with tempfile.TemporaryDirectory(
            prefix="bascule-metrics-", ignore_cleanup_errors=True
        ) as shared:
            # Worker processes read their settings like any composition root: pass ours on.
            # prometheus_client picks its (mmap) value class when imported, from this
            # variable: set before the workers start, they inherit it.
            workers_serving = serving.model_copy(update={"metrics_dir": Path(shared)})
            os.environ["BASCULE_SERVING"] = workers_serving.model_dump_json()
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared
            path: Path | None = config_path()
            if path is not None:
                os.environ["BASCULE_CONFIG"] = str(path.resolve())
            uvicorn.run(
                "bascule.http.inference.app:build_app",
                factory=True,
                workers=serving.workers,
                **common,
            )
        return
    from prometheus_client import CollectorRegistry

    from bascule.http.inference.app import create_app
    from bascule.http.inference.metrics import InferenceMetrics
    from bascule.serving.assembly import build_dataplane

    services = get_services()
    metrics = InferenceMetrics(CollectorRegistry())
    dataplane = build_dataplane(
        services.registry,
        services.artifacts,
        serving,
        clock=services.clock,
        observer=metrics,
        features=lambda: services.features,
    )
    app = create_app(dataplane, serving, metrics=metrics, on_shutdown=services.close)
    # uvicorn shuts down gracefully on SIGTERM (in-flight requests answered, the prediction
    # log flushed by the lifespan), then re-raises the signal to its previous handler: make
    # that a no-op so a requested stop exits 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.Server(uvicorn.Config(app, **common)).run()
