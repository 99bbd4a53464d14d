"""``bascule server`` on a project made by ``bascule init``: the retraining schedule fires in
the server, the state is served, and the server stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.conftest import as_json

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> Any:
    response = httpx.get(url, timeout=5)
    assert 200 == response.status_code, response.text
    return response.json()


@pytest.mark.slow
def test_the_server_retrains_on_the_project_schedule(cli: Cli, tmp_path: Path) -> None:
    project = tmp_path / "project"
    assert 0 == cli("init", str(project), "--rows", "1000").returncode
    config = project / "bascule.yaml"
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["project"]["retraining"]["schedule"] = "* * * * *"  # every minute
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    port = _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASCULE_")}
    env.update(BASCULE_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1", NO_COLOR="1")
    server = subprocess.Popen(
        [sys.executable, "-m", "bascule.cli.main", "--config", str(config), "server",
         "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api/v1/models/fraud/retraining"
    states: list[Any] = []
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            assert server.poll() is None, server.communicate()
            try:
                state = _get(url)
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            states.append(state)
            if state["recent"]:
                break
            time.sleep(0.5)
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()

    first, last = states[0], states[-1]
    assert first["automated"]
    assert "* * * * *" == first["policy"]["schedule"]
    [done] = last["recent"]
    assert "finished" == done["status"], done
    assert "schedule" == done["triggers"][0]["kind"]
    assert (1, "champion") == (done["outcome"]["version"], done["outcome"]["alias"])
    assert 0 == server.returncode, err
    history = as_json(cli("--config", str(config), "models", "history", "fraud", "--json"))
    finished = [e for e in history if e["kind"] == "retrain_finished"]
    assert 1 == len(finished)
    assert ["schedule"] == finished[0]["details"]["triggers"]
