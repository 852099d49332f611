"""S3BlobStore only, against the session's SeaweedFS: prefixes, batching, bucket creation, outages."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest

from backend.storage import BlobError, BlobNotFound, BlobStoreUnavailable, S3BlobStore, make_blob_store
from backend.storage import s3 as s3_module
from tests.backend.storage.seaweedfs import BUCKET, SeaweedFS


def _store(server: SeaweedFS, **kwargs: object) -> S3BlobStore:
    values: dict[str, object] = {
        "endpoint_url": server.endpoint_url,
        "region": server.region,
        "access_key": server.access_key,
        "secret_key": server.secret_key,
        "connect_timeout": 2,
        "read_timeout": 10,
    }
    values.update(kwargs)
    return S3BlobStore(values.pop("bucket", BUCKET), **values)  # type: ignore[arg-type]


def test_objects_are_stored_under_the_store_prefix(seaweedfs: SeaweedFS) -> None:
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    store = _store(seaweedfs, prefix=f"{prefix}/blobs")
    store.put("patients/p1/i.bin", b"ciphertext")
    raw = seaweedfs.client().get_object(Bucket=BUCKET, Key=f"{prefix}/blobs/patients/p1/i.bin")
    assert raw["Body"].read() == b"ciphertext"
    neighbour = _store(seaweedfs, prefix=f"{prefix}/other")
    assert neighbour.exists("patients/p1/i.bin") is False
    assert list(neighbour.iter_keys()) == []
    assert list(store.iter_keys()) == ["patients/p1/i.bin"]


def test_foreign_objects_under_the_prefix_are_not_keys(seaweedfs: SeaweedFS) -> None:
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    store = _store(seaweedfs, prefix=prefix)
    store.put("p/ok.bin", b"ok")
    seaweedfs.client().put_object(Bucket=BUCKET, Key=f"{prefix}/p/has space.bin", Body=b"x")
    assert list(store.iter_keys()) == ["p/ok.bin"]


def test_delete_prefix_deletes_in_batches(seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_module, "DELETE_BATCH", 7)
    store = _store(seaweedfs, prefix=f"t-{uuid.uuid4().hex[:12]}")
    calls = []
    real = store._client.delete_objects

    def counting(**kwargs: object) -> object:
        calls.append(len(kwargs["Delete"]["Objects"]))  # type: ignore[index]
        return real(**kwargs)

    monkeypatch.setattr(store._client, "delete_objects", counting)
    for i in range(20):
        store.put(f"patients/p1/{i:02d}.bin", b"x")
    store.put("patients/p2/keep.bin", b"k")
    assert store.delete_prefix("patients/p1") == 20
    assert calls == [7, 7, 6]
    assert list(store.iter_keys()) == ["patients/p2/keep.bin"]


def test_ensure_bucket_creates_a_missing_bucket_once(seaweedfs: SeaweedFS) -> None:
    bucket = f"dl-{uuid.uuid4().hex[:12]}"
    store = _store(seaweedfs, bucket=bucket)
    with pytest.raises(BlobError, match=f"bucket '{bucket}' .* does not exist") as info:
        store.get("a.bin")
    assert not isinstance(info.value, (BlobNotFound, BlobStoreUnavailable))
    store.ensure_bucket()
    store.ensure_bucket()  # idempotent
    store.put("a.bin", b"x")
    assert store.get("a.bin") == b"x"
    assert seaweedfs.client().head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_url_with_create_bucket(seaweedfs: SeaweedFS, tmp_path: Path) -> None:
    bucket = f"dl-{uuid.uuid4().hex[:12]}"
    store = make_blob_store(seaweedfs.url(bucket, "deploy/blobs", create_bucket="true"), tmp_path)
    assert isinstance(store, S3BlobStore) and store.prefix == "deploy/blobs"
    store.put("x/y.bin", b"y")
    raw = seaweedfs.client().get_object(Bucket=bucket, Key="deploy/blobs/x/y.bin")
    assert raw["Body"].read() == b"y"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: nothing listens there


def test_server_down_raises_blob_store_unavailable() -> None:
    store = S3BlobStore(
        "dermalink-down",
        endpoint_url=f"http://127.0.0.1:{_closed_port()}",
        region="us-east-1",
        access_key="a",
        secret_key="b",
        connect_timeout=0.5,
        read_timeout=0.5,
        max_attempts=2,
    )
    for call in (
        lambda: store.get("a.bin"),
        lambda: store.put("a.bin", b"x"),
        lambda: store.delete("a.bin"),
        lambda: store.exists("a.bin"),
        lambda: list(store.iter_keys("p")),
        lambda: store.delete_prefix("p"),
        store.ensure_bucket,
    ):
        with pytest.raises(BlobStoreUnavailable, match="unreachable") as info:
            call()
        assert info.value.status_code == 503


def test_unresponsive_server_times_out_as_unavailable() -> None:
    """A server that accepts connections but never answers: the read timeout turns it into an outage."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        store = S3BlobStore(
            "dermalink-hang",
            endpoint_url=f"http://127.0.0.1:{port}",
            region="us-east-1",
            access_key="a",
            secret_key="b",
            connect_timeout=0.5,
            read_timeout=0.5,
            max_attempts=1,
        )
        with pytest.raises(BlobStoreUnavailable, match="unreachable"):
            store.get("a.bin")


def test_server_errors_map_to_typed_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError

    store = S3BlobStore("dermalink-x", endpoint_url="http://127.0.0.1:9", access_key="a", secret_key="b")

    def answer(code: str, status: int):  # type: ignore[no-untyped-def]
        def fail(**_: object) -> None:
            raise ClientError(
                {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                "GetObject",
            )

        return fail

    cases = [
        ("NoSuchKey", 404, BlobNotFound),
        ("SlowDown", 503, BlobStoreUnavailable),
        ("InternalError", 500, BlobStoreUnavailable),
        ("AccessDenied", 403, BlobError),
        ("NoSuchBucket", 404, BlobError),
    ]
    for code, status, expected in cases:
        monkeypatch.setattr(store._client, "get_object", answer(code, status))
        with pytest.raises(expected) as info:
            store.get("a.bin")
        assert type(info.value) is expected, code
