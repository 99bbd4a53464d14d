"""``bascule serve`` in a subprocess, on a home with registered models."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from bascule.testing import make_services

FEATURES = ["amount", "age", "hour", "risk"]


@dataclass
class Home:
    """A bascule home with ``fraud`` (v1 champion, v2), ``swap`` (v1 live, v2) and ``mixed``."""

    path: Path
    frame: pd.DataFrame
    fraud_v1: LogisticRegression
    fraud_v2: LogisticRegression
    mixed_frame: pd.DataFrame
    mixed: object


@pytest.fixture(scope="package")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    path = tmp_path_factory.mktemp("serve") / "home"
    services = make_services(path)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 4)), columns=FEATURES)
    v1 = LogisticRegression().fit(frame, (frame.amount + frame.risk > 0).astype(int))
    v2 = LogisticRegression().fit(frame, (frame.amount - frame.risk > 0).astype(int))
    for name in ("fraud", "swap"):
        services.registry.register(name, v1, sample=frame)
        services.registry.register(name, v2, sample=frame)
    services.registry.set_alias("fraud", "champion", 1)
    services.registry.set_alias("swap", "live", 1)
    mixed_frame = pd.DataFrame(
        {
            "n": rng.integers(0, 5, 200),
            "x": rng.normal(size=200),
            "city": rng.choice(["lyon", "nantes", "paris"], 200),
        }
    )
    encode = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["city"])], remainder="passthrough"
    )
    mixed = make_pipeline(encode, LogisticRegression()).fit(
        mixed_frame, np.where(mixed_frame.n > 2, "yes", "no")
    )
    services.registry.register("mixed", mixed, sample=mixed_frame)
    services.close()
    return Home(path, frame, v1, v2, mixed_frame, mixed)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running ``bascule serve`` process."""

    process: subprocess.Popen[str]
    url: str
    port: int

    def stop(self, timeout: float = 60) -> tuple[int, str]:
        """SIGTERM, then wait; returns the exit code and stderr."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            _, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return int(self.process.returncode), err


def bascule_env(home: Home) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASCULE_")}
    env.update(BASCULE_HOME=str(home.path), NO_COLOR="1", COLUMNS="200")
    return env


@pytest.fixture
def serve_env(home: Home) -> dict[str, str]:
    """The environment ``bascule`` runs with: this home, no other BASCULE_ variable."""
    return bascule_env(home)


@pytest.fixture
def start_server(home: Home, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``start_server("fraud@champion", "--workers", "2")``: started and ready, stopped after.

    ``env`` adds environment variables (``TMPDIR``, to find the server's temporary files).
    """
    started: list[Server] = []

    def start(*args: str, ready_timeout: float = 90, env: dict[str, str] | None = None) -> Server:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "bascule.cli.main", "serve", *args, "--port", str(port)],
            cwd=tmp_path,
            env={**bascule_env(home), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        server = Server(process, f"http://127.0.0.1:{port}", port)
        started.append(server)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                out, err = process.communicate()
                raise AssertionError(f"bascule serve exited {process.returncode}: {out}\n{err}")
            try:
                if httpx.get(f"{server.url}/v2/health/ready", timeout=2).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        server.stop()
        raise AssertionError("bascule serve did not become ready in time")

    yield start
    for server in started:
        server.stop()
