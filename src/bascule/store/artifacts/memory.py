"""An artifact store in a dict, for tests: same contract, same digest checks, no I/O."""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

from bascule.core.errors import (
    ArtifactNotFoundError,
    InvalidInputError,
    StorageError,
)
from bascule.core.refs import check_digest
from bascule.store.artifacts.base import check_key, sha256_hex, verified

__all__ = ["InMemoryArtifactStore"]

CHUNK_SIZE_BYTES = 1024 * 1024


class InMemoryArtifactStore:
    """Blobs and keyed files held in memory; thread-safe; digests verified on every read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blobs: dict[str, bytes] = {}
        self._files: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"InMemoryArtifactStore(<{len(self._blobs)} blobs, {len(self._files)} files>)"

    @property
    def root(self) -> str:
        """A ``memory://`` name unique to this store."""
        return f"memory://{id(self):x}"

    # -- blobs ---------------------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        """Store a copy of ``data`` under its sha256 digest (idempotent)."""
        digest = sha256_hex(data)
        with self._lock:
            self._blobs.setdefault(digest, bytes(data))
        return digest

    def put_file(self, path: Path) -> str:
        """Store a file's content, read in 1 MiB chunks.

        Raises:
            InvalidInputError: ``path`` is not an existing regular file.
            StorageError: the file cannot be read.
        """
        source = Path(path)
        hasher = hashlib.sha256()
        chunks = []
        try:
            with source.open("rb") as src:
                while chunk := src.read(CHUNK_SIZE_BYTES):
                    hasher.update(chunk)
                    chunks.append(chunk)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise InvalidInputError.for_field(
                "file to store", str(source), "an existing regular file"
            ) from exc
        except OSError as exc:
            raise StorageError(
                f"cannot read {str(source)!r}: {exc.strerror or exc}", path=str(source)
            ) from exc
        digest = hasher.hexdigest()
        with self._lock:
            self._blobs.setdefault(digest, b"".join(chunks))
        return digest

    def get(self, digest: str) -> bytes:
        """Return the blob, after checking that its bytes hash to ``digest``.

        Raises:
            InvalidInputError: ``digest`` is not 64 lowercase hex digits.
            ArtifactNotFoundError: no blob has that digest.
            IntegrityError: the blob was corrupted (see :meth:`corrupt`).
        """
        check_digest(digest)
        with self._lock:
            data = self._blobs.get(digest)
        if data is None:
            raise ArtifactNotFoundError(digest, store=self.root)
        return verified(data, digest, f"{self.root}/{digest}")

    def exists(self, digest: str) -> bool:
        """Whether a blob with that digest is stored.

        Raises:
            InvalidInputError: ``digest`` is not 64 lowercase hex digits.
        """
        check_digest(digest)
        with self._lock:
            return digest in self._blobs

    def corrupt(self, digest: str) -> None:
        """Flip one bit of a stored blob (an empty blob gains a byte), to test integrity checks.

        Raises:
            InvalidInputError: ``digest`` is not 64 lowercase hex digits.
            ArtifactNotFoundError: no blob has that digest.
        """
        check_digest(digest)
        with self._lock:
            data = self._blobs.get(digest)
            if data is None:
                raise ArtifactNotFoundError(digest, store=self.root)
            self._blobs[digest] = bytes([data[0] ^ 0x01]) + data[1:] if data else b"\x00"

    # -- keyed files ---------------------------------------------------------------------------

    def write(self, key: str, data: bytes | memoryview) -> None:
        """Write (or replace) the keyed file.

        Raises:
            InvalidInputError: the key is malformed or would escape the store.
        """
        check_key(key)
        with self._lock:
            self._files[key] = bytes(data)

    def read(self, key: str) -> bytes:
        """Read the keyed file.

        Raises:
            InvalidInputError: the key is malformed or would escape the store.
            ArtifactNotFoundError: no file under ``key``.
        """
        check_key(key)
        with self._lock:
            data = self._files.get(key)
        if data is None:
            parent = key.rpartition("/")[0]
            siblings = itertools.islice(self.list(f"{parent}/" if parent else ""), 100)
            raise ArtifactNotFoundError(key, available=siblings, store=self.root)
        return data

    def delete(self, key: str) -> None:
        """Remove the keyed file; nothing happens when it does not exist.

        Raises:
            InvalidInputError: the key is malformed or would escape the store.
        """
        check_key(key)
        with self._lock:
            self._files.pop(key, None)

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix`` (a plain string prefix), sorted.

        Raises:
            InvalidInputError: ``prefix`` is not a string.
        """
        if not isinstance(prefix, str):
            raise InvalidInputError.for_field("artifact key prefix", prefix, "a string")
        with self._lock:
            keys = [k for k in self._files if k.startswith(prefix)]
        return iter(sorted(keys))
