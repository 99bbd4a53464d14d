"""Names of things: model references (``name``, ``name@alias``, ``name:version``) and digests."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bascule.core.errors import InvalidInputError

__all__ = ["MAX_NAME_LENGTH", "ModelRef", "check_digest", "check_name"]

MAX_NAME_LENGTH = 250
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def check_name(value: object, *, field: str = "name") -> str:
    """Validate a model, alias or experiment-like identifier.

    Raises:
        InvalidInputError: empty, too long, or with characters other than letters, digits,
            ``_ . -``.
    """
    if not isinstance(value, str) or not value:
        raise InvalidInputError.for_field(field, value, "a non-empty string")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidInputError.for_field(
            field, value, f"at most {MAX_NAME_LENGTH} characters (got {len(value)})"
        )
    if not _NAME.match(value):
        raise InvalidInputError.for_field(
            field, value, "letters, digits, '_', '.', '-', starting with a letter or digit"
        )
    return value


def check_digest(value: object, *, field: str = "digest") -> str:
    """Validate a sha256 hex digest.

    Raises:
        InvalidInputError: not 64 lowercase hex characters.
    """
    if not isinstance(value, str) or not _DIGEST.match(value):
        raise InvalidInputError.for_field(
            field, value, "a sha256 digest of 64 lowercase hex digits"
        )
    return value


@dataclass(frozen=True)
class ModelRef:
    """A reference to a model version: by number, by alias, or the latest version."""

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Parse ``name``, ``name@alias`` or ``name:version``.

        Raises:
            InvalidInputError: the text is none of those forms.
        """
        expected = "'name', 'name@alias' or 'name:version' (version a positive integer)"
        if not _is_text(text):
            raise InvalidInputError.for_field("model reference", text, expected)
        if "@" in text:
            name, alias = text.split("@", 1)
            return cls(check_name(name, field="model name"), alias=check_name(alias, field="alias"))
        if ":" in text:
            name, ver = text.rsplit(":", 1)
            if not ver.isdigit() or int(ver) < 1:
                raise InvalidInputError.for_field("model reference", text, expected)
            return cls(check_name(name, field="model name"), version=int(ver))
        return cls(check_name(text, field="model name"))

    def __str__(self) -> str:
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return self.name


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value)
