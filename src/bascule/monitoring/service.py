"""MonitoringService: feedback in, monitoring runs over prediction-log windows, alerts out.

* :meth:`MonitoringService.ingest_feedback` checks labels, finds each request id in the
  prediction log (within ``feedback_lookback`` before now: that is what "unknown" means),
  checks the label against the version that answered, and stores it (idempotently: the same
  request id and row again updates the label).
* :meth:`MonitoringService.run` reads the log over the planned windows (rows of the routes
  ``routes`` — the champion and unrouted answers by default), joins the feedback by
  request id and row, and evaluates every window per model version against that version's
  reference (see :mod:`bascule.monitoring.evaluation`). The run and every result are stored
  together; then the alert rules are evaluated over the stored results, alerts that fire or
  resolve are stored, sent to the notifiers and to the subscribers of :meth:`on_alert`
  (the retraining loop subscribes there).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bascule.core.clock import Clock
from bascule.core.errors import BasculeError, InvalidInputError
from bascule.core.monitoring_records import (
    Alert,
    MonitoringResult,
    MonitoringRun,
    RuleState,
)
from bascule.core.monitoring_settings import (
    AlertRule,
    ModelMonitoringSettings,
    MonitoringSettings,
)
from bascule.core.schema import ModelSignature
from bascule.monitoring.alerts import (
    Transition,
    WindowFigure,
    alert_message,
    evaluate_rule,
    resolve_message,
    rule_value,
)
from bascule.monitoring.evaluation import (
    LABEL_COLUMN,
    LABEL_KIND_COLUMN,
    OUTCOME_COLUMN,
    VersionReference,
    build_reference,
    evaluate_window,
    findings_only,
)
from bascule.monitoring.feedback import Feedback, FeedbackResult
from bascule.monitoring.ingest import FeedbackIngester
from bascule.monitoring.notifiers import AlertEvent, Notifier
from bascule.monitoring.performance import CostModel
from bascule.monitoring.report import Finding
from bascule.monitoring.windows import parse_duration, plan_windows, to_ms
from bascule.registry.decision import DecisionRule

if TYPE_CHECKING:
    from bascule.registry.service import RegistryService
    from bascule.store.db.monitoring import MonitoringRepository

__all__ = ["MonitorReport", "MonitoringService", "PredictionReader"]

log = logging.getLogger("bascule.monitoring")

PredictionReader = Callable[[str, datetime, datetime], pd.DataFrame]
"""``(model, start, end)`` → the logged rows with ``start <= timestamp < end``."""
_STATUS_RANK = {"ok": 0, "finding": 1, "warn": 2, "alert": 3}


@dataclass(frozen=True)
class MonitorReport:
    """A stored monitoring run, its results, and the alerts it fired or resolved."""

    run: MonitoringRun
    results: list[MonitoringResult]
    events: list[AlertEvent] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (times in ms since the epoch)."""
        return {
            "run": asdict(self.run),
            "results": [asdict(r) for r in self.results],
            "alerts": [e.to_dict() for e in self.events],
        }


class MonitoringService:
    """Feedback, monitoring runs, their stored results, and alerts.

    Args:
        predictions: Reads the prediction log of a model over a time range.
        repository: The metadata DB's monitoring tables.
        registry: Where each version's signature, profile, sample and model come from.
        clock: Source of "now".
        settings: The ``monitoring`` settings.
        costs: Model name → its cost matrix (``bascule.business.CostMatrix``).
        notifiers: Where alerts are sent.
    """

    def __init__(
        self,
        predictions: PredictionReader,
        repository: MonitoringRepository,
        registry: RegistryService,
        clock: Clock,
        settings: MonitoringSettings,
        *,
        costs: Mapping[str, CostModel] | None = None,
        notifiers: Sequence[Notifier] = (),
    ) -> None:
        self._read = predictions
        self._repo = repository
        self._registry = registry
        self._clock = clock
        self.settings = settings
        self._costs = dict(costs or {})
        self._notifiers = list(notifiers)
        self._subscribers: list[Callable[[AlertEvent], None]] = []
        self._feedback_subscribers: list[Callable[[FeedbackResult], None]] = []
        self._references: dict[tuple[str, int], VersionReference] = {}
        lookback = parse_duration(settings.feedback_lookback, field="feedback_lookback")
        self._ingester = FeedbackIngester(
            predictions, repository, registry, clock, lookback=lookback
        )

    # -- subscribers -----------------------------------------------------------------------------

    def on_alert(self, callback: Callable[[AlertEvent], None]) -> None:
        """Call ``callback`` with every alert that fires or resolves (after the notifiers).

        A callback that raises is logged and does not stop the others.
        """
        self._subscribers.append(callback)

    def on_feedback(self, callback: Callable[[FeedbackResult], None]) -> None:
        """Call ``callback`` with the result of every feedback ingest that stored something
        (its ``labelled`` counts new labelled rows per model: the retraining loop counts them).

        A callback that raises is logged and does not stop the others.
        """
        self._feedback_subscribers.append(callback)

    # -- feedback --------------------------------------------------------------------------------

    def ingest_feedback(
        self,
        records: Iterable[Mapping[str, Any] | Feedback],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> FeedbackResult:
        """Check and store feedback records (labels that arrived late), joined by request id.

        See :meth:`bascule.monitoring.ingest.FeedbackIngester.ingest`. The subscribers of
        :meth:`on_feedback` are told when something was stored.

        Raises:
            StorageError: The database or the prediction log cannot be read or written.
        """
        result = self._ingester.ingest(records, progress=progress)
        if result.accepted or result.updated:
            for callback in self._feedback_subscribers:
                try:
                    callback(result)
                except Exception:  # a subscriber's bug must not lose the stored feedback
                    log.exception("feedback subscriber %r failed", callback)
        return result

    # -- runs ------------------------------------------------------------------------------------

    def model_settings(self, model: str) -> ModelMonitoringSettings:
        """The model's monitoring settings (the defaults when it has no entry)."""
        return self.settings.models.get(model, ModelMonitoringSettings())

    def run(
        self,
        model: str,
        *,
        window: str | timedelta | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        trigger: str = "manual",
    ) -> MonitorReport:
        """Monitor ``model`` over prediction-log windows; store and return what was found.

        Args:
            model: The model name.
            window: Window length (default: ``monitoring.window``).
            since: Start of the range (timezone-aware); None: one window ending at ``until``.
            until: End of the range; None: now.
            trigger: Who asked (``cli``, ``schedule``, ``api``), kept with the run.

        Returns:
            The stored run, its results and the alerts it fired or resolved. Drift is a
            result, not an error.

        Raises:
            ModelNotFoundError: No such registered model.
            InvalidInputError: Bad window or range.
            StorageError: The prediction log or the database failed.
        """
        self._registry.get_model(model)
        cfg = self.model_settings(model)
        size = parse_duration(window or self.settings.window)
        now = self._clock.now_utc()
        windows = plan_windows(
            now=now, window=size, since=since, until=until, max_windows=self.settings.max_windows
        )
        results: list[MonitoringResult] = []
        facts: Counter[str] = Counter()
        drifted: set[str] = set()
        versions: set[int] = set()
        for start, end in windows:  # one read per window: a column absent there stays absent
            a, b = to_ms(start), to_ms(end)
            part = self._read(model, start, end)
            if "route" in part.columns:
                part = part[part["route"].fillna("").isin(cfg.routes)]
            results.append(MonitoringResult(a, b, "rows", float(len(part))))
            facts["rows"] += len(part)
            if part.empty:
                msg = f"No logged prediction between {start.isoformat()} and {end.isoformat()}."
                results += findings_only(a, b, [Finding.of("empty_window", msg)])
                facts["empty_windows"] += 1
                continue
            part = self._join_feedback(part)
            for version in sorted(part["model_version"].astype(int).unique()):
                versions.add(int(version))
                rows = part[part["model_version"] == version]
                ref = self._reference(model, int(version), a, b, results)
                if ref is None:
                    continue
                outcome = evaluate_window(
                    rows, ref, cfg, costs=self._costs.get(model), start=a, end=b
                )
                results += outcome.results
                facts["labelled"] += outcome.labelled
                facts["drifted_windows"] += int(outcome.dataset_drift)
                drifted.update(outcome.drifted)
        summary = {
            "windows": len(windows),
            "window": str(window or self.settings.window),
            "drifted_windows": facts["drifted_windows"],
            "empty_windows": facts["empty_windows"],
            "drifted_features": sorted(drifted),
            "findings": dict(Counter(r.metric for r in results if r.status == "finding")),
            "status": max((r.status for r in results), key=_STATUS_RANK.__getitem__),
        }
        record = MonitoringRun(
            0, model, sorted(versions), to_ms(windows[0][0]), to_ms(windows[-1][1]), len(windows),
            facts["rows"], facts["labelled"], trigger, to_ms(now), summary,
        )  # fmt: skip
        stored_run, stored = self._repo.add_run(record, results)
        events = self._alerts(model, cfg, stored)
        return MonitorReport(stored_run, stored, events)

    def _join_feedback(self, frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame[LABEL_COLUMN] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
        frame[LABEL_KIND_COLUMN] = frame[LABEL_COLUMN]
        frame[OUTCOME_COLUMN] = np.nan
        if frame.empty:
            return frame
        stored = self._repo.feedback_for(frame["request_id"].astype(str).unique().tolist())
        if not stored:
            return frame
        by_key = {(f.request_id, f.row): f for f in stored}
        keys = zip(frame["request_id"].astype(str), frame["row"].astype(int), strict=True)
        hits = [by_key.get(k) for k in keys]
        frame[LABEL_COLUMN] = [None if h is None else h.label for h in hits]
        frame[LABEL_KIND_COLUMN] = [None if h is None else h.label_kind for h in hits]
        frame[OUTCOME_COLUMN] = [
            np.nan if h is None or h.outcome is None else h.outcome for h in hits
        ]
        return frame

    def _reference(
        self, model: str, version: int, start: int, end: int, results: list[MonitoringResult]
    ) -> VersionReference | None:
        key = (model, version)
        if key in self._references:
            return self._references[key]
        try:
            mv = self._registry.resolve(f"{model}:{version}")
            signature = ModelSignature.model_validate(mv.signature)
            sample = self._registry.reference_sample(mv)
            outputs = _reference_outputs(self._registry, model, version, signature, sample)
            ref = build_reference(version, signature, self._registry.profile(mv), sample, outputs)
        except BasculeError as exc:
            msg = f"Version {version} cannot be monitored: {exc}"
            finding = Finding("no_reference", "error", msg, None, {"version": version})
            results += findings_only(start, end, [finding])
            return None
        self._references[key] = ref
        return ref

    # -- alerts ----------------------------------------------------------------------------------

    def _alerts(
        self, model: str, cfg: ModelMonitoringSettings, results: Sequence[MonitoringResult]
    ) -> list[AlertEvent]:
        if not cfg.alerts:
            return []
        windows: dict[tuple[int, int], list[MonitoringResult]] = {}
        for r in results:
            windows.setdefault((r.window_start, r.window_end), []).append(r)
        now = to_ms(self._clock.now_utc())
        rules = {rule.name: rule for rule in cfg.alerts}

        def decide(states: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[Any]]]:
            new_states: dict[str, Any] = {}
            changes: dict[str, list[Any]] = {}
            for name, rule in rules.items():
                figures = []
                for (a, b), rows in windows.items():
                    found = rule_value(rule, rows)
                    value, feature = found if found is not None else (None, None)
                    figures.append(WindowFigure(a, b, value, feature))
                new_states[name], moves = evaluate_rule(
                    rule, states.get(name) or RuleState(), figures
                )
                changes[name] = [
                    _fired(model, rule, m, now) if m.kind == "fire" else (now, m.value)
                    for m in moves
                ]
            return new_states, changes

        events = []
        for kind, alert in self._repo.update_rules(model, decide, now=now):
            rule = rules[alert.rule]
            if kind == "firing":
                events.append(AlertEvent("firing", alert, alert.message, rule.description))
            else:
                events.append(
                    AlertEvent("resolved", alert, resolve_message(alert), rule.description)
                )
        for event in events:
            self._dispatch(event)
        return events

    def _dispatch(self, event: AlertEvent) -> None:
        deliveries = [n.send(event) for n in self._notifiers]
        errors = [f"{d.notifier}: {d.error}" for d in deliveries if not d.ok]
        self._repo.record_delivery(
            event.alert.id,
            resolve=event.status == "resolved",
            ok=not errors,
            attempts=sum(d.attempts for d in deliveries),
            error="; ".join(errors) or None,
        )
        for callback in self._subscribers:
            try:
                callback(event)
            except Exception:  # a subscriber's bug must not stop monitoring
                log.exception("alert subscriber %r failed on alert %d", callback, event.alert.id)

    # -- reads -----------------------------------------------------------------------------------

    def runs(self, model: str | None = None, **filters: Any) -> list[MonitoringRun]:
        """Stored runs, newest first (filters: ``since``, ``until`` in ms, ``limit``).

        Raises:
            StorageError: The database failed.
        """
        return self._repo.runs(model, **filters)

    def results(self, model: str | None = None, **filters: Any) -> list[MonitoringResult]:
        """Stored results, oldest window first (filters: ``run_id``, ``metric``, ``feature``,
        ``status``, ``since``, ``until`` in ms, ``latest_run``, ``limit``).

        Raises:
            StorageError: The database failed.
        """
        return self._repo.results(model, **filters)

    def alerts(self, model: str | None = None, **filters: Any) -> list[Alert]:
        """Stored alerts, newest first (filters: ``state``, ``since``, ``until``, ``limit``).

        Raises:
            StorageError: The database failed.
        """
        return self._repo.alerts(model, **filters)

    def write_report(
        self,
        model: str,
        path: Path,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Path:
        """Write the self-contained HTML report of ``model``'s stored runs in a range.

        Raises:
            ModelNotFoundError: No such model.
            StorageError: The database failed or the file cannot be written.
        """
        from bascule.monitoring.dashboard import write_dashboard

        self._registry.get_model(model)
        a = None if since is None else to_ms(since)
        b = None if until is None else to_ms(until)
        runs = self._repo.runs(model, since=a, until=b, limit=1000)
        results = self._repo.results(model, since=a, until=b, limit=200_000)
        alerts = self._repo.alerts(model, since=a, until=b, limit=1000)
        return write_dashboard(path, model, runs, results, alerts, now=to_ms(self._clock.now_utc()))


def _fired(model: str, rule: AlertRule, move: Transition, now: int) -> Alert:
    """The alert a rule fires in a window."""
    return Alert(
        0, model, rule.name, rule.metric, move.feature or rule.feature, rule.severity, "firing",
        rule.comparison, rule.threshold, move.value, move.window_start, move.window_end, now,
        alert_message(model, rule, move),
    )  # fmt: skip


def _reference_outputs(
    registry: RegistryService, model: str, version: int, sig: ModelSignature, sample: pd.DataFrame
) -> dict[str, np.ndarray] | None:
    """The version's predictions on its reference sample, named as in the prediction log."""
    if sample.empty:
        return None
    predictor = registry.load(f"{model}:{version}")
    if sig.task == "classification" and sig.proba_output is not None and sig.classes:
        proba = predictor.predict_proba(sample)
        out = {"label": _served_labels(registry, model, version, sig, proba, sample, predictor)}
        out |= {f"proba_{c}": proba[:, j] for j, c in enumerate(sig.classes)}
        return out
    return {"prediction": np.asarray(predictor.predict(sample), dtype=float)}


def _served_labels(
    registry: RegistryService,
    model: str,
    version: int,
    sig: ModelSignature,
    proba: np.ndarray,
    sample: pd.DataFrame,
    predictor: Any,
) -> np.ndarray:
    """The labels the server gives: by the version's :class:`DecisionRule` when it has one,
    else the model's own. Otherwise a cost-chosen threshold reads as prediction drift."""
    try:
        rule = DecisionRule.of_version(registry.resolve(f"{model}:{version}").tags, sig)
    except InvalidInputError:  # the server refuses to load such a version: the model's labels
        rule = None
    if rule is None:
        return np.asarray(predictor.predict(sample))
    return rule.labels(proba)
