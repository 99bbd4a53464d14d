"""The single table from error codes to exit codes, and the handler the CLI runs every command
in.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

from rich.console import Console

from bascule.core.errors import BasculeError

__all__ = ["EXIT_CODES", "exit_code_for", "run_guarded"]

EXIT_CODES: dict[str, int] = {
    "invalid_input": 2,
    "unsupported_model": 2,
    "parity_failed": 3,
    "not_found": 4,
    "conflict": 5,
    "integrity_error": 6,
    "features_unavailable": 4,
    "config_error": 78,  # EX_CONFIG
    "storage_error": 69,  # EX_UNAVAILABLE
    "not_ready": 69,
    "overloaded": 75,  # EX_TEMPFAIL
}
INTERNAL_EXIT = 1

T = TypeVar("T")


def exit_code_for(exc: BasculeError) -> int:
    return EXIT_CODES.get(exc.code, INTERNAL_EXIT)


def run_guarded(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a command; a BasculeError becomes its message on stderr and its exit code."""
    err = Console(stderr=True)
    try:
        return fn(*args, **kwargs)
    except BasculeError as exc:
        err.print(f"[bold red]error[/] ({exc.code}): {exc.message}", highlight=False, markup=True)
        sys.exit(exit_code_for(exc))
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
