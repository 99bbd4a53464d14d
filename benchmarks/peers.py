"""Peers for benchmarks: each peer lives in its own virtualenv under ``benchmarks/.peers/``.

A peer never shares an interpreter with bascule: the benchmark runs the peer's side as a
subprocess of the peer's own python. The virtualenv is created on first use and reused after.
Helpers for subprocesses (free ports, waiting for a server, stopping by PID) live here too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "PEERS_DIR",
    "bench_env",
    "ensure_venv",
    "free_port",
    "mlflow_python",
    "progress",
    "start_process",
    "stop_process",
    "wait_http",
]

PEERS_DIR = Path(__file__).resolve().parent / ".peers"
MLFLOW_VERSION = "3.17.2"
PEER_PYTHON = "python3.11"


def progress(msg: str) -> None:
    """Progress goes to stderr; figures go to stdout."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def bench_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for every process of a benchmark: one BLAS thread, no stray config."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BASCULE_", "MLFLOW_")) and k != "PYTHONPATH"
    }
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra or {})
    return env


def ensure_venv(name: str, requirements: list[str], *, import_check: str) -> Path:
    """The python of ``benchmarks/.peers/NAME``, created with ``python3.11 -m venv`` if missing.

    A venv whose python cannot ``import_check`` (a half-finished install) is rebuilt.
    """
    root = PEERS_DIR / name
    python = root / "bin" / "python"
    if python.exists():
        check = subprocess.run(
            [str(python), "-c", import_check], capture_output=True, text=True, check=False
        )
        if check.returncode == 0:
            return python
        progress(f"peer venv {root} is incomplete; reinstalling")
    else:
        progress(f"creating peer venv {root} (first run only; takes a minute or two)")
        subprocess.run([PEER_PYTHON, "-m", "venv", str(root)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *requirements],
        check=True,
        stdout=sys.stderr,
    )
    subprocess.run([str(python), "-c", import_check], check=True)
    return python


def mlflow_python() -> Path:
    """The python of the MLflow peer venv (full ``mlflow`` package, with ``mlflow server``)."""
    return ensure_venv(
        f"mlflow-{MLFLOW_VERSION}",
        [f"mlflow=={MLFLOW_VERSION}"],
        import_check=(
            f"import mlflow, sys; sys.exit(0 if mlflow.__version__ == {MLFLOW_VERSION!r} else 1)"
        ),
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_process(
    args: list[str], *, env: Mapping[str, str], log_path: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a server in its own process group, its output to ``log_path``."""
    log = log_path.open("wb")
    try:
        return subprocess.Popen(
            args,
            env=dict(env),
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        log.close()  # the child holds its own descriptor


def wait_http(url: str, proc: subprocess.Popen[bytes], *, timeout_s: float, log_path: Path) -> None:
    """Wait until ``url`` answers 200, or fail with the server's log if it dies or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"server exited with {proc.returncode} before ready:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - 127.0.0.1 only
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    tail = log_path.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"server at {url} not ready after {timeout_s:.0f}s:\n{tail}")


def stop_process(proc: subprocess.Popen[bytes] | None, *, grace_s: float = 10.0) -> None:
    """Stop a process started by :func:`start_process` (its own group, by PID): TERM, then KILL."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # the group led by this PID (uvicorn/gunicorn workers)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        proc.wait(timeout=grace_s)
