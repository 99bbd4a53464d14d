"""Where a model came from: the git commit of the working directory, when there is one."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["git_commit"]


def git_commit(cwd: Path | None = None) -> str | None:
    """The HEAD commit of the git repository around ``cwd``, or None.

    ``cwd`` defaults to the current folder.
    """
    git = shutil.which("git")
    if git is None:
        return None
    try:
        out = subprocess.run(  # noqa: S603  # fixed argv, no shell
            [git, "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) == 40 else None
