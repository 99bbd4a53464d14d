"""``bascule features``: the feature store from the terminal (definitions in ``bascule.yaml``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from bascule.cli.context import get_services
from bascule.cli.errors import run_guarded
from bascule.cli.output import console, fmt_ms, print_json, print_table

features_app = typer.Typer(
    help="Feature store: apply definitions, inspect them, materialise, look values up.",
    no_args_is_help=True,
)


def _when(value: str | None, option: str) -> datetime | None:
    from bascule.core.errors import InvalidInputError

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError.for_field(
            option, value, "an ISO 8601 time like 2026-01-31 or 2026-01-31T12:00:00Z"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _summary(kind: str, spec: dict[str, Any]) -> str:
    if kind == "entity":
        return "keys: " + ", ".join(spec.get("join_keys", []))
    if kind == "view":
        src = spec.get("source", {})
        where = src.get("path") or "SQL query"
        ttl = spec.get("ttl")
        return f"{len(spec.get('features', {}))} feature(s) from {where}; ttl {ttl or 'none'}"
    if kind == "on_demand_view":
        return f"{len(spec.get('features', {}))} feature(s) by {spec.get('function')}"
    return ", ".join(spec.get("features", []))


_LABELS = {
    "entity": "entity",
    "view": "feature view",
    "on_demand_view": "on-demand view",
    "service": "feature service",
}


@features_app.command("apply")
def apply(
    no_prune: Annotated[
        bool,
        typer.Option(
            "--no-prune",
            help="Keep registered definitions that bascule.yaml no longer declares.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the changes as JSON.")] = False,
) -> None:
    """Register the definitions of bascule.yaml's ``features:`` section (versioned).

    Sources are checked first: a missing column or a type that differs from the definition
    stops the apply, and nothing is written. Like ``feast apply``, definitions registered
    before that the file no longer declares are removed in the same transaction (listed as
    ``removed``; a removed view's rows leave the online store); --no-prune keeps them. A
    removal that would break a definition which stays is refused.

    Example: bascule features apply
    """

    def go() -> None:
        fs = get_services().features
        declared = fs.configured_definitions()
        undeclared = fs.undeclared(declared)
        if not declared and undeclared:
            # An empty or missing features: section is far likelier a wrong folder than a
            # wish to remove everything.
            console.print(
                f"bascule.yaml declares no feature definitions; the {len(undeclared)} "
                "registered definition(s) are kept",
                highlight=False,
            )
            undeclared = []
        prune = [] if no_prune else undeclared
        changes = fs.apply(declared, objects_to_delete=prune, partial=not prune)
        if as_json:
            print_json(changes)
            return
        print_table(
            f"{len(changes)} definition(s)",
            ["kind", "name", "version", "status"],
            [(c.kind, c.name, f"v{c.version}", c.status) for c in changes],
        )
        if prune:
            names = ", ".join(
                f"{_LABELS[c.kind]} {c.name!r}" for c in changes if c.status == "removed"
            )
            console.print(
                f"removed {len(prune)} definition(s) no longer in bascule.yaml: {names}",
                highlight=False,
            )
        elif no_prune and undeclared:
            names = ", ".join(f"{o.name!r}" for o in undeclared)
            console.print(
                f"kept {len(undeclared)} registered definition(s) that bascule.yaml no longer "
                f"declares (--no-prune): {names}",
                highlight=False,
            )

    run_guarded(go)


@features_app.command("list")
def list_definitions(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List registered entities, feature views, on-demand views and services.

    Example: bascule features list --json
    """

    def go() -> None:
        defs = get_services().features.definitions()
        if as_json:
            print_json(defs)
            return
        print_table(
            f"{len(defs)} definition(s)",
            ["kind", "name", "version", "what", "applied (UTC)", "by"],
            [
                (
                    d.kind,
                    d.name,
                    f"v{d.version}",
                    _summary(d.kind, d.spec),
                    fmt_ms(d.created_at),
                    d.created_by,
                )
                for d in defs
            ],
        )

    run_guarded(go)


@features_app.command("show")
def show(
    name: Annotated[
        str, typer.Argument(help="Name of an entity, view, on-demand view or service.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a definition: its latest spec, every version (a removal too) and, for a view, its
    materialisation.

    Example: bascule features show customer_stats
    """

    def go() -> None:
        import json

        info = get_services().features.describe(name)
        if as_json:
            print_json(info)
            return
        versions = info["versions"]
        latest = versions[-1]
        if info["removed"]:
            console.print(
                f"[bold]{name}[/] ({info['kind']}) was removed on {fmt_ms(latest.created_at)} "
                f"UTC by {latest.created_by}; its last version was v{latest.version - 1}",
                highlight=False,
            )
        else:
            console.print(f"[bold]{name}[/] ({info['kind']}) v{latest.version}", highlight=False)
            console.print(json.dumps(latest.spec, indent=2), highlight=False, markup=False)
        print_table(
            "versions",
            ["version", "applied (UTC)", "by", "sha256"],
            [
                (
                    f"v{v.version}",
                    fmt_ms(v.created_at),
                    v.created_by,
                    "(removed)" if v.removed else v.fingerprint[:16],
                )
                for v in versions
            ],
        )
        mark = info.get("watermark")
        if info["kind"] == "view" and not info["removed"]:
            if mark is None:
                console.print("not materialised yet")
            else:
                console.print(
                    f"materialised until {fmt_ms(mark.materialized_until)} UTC into "
                    f"{mark.target} (v{mark.view_version}, {mark.rows_written} rows last run)",
                    highlight=False,
                )

    run_guarded(go)


@features_app.command("materialize")
def materialize(
    start: Annotated[
        str | None, typer.Option("--start", help="Window start (ISO time); omit for incremental.")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="Window end (ISO time); default now.")
    ] = None,
    views: Annotated[
        list[str] | None, typer.Option("--view", "-v", help="Only this view (repeatable).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Write the latest feature values per entity to the online store, in bulk.

    Without --start it continues from where each view stopped (incremental). Running it again
    is harmless; an interrupted run resumes after the last batch written.

    Example: bascule features materialize --start 2026-01-01 --end 2026-02-01
    """

    def go() -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        fs = get_services().features
        t_start = _when(start, "--start")
        t_end = _when(end, "--end") or datetime.now(UTC)
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            disable=as_json,
            console=console,
        )
        tasks: dict[str, Any] = {}

        def report(view: str, done: int, total: int) -> None:
            if view not in tasks:
                tasks[view] = progress.add_task(view, total=total)
            progress.update(tasks[view], completed=done, total=total)

        with progress:
            if t_start is None:
                results = fs.materialize_incremental(t_end, views=views, progress=report)
            else:
                results = fs.materialize(t_start, t_end, views=views, progress=report)
        if as_json:
            print_json(results)
            return
        if not results:
            console.print("every view is up to date")
        for r in results:
            note = " (resumed)" if r.resumed else ""
            console.print(
                f"{r.view} v{r.version}: {r.rows} entities, {r.start:%Y-%m-%d %H:%M} → "
                f"{r.end:%Y-%m-%d %H:%M} UTC, {r.seconds:.2f}s{note}",
                highlight=False,
            )

    run_guarded(go)


@features_app.command("get")
def get(
    features: Annotated[
        list[str], typer.Argument(help="view:feature refs, whole views, or one service name.")
    ],
    entity: Annotated[
        list[str], typer.Option("--entity", "-e", help="Join key and value, e.g. customer_id=42.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Look features up in the online store for one entity (values, status, event time).

    Example: bascule features get customer_stats:spend_7d -e customer_id=42
    """

    def go() -> None:
        from bascule.core.errors import InvalidInputError

        row: dict[str, Any] = {}
        for item in entity:
            key, sep, value = item.partition("=")
            if not sep:
                raise InvalidInputError.for_field("--entity", item, "KEY=VALUE")
            row[key] = int(value) if value.lstrip("-").isdigit() else value
        fs = get_services().features
        refs: Any = features[0] if len(features) == 1 and ":" not in features[0] else features
        if isinstance(refs, str) and refs not in {s.name for s in fs.list_feature_services()}:
            refs = [refs]
        result = fs.get_online_features([row], refs)
        rows = [
            (name, fv.values[0], fv.statuses[0], fv.event_timestamps[0])
            for name, fv in result.features.items()
        ]
        if as_json:
            print_json(
                [
                    {"feature": n, "value": v, "status": s, "event_timestamp": t}
                    for n, v, s, t in rows
                ]
            )
            return
        print_table(str(row), ["feature", "value", "status", "event time (UTC)"], rows)

    run_guarded(go)
