"""The SDK: buffered metrics reach the store on end, on error, at exit; remote logging over HTTP."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import bascule
from bascule.core.errors import ConflictError, InvalidInputError
from bascule.sdk import ActiveRun, configure
from bascule.testing import make_services, make_settings, serve_in_thread


@pytest.fixture
def home(tmp_path: Path):
    services = configure(make_settings(tmp_path / "home"))
    yield tmp_path / "home"
    services.close()


def test_run_context_logs_everything_and_finishes(home: Path) -> None:
    with bascule.start_run(experiment="fraud", name="baseline") as run:
        run.log_params({"depth": 3})
        for step in range(250):
            run.log_metrics({"loss": 1 / (step + 1), "acc": step / 250}, step=step)
        run.set_tags({"team": "risk"})

    stored = make_services(home).tracking
    got = stored.get_run(run.id)
    assert "FINISHED" == got.status
    assert 250 == len(stored.metric_history(run.id, "loss"))
    assert {"depth": "3"} == got.params
    assert "risk" == got.tags["team"]


def _log_then_fail(run: ActiveRun) -> None:
    with run:
        run.log_metrics({"loss": 0.3}, step=1)
        raise RuntimeError("training blew up")


def test_error_inside_run_marks_failed_and_keeps_metrics(home: Path) -> None:
    run = bascule.start_run(experiment="e")

    with pytest.raises(RuntimeError):
        _log_then_fail(run)

    got = make_services(home).tracking.get_run(run.id)
    assert "FAILED" == got.status
    assert 0.3 == got.metrics["loss"].value


def test_bad_values_fail_at_the_call(home: Path) -> None:
    with bascule.start_run(experiment="e") as run:
        with pytest.raises(InvalidInputError, match="metric 'loss' value"):
            run.log_metrics({"loss": "nan-ish"})
        run.log_params({"lr": 0.1})
        with pytest.raises(ConflictError):
            run.log_params({"lr": 0.2})


def test_nested_runs_get_their_parent(home: Path) -> None:
    with (
        bascule.start_run(experiment="sweep") as parent,
        bascule.start_run(experiment="sweep") as child,
    ):
        pass

    assert parent.id == make_services(home).tracking.get_run(child.id).parent_run_id


def test_buffered_metrics_are_written_at_interpreter_exit(tmp_path: Path) -> None:
    home = tmp_path / "home"
    script = textwrap.dedent(
        f"""
        import bascule
        from bascule.sdk import configure
        from bascule.testing import make_settings
        configure(make_settings({str(home)!r}))
        run = bascule.start_run(experiment="e", name="never-ended")
        for i in range(1234):
            run.log_metric("loss", 1.0 / (i + 1), step=i)
        print(run.id)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    run_id = out.stdout.strip()

    tracking = make_services(home).tracking
    assert 1234 == len(tracking.metric_history(run_id, "loss"))
    assert "FINISHED" == tracking.get_run(run_id).status


def test_register_with_run_records_lineage(home: Path) -> None:
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(100, 3)), columns=["a", "b", "c"])
    y = (X["a"] > 0).astype(int)
    with bascule.start_run(experiment="e") as run:
        ds = run.log_dataset(X.assign(y=y), name="train")
        run.log_metrics({"auc": 0.8})
        model = LogisticRegression().fit(X, y)
        mv = bascule.register_model("m", model, sample=X, run=run)
    bascule.set_alias("m", "champion", mv.version)

    predictor = bascule.load_model("m@champion")

    assert run.id == mv.run_id
    assert ds.digest == mv.dataset_digest
    assert {"auc": 0.8} == mv.metrics
    assert ("m", 1) == (predictor.name, predictor.version)
    assert (model.predict(X) == predictor.predict(X.to_numpy())).all()


def test_remote_backend_logs_through_the_control_plane(tmp_path: Path) -> None:
    from bascule.http.control.app import create_app
    from bascule.sdk.backends import RemoteBackend

    server_services = make_services(tmp_path / "server")
    with serve_in_thread(create_app(server_services)) as url:
        _log_remotely(RemoteBackend(url), server_services, tmp_path)


def _log_remotely(backend, server_services, tmp_path: Path) -> None:
    from bascule.sdk.runs import ActiveRun

    run = backend.start_run(experiment="remote", name="r", tags={}, parent_run_id=None)
    active = ActiveRun(backend, run, max_buffered=100, flush_interval_s=60)
    for i in range(250):
        active.log_metric("loss", 1 / (i + 1), step=i)
    active.log_params({"lr": 0.1})
    f = tmp_path / "notes.txt"
    f.write_text("hi")
    active.log_artifact(f)
    active.end()

    got = server_services.tracking.get_run(run.id)
    assert 250 == len(server_services.tracking.metric_history(run.id, "loss"))
    assert "FINISHED" == got.status
    assert "notes.txt" == got.artifacts[0].path
    with pytest.raises(ConflictError):
        backend.log_batch(run.id, metrics=[], params={"lr": 0.5}, tags={})
