"""A registered model with a real prediction log (Parquet in the artifact store) to monitor.

``make_world(**monitoring_settings)`` builds services on the parametrized metadata DB with a
``FakeClock``, registers ``fraud`` v1 (a scikit-learn pipeline converted to ONNX: numeric
``amount`` and ``age``, categorical ``channel``) as champion, and returns a :class:`World`
whose :meth:`World.log` answers rows with the registered ONNX model and writes them to the
prediction log at chosen hours, as the inference server does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from bascule.store.predictions import PredictionLog, PredictionRecord
from bascule.testing import FakeClock
from bascule.wiring import Services

T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)
CHANNELS = ["app", "shop", "web"]


def sample(n: int, *, seed: int, shift: float = 1.0) -> pd.DataFrame:
    """Transactions: ``amount`` (scaled by ``shift``), ``age`` and ``channel``."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 50.0, n) * shift,
            "age": rng.normal(40.0, 10.0, n),
            "channel": rng.choice(CHANNELS, n, p=[0.5, 0.3, 0.2]),
        }
    )


def truth(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """The label process: large amounts are fraud, with noise."""
    rng = np.random.default_rng(seed)
    return (frame.amount.to_numpy() + rng.normal(0, 40, len(frame)) > 130).astype(int)


@pytest.fixture(scope="session")
def trained() -> tuple[Any, pd.DataFrame]:
    frame = sample(3000, seed=0)
    encode = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["channel"])], remainder="passthrough"
    )
    model = make_pipeline(encode, LogisticRegression(max_iter=2000)).fit(frame, truth(frame, 1))
    return model, frame


@dataclass
class World:
    """Services, a clock, and a prediction log to write answered rows to."""

    services: Services
    clock: FakeClock
    model: Any
    reference: pd.DataFrame
    logged: list[pd.DataFrame] = field(default_factory=list)

    def register(self, model: Any | None = None, *, alias: str | None = "champion") -> int:
        mv = self.services.registry.register("fraud", model or self.model, sample=self.reference)
        if alias:
            self.services.registry.set_alias("fraud", alias, mv.version)
        return mv.version

    def log(
        self,
        rows: pd.DataFrame,
        *,
        hour: int,
        version: int = 1,
        route: str = "champion",
        prefix: str | None = None,
        drop: tuple[str, ...] = (),
    ) -> pd.DataFrame:
        """Answer ``rows`` with the version's ONNX model and log one request per row in the
        given hour after ``T0``; returns the rows with ``request_id``, ``label`` and ``proba_1``.
        """
        predictor = self.services.registry.load(f"fraud:{version}")
        clean = rows.copy()
        clean["amount"] = clean["amount"].replace([np.inf, -np.inf], 0.0).fillna(0.0)
        clean["age"] = clean["age"].fillna(0.0)
        labels = predictor.predict(clean)
        proba = predictor.predict_proba(clean).astype(np.float32)
        store = PredictionLog(self.services.artifacts, clock=self.clock)
        start = T0 + hour * HOUR
        step = HOUR / (len(rows) + 1)
        ids = [f"{prefix or f'h{hour}v{version}'}-{i}" for i in range(len(rows))]
        for i, rid in enumerate(ids):
            inputs = {
                c: np.asarray(
                    rows[c].to_numpy()[i : i + 1], dtype=object if c == "channel" else float
                )
                for c in rows.columns
                if c not in drop
            }
            outputs = {
                "label": labels[i : i + 1],
                "proba_0": proba[i : i + 1, 0],
                "proba_1": proba[i : i + 1, 1],
            }
            store.append(
                PredictionRecord(
                    rid, "fraud", version, start + (i + 1) * step, inputs, outputs, 1.0, route=route
                )
            )
        store.close()
        out = rows.assign(request_id=ids, label=labels, proba_1=proba[:, 1])
        self.logged.append(out)
        return out

    @staticmethod
    def pick(results: Any, metric: str, **match: Any) -> list[Any]:
        """The results of one metric matching fields, oldest window first."""
        found = [
            r
            for r in results
            if r.metric == metric and all(getattr(r, k) == v for k, v in match.items())
        ]
        return sorted(found, key=lambda r: r.window_start)

    @classmethod
    def values(cls, results: Any, metric: str, **match: Any) -> list[Any]:
        """The values of one metric, window by window, matching fields."""
        return [r.value for r in cls.pick(results, metric, **match)]

    @classmethod
    def statuses(cls, results: Any, metric: str, **match: Any) -> list[str]:
        """The statuses of one metric, window by window, matching fields."""
        return [r.status for r in cls.pick(results, metric, **match)]


MakeWorld = Callable[..., World]


@pytest.fixture
def make_world(make_svc: Callable[..., Services], trained) -> MakeWorld:
    """``make_world(multivariate=False, **monitoring)``: a World whose ``fraud`` v1 is the
    registered champion; ``monitoring`` are the monitoring settings."""

    def make(*, multivariate: bool = False, **monitoring: Any) -> World:
        # the domain classifier costs ~0.5 s per window: on only where a test needs it
        models = monitoring.setdefault("models", {})
        models["fraud"] = {"multivariate": multivariate, **models.get("fraud", {})}
        clock = FakeClock(T0)
        services = make_svc(clock=clock, monitoring=monitoring)
        world = World(services, clock, trained[0], trained[1])
        world.register()
        return world

    return make
