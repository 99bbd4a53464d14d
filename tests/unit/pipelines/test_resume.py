"""A pipeline process killed with SIGKILL in step 3 resumes from steps 1-2 in the cache."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bascule.testing import make_services

SCRIPT = Path(__file__).with_name("_resumable.py")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_killed_pipeline_resumes_from_cached_steps(tmp_path: Path) -> None:
    home = tmp_path / "home"
    markers = tmp_path / "markers"
    markers.mkdir()
    (markers / "block").touch()
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(home), str(markers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not (markers / "step3-started").exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "step 3 never started"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert -signal.SIGKILL == proc.returncode

    (markers / "block").unlink()
    resumed = subprocess.run(
        [sys.executable, str(SCRIPT), str(home), str(markers)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    body = json.loads(resumed.stdout)

    assert "FINISHED" == body["status"]
    assert {"load": "hit", "featurize": "hit", "summarize": "miss"} == body["cache"]
    assert {"mean_x2": 332833.5} == body["summary"]
    services = make_services(home)
    try:
        runs = [r for r in services.tracking.search_runs().runs if r.parent_run_id is None]
        killed = next(r for r in runs if r.id != body["run_id"])
        steps = [r for r in services.tracking.search_runs().runs if r.parent_run_id == killed.id]
    finally:
        services.close()
    assert "RUNNING" == killed.status  # the killed process could not end its run
    assert {"load": "FINISHED", "featurize": "FINISHED", "summarize": "RUNNING"} == {
        r.tags["bascule.step"]: r.status for r in steps
    }
