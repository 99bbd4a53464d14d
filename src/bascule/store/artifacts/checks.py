"""``check_artifact_store``: the contract every :class:`ArtifactStore` must pass.

Like scikit-learn's ``check_estimator``, it exercises every protocol method on a real
instance and raises :class:`AssertionError` naming the first broken promise. It writes its
keyed files under a fresh ``_bascule_check/<random>/`` folder and deletes them at the end,
so it may run against a store that holds other data; the few blobs it stores have random
content and stay (blobs cannot be deleted).
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bascule.core.errors import ArtifactNotFoundError, BasculeError, InvalidInputError
from bascule.store.artifacts.base import ArtifactStore, sha256_hex

__all__ = ["ESCAPING_KEYS", "check_artifact_store"]

ESCAPING_KEYS = (
    "../x",
    "/etc/passwd",
    "a/../../b",
    "",
    "a//b",
    "C:/x",
    "a\\b",
    "..\\x",
    "./a",
    "a/.",
    "a/",
    "~/x",
    "a\x00b",
)
"""Keys every store must reject with :class:`InvalidInputError`."""

_BAD_DIGESTS = ("", "abc", "0" * 63, "0" * 65, "A" * 64, "g" * 64, "../" + "0" * 61)


def _expect(condition: bool, store: object, message: str) -> None:
    if not condition:
        raise AssertionError(f"{store!r}: {message}")


def _expect_error(
    store: object,
    error: type[BasculeError],
    code: str,
    call: Callable[..., Any],
    *args: object,
) -> None:
    """``call(*args)`` must raise ``error`` with ``error.code == code``."""
    shown = f"{call.__name__}({', '.join(repr(a)[:60] for a in args)})"
    try:
        call(*args)
    except error as exc:
        _expect(exc.code == code, store, f"{shown} raised code {exc.code!r}, expected {code!r}")
        return
    except Exception as exc:
        raise AssertionError(
            f"{store!r}: {shown} raised {type(exc).__name__}: {exc}, expected {error.__name__}"
        ) from exc
    raise AssertionError(f"{store!r}: {shown} returned normally, expected {error.__name__}")


def _check_blobs(store: ArtifactStore, token: str) -> None:
    data = f"bascule artifact store check {token}".encode()
    digest = store.put(data)
    _expect(digest == sha256_hex(data), store, f"put() returned {digest!r}, not the sha256")
    _expect(store.exists(digest), store, "exists() is False for a blob just put")
    _expect(store.get(digest) == data, store, "get() did not return the bytes put")
    again = store.put(data)
    _expect(again == digest, store, "a second put() of the same bytes changed the digest")
    _expect(store.get(digest) == data, store, "get() changed after an idempotent put()")

    empty = store.put(b"")
    _expect(store.get(empty) == b"", store, "the empty blob did not round-trip")

    missing = sha256_hex(f"never stored {token}".encode())
    _expect(not store.exists(missing), store, "exists() is True for a digest never put")
    _expect_error(store, ArtifactNotFoundError, "not_found", store.get, missing)
    for bad in _BAD_DIGESTS:
        _expect_error(store, InvalidInputError, "invalid_input", store.get, bad)
        _expect_error(store, InvalidInputError, "invalid_input", store.exists, bad)


def _check_put_file(store: ArtifactStore, token: str) -> None:
    # Larger than two 1 MiB chunks and not a multiple of one, to exercise streaming.
    content = token.encode() * (2 * 1024 * 1024 // len(token) + 1000)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        path.write_bytes(content)
        digest = store.put_file(path)
        _expect(digest == sha256_hex(content), store, "put_file() returned a wrong digest")
        _expect(store.get(digest) == content, store, "get() after put_file() differs")
        _expect(store.put_file(path) == digest, store, "a second put_file() changed the digest")
        _expect(store.put(content) == digest, store, "put() and put_file() disagree")
        _expect_error(
            store, InvalidInputError, "invalid_input", store.put_file, Path(folder) / "missing"
        )


def _check_key_validation(store: ArtifactStore) -> None:
    for key in ESCAPING_KEYS:
        _expect_error(store, InvalidInputError, "invalid_input", store.write, key, b"x")
        _expect_error(store, InvalidInputError, "invalid_input", store.read, key)
        _expect_error(store, InvalidInputError, "invalid_input", store.delete, key)


def _check_keyed_files(store: ArtifactStore, ns: str) -> None:
    files = {
        f"{ns}/a.txt": b"alpha",
        f"{ns}/dir/b.bin": bytes(range(256)),
        f"{ns}/dir/sub/c.parquet": b"PAR1 nested",
        f"{ns}/dir-x.txt": b"",  # '-' sorts before '/': keys sort as strings, not as paths
    }
    for key, data in files.items():
        store.write(key, data)
    for key, data in files.items():
        _expect(store.read(key) == data, store, f"read({key!r}) did not return what was written")

    store.write(f"{ns}/a.txt", b"alpha v2")
    _expect(store.read(f"{ns}/a.txt") == b"alpha v2", store, "write() did not replace content")
    files[f"{ns}/a.txt"] = b"alpha v2"

    _expect_error(store, ArtifactNotFoundError, "not_found", store.read, f"{ns}/nothing")
    _expect_error(store, ArtifactNotFoundError, "not_found", store.read, f"{ns}/dir")

    cases = {
        f"{ns}/": sorted(files),
        f"{ns}/dir/": [f"{ns}/dir/b.bin", f"{ns}/dir/sub/c.parquet"],
        f"{ns}/dir": [f"{ns}/dir-x.txt", f"{ns}/dir/b.bin", f"{ns}/dir/sub/c.parquet"],
        f"{ns}/d": [f"{ns}/dir-x.txt", f"{ns}/dir/b.bin", f"{ns}/dir/sub/c.parquet"],
        f"{ns}/dir/sub/c.parquet": [f"{ns}/dir/sub/c.parquet"],
        f"{ns}/nomatch": [],
    }
    for prefix, expected in cases.items():
        got = list(store.list(prefix))
        _expect(got == expected, store, f"list({prefix!r}) gave {got}, expected {expected}")
    everything = list(store.list())
    _expect(everything == sorted(everything), store, "list() is not sorted")
    _expect(set(files) <= set(everything), store, "list() misses keys that were written")

    store.delete(f"{ns}/a.txt")
    _expect_error(store, ArtifactNotFoundError, "not_found", store.read, f"{ns}/a.txt")
    _expect(f"{ns}/a.txt" not in list(store.list(ns)), store, "list() shows a deleted key")
    store.delete(f"{ns}/a.txt")  # deleting twice is not an error
    store.delete(f"{ns}/never-written")
    _expect(
        store.read(f"{ns}/dir/b.bin") == files[f"{ns}/dir/b.bin"],
        store,
        "delete() touched another key",
    )


def check_artifact_store(store: ArtifactStore) -> None:
    """Check that ``store`` keeps every promise of the :class:`ArtifactStore` protocol.

    Covers blob round-trips, idempotent ``put``, streamed ``put_file``, ``exists``, missing
    and malformed digests, keys that try to escape the store, and writing, reading, listing
    (prefix filtering and sorting) and deleting keyed files, nested ones included.

    Raises:
        AssertionError: the store breaks the contract; the message says how.
    """
    _expect(isinstance(store, ArtifactStore), store, "does not implement ArtifactStore")
    _expect(bool(store.root), store, "root is empty")
    token = uuid.uuid4().hex
    ns = f"_bascule_check/{token}"
    _check_blobs(store, token)
    _check_put_file(store, token)
    _check_key_validation(store)
    try:
        _check_keyed_files(store, ns)
    finally:
        for key in list(store.list(f"{ns}/")):
            store.delete(key)
    _expect(not list(store.list(f"{ns}/")), store, "keys remain after deleting them all")
