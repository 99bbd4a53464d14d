import re
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from bascule.core.errors import ArtifactNotFoundError, IntegrityError, StorageError
from bascule.core.settings import S3Settings
from bascule.store.artifacts import S3ArtifactStore, check_artifact_store, sha256_hex

pytestmark = pytest.mark.s3

REGION = "us-east-1"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"


def make_client(endpoint_url: str, **config: Any) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(**config) if config else None,
    )


@pytest.fixture(scope="module")
def endpoint_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def client(endpoint_url: str) -> Any:
    return make_client(endpoint_url)


@pytest.fixture
def bucket(client: Any) -> str:
    name = f"bascule-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("prefix", ["", "team/artifacts"])
def test_s3_store_passes_the_artifact_store_contract(client: Any, bucket: str, prefix: str) -> None:
    check_artifact_store(S3ArtifactStore(bucket, prefix, client))


def test_s3_store_from_url_passes_the_artifact_store_contract(
    endpoint_url: str, bucket: str
) -> None:
    settings = S3Settings(
        endpoint_url=endpoint_url,
        region=REGION,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
    )
    store = S3ArtifactStore.from_url(f"s3://{bucket}/models", settings)

    check_artifact_store(store)
    assert f"s3://{bucket}/models" == store.root


def test_s3_store_uses_the_documented_layout(client: Any, bucket: str) -> None:
    store = S3ArtifactStore(bucket, "root", client)
    digest = store.put(b"weights")
    store.write("predictions/fraud/part-0.parquet", b"PAR1")
    listed = client.list_objects_v2(Bucket=bucket)["Contents"]

    assert [
        f"root/blobs/sha256/{digest[:2]}/{digest}",
        "root/files/predictions/fraud/part-0.parquet",
    ] == sorted(obj["Key"] for obj in listed)
    assert f"s3://{bucket}/root/files/predictions/fraud/part-0.parquet" == store.uri_for_key(
        "predictions/fraud/part-0.parquet"
    )


def test_s3_get_of_an_overwritten_blob_raises_integrity_error(client: Any, bucket: str) -> None:
    store = S3ArtifactStore(bucket, "root", client)
    digest = store.put(b"model bytes")
    key = f"root/blobs/sha256/{digest[:2]}/{digest}"
    client.put_object(Bucket=bucket, Key=key, Body=b"other bytes")

    with pytest.raises(IntegrityError) as info:
        store.get(digest)

    assert "integrity_error" == info.value.code
    assert digest in info.value.message
    assert sha256_hex(b"other bytes") in info.value.message
    assert f"s3://{bucket}/{key}" in info.value.message


def test_s3_read_of_a_missing_key_raises_not_found(client: Any, bucket: str) -> None:
    store = S3ArtifactStore(bucket, "", client)

    with pytest.raises(ArtifactNotFoundError, match=re.escape("'reports/missing.html'")) as info:
        store.read("reports/missing.html")

    assert "not_found" == info.value.code


def test_s3_write_to_a_missing_bucket_raises_storage_error(client: Any) -> None:
    store = S3ArtifactStore("no-such-bucket-bascule", "", client)

    with pytest.raises(StorageError, match="no-such-bucket-bascule") as info:
        store.write("a.txt", b"x")

    assert "storage_error" == info.value.code


def test_s3_unreachable_endpoint_raises_storage_error(closed_port: int) -> None:
    client = make_client(
        f"http://127.0.0.1:{closed_port}",
        connect_timeout=0.5,
        read_timeout=0.5,
        retries={"mode": "standard", "max_attempts": 1},
    )
    store = S3ArtifactStore("artifacts", "root", client)
    digest = sha256_hex(b"anything")

    with pytest.raises(
        StorageError, match=re.escape(f"s3://artifacts/root/blobs/sha256/{digest[:2]}")
    ) as info:
        store.get(digest)
    with pytest.raises(StorageError, match=re.escape("s3://artifacts/root/files/a.txt")):
        store.write("a.txt", b"x")
    with pytest.raises(StorageError):
        list(store.list())

    assert "storage_error" == info.value.code
    assert "artifacts" == info.value.details["bucket"]


def test_registry_and_tracking_run_on_an_s3_artifact_root(
    endpoint_url: str, bucket: str, tmp_path
) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from bascule.testing import make_services

    services = make_services(
        tmp_path / "home",
        artifacts=f"s3://{bucket}/team-a",
        s3=S3Settings(
            endpoint_url=endpoint_url,
            region=REGION,
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,
        ),
    )
    X = np.random.default_rng(0).normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    mv = services.registry.register("fraud", LogisticRegression().fit(X, y), sample=X)
    notes = tmp_path / "notes.txt"
    notes.write_text("on s3")
    run = services.tracking.start_run(experiment="e")
    artifact = services.tracking.log_artifact(run.id, notes)

    keys = [o["Key"] for o in make_client(endpoint_url).list_objects_v2(Bucket=bucket)["Contents"]]
    predictor = services.registry.load("fraud:1")

    assert f"team-a/blobs/sha256/{mv.digest[:2]}/{mv.digest}" in keys
    assert b"on s3" == services.artifacts.get(artifact.digest)
    assert (y == predictor.predict(X)).mean() > 0.9
    services.close()
