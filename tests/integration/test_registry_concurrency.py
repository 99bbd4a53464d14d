"""Several processes on one registry: alias races and a process killed mid-registration."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from bascule.testing import make_services

pytestmark = pytest.mark.slow

_PRELUDE = """
import sys
import numpy as np
from pathlib import Path
from sklearn.linear_model import LogisticRegression
from bascule.testing import make_services
services = make_services(Path(sys.argv[1]), database_url=sys.argv[2])
"""


def _spawn(code: str, home: Path, db_url: str, *args: str) -> subprocess.Popen[str]:
    script = _PRELUDE + textwrap.dedent(code)
    return subprocess.Popen(
        [sys.executable, "-c", script, str(home), db_url, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_moving_one_alias_are_serialised_and_both_audited(
    tmp_path: Path, db_url: str
) -> None:
    home = tmp_path / "home"
    services = make_services(home, database_url=db_url)
    X = np.random.default_rng(0).normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    for _ in range(2):
        services.registry.register("fraud", LogisticRegression().fit(X, y), sample=X)
    mover = """
    version = int(sys.argv[3])
    for i in range(25):
        services.registry.set_alias("fraud", "champion", version, reason=f"p{version}-{i}")
    print("done")
    """

    procs = [_spawn(mover, home, db_url, str(v)) for v in (1, 2)]
    results = [p.communicate(timeout=120) for p in procs]

    assert [0, 0] == [p.returncode for p in procs], results
    moves = [e for e in services.registry.history("fraud") if e.kind == "alias_set"]
    assert 50 == len(moves)
    for before, after in itertools.pairwise(moves):
        assert before.version == after.previous_version
    assert moves[-1].version == services.registry.resolve("fraud@champion").version
    services.close()


def test_process_killed_during_registrations_leaves_no_version_without_artifacts(
    tmp_path: Path, db_url: str
) -> None:
    home = tmp_path / "home"
    registrar = """
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6))
    y = (X[:, 0] > 0).astype(int)
    i = 0
    while True:
        i += 1
        services.registry.register("fraud", LogisticRegression(C=1.0 / i).fit(X, y), sample=X)
        print(i, flush=True)
    """
    proc = _spawn(registrar, home, db_url)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # one registration done: the next ones are in flight
        time.sleep(0.37)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)

    services = make_services(home, database_url=db_url)
    versions = services.registry.list_versions("fraud")
    for mv in versions:
        predictor = services.registry.load(f"fraud:{mv.version}")
        assert (3, 2) == predictor.predict_proba(np.zeros((3, 6))).shape
        assert services.artifacts.exists(mv.profile_digest or "")
        assert services.artifacts.exists(mv.sample_digest or "")
    assert list(range(1, len(versions) + 1)) == [v.version for v in versions]
    X = np.random.default_rng(1).normal(size=(50, 6))
    mv = services.registry.register(
        "fraud", LogisticRegression().fit(X, (X[:, 1] > 0).astype(int)), sample=X
    )
    assert len(versions) + 1 == mv.version
    services.close()
