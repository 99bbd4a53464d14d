"""The ``monitoring:`` section of the settings: schedule, windows, per-model costs and alerts.

Kept apart from :mod:`bascule.core.settings` only to keep that module under the size the
style guide asks for; :class:`MonitoringSettings` is a field of the one ``Settings`` object
like every other section. Example ``bascule.yaml``::

    monitoring:
      schedule: 15m              # or a cron expression: "*/15 * * * *"; unset: off
      window: 1h
      feedback_lookback: 7d
      notifiers:
        - kind: webhook
          url: http://127.0.0.1:9000/hooks/bascule
        - kind: alertmanager
          url: http://127.0.0.1:9093
        - kind: log
      models:
        fraud:
          segment_column: country
          cost: {fp_cost: 5, fn_cost_column: amount, tp_value: 1}
          alerts:
            - {name: drift, metric: drifted_features, comparison: ">=", threshold: 1}
            - {name: accuracy, metric: accuracy, comparison: "<", threshold: 0.9,
               for_windows: 3, severity: critical}
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from bascule.core._section import Section

__all__ = [
    "DURATION_PATTERN",
    "AlertRule",
    "AlertmanagerNotifierSettings",
    "CostSettings",
    "LogNotifierSettings",
    "ModelMonitoringSettings",
    "MonitoringSettings",
    "NotifierSettings",
    "WebhookNotifierSettings",
]

DURATION_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$"
"""A duration: a number and a unit, ``s``, ``m``, ``h``, ``d`` or ``w`` (``90s``, ``1h``)."""
_CRON_FIELDS = 5
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"


def _check_duration(value: str, what: str) -> str:
    match = re.match(DURATION_PATTERN, value)
    if match is None:
        raise ValueError(f"expected {what} such as '30m', '1h' or '7d', got {value!r}")
    if float(match.group(1)) <= 0:
        raise ValueError(f"expected a positive {what}, got {value!r}")
    return value.strip()


class CostSettings(Section):
    """Business prices of a binary classifier's decisions (``bascule.business.CostMatrix``).

    A ``*_column`` names a column of the prediction log (a model input such as ``amount``)
    or ``outcome``, the business outcome sent with the feedback; it overrides the constant.
    """

    fp_cost: float = Field(default=0.0, allow_inf_nan=False)
    """Cost of a false positive (a good case flagged)."""
    fn_cost: float = Field(default=0.0, allow_inf_nan=False)
    """Cost of a false negative (a bad case missed)."""
    tp_value: float = Field(default=0.0, allow_inf_nan=False)
    """Value of a true positive (a bad case caught)."""
    tn_value: float = Field(default=0.0, allow_inf_nan=False)
    """Value of a true negative."""
    fp_cost_column: str | None = None
    """Column holding each row's false-positive cost instead of ``fp_cost``."""
    fn_cost_column: str | None = None
    """Column holding each row's false-negative cost instead of ``fn_cost`` (e.g. ``amount``)."""
    tp_value_column: str | None = None
    """Column holding each row's true-positive value instead of ``tp_value``."""
    positive_label: str | int | None = None
    """The class that means "positive" (fraud, churn); unset: the model's second class."""
    currency: str = ""
    """Unit shown with the figures (``EUR``)."""


class AlertRule(Section):
    """One alert rule: a stored monitoring metric compared with a threshold, window by window."""

    name: str = Field(pattern=_NAME)
    """Rule name, unique per model (letters, digits, ``_.-``); alerts are named after it."""
    metric: str = Field(min_length=1, max_length=128)
    """Metric of the monitoring results (``feature_drift``, ``drifted_features``, ``accuracy``,
    ``estimated_accuracy``, ``missing_rate``, ``business_cost``, ``cost_per_1000``, a finding
    code such as ``empty_window``…); ``bascule monitor run --json`` lists them."""
    feature: str | None = None
    """Feature the metric is about; unset: the model-level figure; ``*``: any feature (the
    worst one)."""
    segment: str | None = None
    """Segment value (of the model's ``segment_column``); unset: all rows."""
    comparison: Literal[">", ">=", "<", "<="] = ">"
    """How the value is compared with ``threshold``; true means the window breaches."""
    threshold: float = Field(allow_inf_nan=False)
    """The threshold."""
    for_windows: int = Field(default=1, ge=1, le=10_000)
    """Consecutive breaching windows before the alert fires."""
    severity: Literal["info", "warning", "critical"] = "warning"
    """Severity sent with the notifications."""
    description: str = Field(default="", max_length=2000)
    """Free text added to the notifications (what to do)."""


class ModelMonitoringSettings(Section):
    """How one model is monitored."""

    segment_column: str | None = None
    """Model input (a column of the prediction log) whose values get their own performance
    and business figures, beside those of all rows."""
    routes: list[str] = ["champion", ""]
    """Prediction-log routes monitored: ``champion`` and ``""`` (no policy) by default; add
    ``challenger`` or ``shadow`` to include those answers."""
    drift_method: str = "auto"
    """Drift test of every feature (``auto``, ``ks``, ``psi``, ``wasserstein``,
    ``jensenshannon``, ``chisquare``)."""
    drift_methods: dict[str, str] = {}
    """Drift test per feature, overriding ``drift_method``."""
    alpha: float = Field(default=0.05, gt=0, lt=1)
    """Family-wise significance level of the drift tests of a window."""
    multivariate: bool = True
    """Also run the domain classifier (needs scikit-learn and a stored reference sample)."""
    cost: CostSettings | None = None
    """Business cost matrix (binary classifiers); unset: no business figures."""
    alerts: list[AlertRule] = []
    """Alert rules of this model."""

    @model_validator(mode="after")
    def _unique_rules(self) -> ModelMonitoringSettings:
        names = [r.name for r in self.alerts]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"alert rule names must be unique per model; repeated: {twice}")
        return self


class _Delivery(Section):
    retries: int = Field(default=3, ge=0, le=20)
    """Retries after a failed delivery (connection error, HTTP 5xx, 408 or 429)."""
    backoff_s: float = Field(default=1.0, ge=0, le=600)
    """Wait before the first retry (seconds); it doubles at each further retry."""
    timeout_s: float = Field(default=5.0, gt=0, le=300)
    """Timeout of one HTTP request (seconds)."""

    @field_validator("url", check_fields=False)
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value


class WebhookNotifierSettings(_Delivery):
    """POST every alert (firing and resolved) as JSON to a URL."""

    kind: Literal["webhook"] = "webhook"
    """Notifier kind."""
    url: str
    """Where the JSON is POSTed."""
    headers: dict[str, str] = {}
    """Extra HTTP headers (e.g. an ``Authorization`` token)."""


class AlertmanagerNotifierSettings(_Delivery):
    """Send alerts to a Prometheus Alertmanager (``POST {url}/api/v2/alerts``)."""

    kind: Literal["alertmanager"] = "alertmanager"
    """Notifier kind."""
    url: str
    """Base URL of Alertmanager (``http://127.0.0.1:9093``)."""
    firing_ttl_s: float = Field(default=7 * 86_400, gt=0)
    """``endsAt`` of a firing alert is this far ahead, so Alertmanager keeps it active until
    bascule sends the resolve (bascule does not re-send firing alerts)."""


class LogNotifierSettings(Section):
    """Write alerts to the ``bascule.alerts`` logger."""

    kind: Literal["log"] = "log"
    """Notifier kind."""


NotifierSettings = Annotated[
    WebhookNotifierSettings | AlertmanagerNotifierSettings | LogNotifierSettings,
    Field(discriminator="kind"),
]


class MonitoringSettings(Section):
    """Monitoring: when monitors run, over which windows, and where alerts go."""

    schedule: str | None = None
    """How often the control-plane server runs every configured model's monitor: an interval
    (``15m``, ``1h``) or a five-field cron expression (``0 * * * *``, ``@hourly``); unset: off."""
    window: str = "1h"
    """Length of a monitoring window (``bascule monitor run`` and scheduled runs)."""
    feedback_lookback: str = "30d"
    """How far back the prediction log is searched for a feedback's request id; older or absent
    ones are counted as unknown (and kept, so they still join if the prediction shows up)."""
    max_windows: int = Field(default=1000, ge=1, le=100_000)
    """Most windows one run may cover (``--since`` … ``--until`` split by ``window``)."""
    models: dict[str, ModelMonitoringSettings] = {}
    """Per-model settings; a model without an entry is monitored with the defaults."""
    notifiers: list[NotifierSettings] = [LogNotifierSettings()]
    """Where alerts are sent: ``webhook``, ``alertmanager``, ``log``."""

    @field_validator("window", "feedback_lookback")
    @classmethod
    def _check_windows(cls, value: str) -> str:
        return _check_duration(value, "a duration")

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        text = value.strip()
        if re.match(DURATION_PATTERN, text):
            return _check_duration(text, "an interval")
        if text.startswith("@") or len(text.split()) == _CRON_FIELDS:
            return text
        raise ValueError(
            f"expected an interval such as '15m' or a cron expression such as '0 * * * *', "
            f"got {value!r}"
        )
