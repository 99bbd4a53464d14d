"""The tracking benchmark runs (bascule only, no peer) and prints `name: value unit` lines."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(
    r"^(?P<name>[a-z][a-z0-9_]*): (?P<value>-?\d+(?:\.\d+)?(?:e[+-]?\d+)?) (?P<unit>\S+)"
    r"(?: \((?P<note>[^()]*)\))?$"
)


@pytest.mark.slow
def test_tracking_benchmark_quick_bascule_only_prints_parsable_figures(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASCULE_")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "tracking.py"), "--quick", "--bascule-only"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    bad = [line for line in lines if not LINE.match(line)]
    assert bad == [], f"lines not in 'name: value unit' form: {bad}"
    figures = {m["name"]: float(m["value"]) for m in map(LINE.match, lines) if m}
    assert figures["bascule_inprocess_log_metrics_stored"] == 2000
    assert figures["bascule_http_log_metrics_stored"] == 2000
    assert figures["bascule_inprocess_search_runs_matches"] > 0
    assert figures["checks_failed"] == 0
    assert not any(name.startswith("mlflow_") for name in figures)
