"""The demo's story, day by day, through the real components.

A bank's card transactions (generated) feed a feature store (customer aggregates,
point-in-time training sets, daily materialisation online). Fraud model v1 is trained by the
project's retraining pipeline (tracked, ONNX-registered, made champion). Then each replayed
day goes through the real V2 inference server over HTTP on localhost, which looks the
customer aggregates up online; fraud labels arrive a day later as feedback; monitoring runs
daily windows (drift, quality, business cost) and raises alerts; the retraining automation
answers the cost alert with a retraining whose gate compares business cost on the newest
labelled rows; the rollout supervisor moves a gated challenger through shadow and canary to
champion from what the server logged. Time is the replay's: the server, the registry and
monitoring all read the :class:`~bascule.demo.clock.ReplayClock`.

:class:`Story` does the work and keeps the record; the CLI shows it (timeline, report).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bascule.cli.demo.definitions import definitions
from bascule.cli.demo.scenario import MODEL, Scenario
from bascule.core.errors import ConflictError, ModelNotFoundError
from bascule.demo.features import FEATURE_SERVICE
from bascule.demo.world import Bank, customer_aggregates

if TYPE_CHECKING:
    from bascule.business.costs import CostMatrix
    from bascule.cli.demo.traffic import Replayer
    from bascule.core.records import ModelEvent
    from bascule.demo.clock import ReplayClock
    from bascule.monitoring.notifiers import AlertEvent
    from bascule.monitoring.service import MonitorReport
    from bascule.pipelines.automation import RetrainAutomation
    from bascule.pipelines.supervision import RolloutSupervisor
    from bascule.wiring import Services

__all__ = ["DayRecord", "Story", "StoryEvent", "cost_per_1000"]

FIRST_TRAINING_DAY = 7
"""History days before this one only feed the customer aggregates (they need a past)."""
SHOWN_EVENTS = {
    "retrain_started",
    "retrain_failed",
    "gate_passed",
    "gate_failed",
    "rollout",
    "alias_set",
    "alias_deleted",
    "promotion_skipped",
}


@dataclass(frozen=True)
class StoryEvent:
    """Something that happened, as the timeline and the report show it."""

    day: int
    kind: str
    """``alert``, ``resolved``, or the kind of a model history event (``gate_passed``…)."""
    text: str
    version: int | None = None
    alias: str | None = None
    """The alias that moved (``alias_set`` / ``alias_deleted``)."""


@dataclass
class DayRecord:
    """One replayed day: its traffic, what served it, and what monitoring saw."""

    day: int
    date: datetime
    shift: float
    transactions: int = 0
    requests: int = 0
    fraud_rate: float = 0.0
    served_by: dict[int, int] = field(default_factory=dict)
    """Version → transactions it answered for clients."""
    serving: str = ""
    """How traffic is served at the end of the day (``v1``, ``v1 · v2 shadow``…)."""
    cost_per_1000: float | None = None
    """What the served decisions cost per 1,000 transactions (once the labels are in)."""
    drifted_features: float | None = None
    domain_auc: float | None = None
    events: list[StoryEvent] = field(default_factory=list)


class Story:
    """Plays a :class:`Scenario` against the services.

    Args:
        services: Built on the demo's settings and its replay clock.
        scenario: The story's numbers.
        clock: The replay clock the services (and the server) read.
        root: Folder of the demo's data (warehouse, feature files, report).
        costs: The model's cost matrix (the project's monitoring settings).
        on_step: Called with a line saying what is happening now.
    """

    def __init__(
        self,
        services: Services,
        scenario: Scenario,
        clock: ReplayClock,
        root: Path,
        costs: CostMatrix,
        *,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        self.services = services
        self.costs = costs
        self.scenario = scenario
        self.clock = clock
        self.root = root
        self.bank = Bank(seed=scenario.seed, customers=scenario.customers)
        self.days: list[DayRecord] = []
        self.answers: dict[int, pd.DataFrame] = {}
        self.truth: dict[int, pd.DataFrame] = {}
        self.first_version: int | None = None
        self.timings: dict[str, float] = {}
        self._transactions: list[pd.DataFrame] = []
        self._unlabelled: dict[int, pd.DataFrame] = {}
        self._seen_events = 0
        self._on_step = on_step or (lambda _: None)

    @contextlib.contextmanager
    def _timed(self, what: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[what] = self.timings.get(what, 0.0) + time.perf_counter() - t0

    # -- paths -----------------------------------------------------------------------------------

    @property
    def warehouse(self) -> Path:
        """Labelled transactions with their point-in-time features (the project's data)."""
        return self.root / "warehouse"

    @property
    def feature_files(self) -> Path:
        """The customer aggregates, one Parquet file per day (the feature view's source)."""
        return self.root / "features"

    # -- setup -----------------------------------------------------------------------------------

    def check_fresh(self) -> None:
        """Refuse to play over an earlier run's model (the histories would mix).

        Raises:
            ConflictError: the home already holds a model named ``fraud``.
        """
        try:
            self.services.registry.get_model(MODEL)
        except ModelNotFoundError:
            return
        raise ConflictError(
            f"{self.services.settings.home} already holds a model {MODEL!r} from an earlier "
            "run; run the demo with --home <an empty folder>, or remove that folder first",
            home=str(self.services.settings.home),
        )

    def prepare(self) -> None:
        """History, feature definitions, warehouse, online store."""
        s = self.scenario
        t0 = time.perf_counter()
        self._on_step(f"generating {s.history_days} days of card transactions")
        for day in range(s.history_days):
            self._transactions.append(self.bank.day(day, s.per_day))
        history = pd.concat(self._transactions, ignore_index=True)
        self.feature_files.mkdir(parents=True, exist_ok=True)
        self.warehouse.mkdir(parents=True, exist_ok=True)
        self._write_aggregates(history, [self.bank.midnight(d) for d in range(1, s.history_days)])
        store = self.services.features
        store.apply(definitions((self.feature_files / "*.parquet").as_posix()))
        self._on_step("point-in-time training set from the feature store")
        first = pd.Timestamp(self.bank.midnight(FIRST_TRAINING_DAY))
        self._write_warehouse(history[history["timestamp"] >= first], "history")
        replay_start = self.bank.midnight(s.history_days)
        self.clock.set(replay_start - timedelta(hours=1))
        self._on_step("materialising the customer aggregates online")
        self._write_aggregates(history, [replay_start])
        store.materialize(self.bank.midnight(0), replay_start + timedelta(seconds=1))
        self.timings["prepare_s"] = time.perf_counter() - t0

    def _write_aggregates(self, transactions: pd.DataFrame, as_of: list[datetime]) -> None:
        frame = customer_aggregates(transactions, as_of)
        for stamp in frame["event_timestamp"].unique():
            part = frame[frame["event_timestamp"] == stamp]
            name = f"customer_stats-{pd.Timestamp(stamp):%Y%m%d}.parquet"
            part.to_parquet(self.feature_files / name, index=False)

    def _write_warehouse(self, transactions: pd.DataFrame, name: str) -> None:
        entity = transactions.rename(columns={"timestamp": "event_timestamp"})
        rows = self.services.features.get_historical_features(entity, FEATURE_SERVICE).to_df()
        rows = rows.rename(columns={"event_timestamp": "timestamp"})
        rows.to_parquet(self.warehouse / f"{name}.parquet", index=False)

    def train_first(self, automation: RetrainAutomation) -> int:
        """Train v1 with the project's pipeline; with no champion to beat it becomes one.

        Raises:
            ModelNotFoundError: the pipeline did not register a champion (its failure is on
                the automation's record).
        """
        t0 = time.perf_counter()
        self._on_step("training v1 with the project's pipeline (tracked, ONNX, registered)")
        automation.retrain_now("bascule demo: the first model")
        automation.wait_idle()
        self.first_version = self.services.registry.resolve(f"{MODEL}@champion").version
        self._seen_events = len(self.services.registry.history(MODEL))
        self.timings["train_v1_s"] = time.perf_counter() - t0
        return self.first_version

    # -- one day ---------------------------------------------------------------------------------

    def play_day(
        self,
        day: int,
        replayer: Replayer,
        automation: RetrainAutomation,
        supervisor: RolloutSupervisor,
        sync: Callable[[], None],
        routing: Callable[[], str],
    ) -> DayRecord:
        """Replay ``day``: its traffic in steps of ``step_hours``, then the day's end of work.

        Args:
            sync: Makes the server check the registry and write its logs (a sync point).
            routing: Describes how the server routes traffic now.
        """
        s = self.scenario
        midnight = self.bank.midnight(s.bank_day(day))
        record = DayRecord(day, midnight, s.shift(day))
        tx = self.bank.day(s.bank_day(day), s.per_day, shift=s.shift(day))
        record.transactions, record.fraud_rate = len(tx), float(tx["is_fraud"].mean())
        self._on_step(f"day {day}: replaying {len(tx):,} transactions over HTTP")
        before, answers = replayer.requests, []
        for start in range(0, 24, s.step_hours):
            self.clock.set(midnight + timedelta(hours=start))
            part = tx[(tx["hour"] >= start) & (tx["hour"] < start + s.step_hours)]
            if not part.empty:
                with self._timed("http_replay_s"):
                    prefix = f"s{s.seed}-d{day:02d}-h{start:02d}"
                    answers.append(replayer.send(part, prefix=prefix))
            with self._timed("sync_s"):
                sync()
            with self._timed("supervise_s"):
                self._supervise(day, supervisor, record, sync)
        record.requests = replayer.requests - before
        served = pd.concat(answers, ignore_index=True)
        self.answers[day] = served
        self.truth[day] = tx[["transaction_id", "amount", "is_fraud"]]
        versions, counts = np.unique(served["version"].to_numpy(), return_counts=True)
        record.served_by = {int(v): int(n) for v, n in zip(versions, counts, strict=True)}
        self._transactions.append(tx)
        self._unlabelled[day] = tx
        self.days.append(record)
        self.clock.set(midnight + timedelta(days=1))
        self._end_of_day(day, record, automation, supervisor, sync)
        record.serving = routing()
        return record

    def _end_of_day(
        self,
        day: int,
        record: DayRecord,
        automation: RetrainAutomation,
        supervisor: RolloutSupervisor,
        sync: Callable[[], None],
    ) -> None:
        s = self.scenario
        end = self.clock.now_utc()
        sync()
        self._on_step(f"day {day}: feature aggregates, labels, monitoring")
        with self._timed("features_s"):
            recent = pd.concat(self._transactions[-31:], ignore_index=True)
            self._write_aggregates(recent, [self.bank.midnight(s.bank_day(day) + 1)])
            self.services.features.materialize_incremental(end)
        arrived = sorted(d for d in self._unlabelled if d <= day - s.label_delay_days)
        for labelled in arrived:
            tx = self._unlabelled.pop(labelled)
            with self._timed("warehouse_s"):
                self._write_warehouse(tx, f"replay-{labelled:02d}")
            with self._timed("feedback_s"):
                self._feedback(labelled, tx)
            self.days[labelled - 1].cost_per_1000 = cost_per_1000(
                self._served(labelled), self.costs
            )
        since = self.bank.midnight(s.bank_day(max(1, arrived[0] if arrived else day)))
        with self._timed("monitoring_s"):
            report = self.services.monitoring.run(MODEL, window="1d", since=since, until=end)
        self._read_monitoring(day, record, report)
        if automation.coordinator.running():
            self._on_step(f"day {day}: retraining (the project's pipeline)")
        with self._timed("retraining_s"):
            automation.wait_idle()
        self._history(day, record)
        sync()
        self._supervise(day, supervisor, record, sync)

    def _feedback(self, day: int, tx: pd.DataFrame) -> None:
        joined = self.answers[day].merge(tx[["transaction_id", "is_fraud"]], on="transaction_id")
        records = [
            {"request_id": rid, "row": int(row), "label": int(label), "model": MODEL}
            for rid, row, label in zip(
                joined["request_id"], joined["row"], joined["is_fraud"], strict=True
            )
        ]
        self.services.monitoring.ingest_feedback(records)

    def _read_monitoring(self, day: int, record: DayRecord, report: MonitorReport) -> None:
        today = int(record.date.timestamp() * 1000)
        for r in report.results:
            if r.window_start != today or r.feature is not None or r.segment is not None:
                continue
            if r.metric == "drifted_features" and r.value is not None:
                record.drifted_features = max(record.drifted_features or 0.0, float(r.value))
            elif r.metric == "multivariate_auc" and r.value is not None:
                record.domain_auc = max(record.domain_auc or 0.0, float(r.value))
        for event in report.events:
            kind = "alert" if event.status == "firing" else "resolved"
            record.events.append(StoryEvent(day, kind, _alert_line(event)))

    def _history(self, day: int, record: DayRecord) -> None:
        events = self.services.registry.history(MODEL)
        fresh, self._seen_events = events[self._seen_events :], len(events)
        for event in fresh:
            if event.kind in SHOWN_EVENTS:
                record.events.append(
                    StoryEvent(day, event.kind, _describe(event), event.version, event.alias)
                )

    def _supervise(
        self,
        day: int,
        supervisor: RolloutSupervisor,
        record: DayRecord,
        sync: Callable[[], None],
    ) -> None:
        moved = [m for m in supervisor.tick() if m.changed]
        if moved:
            self._history(day, record)
            sync()

    # -- figures ---------------------------------------------------------------------------------

    def _served(self, day: int) -> pd.DataFrame:
        return self.answers[day].merge(self.truth[day], on="transaction_id", how="left")

    def served_frame(self) -> pd.DataFrame:
        """Every replayed transaction: the answer clients got (and from which version) and
        the truth."""
        return pd.concat(
            [self._served(d).assign(day=d) for d in sorted(self.answers)], ignore_index=True
        )


def _describe(event: ModelEvent) -> str:
    """One short line of a history event (its full reason stays on the history)."""
    version = f"v{event.version}" if event.version is not None else ""
    reason = event.reason.split(";")[0].strip()
    if len(reason) > 90:
        reason = reason[:89] + "…"
    if event.kind == "alias_set":
        before = f"v{event.previous_version}" if event.previous_version else "unset"
        return f"alias {event.alias}: {before} → {version}"
    if event.kind == "alias_deleted":
        return f"alias {event.alias} removed"
    if event.kind == "retrain_started":
        kinds = ", ".join(str(t.get("kind")) for t in event.details.get("triggers", []))
        return f"retraining started ({kinds or reason})"
    return f"{event.kind.replace('_', ' ')} {version}: {reason}".strip()


def _alert_line(event: AlertEvent) -> str:
    a = event.alert
    if event.status == "firing":
        value = "" if a.value is None else f"{a.value:,.4g} {a.comparison} {a.threshold:,.4g}"
        return f"ALERT {a.rule} ({a.severity}): {a.metric} {value}".strip()
    value = "" if a.resolved_value is None else f" ({a.metric} {a.resolved_value:,.4g})"
    return f"resolved {a.rule}{value}"


def cost_per_1000(frame: pd.DataFrame, costs: CostMatrix, decision: str = "decision") -> float:
    """What the decisions in ``frame`` cost per 1,000 transactions under ``costs``."""
    result = costs.evaluate(
        frame["is_fraud"].to_numpy() == 1, frame[decision].to_numpy() == 1, frame=frame
    )
    return float(result.per_1000)


def replay_day_of(story: Story, when: datetime) -> int:
    """The replayed day (1-based) a time falls in."""
    first = story.bank.midnight(story.scenario.history_days)
    return int((when.astimezone(UTC) - first) // timedelta(days=1)) + 1
