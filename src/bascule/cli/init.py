"""``bascule init``: a project folder that retrains, validates and serves right away.

Writes a commented ``bascule.yaml`` (every section explained), a starter ``train.py`` with
``train(df, params)``, and a small generated data file (card transactions with a fraud
label), so ``bascule validate`` and ``bascule retrain MODEL`` work at once. Existing files
are never overwritten without ``--force``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bascule.cli.errors import run_guarded
from bascule.cli.output import console

__all__ = ["PROJECT_FILES", "init", "write_project"]

CONFIG_FILE = "bascule.yaml"
TRAIN_FILE = "train.py"
DATA_FILE = "data/transactions.parquet"
PROJECT_FILES = (CONFIG_FILE, TRAIN_FILE, DATA_FILE)

_YAML = """\
# bascule.yaml: the project file of the model {model!r}.
#
#   bascule validate          check this file, the training code and the data
#   bascule retrain {model:<9} retrain: load, validate, split, train, choose the threshold,
#                             compare with the champion, gate, register
#   bascule models history {model}   every registration, gate decision and alias move
#
# Any setting can also come from the environment, which wins over this file:
#   BASCULE_PROJECT__GATE__MARGIN=0.05 bascule retrain {model}
# Relative paths are taken from the folder of this file.

project:
  # The registered model this project trains.
  model: {model}

  training:
    # module:function called as train(df, params). df holds the training rows (the
    # features and the label); it returns a fitted binary classifier with predict_proba
    # that bascule converts to ONNX (scikit-learn, LightGBM, XGBoost).
    entrypoint: train:train
    # Folders searched first for the module; a module found here is re-imported on
    # every retraining, so edits are picked up at once.
    python_path: ["."]
    # Handed to the function as `params`; bascule adds label, features and categorical.
    params:
      max_iter: 60
      learning_rate: 0.1
      min_samples_leaf: 20

  data:
    # Parquet files: a path or a glob. New files dropped here join the next retraining.
    source: data/*.parquet
    # ... or a DuckDB query over them, instead of `source`:
    # sql: SELECT * FROM read_parquet('data/*.parquet') WHERE amount > 0
    label: is_fraud          # what the model predicts; rows without it are left out
    timestamp: timestamp     # when each row happened: every split is by time
    features: [amount, hour, distance_km, customer_avg_amount, amount_ratio, tx_last_24h,
               account_age_days, merchant_category, channel]
    categorical: [merchant_category, channel]
    # Holdout: the newest 7 days of labelled rows (or, without holdout_days, the newest
    # holdout_fraction of them), and only rows newer than the champion's training data,
    # so the challenger and the champion are compared on rows neither has seen.
    holdout_days: 7
    # holdout_fraction: 0.2
    # The newest share of the older rows, on which the decision threshold that costs
    # least is chosen (it is stored with the version and served with it).
    validation_fraction: 0.2

  retraining:
    # Alert rules (monitoring.models.{model}.alerts below) that start a retraining.
    on_alerts: [drift]
    # Cron schedule in UTC (minute hour day-of-month month day-of-week); unset: none.
    schedule: "0 3 * * 1"
    # Retrain once this many newly labelled rows have arrived; unset: off.
    min_new_labels: 5000
    # One retraining of this model at a time: later triggers are coalesced, and a
    # second process is refused.
    max_concurrent: 1

  gate:
    # The challenger is compared with the champion on the same holdout, on the business
    # cost of the cost matrix below first (net cost per 1,000 predictions)...
    metric: business_cost
    # ... which it must beat by this much (relative: 0.02 is 2 %)...
    margin: 0.02
    # ... without losing more than this on any guard metric (in the metric's units).
    guard_metrics:
      roc_auc: 0.01
    # With fewer labelled holdout rows than this, the gate fails: too little evidence.
    min_holdout_rows: 200

  rollout:
    # A challenger that passed the gate answers in shadow first (a copy of each request;
    # clients get the champion's answer), then serves canary_percent % of requests;
    # after canary_requests it is promoted, or rolled back when its error rate or
    # business cost rose more than allowed.
    shadow_requests: 1000
    canary_percent: 10
    canary_requests: 2000
    max_error_rate_increase: 0.01   # absolute: one point of error rate
    max_cost_increase: 0.05         # relative: 5 % more cost per 1,000 predictions

  # Price of one CPU core for one hour (in the currency of the cost matrix): serving CPU
  # seconds per prediction times this is the compute cost per 1,000 predictions.
  price_per_core_hour: 0.05

monitoring:
  window: 1h
  models:
    {model}:
      # The business cost matrix: the gate, the decision threshold and the monitoring KPI
      # all use it. A false alarm costs a review; a missed fraud costs its amount.
      cost:
        fp_cost: 5
        fn_cost_column: amount
        currency: EUR
      # Alert rules (project.retraining.on_alerts names them).
      alerts:
        - {{name: drift, metric: drifted_features, comparison: ">=", threshold: 2,
           for_windows: 2}}
        - {{name: cost, metric: cost_per_1000, comparison: ">", threshold: 3000,
           for_windows: 3, severity: critical}}

serving:
  # `bascule serve` with no argument serves these.
  refs: ["{model}@champion"]
  port: 8080
"""

_TRAIN = '''\
"""Training entry point of this bascule project (project.training.entrypoint: train:train).

``bascule retrain`` calls ``train(df, params)`` with the training rows (the feature columns
and the label column) and registers what it returns: a fitted binary classifier, converted
to ONNX. ``params`` holds ``project.training.params`` from bascule.yaml plus ``label``,
``features`` and ``categorical`` from ``project.data``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder


def train(df: pd.DataFrame, params: dict[str, Any]) -> Pipeline:
    """Fit a gradient-boosted fraud model on ``df``."""
    features = list(params["features"])
    categorical = list(params["categorical"])
    numeric = [f for f in features if f not in categorical]
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    prepare = ColumnTransformer(
        [("numeric", "passthrough", numeric), ("categorical", encoder, categorical)]
    )
    model = HistGradientBoostingClassifier(
        max_iter=int(params.get("max_iter", 60)),
        learning_rate=float(params.get("learning_rate", 0.1)),
        min_samples_leaf=int(params.get("min_samples_leaf", 20)),
        early_stopping=False,
        random_state=int(params.get("random_state", 0)),
    )
    pipeline = Pipeline([("prepare", prepare), ("model", model)])
    return pipeline.fit(df[features], df[params["label"]])
'''


def write_project(
    folder: Path, *, model: str = "fraud", force: bool = False, rows: int = 8000, seed: int = 7
) -> list[Path]:
    """Write ``bascule.yaml``, ``train.py`` and ``data/transactions.parquet`` into ``folder``.

    Args:
        folder: The project folder (created when missing).
        model: The model name.
        force: Overwrite existing files.
        rows: Rows of generated transactions (28 days of them).
        seed: Seed of the generated data.

    Returns:
        The files written.

    Raises:
        InvalidInputError: a bad model name or row count.
        ConflictError: a file exists and ``force`` is off (the message lists them).
    """
    from bascule.core.errors import ConflictError, InvalidInputError
    from bascule.core.refs import check_name
    from bascule.demo import generate_transactions

    check_name(model, field="model name")
    if rows < 100:
        raise InvalidInputError.for_field("rows", rows, "at least 100")
    paths = [folder / name for name in PROJECT_FILES]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise ConflictError(
            f"not overwriting {existing}; use --force to replace them", existing=existing
        )
    (folder / "data").mkdir(parents=True, exist_ok=True)
    config, train_file, data_file = paths
    config.write_text(_YAML.format(model=model), encoding="utf-8")
    train_file.write_text(_TRAIN, encoding="utf-8")
    generate_transactions(rows, seed=seed, days=28).to_parquet(data_file, index=False)
    return paths


def init(
    folder: Annotated[Path, typer.Argument(help="Project folder (created if missing).")] = Path(),
    model: Annotated[str, typer.Option("--model", "-m", help="Model name.")] = "fraud",
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    rows: Annotated[int, typer.Option("--rows", help="Rows of generated data.")] = 8000,
) -> None:
    """Start a project: a commented bascule.yaml, a starter train.py and a small data file.

    Example: bascule init fraud-project --model fraud && cd fraud-project && bascule retrain fraud
    """

    def go() -> None:
        written = write_project(folder, model=model, force=force, rows=rows)
        for path in written:
            console.print(f"[green]wrote[/] {path}", highlight=False)
        where = "" if folder.resolve() == Path.cwd().resolve() else f"cd {folder} && "
        console.print(
            f"Next: [bold]{where}bascule validate[/], then [bold]bascule retrain {model}[/]",
            highlight=False,
        )

    run_guarded(go)
