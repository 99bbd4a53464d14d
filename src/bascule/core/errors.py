"""The one exception hierarchy of bascule.

Every failure a user can cause is one of these. Each class has a stable ``code``;
the HTTP status lives only in ``bascule.http.errors`` and the exit code only in
``bascule.cli.errors``, both keyed by ``code``.

::

    BasculeError                      code
    ├── InvalidInputError             invalid_input
    │   ├── UnsupportedModelError     unsupported_model
    │   ├── ParityError               parity_failed
    │   └── FeatureInputError         (a join key or request field missing from a request)
    ├── ConfigError                   config_error
    ├── NotFoundError                 not_found
    │   ├── ExperimentNotFoundError
    │   ├── RunNotFoundError
    │   ├── ModelNotFoundError
    │   ├── VersionNotFoundError
    │   ├── AliasNotFoundError
    │   ├── ArtifactNotFoundError
    │   └── FeatureServiceNotFoundError
    ├── ConflictError                 conflict
    ├── IntegrityError                integrity_error
    ├── FeaturesUnavailableError      features_unavailable
    ├── StorageError                  storage_error
    │   └── FeatureStoreUnavailableError
    ├── NotReadyError                 not_ready
    └── OverloadedError               overloaded
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

__all__ = [
    "AliasNotFoundError",
    "ArtifactNotFoundError",
    "BasculeError",
    "ConfigError",
    "ConflictError",
    "ExperimentNotFoundError",
    "FeatureInputError",
    "FeatureServiceNotFoundError",
    "FeatureStoreUnavailableError",
    "FeaturesUnavailableError",
    "IntegrityError",
    "InvalidInputError",
    "ModelNotFoundError",
    "NotFoundError",
    "NotReadyError",
    "OverloadedError",
    "ParityError",
    "RunNotFoundError",
    "StorageError",
    "UnsupportedModelError",
    "VersionNotFoundError",
    "error_from_code",
]


def _listing(values: Iterable[object], limit: int = 20) -> str:
    items = [repr(v) if isinstance(v, str) else str(v) for v in values]
    if not items:
        return "none"
    shown = ", ".join(items[:limit])
    return shown + (f" … ({len(items) - limit} more)" if len(items) > limit else "")


class BasculeError(Exception):
    """Base of every error bascule raises on purpose.

    ``code`` is stable and documented; ``details`` carries machine-readable context.
    """

    code: ClassVar[str] = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class InvalidInputError(BasculeError):
    """A value given by the user is not what was expected.

    The message names the field, the offending value and what was expected.
    """

    code = "invalid_input"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        value: Any = None,
        expected: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, field=field, expected=expected, **details)
        self.field = field
        self.value = value
        self.expected = expected

    @classmethod
    def for_field(cls, field: str, value: Any, expected: str) -> InvalidInputError:
        shown = repr(value)
        if len(shown) > 200:
            shown = shown[:200] + "…"
        return cls(
            f"invalid {field}: got {shown}, expected {expected}",
            field=field,
            value=value,
            expected=expected,
        )


class UnsupportedModelError(InvalidInputError):
    """The model type cannot be converted to ONNX by any installed converter."""

    code = "unsupported_model"


class ParityError(InvalidInputError):
    """The ONNX model does not reproduce the source model's predictions on the sample."""

    code = "parity_failed"


class FeatureInputError(InvalidInputError):
    """A request for a model that looks its features up lacks a join key or request field.

    ``details["missing"]`` lists the inputs missing; ``details["required"]`` what must be sent.
    """


class ConfigError(BasculeError):
    """Settings or ``bascule.yaml`` are wrong; the message lists every mistake and its source."""

    code = "config_error"


class NotFoundError(BasculeError):
    """Something named does not exist; the message lists what does."""

    code = "not_found"
    kind: ClassVar[str] = "object"

    def __init__(
        self, name: object, *, available: Iterable[object] | None = None, **details: Any
    ) -> None:
        avail = [] if available is None else list(available)
        where = "".join(f" in {k} {v!r}" for k, v in details.items() if k in ("model", "run"))
        listing = "" if available is None else f"; available: {_listing(avail)}"
        super().__init__(
            f"{self.kind} {name!r} not found{where}{listing}",
            name=name,
            available=avail[:100],
            **details,
        )
        self.name = name
        self.available = avail


class ExperimentNotFoundError(NotFoundError):
    """No experiment with that name or id."""

    kind = "experiment"


class RunNotFoundError(NotFoundError):
    """No run with that id."""

    kind = "run"


class ModelNotFoundError(NotFoundError):
    """No registered model with that name."""

    kind = "model"


class VersionNotFoundError(NotFoundError):
    """The model exists but not that version."""

    kind = "model version"


class AliasNotFoundError(NotFoundError):
    """The model exists but has no such alias."""

    kind = "alias"


class ArtifactNotFoundError(NotFoundError):
    """No artifact stored under that digest or key."""

    kind = "artifact"


class FeatureServiceNotFoundError(NotFoundError):
    """No feature service with that name is registered (``bascule features apply``)."""

    kind = "feature service"


class ConflictError(BasculeError):
    """The write conflicts with what exists.

    For example a duplicate name, or a param logged with another value.
    """

    code = "conflict"


class IntegrityError(BasculeError):
    """Stored bytes do not match their recorded digest: the artifact is corrupted."""

    code = "integrity_error"


class FeaturesUnavailableError(BasculeError):
    """The online store holds no usable value for some entities' features: the entity is not
    there, or its values are older than the view's TTL (or null where a number is needed).

    The request is refused rather than answered with made-up values. ``details["rows"]``
    lists, per refused row, its entity keys and each feature with its status.
    """

    code = "features_unavailable"


class StorageError(BasculeError):
    """A storage backend (database, artifact store) failed or is unreachable."""

    code = "storage_error"


class FeatureStoreUnavailableError(StorageError):
    """The online feature store cannot be reached, so features cannot be looked up."""


class NotReadyError(BasculeError):
    """The model or server is not ready to answer yet."""

    code = "not_ready"


class OverloadedError(BasculeError):
    """The server refuses work because its queue is full; retry later."""

    code = "overloaded"

    def __init__(self, message: str, *, retry_after_s: float = 1.0, **details: Any) -> None:
        super().__init__(message, retry_after_s=retry_after_s, **details)
        self.retry_after_s = retry_after_s


def error_from_code(code: str, message: str, **details: Any) -> BasculeError:
    """Rebuild an error received over the wire (its ``code`` and message) as the right class.

    The most general class with that code is used (``not_found`` → :class:`NotFoundError`).
    """
    found: type[BasculeError] = BasculeError
    queue: list[type[BasculeError]] = [BasculeError]
    while queue:
        cls = queue.pop(0)
        if cls.code == code:
            found = cls
            break
        queue.extend(cls.__subclasses__())
    err = found.__new__(found)
    BasculeError.__init__(err, message, **details)
    return err
