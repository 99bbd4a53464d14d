"""An artifact store in a local folder.

Layout under ``root``::

    blobs/sha256/<first 2 hex digits>/<digest>    content-addressed blobs
    files/<key>                                    keyed files (Parquet partitions, reports)

Every write goes to a temporary file in the destination's folder (named
``.bascule-tmp-<random>.part``), is flushed and fsynced, then renamed over the destination
with :func:`os.replace`, so a reader sees the old bytes or the new ones, never half. A crash
mid-write leaves at most a temporary file, which no read, ``exists`` or ``list`` ever sees.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

from bascule.core.errors import (
    ArtifactNotFoundError,
    InvalidInputError,
    StorageError,
)
from bascule.core.refs import check_digest
from bascule.store.artifacts.base import check_key, sha256_hex, verified

__all__ = ["LocalArtifactStore"]

CHUNK_SIZE_BYTES = 1024 * 1024
_TMP_PREFIX = ".bascule-tmp-"
_TMP_SUFFIX = ".part"


def _is_tmp(name: str) -> bool:
    return name.startswith(_TMP_PREFIX) and name.endswith(_TMP_SUFFIX)


def _storage_error(action: str, path: Path, exc: OSError) -> StorageError:
    reason = exc.strerror or str(exc)
    return StorageError(f"cannot {action} {str(path)!r}: {reason}", path=str(path), errno=exc.errno)


def _source_error(path: Path, exc: OSError) -> InvalidInputError | StorageError:
    if isinstance(exc, FileNotFoundError | IsADirectoryError | NotADirectoryError):
        return InvalidInputError.for_field("file to store", str(path), "an existing regular file")
    return _storage_error("read", path, exc)


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (POSIX only; best effort elsewhere)."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _drop_cached(fd: int) -> None:
    """Evict a written and fsynced file's pages from the page cache (Linux; best effort).

    What the store writes is write-once and read back later, if at all (blobs, the
    prediction log's partitions), while the log alone writes tens of MB/s under load. Kept
    cached, every new file fills fresh page-cache pages; dropped, the next file reuses the
    pages just freed. (An ad-hoc A/B of the write cost is in the commit that added this.)
    """
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def _write_tmp(folder: Path, chunks: Iterable[bytes | memoryview]) -> Path:
    """Write ``chunks`` to a new temporary file in ``folder``, fsynced, then dropped from
    the page cache; removed on failure.

    The file is created exclusively with mode 0o666 minus the umask, like any other file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{_TMP_PREFIX}{secrets.token_hex(8)}{_TMP_SUFFIX}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)
    try:
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            os.fsync(fd)
            _drop_cached(fd)
        finally:
            os.close(fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _replace(tmp: Path, dest: Path) -> None:
    """Atomically rename ``tmp`` over ``dest``; ``tmp`` is removed on failure."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(dest.parent)


def _check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str):
        raise InvalidInputError.for_field("artifact key prefix", prefix, "a string")
    return prefix


class LocalArtifactStore:
    """Blobs and keyed files in a folder; the digest is verified on every read.

    Args:
        root: The store's folder; created on first write.
    """

    def __init__(self, root: Path) -> None:
        self._root = Path(root).resolve()
        self._files = self._root / "files"
        self._blobs = self._root / "blobs" / "sha256"

    def __repr__(self) -> str:
        return f"LocalArtifactStore({str(self._root)!r})"

    @property
    def root(self) -> str:
        """The absolute path of the store's folder."""
        return str(self._root)

    # -- blobs ---------------------------------------------------------------------------------

    def _blob_path(self, digest: str) -> Path:
        check_digest(digest)
        return self._blobs / digest[:2] / digest

    def put(self, data: bytes) -> str:
        """Store ``data`` under its sha256 digest; a blob already stored is not rewritten.

        Raises:
            StorageError: the folder cannot be written (permissions, disk full).
        """
        digest = sha256_hex(data)
        dest = self._blob_path(digest)
        if dest.is_file():
            return digest
        try:
            _replace(_write_tmp(dest.parent, [data]), dest)
        except OSError as exc:
            raise _storage_error("write blob", dest, exc) from exc
        return digest

    def put_file(self, path: Path) -> str:
        """Store a file's content, streamed in 1 MiB chunks and hashed while copied.

        Raises:
            InvalidInputError: ``path`` is not an existing regular file.
            StorageError: the file cannot be read or the store cannot be written.
        """
        source = Path(path)
        try:
            src = source.open("rb")
        except OSError as exc:
            raise _source_error(source, exc) from exc
        hasher = hashlib.sha256()

        def chunks() -> Iterator[bytes]:
            while chunk := src.read(CHUNK_SIZE_BYTES):
                hasher.update(chunk)
                yield chunk

        with src:
            try:
                tmp = _write_tmp(self._blobs, chunks())
            except OSError as exc:
                raise _storage_error(f"copy {str(source)!r} into", self._blobs, exc) from exc
        digest = hasher.hexdigest()
        dest = self._blob_path(digest)
        try:
            if dest.is_file():
                tmp.unlink()
            else:
                _replace(tmp, dest)
        except OSError as exc:
            raise _storage_error("write blob", dest, exc) from exc
        return digest

    def get(self, digest: str) -> bytes:
        """Return the blob stored under ``digest``, after checking that its bytes hash to it.

        Raises:
            InvalidInputError: ``digest`` is not 64 lowercase hex digits.
            ArtifactNotFoundError: no blob has that digest.
            IntegrityError: the stored bytes were corrupted.
            StorageError: the blob cannot be read.
        """
        path = self._blob_path(digest)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ArtifactNotFoundError(digest, store=self.root) from exc
        except OSError as exc:
            raise _storage_error("read blob", path, exc) from exc
        return verified(
            data, digest, repr(str(path)), "delete the file and store the original content again"
        )

    def exists(self, digest: str) -> bool:
        """Whether a blob with that digest is stored.

        Raises:
            InvalidInputError: ``digest`` is not 64 lowercase hex digits.
        """
        return self._blob_path(digest).is_file()

    # -- keyed files ---------------------------------------------------------------------------

    def path_for_key(self, key: str) -> Path:
        """The absolute path of the keyed file ``key`` (which may not exist yet).

        Readers such as DuckDB use it to scan Parquet files in place.

        Raises:
            InvalidInputError: the key is malformed or would resolve outside the store.
        """
        check_key(key)
        path = (self._files / key).resolve()
        if not path.is_relative_to(self._files.resolve()):
            raise InvalidInputError.for_field(
                "artifact key", key, f"a path that stays inside {str(self._files)!r}"
            )
        return path

    def write(self, key: str, data: bytes | memoryview) -> None:
        """Write the keyed file atomically, replacing any previous content.

        Raises:
            InvalidInputError: the key is malformed or would escape the store.
            StorageError: the file cannot be written.
        """
        dest = self.path_for_key(key)
        try:
            _replace(_write_tmp(dest.parent, [data]), dest)
        except OSError as exc:
            raise _storage_error("write", dest, exc) from exc

    def read(self, key: str) -> bytes:
        """Read the keyed file.

        Raises:
            InvalidInputError: the key is malformed or would escape the store.
            ArtifactNotFoundError: no file under ``key``.
            StorageError: the file cannot be read.
        """
        path = self.path_for_key(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            parent = key.rpartition("/")[0]
            siblings = itertools.islice(self.list(f"{parent}/" if parent else ""), 100)
            raise ArtifactNotFoundError(key, available=siblings, store=self.root) from exc
        except OSError as exc:
            raise _storage_error("read", path, exc) from exc

    def delete(self, key: str) -> None:
        """Remove the keyed file; nothing happens when it does not exist.

        Raises:
            InvalidInputError: the key is malformed or would escape the store.
            StorageError: the file exists but cannot be removed.
        """
        path = self.path_for_key(key)
        if not path.is_file():
            return
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise _storage_error("delete", path, exc) from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix`` (a plain string prefix), sorted.

        Raises:
            InvalidInputError: ``prefix`` is not a string.
            StorageError: the folder cannot be listed.
        """
        _check_prefix(prefix)
        base = self._files.resolve()
        start = base
        folder = prefix.rpartition("/")[0]
        if folder:
            try:
                start = self.path_for_key(folder)
            except InvalidInputError:
                return iter(())  # no valid key can start with an escaping or malformed folder
        keys = []
        try:
            for dirpath, _dirnames, filenames in os.walk(start, onerror=_raise):
                rel = Path(dirpath).relative_to(base).as_posix()
                for name in filenames:
                    if _is_tmp(name):
                        continue
                    key = name if rel == "." else f"{rel}/{name}"
                    if key.startswith(prefix):
                        keys.append(key)
        except OSError as exc:
            raise _storage_error("list", start, exc) from exc
        return iter(sorted(keys))


def _raise(exc: OSError) -> None:
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return  # the folder does not exist (yet): nothing to list
    raise exc
