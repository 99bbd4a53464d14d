import errno
import os
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bascule.core.errors import (
    ArtifactNotFoundError,
    ConfigError,
    IntegrityError,
    InvalidInputError,
    StorageError,
)
from bascule.core.settings import S3Settings
from bascule.store.artifacts import (
    ArtifactStore,
    InMemoryArtifactStore,
    LocalArtifactStore,
    S3ArtifactStore,
    check_artifact_store,
    sha256_hex,
)


def blob_path(root: Path, digest: str) -> Path:
    """Where the documented local layout keeps a blob."""
    return root / "blobs" / "sha256" / digest[:2] / digest


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# -- the contract --------------------------------------------------------------------------------


def test_local_store_passes_the_artifact_store_contract(tmp_path: Path) -> None:
    check_artifact_store(LocalArtifactStore(tmp_path / "artifacts"))


def test_in_memory_store_passes_the_artifact_store_contract() -> None:
    check_artifact_store(InMemoryArtifactStore())


def test_contract_check_reports_a_store_that_accepts_escaping_keys() -> None:
    class Careless(InMemoryArtifactStore):
        def write(self, key: str, data: bytes | memoryview) -> None:
            if key == "../x":
                return
            super().write(key, data)

    with pytest.raises(AssertionError, match=r"write\('\.\./x'.*expected InvalidInputError"):
        check_artifact_store(Careless())


def test_stores_implement_the_protocol(tmp_path: Path) -> None:
    assert isinstance(LocalArtifactStore(tmp_path), ArtifactStore)
    assert isinstance(InMemoryArtifactStore(), ArtifactStore)


# -- local store: integrity ------------------------------------------------------------------------


def test_local_get_of_a_corrupted_blob_raises_integrity_error(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    digest = store.put(b"model bytes")
    path = blob_path(tmp_path, digest)
    path.write_bytes(b"model bytez")

    with pytest.raises(IntegrityError) as info:
        store.get(digest)

    assert "integrity_error" == info.value.code
    assert digest in info.value.message
    assert sha256_hex(b"model bytez") in info.value.message
    assert str(path) in info.value.message


def test_local_get_of_a_missing_blob_raises_not_found(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    digest = sha256_hex(b"never stored")

    with pytest.raises(ArtifactNotFoundError, match=digest) as info:
        store.get(digest)

    assert "not_found" == info.value.code


def test_local_put_does_not_rewrite_a_stored_blob(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    digest = store.put(b"weights")
    before = blob_path(tmp_path, digest).stat()

    assert digest == store.put(b"weights")
    assert before.st_ino == blob_path(tmp_path, digest).stat().st_ino


# -- local store: atomic writes ------------------------------------------------------------------


def test_local_leftover_temp_file_of_a_crashed_write_is_invisible(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    data = b"a model that was being written when the process died"
    digest = sha256_hex(data)
    folder = blob_path(tmp_path, digest).parent
    folder.mkdir(parents=True)
    (folder / ".bascule-tmp-0123456789abcdef.part").write_bytes(data[:10])
    store.write("reports/daily.html", b"<html>")
    keyed = store.path_for_key("reports/.bascule-tmp-0123456789abcdef.part")
    keyed.write_bytes(b"<ht")

    assert not store.exists(digest)
    with pytest.raises(ArtifactNotFoundError):
        store.get(digest)
    assert ["reports/daily.html"] == list(store.list("reports/"))
    assert digest == store.put(data)
    assert data == store.get(digest)


def test_local_failed_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalArtifactStore(tmp_path)
    store.write("a/b.txt", b"old")

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(StorageError, match="No space left on device") as info:
        store.write("a/b.txt", b"new content")
    with pytest.raises(StorageError, match="No space left on device"):
        store.put(b"a blob")
    monkeypatch.undo()

    assert "storage_error" == info.value.code
    assert str(tmp_path / "files" / "a" / "b.txt") in info.value.message
    assert b"old" == store.read("a/b.txt")
    assert not store.exists(sha256_hex(b"a blob"))
    assert [tmp_path / "files" / "a" / "b.txt"] == all_files(tmp_path)


def test_local_concurrent_puts_of_the_same_content_store_one_blob(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    data = os.urandom(256 * 1024)
    barrier = threading.Barrier(8)

    def put() -> str:
        barrier.wait()
        return store.put(data)

    with ThreadPoolExecutor(max_workers=8) as pool:
        digests = list(pool.map(lambda _: put(), range(8)))

    assert [sha256_hex(data)] * 8 == digests
    assert data == store.get(digests[0])
    assert [blob_path(tmp_path, digests[0])] == all_files(tmp_path)


# -- local store: keys and paths ---------------------------------------------------------------


def test_local_keyed_files_live_under_files_folder(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    store.write("predictions/fraud/part-0.parquet", b"PAR1")

    assert tmp_path / "files" / "predictions" / "fraud" / "part-0.parquet" == store.path_for_key(
        "predictions/fraud/part-0.parquet"
    )
    assert b"PAR1" == store.path_for_key("predictions/fraud/part-0.parquet").read_bytes()


def test_local_key_through_a_symlink_out_of_the_store_is_rejected(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    store = LocalArtifactStore(tmp_path / "store")
    (tmp_path / "store" / "files").mkdir(parents=True)
    (tmp_path / "store" / "files" / "link").symlink_to(outside)

    with pytest.raises(InvalidInputError, match="link/x") as info:
        store.write("link/x", b"escaped")

    assert "invalid_input" == info.value.code
    assert [] == list(outside.iterdir())


def test_local_write_where_a_file_blocks_the_folder_raises_storage_error(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    store.write("a", b"a file, not a folder")

    with pytest.raises(StorageError, match="files/a/b") as info:
        store.write("a/b", b"x")

    assert "storage_error" == info.value.code


def test_local_put_file_of_a_missing_file_raises_invalid_input(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")

    with pytest.raises(InvalidInputError, match=re.escape("missing.onnx")):
        store.put_file(tmp_path / "missing.onnx")


def test_local_root_is_an_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    assert str(tmp_path / "artifacts") == LocalArtifactStore(Path("artifacts")).root


def test_local_read_of_a_missing_key_lists_its_neighbours(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    store.write("predictions/fraud/part-0.parquet", b"PAR1")

    with pytest.raises(ArtifactNotFoundError, match=re.escape("predictions/fraud/part-0.parquet")):
        store.read("predictions/fraud/part-1.parquet")


# -- in-memory store -----------------------------------------------------------------------------


def test_in_memory_get_of_a_corrupted_blob_raises_integrity_error() -> None:
    store = InMemoryArtifactStore()
    digest = store.put(b"model bytes")
    store.corrupt(digest)

    with pytest.raises(IntegrityError, match=digest) as info:
        store.get(digest)

    assert "integrity_error" == info.value.code


def test_in_memory_corrupt_also_breaks_the_empty_blob() -> None:
    store = InMemoryArtifactStore()
    digest = store.put(b"")
    store.corrupt(digest)

    with pytest.raises(IntegrityError):
        store.get(digest)


def test_in_memory_store_keeps_a_copy_of_mutable_input() -> None:
    store = InMemoryArtifactStore()
    buffer = bytearray(b"abc")
    store.write("k", buffer)  # type: ignore[arg-type]
    buffer[0] = ord("x")

    assert b"abc" == store.read("k")


# -- S3 store without a server -----------------------------------------------------------------


def test_s3_from_url_without_boto3_raises_config_error_with_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)

    with pytest.raises(ConfigError, match=r"pip install 'bascule\[s3\]'") as info:
        S3ArtifactStore.from_url("s3://bucket/prefix", S3Settings())

    assert "config_error" == info.value.code


@pytest.mark.parametrize(
    "url", ["http://bucket/prefix", "s3:///prefix", "s3://bucket/a/../b", "s3://bucket/p?x=1"]
)
def test_s3_from_url_rejects_malformed_urls(url: str) -> None:
    with pytest.raises(ConfigError, match="s3://bucket/prefix"):
        S3ArtifactStore.from_url(url, S3Settings())


def test_s3_from_url_rejects_half_of_a_key_pair() -> None:
    with pytest.raises(ConfigError, match="secret_access_key"):
        S3ArtifactStore.from_url("s3://bucket", S3Settings(access_key_id="AKIA"))


def test_importing_artifact_stores_does_not_import_boto3() -> None:
    code = (
        "import sys, bascule.store.artifacts; "
        "print(sorted(m for m in ('boto3', 'botocore', 'pydantic_settings') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout

    assert "[]" == out.strip()
