"""``bascule demo``: the spine of the loop on embedded defaults, shown step by step.

Generated card transactions → a tracked training run → ONNX registration with a
parity check → alias ``champion`` → the model loaded back through the registry → predictions.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bascule.cli.output import console, print_table

if TYPE_CHECKING:
    import pandas as pd

    from bascule.core.settings import Settings

__all__ = ["run_demo"]

REVIEW_COST = 5.0  # cost of a false alarm: an analyst reviews the transaction


def business_cost(y: Any, flagged: Any, amount: Any) -> float:
    """Money lost per 1,000 transactions: missed fraud costs its amount, a false alarm a review."""
    import numpy as np

    y = np.asarray(y)
    flagged = np.asarray(flagged)
    missed = (y == 1) & ~flagged
    false_alarm = (y == 0) & flagged
    caught = (y == 1) & flagged
    cost = np.asarray(amount)[missed].sum() + REVIEW_COST * (false_alarm.sum() + caught.sum())
    return float(1000 * cost / max(len(y), 1))


def best_threshold(y: Any, proba: Any, amount: Any) -> tuple[float, float]:
    """The decision threshold with the lowest business cost on these rows, and that cost."""
    import numpy as np

    grid = np.unique(np.quantile(proba, np.linspace(0.80, 0.9995, 200)))
    costs = [business_cost(y, proba >= t, amount) for t in grid]
    i = int(np.argmin(costs))
    return float(grid[i]), float(costs[i])


def _pipeline(seed: int) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from bascule.demo import CATEGORICAL, NUMERIC

    pre = ColumnTransformer(
        [
            ("num", "passthrough", NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL),
        ]
    )
    clf = HistGradientBoostingClassifier(
        max_iter=120, learning_rate=0.08, max_leaf_nodes=31, early_stopping=False, random_state=seed
    )
    return Pipeline([("prepare", pre), ("model", clf)])


def run_demo(settings: Settings, *, seed: int) -> None:
    """Run the demo against ``settings`` (its home holds the DB and artifacts)."""
    import numpy as np
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

    import bascule
    from bascule.demo import FEATURES, generate_transactions
    from bascule.sdk import configure

    t0 = time.perf_counter()
    services = configure(settings)
    console.print(
        Panel.fit(
            f"[bold]bascule demo[/] — seed {seed}\nmetadata DB: {services.db.safe_url}\n"
            f"artifacts:   {services.artifacts.root}",
            border_style="cyan",
        )
    )

    console.print("[bold]1. Data[/]: 30 days of generated card transactions")
    data = generate_transactions(60_000, seed=seed, days=30)
    cut = data["timestamp"].quantile(0.8)
    train, valid = data[data["timestamp"] < cut], data[data["timestamp"] >= cut]
    console.print(
        f"   {len(train):,} training rows, {len(valid):,} validation rows, "
        f"fraud rate {data['is_fraud'].mean():.2%}"
    )

    console.print("[bold]2. Train[/]: a scikit-learn Pipeline, tracked as a run")
    model = _pipeline(seed)
    with bascule.start_run(experiment="fraud", name=f"fraud-v1-seed{seed}") as run:
        run.log_params(
            {
                "model": "HistGradientBoostingClassifier",
                "max_iter": 120,
                "learning_rate": 0.08,
                "seed": seed,
            }
        )
        run.log_dataset(
            train[[*FEATURES, "is_fraud"]], name="transactions-train", source="generated"
        )
        with Progress(
            TextColumn("   fitting"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} trees"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("fit", total=120)
            model.fit(train[FEATURES], train["is_fraud"])
            prepared = model.named_steps["prepare"].transform(valid[FEATURES])
            for i, proba in enumerate(
                model.named_steps["model"].staged_predict_proba(prepared), start=1
            ):
                if i % 10 == 0 or i == 120:
                    run.log_metrics(
                        {"valid_log_loss": log_loss(valid["is_fraud"], proba[:, 1], labels=[0, 1])},
                        step=i,
                    )
                progress.update(task, completed=i)
        proba = model.predict_proba(valid[FEATURES])[:, 1]
        threshold, cost = best_threshold(valid["is_fraud"], proba, valid["amount"])
        metrics = {
            "roc_auc": float(roc_auc_score(valid["is_fraud"], proba)),
            "average_precision": float(average_precision_score(valid["is_fraud"], proba)),
            "threshold": threshold,
            "cost_per_1000": cost,
            "cost_per_1000_no_model": business_cost(
                valid["is_fraud"], np.zeros(len(valid), bool), valid["amount"]
            ),
        }
        run.log_metrics(metrics)
        console.print(
            f"   ROC AUC {metrics['roc_auc']:.3f}; business cost per 1,000 transactions "
            f"{cost:,.0f} with the model vs {metrics['cost_per_1000_no_model']:,.0f} without "
            f"(threshold {threshold:.3f})"
        )

        console.print(
            "[bold]3. Register[/]: convert to ONNX, prove parity on a sample, store as a version"
        )
        mv = bascule.register_model(
            "fraud",
            model,
            sample=valid[FEATURES].head(2000),
            run=run,
            description="fraud model trained by bascule demo",
        )
    console.print(
        f"   fraud v{mv.version} (sha256 {mv.digest[:12]}…, {mv.flavor} → ONNX, run {run.id[:8]})"
    )

    console.print("[bold]4. Promote[/]: alias champion → this version")
    event = bascule.set_alias(
        "fraud", "champion", mv.version, reason=f"demo (seed {seed}): first model"
    )
    prev = "(unset)" if event.previous_version is None else f"v{event.previous_version}"
    console.print(f"   fraud@champion: {prev} → v{mv.version}")

    console.print(
        "[bold]5. Serve from the registry[/]: load fraud@champion (onnxruntime) and score today"
    )
    predictor = bascule.load_model("fraud@champion")
    today = generate_transactions(
        500, seed=seed + 1000, start=data["timestamp"].max().to_pydatetime()
    )
    onnx_proba = predictor.predict_proba(today[FEATURES])[:, 1]
    sk_proba = model.predict_proba(today[FEATURES])[:, 1]
    agree = float(np.abs(onnx_proba - sk_proba).max())
    flagged = onnx_proba >= threshold
    _show_top(today, onnx_proba, threshold)
    console.print(
        f"   {int(flagged.sum())} of {len(today)} transactions flagged; ONNX vs scikit-learn max "
        f"difference {agree:.1e}"
    )
    console.print(
        f"\n[green]done in {time.perf_counter() - t0:.1f} s.[/] Next: [bold]bascule runs list[/], "
        "[bold]bascule models history fraud[/], [bold]bascule models show fraud@champion[/]"
    )


def _show_top(today: pd.DataFrame, proba: Any, threshold: float) -> None:
    import numpy as np

    order = np.argsort(-proba)[:5]
    print_table(
        "   riskiest transactions today",
        ["transaction", "amount", "merchant", "hour", "fraud score", "decision"],
        [
            (
                today["transaction_id"].iloc[i],
                f"{today['amount'].iloc[i]:.2f}",
                today["merchant_category"].iloc[i],
                today["hour"].iloc[i],
                f"{proba[i]:.3f}",
                "review" if proba[i] >= threshold else "approve",
            )
            for i in order
        ],
    )
