"""The artifact store contract: content-addressed blobs plus a few keyed files.

Blobs (models, samples, profiles) are stored under their sha256 digest; the digest is
verified on every read. Keyed files (the prediction log's Parquet partitions, reports)
live under relative keys that may never escape the store's root.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from bascule.core.errors import IntegrityError, InvalidInputError

__all__ = ["ArtifactStore", "check_key", "sha256_hex", "verified"]


def sha256_hex(data: bytes) -> str:
    """The sha256 digest of ``data`` as 64 lowercase hex digits."""
    return hashlib.sha256(data).hexdigest()


def verified(data: bytes, digest: str, where: str, remedy: str = "") -> bytes:
    """``data`` if it hashes to ``digest``.

    Args:
        data: The bytes read for the blob.
        digest: The digest they were stored under.
        where: Where they were read from (a path or URI), for the message.
        remedy: What to do about it, appended to the message.

    Raises:
        IntegrityError: the bytes hash to something else (they were corrupted).
    """
    actual = sha256_hex(data)
    if actual != digest:
        raise IntegrityError(
            f"blob {digest} is corrupted: the bytes at {where} hash to {actual}"
            + (f"; {remedy}" if remedy else ""),
            digest=digest,
            actual=actual,
            path=where,
        )
    return data


def check_key(key: object) -> str:
    """Validate a keyed-file name: relative, ``/``-separated, no ``..`` or empty segments.

    Raises:
        InvalidInputError: the key is absolute, tries to escape the root, or is malformed.
    """
    expected = (
        "a relative path like 'predictions/fraud/2026-11-26T10/part.parquet' inside the store"
    )
    if not isinstance(key, str) or not key or len(key) > 1024:
        raise InvalidInputError.for_field("artifact key", key, expected)
    if key.startswith(("/", "~")) or "\\" in key or "\x00" in key or ":" in key.split("/", 1)[0]:
        raise InvalidInputError.for_field("artifact key", key, expected)
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidInputError.for_field("artifact key", key, expected)
    return key


@runtime_checkable
class ArtifactStore(Protocol):
    """Where bytes live. Implementations: local folder, S3-compatible, in-memory (tests)."""

    @property
    def root(self) -> str:
        """Human-readable location of the store (a folder path or ``s3://bucket/prefix``)."""
        ...

    def put(self, data: bytes) -> str:
        """Store ``data`` atomically under its sha256 digest and return the digest (idempotent)."""
        ...

    def put_file(self, path: Path) -> str:
        """Store a file's content, streamed, and return its digest."""
        ...

    def get(self, digest: str) -> bytes:
        """Return the blob, verified.

        Raises:
            ArtifactNotFoundError: no blob has that digest.
            IntegrityError: the stored bytes do not hash to ``digest``.
            InvalidInputError: ``digest`` is not a sha256 hex digest.
        """
        ...

    def exists(self, digest: str) -> bool:
        """Whether a blob with that digest is stored."""
        ...

    def write(self, key: str, data: bytes | memoryview) -> None:
        """Write a keyed file atomically (readers see the old content or the new, never half)."""
        ...

    def read(self, key: str) -> bytes:
        """Read a keyed file.

        Raises:
            ArtifactNotFoundError: no file under ``key``.
        """
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys of keyed files starting with ``prefix``, sorted."""
        ...

    def delete(self, key: str) -> None:
        """Remove a keyed file (no error if it is absent)."""
        ...
