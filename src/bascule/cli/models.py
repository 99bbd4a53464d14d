"""``bascule models``: the registry from the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bascule.cli.context import get_services
from bascule.cli.errors import run_guarded
from bascule.cli.output import console, fmt_ms, print_json, print_table

models_app = typer.Typer(
    help="Registered models, versions, aliases and history.", no_args_is_help=True
)


@models_app.command("list")
def list_models(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List registered models with their latest version and aliases.

    Example: bascule models list --json
    """

    def go() -> None:
        models = get_services().registry.list_models()
        if as_json:
            print_json(models)
            return
        print_table(
            f"{len(models)} model(s)",
            ["name", "latest version", "aliases", "created (UTC)"],
            [
                (
                    m.name,
                    m.latest_version,
                    ", ".join(f"{a}→v{v}" for a, v in m.aliases.items()),
                    fmt_ms(m.created_at),
                )
                for m in models
            ],
        )

    run_guarded(go)


@models_app.command("show")
def show_model(
    ref: Annotated[str, typer.Argument(help="NAME (all versions), NAME:VERSION or NAME@ALIAS.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a model's versions, or one version's signature, metrics and lineage.

    Example: bascule models show fraud@champion
    """

    def go() -> None:
        reg = get_services().registry
        if "@" in ref or ":" in ref:
            mv = reg.resolve(ref)
            if as_json:
                print_json(mv)
                return
            console.print(
                f"[bold]{mv.name}[/] v{mv.version}  aliases: {', '.join(mv.aliases) or '-'}"
            )
            console.print(f"flavor {mv.flavor}, task {mv.task}, sha256 {mv.digest}")
            console.print(
                f"run {mv.run_id or '-'}, data {mv.dataset_digest or '-'}, "
                f"git {mv.git_commit or '-'}"
            )
            console.print(f"registered {fmt_ms(mv.created_at)} by {mv.created_by}")
            sig = mv.signature
            print_table(
                "inputs",
                ["name", "datatype", "shape"],
                [(i["name"], i["datatype"], i["shape"]) for i in sig["inputs"]],
            )
            print_table(
                "outputs",
                ["name", "datatype", "shape"],
                [(o["name"], o["datatype"], o["shape"]) for o in sig["outputs"]],
            )
            if mv.metrics:
                print_table(
                    "metrics",
                    ["key", "value"],
                    [(k, f"{v:.6g}") for k, v in sorted(mv.metrics.items())],
                )
            return
        versions = reg.list_versions(ref)
        if as_json:
            print_json(versions)
            return
        print_table(
            f"{ref}: {len(versions)} version(s)",
            ["version", "aliases", "flavor", "task", "registered (UTC)", "by", "metrics"],
            [
                (
                    v.version,
                    ", ".join(v.aliases),
                    v.flavor,
                    v.task,
                    fmt_ms(v.created_at),
                    v.created_by,
                    ", ".join(f"{k}={x:.4g}" for k, x in sorted(v.metrics.items())[:4]),
                )
                for v in versions
            ],
        )

    run_guarded(go)


@models_app.command("register")
def register(
    name: Annotated[str, typer.Argument(help="Model name.")],
    onnx_file: Annotated[Path, typer.Argument(help="An ONNX model file.", exists=False)],
    sample: Annotated[
        Path, typer.Option("--sample", help="Parquet file of input rows (profile and smoke test).")
    ],
    description: Annotated[str, typer.Option("--description", help="Free text.")] = "",
    feature_service: Annotated[
        str | None,
        typer.Option(
            "--feature-service",
            help="Feature service the inputs come from: the server then looks them up from "
            "entity ids (see `bascule features list`).",
        ),
    ] = None,
    missing_features: Annotated[
        str | None,
        typer.Option(
            "--missing-features",
            help="With --feature-service: 'refuse' (default) a row whose features are not "
            "online, or 'null' to give the model missing values as in training.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the new version as JSON.")] = False,
) -> None:
    """Register an existing ONNX file as a new version (the sample proves it runs and feeds monitoring).

    Example: bascule models register fraud model.onnx --sample rows.parquet --feature-service fraud_features
    """  # noqa: E501 - typer's rich help keeps docstring line breaks; wrapping would change --help

    def go() -> None:
        mv = get_services().registry.register_onnx_file(
            name,
            onnx_file,
            sample=sample,
            description=description,
            feature_service=feature_service,
            missing_features=missing_features,
        )
        if as_json:
            print_json(mv)
        else:
            console.print(f"registered [bold]{mv.name}[/] v{mv.version} (sha256 {mv.digest[:16]}…)")
            if feature_service:
                keys = mv.tags.get("bascule.feature_service.entity_keys", "")
                console.print(
                    f"features from service [bold]{feature_service}[/]: requests may send only "
                    f"{keys or 'the entity keys'} (and request fields)"
                )

    run_guarded(go)


@models_app.command("alias")
def alias(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="Alias, e.g. champion.")],
    version: Annotated[int, typer.Argument(help="Version number to point at.")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why; kept in the audit log.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the audit event as JSON.")] = False,
) -> None:
    """Move an alias to a version, atomically; the move is audited.

    Example: bascule models alias fraud champion 3 --reason "beat v2 on business cost"
    """

    def go() -> None:
        ev = get_services().registry.set_alias(name, alias_name, version, reason=reason)
        if as_json:
            print_json(ev)
            return
        prev = f"v{ev.previous_version}" if ev.previous_version is not None else "(unset)"
        console.print(f"{name}@{alias_name}: {prev} → v{ev.version}")

    run_guarded(go)


@models_app.command("history")
def history(
    name: Annotated[str, typer.Argument(help="Model name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array of events.")] = False,
) -> None:
    """Every registration, alias move and decision for a model, oldest first.

    Example: bascule models history fraud --json
    """

    def go() -> None:
        events = get_services().registry.history(name)
        if as_json:
            print_json(events)
            return
        print_table(
            f"history of {name}",
            ["time (UTC)", "event", "version", "alias", "from", "actor", "reason"],
            [
                (
                    fmt_ms(e.at),
                    e.kind,
                    e.version,
                    e.alias,
                    None if e.previous_version is None else f"v{e.previous_version}",
                    e.actor,
                    e.reason,
                )
                for e in events
            ],
        )

    run_guarded(go)


@models_app.command("rollback")
def rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why; kept in the audit log.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the audit event as JSON.")] = False,
) -> None:
    """Move the champion alias back to the previous champion (found in the history); audited.

    Example: bascule models rollback fraud --reason "v3 blocks too many good customers"
    """

    def go() -> None:
        from bascule.pipelines.rollout import rollback as roll_back

        ev = roll_back(get_services().registry, name, reason=reason)
        if as_json:
            print_json(ev)
            return
        console.print(f"{name}@champion: v{ev.previous_version} → v{ev.version} (rolled back)")

    run_guarded(go)
