"""The ``bascule`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bascule._version import __version__
from bascule.cli.context import get_services, get_settings, set_config_path
from bascule.cli.errors import run_guarded
from bascule.cli.features import features_app
from bascule.cli.init import init
from bascule.cli.loadtest import loadtest
from bascule.cli.models import models_app
from bascule.cli.monitor import alerts_app, feedback_app, monitor_app
from bascule.cli.output import console, print_json, print_table
from bascule.cli.retrain import retrain, validate_project
from bascule.cli.runs import experiments_app, runs_app
from bascule.cli.serve import serve

__all__ = ["app", "main"]

app = typer.Typer(
    name="bascule",
    help="The MLOps loop in one package: track, register (ONNX), serve (V2), monitor, retrain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
db_app = typer.Typer(help="The metadata database.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(experiments_app, name="experiments")
app.add_typer(models_app, name="models")
app.add_typer(db_app, name="db")
app.add_typer(features_app, name="features")
app.add_typer(feedback_app, name="feedback")
app.add_typer(monitor_app, name="monitor")
app.add_typer(alerts_app, name="alerts")
app.command()(serve)
app.command()(loadtest)
app.command()(init)
app.command()(retrain)


def _version(value: bool) -> None:
    if value:
        console.print(f"bascule {__version__}")
        raise typer.Exit


@app.callback()
def root(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Settings file (default: ./bascule.yaml if present)."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Settings come from --config / bascule.yaml and BASCULE_* environment variables."""
    set_config_path(config)


@app.command()
def validate(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Check the settings and say where every value came from; then check the DB and artifact store.

    Example: BASCULE_DATABASE_URL=postgresql://postgres@127.0.0.1/test bascule validate
    """
    from bascule.cli.context import config_path
    from bascule.cli.errors import exit_code_for
    from bascule.core.errors import BasculeError, ConfigError
    from bascule.core.settings import explain_settings

    try:
        sources = explain_settings(config_path())
    except ConfigError as exc:
        problems = exc.details.get("problems") or [exc.message]
        if as_json:
            print_json({"ok": False, "problems": problems})
        else:
            console.print(f"[bold red]{len(problems)} problem(s) in the settings[/]")
            for p in problems:
                console.print(f"  • {p}", highlight=False)
        raise typer.Exit(exit_code_for(exc)) from None
    checks: list[str] = []
    try:
        services = get_services()
        services.db.ping()
        checks.append(f"metadata DB reachable: {services.db.safe_url}")
        services.artifacts.write("_bascule/validate", b"ok")
        checks.append(f"artifact store writable: {services.artifacts.root}")
    except BasculeError as exc:
        if as_json:
            print_json({"ok": False, "problems": [exc.message], "settings": sources})
        else:
            console.print(f"[bold red]problem:[/] {exc.message}", highlight=False)
        raise typer.Exit(exit_code_for(exc)) from None
    problems, project_check = validate_project(services.settings)
    if problems:
        if as_json:
            print_json({"ok": False, "problems": problems, "settings": sources})
        else:
            console.print(f"[bold red]{len(problems)} problem(s) in the project[/]")
            for p in problems:
                console.print(f"  • {p}", highlight=False)
        raise typer.Exit(78)  # EX_CONFIG, as a settings mistake
    checks.extend(project_check)
    if as_json:
        print_json({"ok": True, "settings": sources, "checks": checks})
        return
    print_table(
        "settings", ["setting", "value", "from"], [(s.field, s.value, s.source) for s in sources]
    )
    for c in checks:
        console.print(f"[green]✓[/] {c}", highlight=False)


@app.command()
def server(
    host: Annotated[
        str | None, typer.Option("--host", help="Interface (default from settings: 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Port (default from settings: 5000).")
    ] = None,
) -> None:
    """Start the control-plane server (REST /api/v1, MLflow /api/2.0/mlflow, OpenAPI /docs).

    Example: bascule server --port 5000   # then MLFLOW_TRACKING_URI=http://127.0.0.1:5000
    """

    def go() -> None:
        import uvicorn

        from bascule.cli.retrain import project_dir
        from bascule.http.control.app import create_app

        services = get_services()
        settings = services.settings
        uvicorn.run(
            create_app(services, project_dir=project_dir()),
            host=host or settings.server.host,
            port=port or settings.server.port,
            log_level="warning",
            access_log=False,
        )

    run_guarded(go)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to the metadata DB (also done on first use).

    Example: BASCULE_DATABASE_URL=postgresql://postgres@127.0.0.1/test bascule db upgrade
    """

    def go() -> None:
        services = get_services()
        services.db.upgrade()
        console.print(f"metadata DB {services.db.safe_url} is at the newest schema")

    run_guarded(go)


@app.command()
def demo(
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed; the same seed gives the same story.")
    ] = 7,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home", help="Where the demo keeps its DB and artifacts (default: settings' home)."
        ),
    ] = None,
    days: Annotated[
        int, typer.Option("--days", min=16, max=60, help="Days of traffic to replay.")
    ] = 21,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the closing figures as JSON on stdout.")
    ] = False,
) -> None:
    """The whole loop as a story: a bank's card fraud model trained, served over HTTP, watched,
    retrained when a holiday rush drifts the data, gated on business cost, rolled out and
    promoted, day by day; ends with the figures and an HTML report.

    Example: bascule demo --seed 7
    """

    def go() -> None:
        from bascule.cli.process import pin_math_threads

        # The demo shares 2 cores between its server, monitoring and training: OpenMP pools
        # spinning on every core (sklearn's trees) starved the rest (monitoring 3x slower).
        pin_math_threads()
        from bascule.cli.demo import run_story

        settings = get_settings()
        if home is not None:
            settings = settings.model_copy(update={"home": home})
        run_story(settings, seed=seed, as_json=as_json, days=days)

    run_guarded(go)


def main() -> None:
    """Entry point of the ``bascule`` script."""
    app()


if __name__ == "__main__":
    main()
