"""The ``project:`` section of the settings: how a model is retrained, gated and rolled out.

Kept apart from :mod:`bascule.core.settings` only to keep that module under the size the
style guide asks for; :class:`ProjectSettings` is a field of the one ``Settings`` object
like every other section. ``bascule init`` writes a commented example; in short::

    project:
      model: fraud
      training: {entrypoint: "train:train", python_path: ["."], params: {max_iter: 60}}
      data:
        source: data/*.parquet          # or sql: SELECT * FROM read_parquet('data/*.parquet')
        label: is_fraud
        timestamp: timestamp
        features: [amount, hour, merchant_category]
        categorical: [merchant_category]
        holdout_days: 7
      retraining: {on_alerts: [drift], schedule: "0 3 * * 1", min_new_labels: 5000}
      gate: {metric: business_cost, margin: 0.02, guard_metrics: {roc_auc: 0.01}}
      rollout: {shadow_requests: 1000, canary_percent: 10, canary_requests: 5000}
      price_per_core_hour: 0.05

The business cost matrix and the alert rules are not repeated here: they are those of
``monitoring.models.<model>`` (``cost`` and ``alerts``), which the gate and the
``retraining.on_alerts`` policy refer to.

Relative paths (``data.source``, files named in ``data.sql``, ``training.python_path``)
are taken from the folder of the settings file in effect, else the current folder.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

from bascule.core._section import Section

__all__ = [
    "GATE_METRICS",
    "RESERVED_TRAINING_PARAMS",
    "DataSettings",
    "GateMetric",
    "GateSettings",
    "ProjectSettings",
    "RetrainPolicy",
    "RolloutSettings",
    "TrainingSettings",
]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
_ENTRYPOINT = r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"
_CRON_FIELDS = 5

GateMetric = Literal[
    "business_cost",
    "roc_auc",
    "log_loss",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "calibration_error",
]
"""Figures the retraining pipeline measures on the holdout; ``business_cost`` is the net
cost per 1,000 predictions under the model's cost matrix."""
GATE_METRICS: tuple[str, ...] = get_args(GateMetric)
RESERVED_TRAINING_PARAMS = ("label", "features", "categorical")
"""Keys bascule adds to the training function's ``params`` (from the ``data`` section)."""


class TrainingSettings(Section):
    """The user's training function and what it is given."""

    entrypoint: str = Field(pattern=_ENTRYPOINT)
    """``module:function``, called as ``function(df, params)`` with the training rows (the
    feature columns and the label) and returning a fitted binary classifier with
    ``predict_proba`` that bascule can convert to ONNX (scikit-learn, LightGBM, XGBoost)."""
    params: dict[str, Any] = {}
    """Passed to the function as ``params``, with ``label``, ``features`` and
    ``categorical`` added from the ``data`` section (so those keys are reserved)."""
    python_path: list[str] = ["."]
    """Folders searched first for the entrypoint's module (relative ones are taken from the
    project folder). A module found there is imported afresh on every retraining, so edits
    are picked up without restarting a server."""

    @field_validator("params")
    @classmethod
    def _no_reserved_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        clash = sorted(set(value) & set(RESERVED_TRAINING_PARAMS))
        if clash:
            raise ValueError(
                f"{clash} are set by bascule from the data section; rename these training params"
            )
        return value


class DataSettings(Section):
    """Where the training data comes from and how it is split."""

    source: str | None = None
    """A Parquet file or a glob of them (``data/*.parquet``), read with DuckDB."""
    sql: str | None = None
    """Instead of ``source``: a DuckDB query over the files
    (``SELECT * FROM read_parquet('data/*.parquet') WHERE amount > 0``)."""
    label: str = Field(min_length=1)
    """Column holding the outcome the model predicts; rows where it is missing (not known
    yet) are left out."""
    timestamp: str = Field(min_length=1)
    """Column holding when each row happened; every split is by time."""
    features: list[str] = Field(min_length=1)
    """Columns the model reads, in this order."""
    categorical: list[str] = []
    """Those of ``features`` that are categories (strings); the others are numeric."""
    holdout_days: float | None = Field(default=None, gt=0, le=3650)
    """The holdout is the newest this many days of labelled rows; unset: the newest
    ``holdout_fraction`` of them. Either way only rows newer than the champion's training
    data are kept, so the challenger and the champion are compared on rows neither saw."""
    holdout_fraction: float = Field(default=0.2, gt=0, lt=1)
    """Share of the labelled rows (the newest) kept as holdout when ``holdout_days`` is
    unset."""
    validation_fraction: float = Field(default=0.2, gt=0, lt=1)
    """Share of the rows older than the holdout (the newest of them) on which the decision
    threshold is chosen; the challenger is trained on the rest."""
    validation_split: Literal["newest", "random"] = "newest"
    """How the validation rows are picked from those older than the holdout: the newest
    ``validation_fraction`` of them, or that share at random (seeded), which keeps the
    newest rows in training — what a model retrained right after a shift needs."""

    @model_validator(mode="after")
    def _check(self) -> DataSettings:
        if (self.source is None) == (self.sql is None):
            raise ValueError("set exactly one of 'source' (Parquet path or glob) and 'sql'")
        for name, value in (("source", self.source), ("sql", self.sql)):
            if value is not None and not value.strip():
                raise ValueError(f"'{name}' is empty")
        twice = sorted({f for f in self.features if self.features.count(f) > 1})
        if twice:
            raise ValueError(f"features are listed twice: {twice}")
        for what, column in (("label", self.label), ("timestamp", self.timestamp)):
            if column in self.features:
                raise ValueError(f"the {what} column {column!r} cannot also be a feature")
        if self.label == self.timestamp:
            raise ValueError("label and timestamp must be different columns")
        unknown = sorted(set(self.categorical) - set(self.features))
        if unknown:
            raise ValueError(f"categorical columns {unknown} are not among the features")
        return self


class RetrainPolicy(Section):
    """When the model is retrained (beside ``bascule retrain`` by hand)."""

    on_alerts: list[str] = []
    """Names of alert rules of ``monitoring.models.<model>.alerts`` that trigger a
    retraining when they fire."""
    schedule: str | None = None
    """Five-field cron expression (UTC) of scheduled retrainings (``0 3 * * 1``, ``@daily``);
    unset: none."""
    min_new_labels: int | None = Field(default=None, ge=1)
    """Retrain once this many newly labelled rows have arrived since the last retraining;
    unset: off."""
    max_concurrent: Literal[1] = 1
    """Retrainings of this model at a time; triggers that arrive meanwhile are coalesced
    into one follow-up run, and a second process is refused. Only 1 is supported."""

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        text = value.strip()
        if not (text.startswith("@") or len(text.split()) == _CRON_FIELDS):
            raise ValueError(f"expected a cron expression such as '0 3 * * 1', got {value!r}")
        return text


class GateSettings(Section):
    """The promotion gate: what the challenger must show against the champion."""

    metric: GateMetric = "business_cost"
    """Figure compared first, on the holdout; ``business_cost`` needs
    ``monitoring.models.<model>.cost``."""
    margin: float = Field(default=0.02, ge=0, le=10)
    """Relative improvement on ``metric`` the challenger needs (0.02: 2 % better than the
    champion); 0 still needs it to be strictly better."""
    guard_metrics: dict[GateMetric, float] = {"roc_auc": 0.01}
    """Metric → largest regression allowed, in the metric's own units (``roc_auc: 0.01``:
    at most 0.01 lower than the champion's)."""
    min_holdout_rows: int = Field(default=200, ge=1)
    """Fewer labelled holdout rows than this and the gate fails: too little evidence."""

    @field_validator("guard_metrics")
    @classmethod
    def _check_guards(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not v >= 0}
        if bad:
            raise ValueError(f"allowed regressions must be numbers >= 0, got {bad}")
        return value


class RolloutSettings(Section):
    """How a challenger that passed the gate reaches production: shadow, canary, full."""

    shadow_requests: int = Field(default=1000, ge=0)
    """Requests the challenger answers in shadow (a copy; the client gets the champion's
    answer) before the canary; 0 skips the shadow stage."""
    canary_percent: float = Field(default=10.0, gt=0, le=100)
    """Share of requests the challenger answers during the canary (percent)."""
    canary_requests: int = Field(default=2000, ge=1)
    """Requests the challenger answers in the canary before it is promoted or rolled back."""
    max_error_rate_increase: float = Field(default=0.01, ge=0, le=1)
    """Largest rise of the error rate (errors per request, absolute: 0.01 is one point)
    over the champion's before the canary is rolled back."""
    max_cost_increase: float = Field(default=0.05, ge=0)
    """Largest relative rise of the business cost per 1,000 predictions over the
    champion's (0.05: 5 %) before the canary is rolled back."""


class ProjectSettings(Section):
    """One model's project: training code, data, retraining policy, gate and rollout."""

    model: str = Field(pattern=_NAME)
    """Name of the registered model the project trains."""
    training: TrainingSettings
    """The training function."""
    data: DataSettings
    """The training data and its splits."""
    retraining: RetrainPolicy = RetrainPolicy()
    """When retraining starts by itself."""
    gate: GateSettings = GateSettings()
    """The promotion gate."""
    rollout: RolloutSettings = RolloutSettings()
    """The rollout plan of a challenger that passed the gate."""
    feature_service: str | None = Field(default=None, pattern=_NAME)
    """The feature service (``features.services``) the model's inputs come from: every
    version the pipeline registers declares it, so the server accepts requests carrying only
    the entity keys and request fields and looks the features up online. The training data
    must hold the same features (a point-in-time training set of the service)."""
    missing_features: Literal["refuse", "null"] = "refuse"
    """With ``feature_service``: what the server does when a looked-up feature is missing
    (unknown entity, older than the TTL): ``refuse`` the request (422), or give the model
    ``null`` as the point-in-time training set gave such rows (a new customer has no
    history)."""
    price_per_core_hour: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    """Price of one CPU core for one hour (in the cost matrix's currency): serving CPU
    seconds per prediction times this gives the compute cost per 1,000 predictions; unset:
    not shown."""
