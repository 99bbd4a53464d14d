"""``bascule loadtest`` against a ``bascule serve`` started in a subprocess, as users run both."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from bascule.testing import make_services

pytestmark = pytest.mark.slow

BASCULE = [sys.executable, "-m", "bascule.cli.main"]
FEATURES = ["amount", "age", "hour", "risk"]


@dataclass
class Served:
    url: str
    home: Path
    frame: pd.DataFrame


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASCULE_")}
    env.update(BASCULE_HOME=str(home), NO_COLOR="1", COLUMNS="200")
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``tiny`` (4 numeric features, champion) and ``mixed`` (a text column) on a free port."""
    root = tmp_path_factory.mktemp("loadtest")
    home = root / "home"
    services = make_services(home)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 4)), columns=FEATURES)
    tiny = LogisticRegression().fit(frame, (frame.amount + frame.risk > 0).astype(int))
    services.registry.register("tiny", tiny, sample=frame)
    services.registry.set_alias("tiny", "champion", 1)
    mixed_frame = pd.DataFrame(
        {"x": rng.normal(size=100), "city": rng.choice(["lyon", "paris"], 100)}
    )
    encode = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["city"])], remainder="passthrough"
    )
    mixed = make_pipeline(encode, LogisticRegression()).fit(
        mixed_frame, (mixed_frame.x > 0).astype(int)
    )
    services.registry.register("mixed", mixed, sample=mixed_frame)
    services.close()

    port = _free_port()
    process = subprocess.Popen(
        [*BASCULE, "serve", "tiny@champion", "mixed", "--host", "127.0.0.1", "--port", str(port)],
        cwd=root,
        env=_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise AssertionError(f"bascule serve exited: {process.communicate()[1]}")
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("bascule serve did not become ready in 90 s")
            time.sleep(0.1)
        yield Served(url, home, frame)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()


def _loadtest(served: Served, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BASCULE, "loadtest", *args],
        cwd=served.home.parent,
        env=_env(served.home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert 0 == proc.returncode, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_closed_loop_counts_every_answer_with_ordered_percentiles(served: Served) -> None:
    result = _json(
        _loadtest(
            served, served.url, "--model", "tiny", "--duration", "2", "--concurrency", "4", "--json"
        )
    )

    lat = result["latency_ms"]
    assert "closed" == result["mode"]
    assert result["requests"] > 50
    assert result["requests"] == result["ok"]
    assert {"200": result["requests"]} == result["statuses"]
    assert {} == result["errors"]
    assert 0 == result["failed"]
    assert 4 == result["connections_opened"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert result["throughput_rps"] == pytest.approx(result["ok"] / result["duration_s"])
    assert 1.8 < result["duration_s"] < 3.0


def test_open_loop_sends_the_scheduled_requests(served: Served) -> None:
    result = _json(
        _loadtest(
            served,
            served.url,
            "--model",
            "tiny",
            "--rate",
            "100",
            "--arrivals",
            "constant",
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--json",
        )
    )

    assert "open" == result["mode"]
    assert "scheduled send" == result["latency_from"]
    assert 100 == pytest.approx(result["scheduled"], abs=2)
    assert result["scheduled"] == result["ok"] + result["unsent"]
    assert {} == result["errors"]


def test_rows_from_a_parquet_file_and_a_request_budget(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    served.frame.to_parquet(path)

    result = _json(
        _loadtest(
            served,
            served.url,
            "--model",
            "tiny",
            "--data",
            str(path),
            "--rows",
            "8",
            "--requests",
            "40",
            "--warmup",
            "0",
            "--json",
        )
    )

    assert 40 == result["ok"]
    assert 8 == result["rows_per_request"]
    assert result["rows_per_s"] == pytest.approx(8 * result["throughput_rps"])


def test_text_inputs_get_values_from_the_vocabulary(served: Served) -> None:
    result = _json(
        _loadtest(served, served.url, "-m", "mixed", "-d", "1", "-c", "2", "--rows", "3", "--json")
    )

    assert result["ok"] > 0
    assert {} == result["errors"]


def test_human_output_shows_throughput_and_percentiles(served: Served) -> None:
    proc = _loadtest(served, served.url, "--model", "tiny", "--duration", "1", "-c", "2")

    assert 0 == proc.returncode, proc.stderr
    assert "req/s" in proc.stdout
    assert "p99" in proc.stdout
    assert "errors" in proc.stdout


def test_an_unknown_model_is_a_clear_error(served: Served) -> None:
    proc = _loadtest(served, served.url, "--model", "churn", "--duration", "1")

    assert 4 == proc.returncode
    assert "'churn' not found" in proc.stderr
    assert "'tiny'" in proc.stderr  # what the server does serve
    assert "" == proc.stdout


def test_an_unreachable_server_is_a_clear_error(served: Served) -> None:
    proc = _loadtest(served, f"http://127.0.0.1:{_free_port()}", "--model", "tiny", "-d", "1")

    assert 69 == proc.returncode
    assert "cannot reach the server" in proc.stderr
