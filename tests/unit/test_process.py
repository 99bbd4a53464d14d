"""Process configuration of the serving commands (``bascule.cli.process``), each case in a
fresh interpreter: it changes process-wide state (the environment, glibc's malloc)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bascule.cli.process import MALLOC_SETTINGS, THREAD_VARIABLES

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")

CHURN = """
import json, os, resource, sys
import numpy as np
from bascule.cli import process

def churn():  # 64 MiB in blocks of 4 MiB, allocated, written and freed
    held = [np.ones(1 << 19) for _ in range(16)]
    del held

if sys.argv[1] == "keep":
    process.keep_freed_memory()
    process.pin_math_threads()
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    churn()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
names = [*process.MALLOC_SETTINGS, *process.THREAD_VARIABLES]
print(json.dumps({"faults": faults, "env": {n: os.environ.get(n) for n in names}}))
"""

PAGES_CHURNED = 5 * 64 * 1024 // 4  # 4 KiB pages written by the five measured rounds


def run(mode: str, **env: str) -> dict[str, object]:
    ours = {*MALLOC_SETTINGS, *THREAD_VARIABLES}
    clean = {k: v for k, v in os.environ.items() if k not in ours}
    out = subprocess.run(
        [sys.executable, "-c", CHURN, mode],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


@linux_only
def test_freed_memory_is_reused_instead_of_faulted_in_again() -> None:
    default, kept = run("default"), run("keep")

    assert isinstance(default["faults"], int)
    assert isinstance(kept["faults"], int)
    assert default["faults"] > PAGES_CHURNED // 4, default  # glibc maps blocks afresh
    assert kept["faults"] < PAGES_CHURNED // 20, kept


@linux_only
def test_worker_processes_inherit_the_settings_through_the_environment() -> None:
    env = run("keep")["env"]

    assert {
        "MALLOC_TRIM_THRESHOLD_": str(256 << 20),
        "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    } == env


@linux_only
def test_the_users_own_values_are_kept() -> None:
    env = run("keep", MALLOC_TRIM_THRESHOLD_="1048576", OMP_NUM_THREADS="2")["env"]

    assert isinstance(env, dict)
    assert "1048576" == env["MALLOC_TRIM_THRESHOLD_"]
    assert str(32 << 20) == env["MALLOC_MMAP_THRESHOLD_"]
    assert "2" == env["OMP_NUM_THREADS"]
