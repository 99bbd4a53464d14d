"""Checks on what runs log, so that nothing invalid is half-written (limits as in MLflow)."""

from __future__ import annotations

import numbers
import re

from bascule.core.errors import InvalidInputError

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_PARAM_VALUE_LENGTH",
    "MAX_TAG_VALUE_LENGTH",
    "check_key",
    "check_metric_value",
    "check_param_value",
    "check_step",
    "check_tag_value",
]

MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
_KEY = re.compile(r"^[\w\-. /:]+$")


def check_key(key: object, *, what: str) -> str:
    """Raises: InvalidInputError when the key is empty, too long or has odd characters."""
    if not isinstance(key, str) or not key:
        raise InvalidInputError.for_field(f"{what} key", key, "a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInputError.for_field(
            f"{what} key", key, f"at most {MAX_KEY_LENGTH} characters (got {len(key)})"
        )
    if not _KEY.match(key) or key.startswith("/") or ".." in key.split("/"):
        raise InvalidInputError.for_field(
            f"{what} key", key, "letters, digits, and '_ - . / : ' or space, not starting with '/'"
        )
    return key


def check_metric_value(key: str, value: object) -> float:
    """A metric value as float. NaN and ±inf are kept, as MLflow does.

    Raises:
        InvalidInputError: the value is not a real number (strings, None, bools).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInputError.for_field(f"metric {key!r} value", value, "a real number")
    return float(value)


def check_step(key: str, step: object) -> int:
    """Raises: InvalidInputError when the step is not an integer."""
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise InvalidInputError.for_field(f"metric {key!r} step", step, "an integer")
    return int(step)


def check_param_value(key: str, value: object) -> str:
    """Params are stored as strings. Raises: InvalidInputError when too long."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_PARAM_VALUE_LENGTH:
        raise InvalidInputError.for_field(
            f"param {key!r} value",
            text,
            f"at most {MAX_PARAM_VALUE_LENGTH} characters (got {len(text)})",
        )
    return text


def check_tag_value(key: str, value: object) -> str:
    """Raises: InvalidInputError when too long."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_TAG_VALUE_LENGTH:
        raise InvalidInputError.for_field(
            f"tag {key!r} value",
            text,
            f"at most {MAX_TAG_VALUE_LENGTH} characters (got {len(text)})",
        )
    return text
