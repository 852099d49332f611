"""make_blob_store: the URL forms and their refusals; key validation messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.storage import LocalBlobStore, S3BlobStore, make_blob_store, normalize_prefix, validate_key


def test_empty_url_is_local_under_the_default_root(tmp_path: Path) -> None:
    for url in ("", "  "):
        store = make_blob_store(url, tmp_path / "blobs")
        assert isinstance(store, LocalBlobStore) and store.root == tmp_path / "blobs"
    assert (tmp_path / "blobs").is_dir()


def test_file_url(tmp_path: Path) -> None:
    store = make_blob_store(f"file://{tmp_path}/my%20blobs", Path("/unused"))
    assert isinstance(store, LocalBlobStore) and store.root == tmp_path / "my blobs"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:relative/path", "must be absolute"),
        ("file://host/srv/blobs", "no host"),
        ("file:///srv/blobs?x=1", "no query"),
        ("file:///srv/../etc", "'..'"),
        ("ftp://x/y", "unknown scheme 'ftp'"),
        ("/srv/blobs", "unknown scheme ''"),
        ("s3:///prefix", "name the bucket"),
        ("s3://Bad_Bucket", "invalid S3 bucket name"),
        ("s3://ab", "invalid S3 bucket name"),
        ("s3://bucket?color=blue", "unknown parameter 'color'"),
        ("s3://bucket?region=a&region=b", "given twice"),
        ("s3://bucket?connect_timeout=soon", "not a number"),
        ("s3://bucket?create_bucket=maybe", "not true/false"),
        ("s3://bucket/../x", "prefix"),
        ("s3://bucket?access_key=only", "together"),
        ("s3://key:secret@bucket", "no credentials"),
    ],
)
def test_bad_urls_are_refused_precisely(url: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        make_blob_store(url, tmp_path)


def test_s3_url(tmp_path: Path) -> None:
    store = make_blob_store(
        "s3://dermalink-prod/clinic%2Da/blobs?endpoint_url=http%3A%2F%2F10.0.0.5%3A8333&region=eu-west-1"
        "&access_key=AK&secret_key=SUPERSECRET&connect_timeout=3&read_timeout=20&max_attempts=4",
        tmp_path,
    )
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix, store.endpoint_url, store.region) == (
        "dermalink-prod",
        "clinic-a/blobs",
        "http://10.0.0.5:8333",
        "eu-west-1",
    )
    config = store._client.meta.config
    assert config.retries["mode"] == "standard" and config.retries["total_max_attempts"] == 4
    assert (config.connect_timeout, config.read_timeout) == (3.0, 20.0)
    assert "SUPERSECRET" not in repr(store)
    assert not any(tmp_path.iterdir())  # nothing created locally


def test_s3_url_credentials_default_to_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ENVKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET")
    store = make_blob_store("s3://dermalink-prod?region=us-east-1", tmp_path)
    credentials = store._client._request_signer._credentials  # type: ignore[attr-defined]
    assert (credentials.access_key, credentials.secret_key) == ("ENVKEY", "ENVSECRET")
    config = store._client.meta.config
    assert config.retries["mode"] == "standard"
    assert (config.connect_timeout, config.read_timeout) == (5.0, 30.0)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("../x", "segment 1 .* is '..'"),
        ("a/../../b", "segment 2 .* is '..'"),
        ("a/./b", "segment 2 .* is '.'"),
        ("a//b", "segment 2 .* empty"),
        ("a/", "segment 2 .* empty"),
        ("a\x00b", "NUL"),
        ("a\\b", "backslash"),
        ("a/b c", r"segment 2 .* \[' '\]"),
        ("x" * 513, "513 characters long; the maximum is 512"),
        ("a/" + "y" * 129, "segment 2 .* 129 characters"),
    ],
)
def test_validate_key_says_why(key: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_key(key)


def test_valid_keys_and_prefixes() -> None:
    for key in ("a", "patients/3f2a-b_c.9/images/0001.bin", "...a", "a..b", "x" * 128):
        assert validate_key(key) == key
    assert normalize_prefix("") == ""
    assert normalize_prefix("patients/12/") == "patients/12"
    assert normalize_prefix("patients/12") == "patients/12"
