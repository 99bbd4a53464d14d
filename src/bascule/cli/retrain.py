"""``bascule retrain MODEL``: run the project's standard retraining pipeline now, by hand.

The pipeline runs in this process through a ``RetrainCoordinator`` (one retraining per
model at a time), under a file lock in ``BASCULE_HOME/locks`` so a second ``bascule
retrain`` of the same model in another process is refused (or waits, ``--wait``). A live
list shows the steps; then the gate decision with both models' figures.

Exit codes: 0 when the pipeline completed, even if the gate failed (the challenger is
registered without an alias; the output says so); otherwise the code of the failed step's
error (2 for bad data or a non-model, 1 for an exception of the training code), 5 when
another process holds the lock, 78 when the project is not configured.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table

from bascule.cli.context import config_path, get_services
from bascule.cli.errors import EXIT_CODES, run_guarded
from bascule.cli.output import console, print_json, print_table

if TYPE_CHECKING:
    from bascule.core.settings import Settings
    from bascule.pipelines.retrain import RetrainOutcome

__all__ = ["project_dir", "retrain", "validate_project"]

_SHOWN = ("rows", "business_cost", "roc_auc", "log_loss", "precision", "recall", "f1")


def project_dir() -> Path:
    """The folder relative project paths start from: the settings file's, else the current one.

    Raises:
        ConfigError: ``--config`` or ``$BASCULE_CONFIG`` names a missing file.
    """
    from bascule.core.settings import find_config_file

    found = find_config_file(config_path())
    return (found.parent if found is not None else Path.cwd()).resolve()


def validate_project(settings: Settings) -> tuple[list[str], list[str]]:
    """What ``bascule validate`` says about the project: its problems, or what was checked.

    Raises:
        ConfigError: the settings file named by ``--config`` is missing.
    """
    from bascule.pipelines.project import check_project

    project = settings.project
    if project is None:
        return [], []
    problems = check_project(settings, base_dir=project_dir())
    if problems:
        return problems, []
    return [], [
        f"project {project.model!r}: training entrypoint {project.training.entrypoint} imports "
        "and takes (df, params); the data source reads with the declared columns"
    ]


class StepList:
    """The live list of steps: pending, running (with a spinner), done; thread-safe."""

    def __init__(self, steps: tuple[str, ...]) -> None:
        self._steps = steps
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}
        self._current: str | None = None

    def start(self, name: str) -> None:
        """Mark ``name`` running (and the step before it done)."""
        with self._lock:
            self._started[name] = time.monotonic()
            self._current = name

    def render(self) -> Table:
        """The list as a table."""
        table = Table.grid(padding=(0, 2))
        with self._lock:
            order = list(self._steps)
            seen = [s for s in order if s in self._started]
            last = order.index(seen[-1]) if seen else -1
            for index, name in enumerate(order):
                if name == self._current:
                    elapsed = time.monotonic() - self._started[name]
                    table.add_row(Spinner("dots"), name, f"{elapsed:.1f} s")
                elif index < last:
                    table.add_row("[green]✓[/]", name, "")
                else:
                    table.add_row("[dim]·[/]", f"[dim]{name}[/]", "")
        return table


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def _show(outcome: RetrainOutcome) -> None:
    result = outcome.result
    if result is not None:
        rows = []
        for s in result.steps:
            mark = "[green]✓[/]" if s.status == "FINISHED" else "[red]✗[/]"
            cache = "cached" if s.cache_hit else ""
            rows.append((f"{mark} {s.name}", f"{s.duration_s:.2f} s", cache))
        skipped = getattr(result, "skipped", ())
        rows.extend((f"[dim]- {name}[/]", "", "skipped") for name in skipped)
        console.print(f"[bold]retrain {outcome.model}[/]: pipeline run {outcome.run_id}")
        print_table("", ["step", "time", ""], rows)
    if outcome.status == "failed":
        console.print(
            f"[bold red]retraining stopped[/]: {outcome.reason}",
            highlight=False,
        )
        console.print("no version registered; the champion is untouched and keeps serving")
        return
    decision = outcome.decision
    if decision is None:
        return
    verdict = "[bold green]PASSED[/]" if decision.passed else "[bold red]FAILED[/]"
    console.print(f"gate {verdict}: {decision.reason}", highlight=False)
    new = f"challenger v{outcome.version}"
    old = f"champion v{decision.champion_version}" if decision.champion is not None else None
    keys = [k for k in _SHOWN if k in decision.challenger]
    columns = ["figure (holdout)", new, *([old] if old else [])]
    console.print(
        f"compared on the same holdout: {decision.metric} first (margin {decision.margin:.2%}), "
        f"then guard metrics {sorted(decision.guards) or []}",
        highlight=False,
    )
    print_table(
        "",
        columns,
        [
            (
                k,
                _fmt(decision.challenger.get(k)),
                *([_fmt(decision.champion.get(k))] if decision.champion else []),
            )
            for k in keys
        ],
    )
    if outcome.alias == "champion":
        console.print(f"v{outcome.version} registered and made [bold]champion[/] (first model)")
    elif outcome.alias is not None:
        console.print(
            f"v{outcome.version} registered with alias [bold]{outcome.alias}[/]; its rollout "
            "starts in shadow (the champion keeps serving until it is promoted)"
        )
    else:
        console.print(
            f"v{outcome.version} registered [bold]without an alias[/] (not promoted); "
            "the champion is untouched"
        )


def retrain(
    model: Annotated[
        str | None, typer.Argument(help="Model to retrain (default: the project's model).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="If another process is retraining this model, wait for it."),
    ] = False,
) -> None:
    """Retrain now: load, validate, split, train, choose the threshold, evaluate against the
    champion, gate, register.

    Example: bascule retrain fraud --json
    """

    def go() -> int:
        from bascule.core.errors import InvalidInputError
        from bascule.pipelines.retraining import RETRAINING_STEPS
        from bascule.pipelines.triggers import RetrainCoordinator
        from bascule.wiring import build_retrainer, default_actor, require_project

        services = get_services()
        settings = services.settings
        name = require_project(settings).model
        if model is not None and model != name:
            raise InvalidInputError.for_field("MODEL", model, f"the project's model {name!r}")
        steps = StepList(RETRAINING_STEPS)
        retrainer = build_retrainer(
            services,
            base_dir=project_dir(),
            wait_for_lock=wait,
            on_step=None if as_json else steps.start,
        )
        coordinator = RetrainCoordinator(retrainer, clock=services.clock)
        coordinator.trigger(name, "manual", f"bascule retrain by {default_actor(settings)}")
        if as_json:
            coordinator.wait_idle()
        else:
            with Live(
                steps.render(), console=console, refresh_per_second=8, transient=True
            ) as live:
                while not coordinator.wait_idle(timeout=0.125):
                    live.update(steps.render())
        record = coordinator.history(name)[-1]
        if record.status == "error":
            message = record.error or "unknown error"
            if as_json:
                print_json({"model": name, "status": "error", "reason": message})
            else:
                console.print(f"[bold red]retraining failed[/]: {message}", highlight=False)
            return 1
        outcome: RetrainOutcome = record.result
        if as_json:
            print_json(outcome.to_dict())
        elif outcome.status == "refused":
            console.print(f"[bold red]refused[/]: {outcome.reason}", highlight=False)
        else:
            _show(outcome)
        if outcome.status == "refused":
            return EXIT_CODES["conflict"]
        if outcome.status == "failed":
            return EXIT_CODES.get(outcome.error_code or "", 1)
        return 0

    code = run_guarded(go)
    if code:
        raise typer.Exit(code)
