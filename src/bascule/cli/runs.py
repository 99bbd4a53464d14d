"""``bascule runs`` and ``bascule experiments``."""

from __future__ import annotations

from typing import Annotated

import typer

from bascule.cli.context import get_services
from bascule.cli.errors import run_guarded
from bascule.cli.output import console, fmt_ms, print_json, print_table

runs_app = typer.Typer(help="Tracked runs: list, search and inspect.", no_args_is_help=True)
experiments_app = typer.Typer(help="Experiments.", no_args_is_help=True)


@runs_app.command("list")
def list_runs(
    experiment: Annotated[
        list[str] | None, typer.Option("--experiment", "-e", help="Experiment name (repeatable).")
    ] = None,
    filter_: Annotated[
        str | None,
        typer.Option("--filter", "-f", help="e.g. \"metrics.auc > 0.9 and params.model = 'rf'\""),
    ] = None,
    order_by: Annotated[
        list[str] | None, typer.Option("--order-by", "-o", help="e.g. 'metrics.auc DESC'")
    ] = None,
    max_results: Annotated[int, typer.Option("--max", help="At most this many runs.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array of runs.")] = False,
) -> None:
    """List runs, newest first, with their latest metrics.

    Example: bascule runs list -e fraud -f "metrics.auc > 0.9" -o "metrics.auc DESC" --json
    """

    def go() -> None:
        page = get_services().tracking.search_runs(
            experiment_names=experiment,
            filter_string=filter_,
            order_by=order_by,
            max_results=max_results,
        )
        if as_json:
            print_json(page.runs)
            return
        svc = get_services().tracking
        names = {e.id: e.name for e in svc.list_experiments(include_deleted=True)}
        rows = [
            (
                r.id[:12],
                r.name,
                names.get(r.experiment_id, r.experiment_id),
                r.status,
                fmt_ms(r.start_time),
                ", ".join(f"{k}={m.value:.4g}" for k, m in sorted(r.metrics.items())[:6]),
            )
            for r in page.runs
        ]
        print_table(
            f"{len(rows)} run(s)",
            ["id", "name", "experiment", "status", "started (UTC)", "metrics"],
            rows,
        )

    run_guarded(go)


@runs_app.command("show")
def show_run(
    run_id: Annotated[
        str, typer.Argument(help="Run id (as printed by `bascule runs list --json`).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
) -> None:
    """Show one run: params, latest metrics, tags, artifacts and data sets.

    Example: bascule runs show 3f2c0e9b1a7d4c55b1f0e2d3c4b5a697
    """

    def go() -> None:
        svc = get_services().tracking
        if len(run_id) < 32:
            matches = [
                r for r in svc.search_runs(max_results=50_000).runs if r.id.startswith(run_id)
            ]
            run = svc.get_run(matches[0].id if len(matches) == 1 else run_id)
        else:
            run = svc.get_run(run_id)
        if as_json:
            print_json(run)
            return
        console.print(
            f"[bold]{run.name}[/] ({run.id})  status {run.status}  started {fmt_ms(run.start_time)}"
        )
        if run.parent_run_id:
            console.print(f"parent run: {run.parent_run_id}")
        print_table("params", ["key", "value"], sorted(run.params.items()))
        print_table(
            "metrics (latest)",
            ["key", "value", "step"],
            [(k, f"{m.value:.6g}", m.step) for k, m in sorted(run.metrics.items())],
        )
        print_table("tags", ["key", "value"], sorted(run.tags.items()))
        if run.artifacts:
            print_table(
                "artifacts",
                ["path", "sha256", "bytes"],
                [(a.path, a.digest[:16], a.size) for a in run.artifacts],
            )
        if run.datasets:
            print_table(
                "data sets",
                ["name", "fingerprint", "rows", "columns"],
                [(d.name, d.digest[:16], d.num_rows, len(d.schema)) for d in run.datasets],
            )

    run_guarded(go)


@experiments_app.command("list")
def list_experiments(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List experiments.

    Example: bascule experiments list --json
    """

    def go() -> None:
        svc = get_services().tracking
        exps = svc.list_experiments()
        if as_json:
            print_json(exps)
            return
        print_table(
            "experiments",
            ["id", "name", "created (UTC)"],
            [(e.id, e.name, fmt_ms(e.created_at)) for e in exps],
        )

    run_guarded(go)
