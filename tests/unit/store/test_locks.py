"""FileLock: one holder at a time, across processes; released when the holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bascule.store.locks import FileLock

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from bascule.store.locks import FileLock
    lock = FileLock(Path(sys.argv[1]))
    assert lock.try_acquire({"job": "holder"})
    print("held", flush=True)
    time.sleep(60)
    """
)


def test_second_holder_is_refused_until_the_first_releases(tmp_path: Path) -> None:
    first, second = FileLock(tmp_path / "x.lock"), FileLock(tmp_path / "x.lock")

    assert first.try_acquire({"model": "fraud"})
    assert not second.try_acquire()
    assert "fraud" == second.holder()["model"]
    assert os.getpid() == second.holder()["pid"]
    first.release()

    assert second.try_acquire()
    assert second.held
    second.release()
    assert not second.held


def test_acquire_waits_with_the_injected_sleep_and_times_out(tmp_path: Path) -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    holder = FileLock(tmp_path / "x.lock")
    holder.try_acquire()
    waiter = FileLock(tmp_path / "x.lock", sleep=sleep, monotonic=lambda: now[0])

    assert not waiter.acquire(timeout_s=1.0, poll_s=0.25)
    assert [0.25] * 4 == waits
    holder.release()
    assert waiter.acquire(timeout_s=1.0)
    waiter.release()


def test_the_lock_of_a_killed_process_is_free(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "retrain-fraud.lock"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert "held" == proc.stdout.readline().strip()
        lock = FileLock(path)
        assert not lock.try_acquire()
        assert "holder" == lock.holder()["job"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

        deadline = time.monotonic() + 10
        while not lock.try_acquire():
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    lock.release()


def test_context_manager_releases(tmp_path: Path) -> None:
    with FileLock(tmp_path / "x.lock") as lock:
        assert lock.held
        assert not FileLock(tmp_path / "x.lock").try_acquire()

    again = FileLock(tmp_path / "x.lock")
    assert again.try_acquire()
    again.release()


def test_acquiring_twice_from_the_same_object_is_a_bug(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "x.lock")
    lock.try_acquire()

    with pytest.raises(RuntimeError, match="already held"):
        lock.try_acquire()
    lock.release()
