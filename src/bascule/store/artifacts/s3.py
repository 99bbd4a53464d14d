"""An artifact store in an S3-compatible bucket (AWS S3, MinIO, R2, moto).

Layout under ``s3://<bucket>/<prefix>``::

    blobs/sha256/<first 2 hex digits>/<digest>    content-addressed blobs
    files/<key>                                    keyed files

An S3 PUT is atomic per object, so readers see a whole object or none. boto3 is an optional
extra (``pip install 'bascule[s3]'``) and is imported only when a store is built, so
importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import itertools
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bascule.core.errors import (
    ArtifactNotFoundError,
    BasculeError,
    ConfigError,
    InvalidInputError,
    StorageError,
)
from bascule.core.refs import check_digest
from bascule.store.artifacts.base import check_key, sha256_hex, verified

if TYPE_CHECKING:  # settings pull in pydantic-settings; keep importing this module cheap
    from bascule.core.settings import S3Settings

__all__ = ["S3ArtifactStore"]

CHUNK_SIZE_BYTES = 1024 * 1024
SPOOL_MAX_BYTES = 8 * CHUNK_SIZE_BYTES
_INSTALL_HINT = "pip install 'bascule[s3]'"
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def _botocore_errors() -> tuple[type[Exception], type[Exception]]:
    """botocore's ``ClientError`` and ``BotoCoreError``, imported on first use.

    Raises:
        ConfigError: botocore (installed with boto3) is missing.
    """
    try:
        from botocore.exceptions import (  # type: ignore[import-untyped, unused-ignore]
            BotoCoreError,
            ClientError,
        )
    except ImportError as exc:
        raise ConfigError(f"the S3 artifact store needs boto3: {_INSTALL_HINT}") from exc
    return ClientError, BotoCoreError


class S3ArtifactStore:
    """Blobs and keyed files in an S3 bucket; the digest is verified on every read.

    Args:
        bucket: The bucket name.
        prefix: A folder-like key prefix inside the bucket (``""`` for the bucket root).
        client: A boto3 S3 client (thread-safe; shared by all calls).

    Raises:
        InvalidInputError: the bucket is empty or the prefix is malformed.
        ConfigError: botocore is not installed.
    """

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        if not bucket or "/" in bucket:
            raise InvalidInputError.for_field("S3 bucket", bucket, "a bucket name without '/'")
        if not isinstance(prefix, str):
            raise InvalidInputError.for_field("S3 prefix", prefix, "a string ('' for the root)")
        prefix = prefix.strip("/")
        if prefix:
            check_key(prefix)
        self._bucket = bucket
        self._prefix = prefix
        self._base = f"{prefix}/" if prefix else ""
        self._client = client
        self._client_error, self._boto_error = _botocore_errors()

    @classmethod
    def from_url(cls, url: str, settings: S3Settings) -> S3ArtifactStore:
        """Build a store from ``s3://bucket/prefix`` and the S3 connection settings.

        Raises:
            ConfigError: the URL is not ``s3://bucket[/prefix]``, only one of the two keys
                is set, or boto3 is not installed.
        """
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ConfigError(
                f"invalid artifact store URL {url!r}: expected s3://bucket/prefix", url=url
            )
        prefix = parts.path.strip("/")
        if prefix:
            try:
                check_key(prefix)
            except InvalidInputError as exc:
                raise ConfigError(
                    f"invalid artifact store URL {url!r}: expected s3://bucket/prefix with a "
                    "prefix of '/'-separated names (no '.', '..' or empty segments)",
                    url=url,
                ) from exc
        access_key, secret_key = settings.access_key_id, settings.secret_access_key
        if (access_key is None) != (secret_key is None):
            raise ConfigError(
                "set both s3.access_key_id and s3.secret_access_key, or neither "
                "(to let boto3 find credentials the usual way)"
            )
        try:
            import boto3  # type: ignore[import-untyped, unused-ignore]
            from botocore.config import Config  # type: ignore[import-untyped, unused-ignore]
        except ImportError as exc:
            raise ConfigError(
                f"artifact store {url!r} is on S3, which needs boto3: {_INSTALL_HINT}"
            ) from exc
        config = Config(
            connect_timeout=10,
            read_timeout=60,
            retries={"mode": "standard", "max_attempts": 3},
            s3={"addressing_style": "path"} if settings.endpoint_url else None,
        )
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region,
            aws_access_key_id=access_key.get_secret_value() if access_key else None,
            aws_secret_access_key=secret_key.get_secret_value() if secret_key else None,
            config=config,
        )
        return cls(parts.netloc, prefix, client)

    def __repr__(self) -> str:
        return f"S3ArtifactStore({self.root!r})"

    @property
    def root(self) -> str:
        """``s3://bucket/prefix`` (``s3://bucket`` when the prefix is empty)."""
        return f"s3://{self._bucket}/{self._prefix}" if self._prefix else f"s3://{self._bucket}"

    def uri_for_key(self, key: str) -> str:
        """The ``s3://`` URI of the keyed file ``key``.

        Raises:
            InvalidInputError: the key is malformed or would escape the store.
        """
        return f"s3://{self._bucket}/{self._file_key(key)}"

    def _file_key(self, key: str) -> str:
        return f"{self._base}files/{check_key(key)}"

    def _blob_key(self, digest: str) -> str:
        check_digest(digest)
        return f"{self._base}blobs/sha256/{digest[:2]}/{digest}"

    @contextmanager
    def _errors(self, action: str, key: str, name: str) -> Iterator[None]:
        """Translate botocore errors raised while acting on object ``key`` (``name`` for users)."""
        try:
            yield
        except self._client_error as exc:
            raise self._translate(exc, action, key, name) from exc
        except self._boto_error as exc:
            raise StorageError(
                f"cannot {action} s3://{self._bucket}/{key}: {exc}",
                bucket=self._bucket,
                key=key,
            ) from exc

    def _translate(self, exc: Exception, action: str, key: str, name: str) -> BasculeError:
        response: dict[str, Any] = getattr(exc, "response", None) or {}
        error = response.get("Error", {})
        code = str(error.get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _NOT_FOUND_CODES:
            return ArtifactNotFoundError(name, store=self.root, bucket=self._bucket, key=key)
        hint = ""
        if code in ("403", "AccessDenied"):
            hint = "; check the credentials and the bucket policy"
        elif code == "NoSuchBucket":
            hint = f"; create bucket {self._bucket!r} or fix the artifact store URL"
        message = error.get("Message") or code or "error"
        return StorageError(
            f"cannot {action} s3://{self._bucket}/{key}: {message} (S3 error {code}, "
            f"HTTP {status}){hint}",
            bucket=self._bucket,
            key=key,
            s3_code=code,
            http_status=status,
        )

    # -- blobs ---------------------------------------------------------------------------------

    def _head(self, key: str, name: str) -> bool:
        try:
            with self._errors("check", key, name):
                self._client.head_object(Bucket=self._bucket, Key=key)
        except ArtifactNotFoundError:
            return False
        return True

    def put(self, data: bytes) -> str:
        """Store ``data`` under its sha256 digest; a blob already stored is not uploaded again.

        Raises:
            StorageError: S3 refused the request or could not be reached.
        """
        digest = sha256_hex(data)
        key = self._blob_key(digest)
        if not self._head(key, digest):
            with self._errors("write", key, digest):
                self._client.put_object(Bucket=self._bucket, Key=key, Body=bytes(data))
        return digest

    def put_file(self, path: Path) -> str:
        """Store a file's content, hashed in 1 MiB chunks while spooled to a temporary copy.

        Hashing the copy, not the original, guarantees that the bytes uploaded are the bytes
        hashed even if the file changes meanwhile.

        Raises:
            InvalidInputError: ``path`` is not an existing regular file.
            StorageError: the file cannot be read, or S3 refused the request.
        """
        source = Path(path)
        hasher = hashlib.sha256()
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_BYTES) as spool:
            try:
                with source.open("rb") as src:
                    while chunk := src.read(CHUNK_SIZE_BYTES):
                        hasher.update(chunk)
                        spool.write(chunk)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
                raise InvalidInputError.for_field(
                    "file to store", str(source), "an existing regular file"
                ) from exc
            except OSError as exc:
                raise StorageError(
                    f"cannot read {str(source)!r}: {exc.strerror or exc}", path=str(source)
                ) from exc
            digest = hasher.hexdigest()
            key = self._blob_key(digest)
            if not self._head(key, digest):
                spool.seek(0)
                with self._errors("write", key, digest):
                    self._client.upload_fileobj(spool, self._bucket, key)
        return digest

    def get(self, digest: str) -> bytes:
        """Return the blob, after checking that its bytes hash to ``digest``.

        Raises:
            InvalidInputError: ``digest`` is not 64 lowercase hex digits.
            ArtifactNotFoundError: no blob has that digest.
            IntegrityError: the stored bytes were corrupted.
            StorageError: S3 refused the request or could not be reached.
        """
        key = self._blob_key(digest)
        with self._errors("read", key, digest):
            data: bytes = self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        uri = f"s3://{self._bucket}/{key}"
        return verified(data, digest, uri, "delete the object and store the original content again")

    def exists(self, digest: str) -> bool:
        """Whether a blob with that digest is stored.

        Raises:
            InvalidInputError: ``digest`` is not 64 lowercase hex digits.
            StorageError: S3 refused the request or could not be reached.
        """
        return self._head(self._blob_key(digest), digest)

    # -- keyed files ---------------------------------------------------------------------------

    def write(self, key: str, data: bytes | memoryview) -> None:
        """Write (or replace) the keyed file with one atomic PUT.

        Raises:
            InvalidInputError: the key is malformed or would escape the store.
            StorageError: S3 refused the request or could not be reached.
        """
        full = self._file_key(key)
        with self._errors("write", full, key):
            self._client.put_object(Bucket=self._bucket, Key=full, Body=bytes(data))

    def read(self, key: str) -> bytes:
        """Read the keyed file.

        Raises:
            InvalidInputError: the key is malformed or would escape the store.
            ArtifactNotFoundError: no file under ``key``.
            StorageError: S3 refused the request or could not be reached.
        """
        full = self._file_key(key)
        try:
            with self._errors("read", full, key):
                data: bytes = self._client.get_object(Bucket=self._bucket, Key=full)["Body"].read()
        except ArtifactNotFoundError as exc:
            parent = key.rpartition("/")[0]
            siblings = itertools.islice(self.list(f"{parent}/" if parent else ""), 100)
            raise ArtifactNotFoundError(key, available=siblings, store=self.root) from exc
        return data

    def delete(self, key: str) -> None:
        """Remove the keyed file; nothing happens when it does not exist.

        Raises:
            InvalidInputError: the key is malformed or would escape the store.
            StorageError: S3 refused the request or could not be reached.
        """
        full = self._file_key(key)
        with self._errors("delete", full, key):
            self._client.delete_object(Bucket=self._bucket, Key=full)

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix`` (a plain string prefix), sorted.

        Raises:
            InvalidInputError: ``prefix`` is not a string.
            StorageError: S3 refused the request or could not be reached.
        """
        if not isinstance(prefix, str):
            raise InvalidInputError.for_field("artifact key prefix", prefix, "a string")
        base = f"{self._base}files/"
        keys: list[str] = []
        with self._errors("list", base + prefix, prefix):
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self._bucket, Prefix=base + prefix):
                keys.extend(obj["Key"][len(base) :] for obj in page.get("Contents", ()))
        return iter(sorted(keys))
