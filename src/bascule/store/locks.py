"""Exclusive file locks: one holder at a time across processes on one machine.

A :class:`FileLock` holds an OS lock (``flock`` on POSIX, ``msvcrt.locking`` on Windows) on
an open file. The operating system releases it when the holder closes the file or dies, so
a process killed while holding it never leaves a stale lock behind. The holder writes who
it is (JSON: pid, host, since, and what the caller adds) into the file, for the message
another process shows when it is refused.

Locks on a local file coordinate the processes of one machine (they share
``BASCULE_HOME``); they do not reach across machines.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from bascule.core.errors import StorageError

__all__ = ["FileLock"]


def _try_lock(handle: IO[str]) -> bool:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(handle: IO[str]) -> None:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class FileLock:
    """An exclusive lock on ``path``, not reentrant: acquire it once, release it once.

    Args:
        path: The lock file (created, with its folder, when missing).
        sleep: Waits between attempts in :meth:`acquire` (tests inject a fake).
        monotonic: Measures the timeout of :meth:`acquire`.
    """

    def __init__(
        self,
        path: Path,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._sleep = sleep
        self._monotonic = monotonic
        self._handle: IO[str] | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._handle is not None

    def try_acquire(self, holder: Mapping[str, Any] | None = None) -> bool:
        """Take the lock if it is free, and write who holds it.

        Args:
            holder: Extra JSON-friendly facts written beside the pid, host and time.

        Returns:
            True when taken; False when another holder has it.

        Raises:
            StorageError: the lock file cannot be created or opened.
            RuntimeError: this object already holds the lock.
        """
        if self._handle is not None:
            raise RuntimeError(f"lock {self.path} is already held by this object")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = self.path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise StorageError(f"cannot open lock file {str(self.path)!r}: {exc}") from exc
        if not _try_lock(handle):
            handle.close()
            return False
        self._handle = handle
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        info.update(holder or {})
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(info, default=str))
            handle.flush()
        except OSError:  # the lock is what matters; the note is a courtesy
            pass
        return True

    def acquire(
        self,
        holder: Mapping[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
        poll_s: float = 0.2,
    ) -> bool:
        """Wait for the lock (at most ``timeout_s`` seconds; None: for ever).

        Returns:
            True when taken; False when the timeout passed first.

        Raises:
            StorageError: the lock file cannot be created or opened.
        """
        deadline = None if timeout_s is None else self._monotonic() + timeout_s
        while not self.try_acquire(holder):
            if deadline is not None and self._monotonic() >= deadline:
                return False
            self._sleep(poll_s)
        return True

    def release(self) -> None:
        """Release the lock (doing nothing when it is not held)."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        try:
            handle.seek(0)
            handle.truncate()
            _unlock(handle)
        except OSError:  # closing releases the lock anyway
            pass
        finally:
            handle.close()

    def holder(self) -> dict[str, Any]:
        """What the current (or last) holder wrote: pid, host, since...; {} when unknown."""
        try:
            text = self.path.read_text(encoding="utf-8")
            data = json.loads(text) if text.strip() else {}
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
