"""``bascule demo``: wire the real components on embedded defaults and play the story.

Nothing is started by hand: the inference server runs in a thread of this process on a
free loopback port, the retraining automation and the rollout supervisor are driven by
the replay (synchronously, so ``--seed`` gives the same story), and everything is written
where the CLI reads it afterwards (``bascule models history fraud``, ``bascule runs list``,
``bascule alerts list``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from bascule.cli.demo.scenario import MODEL, Scenario, demo_settings
from bascule.cli.output import console, print_json
from bascule.core.errors import ConfigError

if TYPE_CHECKING:
    from bascule.cli.demo.figures import Figures
    from bascule.core.settings import Settings
    from bascule.serving.dataplane import DataPlane

__all__ = ["run_story"]


def _describe_routing(dataplane: DataPlane, champion: int) -> str:
    version, policy, percent = dataplane.routing_of(MODEL)
    if version is None or not policy:
        return f"v{champion}"
    if policy == "canary":
        return f"v{champion} · v{version} canary {percent:.0f}%"
    return f"v{champion} · v{version} {policy}"


def _write_project_file(settings: Settings, root: Path) -> Path:
    """The settings the demo ran with, as a ``bascule.yaml`` a user could start from."""
    data: dict[str, Any] = {
        "project": settings.project.model_dump(mode="json") if settings.project else None,
        "monitoring": settings.monitoring.model_dump(mode="json"),
        "serving": {"refs": list(settings.serving.refs)},
    }
    path = root / "bascule.yaml"
    root.mkdir(parents=True, exist_ok=True)
    header = "# The settings bascule demo ran with (its project, monitoring and serving).\n"
    path.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def run_story(base: Settings, *, seed: int, as_json: bool = False, days: int = 21) -> Figures:
    """Play the story on ``base``'s home; print the timeline and figures; write the report.

    Raises:
        ConflictError: the home already holds a ``fraud`` model from an earlier run.
        BasculeError: a component failed (its named error).
    """
    import httpx
    from prometheus_client import CollectorRegistry

    from bascule.cli.demo.figures import (
        counterfactual_decisions,
        daily_costs,
        summarise,
        version_figures,
    )
    from bascule.cli.demo.report import write_report
    from bascule.cli.demo.server import BackgroundServer
    from bascule.cli.demo.story import Story
    from bascule.cli.demo.timeline import Timeline
    from bascule.cli.demo.traffic import Replayer
    from bascule.demo.clock import ReplayClock
    from bascule.demo.world import Bank
    from bascule.http.inference.app import create_app
    from bascule.http.inference.metrics import InferenceMetrics
    from bascule.pipelines.automation import RetrainAutomation
    from bascule.pipelines.retrain import cost_matrix
    from bascule.pipelines.supervision import RolloutSupervisor
    from bascule.pipelines.triggers import run_inline
    from bascule.serving.assembly import build_dataplane
    from bascule.wiring import build_retrainer, build_services

    t0 = time.perf_counter()
    scenario = Scenario(seed=seed, days=days)
    settings = demo_settings(base, scenario)
    project = settings.project
    if project is None:  # demo_settings always sets it
        raise ConfigError("the demo's settings have no project section")
    root = settings.home.resolve() / "demo"
    clock = ReplayClock(Bank(seed=seed).midnight(0))
    services = build_services(settings, clock=clock)
    costs = cost_matrix(settings.monitoring.models[MODEL].cost)
    if costs is None:  # demo_settings always sets it
        raise ConfigError(f"the demo's settings have no cost matrix for {MODEL!r}")
    out = console if not as_json else console.__class__(stderr=True)
    try:
        with Timeline(out, currency=costs.currency) as timeline:
            story = Story(services, scenario, clock, root, costs, on_step=timeline.step)
            story.check_fresh()
            project_file = _write_project_file(settings, root)
            story.prepare()
            automation = RetrainAutomation(
                MODEL,
                project.retraining,
                retrain=build_retrainer(services, base_dir=root),
                registry=services.registry,
                monitoring=services.monitoring,
                clock=clock,
                spawn=run_inline,
            )
            first = story.train_first(automation)
            supervisor = RolloutSupervisor.from_services(
                services, min_labelled_rows=500, models=[MODEL]
            )
            metrics = InferenceMetrics(CollectorRegistry())
            dataplane = build_dataplane(
                services.registry,
                services.artifacts,
                settings.serving,
                clock=clock,
                observer=metrics,
                features=lambda: services.features,
            )
            app = create_app(dataplane, settings.serving, metrics=metrics)
            timeline.step("starting the inference server (V2 REST, 127.0.0.1)")
            with (
                BackgroundServer(app) as server,
                httpx.Client(base_url=server.url, timeout=120) as client,
            ):
                _wait_ready(client)
                replayer = Replayer(client, MODEL, batch_rows=scenario.batch_rows)

                def sync() -> None:
                    server.call(dataplane.sync)

                def routing() -> str:
                    champion = services.registry.resolve(f"{MODEL}@champion").version
                    return _describe_routing(dataplane, champion)

                for day in range(1, scenario.days + 1):
                    record = story.play_day(day, replayer, automation, supervisor, sync, routing)
                    timeline.day(record)
                timeline.step("the counterfactual: v1 on the same logged inputs")
                counterfactual = counterfactual_decisions(story, first)
            automation.close()
            daily = daily_costs(story, costs, counterfactual)
            history = services.registry.history(MODEL)
            figures = summarise(story, daily, currency=costs.currency)
            figures = dataclasses.replace(
                figures, versions=version_figures(story, costs, project.price_per_core_hour)
            )
            timeline.step("writing the report")
            report = write_report(
                root / "report.html",
                story,
                daily,
                figures,
                history,
                services.monitoring.alerts(MODEL),
            )
    finally:
        services.close()
    elapsed = time.perf_counter() - t0
    if as_json:
        print_json(
            {
                **figures.to_dict(),
                "report": str(report),
                "project_file": str(project_file),
                "seconds": round(elapsed, 1),
                "timings_s": {k: round(v, 2) for k, v in story.timings.items()},
                "daily": daily.to_dict(orient="records"),
            }
        )
    else:
        _print_figures(figures, report, project_file, elapsed)
    return figures


def _wait_ready(client: Any, timeout_s: float = 60.0) -> None:
    from bascule.core.errors import NotReadyError

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/v2/health/ready").status_code == 200:
            return
        time.sleep(0.05)
    raise NotReadyError(f"the demo's inference server was not ready within {timeout_s:.0f} s")


def _print_figures(f: Figures, report: Path, project_file: Path, elapsed: float) -> None:
    def money(value: float | None) -> str:
        return "—" if value is None or value != value else f"{value:,.0f} {f.currency}"

    def after(day: int | None) -> str:
        return "never" if day is None else f"{day - f.shift_day} days (day {day})"

    console.print()
    console.print("[bold]What the loop did[/]")
    console.print(f"  holiday rush (drift) began on day {f.shift_day}")
    console.print(f"  drift alert:      {after(f.drift_alert_day)} after onset")
    console.print(f"  cost alert:       {after(f.cost_alert_day)} after onset")
    console.print(f"  new champion:     {after(f.promotion_day)} after onset")
    console.print("[bold]Business cost per 1,000 transactions[/]")
    console.print(f"  before the shift:            {money(f.before)}")
    console.print(f"  during (before the takeover): {money(f.during)}   had we kept v1: "
                  f"{money(f.v1_during)}")  # fmt: skip
    console.print(f"  after the new champion:      {money(f.after)}   had we kept v1: "
                  f"{money(f.v1_after)}")  # fmt: skip
    for v in f.versions:
        cpu = v["cpu_us_per_prediction"]
        compute = v["compute_cost_per_1000"]
        console.print(
            f"  v{v['version']}: business {money(v['business_cost_per_1000'])} per 1,000 on the "
            f"{v['answered']:,} transactions it answered; serving "
            + ("not measured" if cpu is None else f"{cpu:.0f} µs CPU per prediction")
            + ("" if compute is None else f" = {compute:.2g} {f.currency} per 1,000 (compute)")
        )
    if f.recovered is not None:
        console.print(
            f"  the loop recovered [bold]{f.recovered:.0%}[/] of the extra cost the shift "
            "caused (v1 after the takeover minus v1 before the shift)"
        )
    console.print(f"\n[green]done in {elapsed:.0f} s.[/] Report: [bold]{report}[/]")
    console.print(f"Project settings it ran with: {project_file}")
    console.print(
        "Next: [bold]bascule models history fraud[/], [bold]bascule runs list[/], "
        "[bold]bascule alerts list[/]"
    )
