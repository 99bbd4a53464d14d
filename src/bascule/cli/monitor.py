"""``bascule feedback``, ``bascule monitor`` and ``bascule alerts``: monitoring from the terminal.

Drift is a result, not an error: ``bascule monitor run`` exits 0 whatever it finds; only a
bad argument, an unknown model or a storage failure give a non-zero exit code.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bascule.cli.context import get_services
from bascule.cli.errors import run_guarded
from bascule.cli.output import console, fmt_ms, print_json, print_table

if TYPE_CHECKING:
    from bascule.core.monitoring_records import MonitoringResult
    from bascule.monitoring.service import MonitorReport

__all__ = ["alerts_app", "feedback_app", "monitor_app"]

feedback_app = typer.Typer(
    help="Labels that arrive late, joined to predictions by request id.", no_args_is_help=True
)
monitor_app = typer.Typer(
    help="Drift, data quality, performance and business cost over prediction-log windows.",
    no_args_is_help=True,
)
alerts_app = typer.Typer(help="Alerts fired by monitoring rules.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _when(value: str | None, option: str) -> datetime | None:
    from bascule.core.errors import InvalidInputError

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError.for_field(
            option, value, "an ISO 8601 time like 2026-01-31 or 2026-01-31T12:00:00Z"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


@feedback_app.command("ingest")
def ingest(
    file: Annotated[
        Path,
        typer.Argument(help="Parquet file: request_id, label, [row, model, outcome, timestamp]."),
    ],
    as_json: JsonOption = False,
) -> None:
    """Store labels (and business outcomes such as an amount) joined to predictions by request id.

    Unknown request ids are counted and listed; invalid records are reported with their reason.
    Sending the same request id again updates its label.

    Example: bascule feedback ingest labels.parquet --json
    """

    def go() -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        from bascule.monitoring.feedback import read_feedback_file

        records = read_feedback_file(file)
        progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            console=Console(stderr=True), disable=as_json, transient=True,
        )  # fmt: skip
        with progress:
            task = progress.add_task("storing feedback", total=len(records))
            result = get_services().monitoring.ingest_feedback(
                records, progress=lambda n: progress.advance(task, n)
            )
        if as_json:
            print_json(result.to_dict())
            return
        console.print(
            f"{result.received} record(s): [green]{result.accepted} new[/], "
            f"{result.updated} updated, [yellow]{result.unknown} unknown request id(s)[/], "
            f"[red]{result.invalid} invalid[/] (lookback {result.lookback})"
        )
        if result.unknown_request_ids:
            shown = ", ".join(result.unknown_request_ids)
            console.print(f"unknown request ids (first {len(result.unknown_request_ids)}): {shown}")
        for reason in result.invalid_reasons:
            console.print(f"  • {reason}", highlight=False)

    run_guarded(go)


def _window_rows(results: list[MonitoringResult]) -> list[tuple[Any, ...]]:
    by_window: dict[tuple[int, int], dict[str, Any]] = defaultdict(
        lambda: {"drifted": [], "findings": 0}
    )
    for r in results:
        w = by_window[(r.window_start, r.window_end)]
        if r.metric == "feature_drift" and r.status == "alert":
            w["drifted"].append(r.feature)
        elif r.status == "finding":
            w["findings"] += 1
        elif r.segment is None and r.metric in (
            "rows", "labelled_rows", "accuracy", "estimated_accuracy", "mae", "business_cost",
            "cost_per_1000",
        ):  # fmt: skip
            w[r.metric] = r.value
    return [
        (
            f"{fmt_ms(a)} → {fmt_ms(b)}",
            _num(w.get("rows"), 9),
            _num(w.get("labelled_rows"), 9),
            ", ".join(w["drifted"]) or "-",
            _num(w.get("accuracy") or w.get("mae")),
            _num(w.get("estimated_accuracy")),
            _num(w.get("business_cost"), 6),
            _num(w.get("cost_per_1000"), 6),
            w["findings"],
        )
        for (a, b), w in sorted(by_window.items())
    ]


def _print_report(report: MonitorReport) -> None:
    run = report.run
    console.print(
        f"run {run.id} of [bold]{run.model}[/] (versions {run.versions or '-'}): "
        f"{run.windows} window(s) {fmt_ms(run.window_start)} → {fmt_ms(run.window_end)} UTC, "
        f"{run.rows} row(s), {run.labelled_rows} labelled; status "
        f"[bold]{run.summary.get('status', '-')}[/]",
        highlight=False,
    )
    head = ["window (UTC)", "rows", "labelled", "drifted features", "accuracy | mae"]
    print_table(
        "per window",
        [*head, "estimated acc.", "business cost", "cost / 1000", "findings"],
        _window_rows(report.results),
    )
    last = max((r.window_end for r in report.results), default=0)
    drift = [
        r
        for r in report.results
        if r.metric in ("feature_drift", "prediction_drift") and r.window_end == last
    ]
    if drift:
        print_table(
            "drift, latest window",
            ["column", "method", "effect size", "threshold", "p-value", "drifted"],
            [
                (
                    r.feature,
                    r.details.get("method") or "not tested",
                    _num(r.value),
                    _num(r.threshold, 3),
                    _num(r.details.get("p_value"), 3),
                    "yes" if r.status == "alert" else "no",
                )
                for r in drift
            ],
        )
    findings = {(r.metric, r.feature): r for r in report.results if r.status == "finding"}
    if findings:
        print_table(
            "findings",
            ["severity", "code", "column", "message"],
            [
                (r.details.get("severity"), code, col or "", r.details.get("message"))
                for (code, col), r in sorted(findings.items(), key=lambda kv: str(kv[0]))
            ],
        )
    for event in report.events:
        colour = "red" if event.status == "firing" else "green"
        console.print(f"[{colour}]alert {event.status}[/]: {event.message}", highlight=False)


@monitor_app.command("run")
def run(
    model: Annotated[str, typer.Argument(help="Model name.")],
    window: Annotated[
        str | None, typer.Option("--window", "-w", help="Window length (default from settings).")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="Start (ISO 8601, UTC).")] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="End (ISO 8601; default now).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Monitor a model over prediction-log windows and store the results (exit 0 even on drift).

    Without --since, one window ending now; with --since/--until, the range cut into windows.

    Example: bascule monitor run fraud --since 2026-01-01 --until 2026-01-02 --window 1h
    """

    def go() -> None:
        report = get_services().monitoring.run(
            model, window=window, since=_when(since, "--since"), until=_when(until, "--until"),
            trigger="cli",
        )  # fmt: skip
        if as_json:
            print_json(report.to_dict())
        else:
            _print_report(report)

    run_guarded(go)


@monitor_app.command("report")
def report(
    model: Annotated[str, typer.Argument(help="Model name.")],
    html: Annotated[Path, typer.Option("--html", help="Where to write the HTML file.")],
    since: Annotated[str | None, typer.Option("--since", help="From (ISO 8601, UTC).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="To (ISO 8601, UTC).")] = None,
) -> None:
    """Write a self-contained HTML report of the stored monitoring runs.

    Drift table, a reference-vs-current plot per drifted column, quality and performance
    over time, business cost, alerts and findings; no script, nothing fetched.

    Example: bascule monitor report fraud --html fraud.html --since 2026-01-01
    """

    def go() -> None:
        path = get_services().monitoring.write_report(
            model, html, since=_when(since, "--since"), until=_when(until, "--until")
        )
        console.print(f"wrote {path}")

    run_guarded(go)


@alerts_app.command("list")
def list_alerts(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")] = None,
    state: Annotated[
        str | None, typer.Option("--state", help="firing or resolved (default: both).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Most alerts shown.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """List stored alerts, newest first.

    Example: bascule alerts list --model fraud --state firing --json
    """

    def go() -> None:
        from bascule.core.errors import InvalidInputError

        if state not in (None, "firing", "resolved"):
            raise InvalidInputError.for_field("--state", state, "'firing' or 'resolved'")
        alerts = get_services().monitoring.alerts(model, state=state, limit=limit)
        if as_json:
            print_json(alerts)
            return
        print_table(
            f"{len(alerts)} alert(s)",
            [
                "id",
                "state",
                "severity",
                "model",
                "rule",
                "value",
                "fired (UTC)",
                "resolved",
                "message",
            ],
            [
                (
                    a.id,
                    a.state,
                    a.severity,
                    a.model,
                    a.rule,
                    _num(a.value),
                    fmt_ms(a.fired_at),
                    fmt_ms(a.resolved_at),
                    a.message,
                )
                for a in alerts
            ],
        )

    run_guarded(go)
