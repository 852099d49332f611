"""The BlobStore contract, run on every implementation (local directory and a real S3 server)."""

from __future__ import annotations

import os

import pytest

from backend.storage import BlobNotFound, BlobStore

BAD_KEYS = [
    "../etc/passwd",
    "a/../../b",
    "/etc/passwd",
    "",
    "a//b",
    "a/",
    "a\x00b",
    "a\\..\\b",
    ".",
    "a/./b",
    "caf\u00e9",
    "a b",
    "x" * 513,
]


def test_put_get_round_trip(blob_store: BlobStore) -> None:
    every_byte = bytes(range(256)) * 4
    large = os.urandom(1 << 20)
    blob_store.put("patients/p1/images/i1.bin", every_byte)
    blob_store.put("patients/p1/images/large.bin", large)
    blob_store.put("empty.bin", b"")
    blob_store.put("patients/p1/sig.bin", bytearray(b"signature"))
    assert blob_store.get("patients/p1/images/i1.bin") == every_byte
    assert blob_store.get("patients/p1/images/large.bin") == large
    assert blob_store.get("empty.bin") == b""
    assert blob_store.get("patients/p1/sig.bin") == b"signature"


def test_overwrite_replaces_the_whole_blob(blob_store: BlobStore) -> None:
    blob_store.put("k/v.bin", b"a much longer first version of the blob")
    blob_store.put("k/v.bin", b"short")
    assert blob_store.get("k/v.bin") == b"short"
    assert sorted(blob_store.iter_keys("")) == ["k/v.bin"]


def test_get_missing_raises_blob_not_found(blob_store: BlobStore) -> None:
    with pytest.raises(BlobNotFound) as info:
        blob_store.get("patients/nobody/image.bin")
    assert info.value.key == "patients/nobody/image.bin"
    assert info.value.status_code == 404
    blob_store.put("patients/p1/a.bin", b"x")
    with pytest.raises(BlobNotFound):
        blob_store.get("patients/p1")  # a "folder" is not a blob
    with pytest.raises(BlobNotFound):
        blob_store.get("patients/p1/a.bin/deeper")


def test_delete_is_idempotent(blob_store: BlobStore) -> None:
    blob_store.put("d/one.bin", b"1")
    blob_store.put("d/two.bin", b"2")
    blob_store.delete("d/one.bin")
    assert not blob_store.exists("d/one.bin")
    with pytest.raises(BlobNotFound):
        blob_store.get("d/one.bin")
    blob_store.delete("d/one.bin")  # again: no error
    blob_store.delete("never/was.bin")
    assert blob_store.get("d/two.bin") == b"2"
    assert sorted(blob_store.iter_keys()) == ["d/two.bin"]


def test_exists(blob_store: BlobStore) -> None:
    assert blob_store.exists("e/x.bin") is False
    blob_store.put("e/x.bin", b"x")
    assert blob_store.exists("e/x.bin") is True
    assert blob_store.exists("e") is False  # folders are not blobs
    assert blob_store.exists("e/x.bin/y") is False


def _populate(store: BlobStore) -> dict[str, bytes]:
    blobs = {}
    for patient in ("12", "123", "12x", "7"):
        for i in range(8):
            blobs[f"patients/{patient}/images/{i:02d}.bin"] = f"{patient}-{i}".encode()
        blobs[f"patients/{patient}/signature.bin"] = f"sig-{patient}".encode()
    blobs["patients/12-notes.bin"] = b"sibling file"
    blobs["other/x.bin"] = b"other"
    for key, data in blobs.items():
        store.put(key, data)
    return blobs


def test_iter_keys_by_whole_segment_prefix(blob_store: BlobStore) -> None:
    blobs = _populate(blob_store)
    assert sorted(blob_store.iter_keys()) == sorted(blobs)
    assert sorted(blob_store.iter_keys("")) == sorted(blobs)
    under_12 = sorted(k for k in blobs if k.startswith("patients/12/"))
    assert len(under_12) == 9
    assert sorted(blob_store.iter_keys("patients/12")) == under_12
    assert sorted(blob_store.iter_keys("patients/12/")) == under_12
    assert sorted(blob_store.iter_keys("patients/12/images")) == [k for k in under_12 if "/images/" in k]
    assert sorted(blob_store.iter_keys("patients")) == sorted(k for k in blobs if k.startswith("patients/"))
    assert sorted(blob_store.iter_keys("patients/99")) == []
    assert sorted(blob_store.iter_keys("patients/12/signature.bin")) == []  # a blob has nothing below it


def test_delete_prefix_removes_only_that_prefix(blob_store: BlobStore) -> None:
    blobs = _populate(blob_store)
    assert blob_store.delete_prefix("patients/12") == 9
    remaining = sorted(k for k in blobs if not k.startswith("patients/12/"))
    assert sorted(blob_store.iter_keys()) == remaining
    for key in remaining:
        assert blob_store.get(key) == blobs[key]
    with pytest.raises(BlobNotFound):
        blob_store.get("patients/12/signature.bin")
    assert blob_store.delete_prefix("patients/12/") == 0  # idempotent
    assert blob_store.delete_prefix("nothing/here") == 0
    blob_store.put("patients/12/images/new.bin", b"new")  # the prefix is usable again
    assert blob_store.get("patients/12/images/new.bin") == b"new"


def test_delete_prefix_refuses_the_whole_store(blob_store: BlobStore) -> None:
    blob_store.put("keep.bin", b"k")
    with pytest.raises(ValueError, match="whole store"):
        blob_store.delete_prefix("")
    with pytest.raises(ValueError):
        blob_store.delete_prefix("/")
    assert blob_store.get("keep.bin") == b"k"


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_every_operation_refuses_bad_keys(blob_store: BlobStore, key: str) -> None:
    for call in (
        lambda: blob_store.put(key, b"x"),
        lambda: blob_store.get(key),
        lambda: blob_store.delete(key),
        lambda: blob_store.exists(key),
    ):
        with pytest.raises(ValueError, match="blob key"):
            call()
    assert sorted(blob_store.iter_keys()) == []


@pytest.mark.parametrize("prefix", ["..", "../x", "/abs", "a//b", "a/../b", "a\x00"])
def test_listing_and_erasure_refuse_bad_prefixes(blob_store: BlobStore, prefix: str) -> None:
    blob_store.put("a/b.bin", b"x")
    with pytest.raises(ValueError, match="prefix"):
        sorted(blob_store.iter_keys(prefix))
    with pytest.raises(ValueError, match="prefix"):
        blob_store.delete_prefix(prefix)
    assert blob_store.get("a/b.bin") == b"x"


def test_put_refuses_text(blob_store: BlobStore) -> None:
    with pytest.raises(TypeError, match="bytes"):
        blob_store.put("t.bin", "not bytes")  # type: ignore[arg-type]
    assert not blob_store.exists("t.bin")
