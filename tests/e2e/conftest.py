"""Run the ``bascule`` CLI in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

BASCULE = [sys.executable, "-m", "bascule.cli.main"]


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``cli("runs", "list", "--json")`` runs bascule with its home in a temp folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASCULE_")}
    env.update(BASCULE_HOME=str(tmp_path / "home"), COLUMNS="200", NO_COLOR="1")

    def run(
        *args: str, env_extra: dict[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*BASCULE, *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**env, **(env_extra or {})},
            timeout=timeout,
            check=False,
        )

    return run


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert 0 == proc.returncode, proc.stderr
    return json.loads(proc.stdout)
