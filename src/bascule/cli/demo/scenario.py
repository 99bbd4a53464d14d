"""What the demo plays: the bank's calendar, the shift, and the project settings it runs with.

Everything the loop does is configured the way a user configures it in ``bascule.yaml``
(the demo writes the file it used next to its data): the project (training function,
data, retraining policy, gate, rollout), monitoring (daily windows, the cost matrix,
alert rules) and serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bascule.core.monitoring_settings import MonitoringSettings
from bascule.core.project_settings import ProjectSettings
from bascule.core.settings import Settings
from bascule.demo.features import FEATURE_SERVICE, model_features

__all__ = ["MODEL", "Scenario", "demo_settings"]

MODEL = "fraud"
DRIFT_RULE = "inputs_drifted"
COST_RULE = "fraud_cost_high"


@dataclass(frozen=True)
class Scenario:
    """The story's numbers.

    Attributes:
        seed: Everything random follows from it.
        customers: The bank's customers.
        per_day: Card transactions per day.
        history_days: Days before the replay (v1 is trained on them).
        days: Days replayed through the server.
        shift_day: First replayed day of the holiday rush (1-based).
        label_delay_days: Days until a transaction's fraud label is known.
        batch_rows: Transactions per inference request.
        step_hours: The replay's clock moves this many hours at a time.
        train_window_days: Retraining reads the newest this many days of labelled rows.
        cost_alert: Business cost per 1,000 transactions that raises the alert.
    """

    seed: int = 7
    customers: int = 4000
    per_day: int = 5000
    history_days: int = 21
    days: int = 21
    shift_day: int = 8
    label_delay_days: int = 1
    batch_rows: int = 50
    step_hours: int = 3
    train_window_days: int = 10
    cost_alert: float = 1250.0

    def shift(self, day: int) -> float:
        """The holiday rush's strength on replayed ``day`` (0 before, 1 from ``shift_day``)."""
        return 1.0 if day >= self.shift_day else 0.0

    def bank_day(self, day: int) -> int:
        """The bank's day number of replayed ``day`` (day 1 follows the history)."""
        return self.history_days + day - 1


def _project(root: Path, scenario: Scenario) -> dict[str, Any]:
    features, categorical = model_features()
    files = (root / "warehouse" / "*.parquet").as_posix()
    window = scenario.train_window_days
    return {
        "model": MODEL,
        "training": {
            "entrypoint": "bascule.demo.training:train",
            "params": {"max_iter": 100, "learning_rate": 0.1, "seed": scenario.seed},
            "python_path": [],
        },
        "data": {
            "sql": (
                f"SELECT * FROM read_parquet('{files}') WHERE timestamp >= "
                f"(SELECT max(timestamp) FROM read_parquet('{files}')) - INTERVAL {window} DAY"
            ),
            "label": "is_fraud",
            "timestamp": "timestamp",
            "features": features,
            "categorical": categorical,
            "holdout_days": 0.5,
            "validation_fraction": 0.15,
            "validation_split": "random",
        },
        "retraining": {"on_alerts": [COST_RULE]},
        "gate": {
            "metric": "business_cost",
            "margin": 0.03,
            "guard_metrics": {"roc_auc": 0.03},
            "min_holdout_rows": 500,
        },
        "rollout": {
            "shadow_requests": 30,
            "canary_percent": 30.0,
            "canary_requests": 40,
            "max_error_rate_increase": 0.01,
            "max_cost_increase": 0.05,
        },
        "price_per_core_hour": 0.05,
        "feature_service": FEATURE_SERVICE,
        "missing_features": "null",
    }


def _monitoring(scenario: Scenario) -> dict[str, Any]:
    return {
        "window": "1d",
        "feedback_lookback": "60d",
        "notifiers": [],
        "models": {
            MODEL: {
                "routes": ["champion", "challenger", ""],
                "multivariate": True,
                "cost": {
                    "fp_cost": 5.0,
                    "fn_cost_column": "amount",
                    "positive_label": 1,
                    "currency": "EUR",
                },
                "alerts": [
                    {
                        "name": DRIFT_RULE,
                        "metric": "dataset_drift",
                        "comparison": ">=",
                        "threshold": 1,
                        "severity": "warning",
                        "description": "Today's transactions no longer look like the training data",
                    },
                    {
                        "name": COST_RULE,
                        "metric": "cost_per_1000",
                        "comparison": ">",
                        "threshold": scenario.cost_alert,
                        "for_windows": 3,
                        "severity": "critical",
                        "description": "Fraud losses and reviews cost too much: retrain",
                    },
                ],
            }
        },
    }


def demo_settings(base: Settings, scenario: Scenario) -> Settings:
    """``base`` (its home, database and stores) with the demo's project, monitoring and serving."""
    root = base.home.resolve() / "demo"
    serving = base.serving.model_copy(
        update={
            "refs": [f"{MODEL}@champion"],
            "poll_interval_s": 0.2,
            "prediction_log": base.serving.prediction_log.model_copy(
                update={"flush_interval_s": 0.5}
            ),
        }
    )
    return base.model_copy(
        update={
            "project": ProjectSettings.model_validate(_project(root, scenario)),
            "monitoring": MonitoringSettings.model_validate(_monitoring(scenario)),
            "serving": serving,
        }
    )
