"""``bascule loadtest``: load a V2 inference server and print throughput, latency and errors."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from bascule.cli.errors import run_guarded
from bascule.cli.output import console, print_json

if TYPE_CHECKING:
    from bascule.loadgen import LoadResult, Progress

__all__ = ["loadtest"]

_PLAIN_EVERY_S = 2.0


def loadtest(
    url: Annotated[str, typer.Argument(help="Server base URL, e.g. http://127.0.0.1:8080.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model name.", show_default=False)],
    version: Annotated[
        str | None, typer.Option("--version", help="Model version (default: the server routes).")
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            min=1,
            max=10_000,
            help="Connections, each with one request in flight (default 16). With --rate: "
            "the most requests in flight (default 64).",
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            min=0.001,
            help="Open loop: schedule this many requests per second; latency counts from "
            "the scheduled time.",
        ),
    ] = None,
    arrivals: Annotated[
        Literal["poisson", "constant"],
        typer.Option("--arrivals", help="With --rate: Poisson or evenly spaced arrivals."),
    ] = "poisson",
    duration: Annotated[
        float, typer.Option("--duration", "-d", min=0.001, help="Measured seconds.")
    ] = 10.0,
    warmup: Annotated[
        float, typer.Option("--warmup", min=0, help="Seconds of load before measuring.")
    ] = 1.0,
    rows: Annotated[int, typer.Option("--rows", min=1, help="Rows per request.")] = 1,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            exists=True,
            dir_okay=False,
            help="Parquet file of rows to send (columns named after the inputs or the "
            "model's feature columns) instead of random values.",
        ),
    ] = None,
    requests: Annotated[
        int | None,
        typer.Option("--requests", "-n", min=1, help="Stop after this many measured requests."),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.001, help="Seconds before an answer times out.")
    ] = 30.0,
    binary: Annotated[
        bool,
        typer.Option(
            "--binary",
            help="Send tensors as raw bytes after a JSON header (the V2 binary tensor data "
            "extension; bascule and Triton speak it) and ask for binary outputs.",
        ),
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of random values and arrivals.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Send V2 infer requests built from the model's metadata and measure the answers.

    Prints requests/s, latency percentiles (p50, p90, p99, max), errors by status and the
    generator's own CPU use; exits 1 when no request succeeded.

    Example: bascule loadtest http://127.0.0.1:8080 --model fraud --concurrency 64 --duration 10
    """

    def go() -> None:
        from bascule.loadgen import LoadConfig, run_loadtest

        config = LoadConfig(
            url=url,
            model=model,
            version=version,
            concurrency=concurrency or (64 if rate is not None else 16),
            rate=rate,
            arrivals=arrivals,
            duration_s=duration,
            warmup_s=warmup,
            rows=rows,
            max_requests=requests,
            timeout_s=timeout,
            seed=seed,
            binary=binary,
        )
        with _ProgressLine() as progress:
            result = run_loadtest(config, data=data, on_progress=progress.update)
        if as_json:
            print_json(result.to_dict())
        else:
            _render(result)
        if result.ok == 0:
            Console(stderr=True).print(
                "[bold red]error[/]: no request succeeded"
                + (f" ({_first_error(result)})" if result.failed else ""),
                highlight=False,
            )
            raise typer.Exit(1)

    run_guarded(go)


class _ProgressLine:
    """A live line on stderr (redrawn on a terminal; a plain line every 2 s otherwise)."""

    def __init__(self) -> None:
        from rich.live import Live

        self._err = Console(stderr=True)
        self._live = (
            Live(console=self._err, transient=True, auto_refresh=False)
            if self._err.is_terminal
            else None
        )
        self._last_plain = 0.0

    def __enter__(self) -> _ProgressLine:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()

    def update(self, p: Progress) -> None:
        if p.measuring:
            done = min(p.elapsed_s - p.warmup_s, p.duration_s)
            phase = f"{done:5.1f}/{p.duration_s:g} s"
        else:
            phase = f"warm-up {p.elapsed_s:4.1f}/{p.warmup_s:g} s"
        p99 = f"{p.p99_s * 1e3:.2f} ms" if p.p99_s is not None else "-"
        line = (
            f"{phase}  {p.recent_rps:8.0f} req/s  answered {p.answered}  "
            f"failed {p.failed}  p99 {p99}"
        )
        if self._live is not None:
            self._live.update(line, refresh=True)
        elif time.monotonic() - self._last_plain >= _PLAIN_EVERY_S:
            self._last_plain = time.monotonic()
            self._err.print(line, highlight=False)


def _first_error(result: LoadResult) -> str:
    kind, count = max(result.errors.items(), key=lambda kv: kv[1])
    sample = result.error_samples.get(kind, "")
    return f"{count}x {kind}: {sample[:200]}" if sample else f"{count}x {kind}"


def _render(r: LoadResult) -> None:
    mode = (
        f"closed loop, {r.concurrency} connections"
        if r.mode == "closed"
        else f"open loop, {r.rate:g} req/s {r.arrivals} on up to {r.concurrency} connections"
    )
    console.print(
        f"[bold]{r.model}[/] at {r.url}: {mode}, {r.duration_s:.1f} s, "
        f"{r.rows_per_request} row{'s' if r.rows_per_request > 1 else ''}/request",
        highlight=False,
    )
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    lat = r.latency_ms
    table.add_row("requests", f"{r.requests:,} answered, {r.ok:,} ok, {r.failed:,} failed")
    table.add_row("throughput", f"{r.throughput_rps:,.1f} req/s ({r.rows_per_s:,.0f} rows/s)")
    table.add_row(
        "latency",
        f"p50 {lat['p50']:.3f} ms  p90 {lat['p90']:.3f} ms  p99 {lat['p99']:.3f} ms  "
        f"max {lat['max']:.3f} ms  (from {r.latency_from})",
    )
    if r.errors:
        table.add_row(
            "errors",
            "\n".join(
                f"{kind}: {n:,}"
                + (f"  ({r.error_samples[kind][:120]})" if kind in r.error_samples else "")
                for kind, n in r.errors.items()
            ),
        )
    else:
        table.add_row("errors", "none")
    if r.scheduled is not None:
        table.add_row("scheduled", f"{r.scheduled:,} ({r.unsent:,} never sent)")
    table.add_row(
        "load generator",
        f"{r.client_cpu_percent:.0f}% of a CPU, {r.client_cpu_per_request_us:.0f} µs/request",
    )
    console.print(table)
    for warning in r.warnings:
        console.print(f"[yellow]warning[/]: {warning}", highlight=False)
