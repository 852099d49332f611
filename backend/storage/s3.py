"""Blobs in an S3-compatible object store (AWS S3, SeaweedFS, MinIO, Ceph RGW...) through boto3.

One ``PutObject`` is atomic in S3: readers see the old object or the new one, never a partial one. botocore's
``standard`` retry mode retries throttling, 5xx answers and connection errors with exponential back-off;
what still fails is raised as a typed error: a missing key as :class:`BlobNotFound`, a network failure,
timeout or overloaded server as :class:`BlobStoreUnavailable` (retryable), anything else as :class:`BlobError`.
Keys are stored as ``<prefix>/<key>`` when the store has a prefix.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from .base import BlobError, BlobNotFound, BlobStore, BlobStoreUnavailable, normalize_prefix, validate_key

DELETE_BATCH = 1000  # the most keys one DeleteObjects request takes
# One boto3 session for the process: creating a session per store would reload botocore's service models
# (a second of CPU). Clients are thread-safe; creating them from one session is not, hence the lock.
_SESSION_LOCK = threading.Lock()
_SESSION: boto3.session.Session | None = None
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
_UNAVAILABLE_CODES = {
    "SlowDown",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "TooManyRequestsException",
    "503",
    "500",
}


def validate_bucket(bucket: str) -> str:
    if not isinstance(bucket, str) or not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
        raise ValueError(
            f"invalid S3 bucket name {bucket!r}: 3 to 63 characters of [a-z0-9.-], "
            "starting and ending with a letter or digit"
        )
    return bucket


class S3BlobStore(BlobStore):
    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        prefix: str = "",
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_attempts: int = 5,
    ) -> None:
        self.bucket = validate_bucket(bucket)
        self.prefix = normalize_prefix(prefix)
        self.endpoint_url = endpoint_url or None
        self.region = region or None
        if (access_key is None) != (secret_key is None):
            raise ValueError(
                "S3 access_key and secret_key must be given together (or both left to the environment)"
            )
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "total_max_attempts": max_attempts},  # first try included
            tcp_keepalive=True,
            # Path-style addressing works with every S3-compatible server; AWS itself picks what it needs.
            s3={"addressing_style": "path" if self.endpoint_url else "auto"},
        )
        global _SESSION
        with _SESSION_LOCK:
            if _SESSION is None:
                _SESSION = boto3.session.Session()
            self._client = _SESSION.client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=self.region,
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                config=config,
            )

    def __repr__(self) -> str:  # never the credentials
        return (
            f"S3BlobStore(bucket={self.bucket!r}, prefix={self.prefix!r}, endpoint_url={self.endpoint_url!r})"
        )

    # -- helpers -------------------------------------------------------------------------------

    def _object_key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _list_prefix(self, normalized: str) -> str:
        joined = "/".join(part for part in (self.prefix, normalized) if part)
        return f"{joined}/" if joined else ""

    @contextmanager
    def _errors(self, action: str, key: str | None = None) -> Iterator[None]:
        what = f"{action} {key!r}" if key is not None else action
        where = f"bucket {self.bucket!r} at {self.endpoint_url or 'AWS'}"
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0
            message = error.get("Message", "") or str(exc)
            if key is not None and code in _NOT_FOUND_CODES:
                raise BlobNotFound(key) from None
            if code == "NoSuchBucket":
                raise BlobError(
                    f"S3 {what} failed: {where} does not exist (create it or call ensure_bucket())"
                ) from exc
            if code in _UNAVAILABLE_CODES or status >= 500:
                raise BlobStoreUnavailable(
                    f"S3 {what} failed: {where} answered {code or status}: {message}"
                ) from exc
            raise BlobError(f"S3 {what} failed: {where} answered {code or status}: {message}") from exc
        except (BotoConnectionError, HTTPClientError, IncompleteReadError) as exc:
            raise BlobStoreUnavailable(f"S3 {what} failed: {where} unreachable: {exc}") from exc
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise BlobError(
                f"S3 {what} failed: no usable credentials ({exc}); set AWS_ACCESS_KEY_ID/..."
            ) from exc
        except BotoCoreError as exc:
            raise BlobError(f"S3 {what} failed on {where}: {exc}") from exc

    # -- administration ------------------------------------------------------------------------

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist yet (idempotent, safe against a concurrent creator)."""
        with self._errors("head bucket"):
            try:
                self._client.head_bucket(Bucket=self.bucket)
                return
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code")) not in {"404", "NoSuchBucket", "NotFound"}:
                    raise
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if self.region and self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        with self._errors("create bucket"):
            try:
                self._client.create_bucket(**kwargs)
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code"))
                if code == "BucketAlreadyOwnedByYou":
                    return
                if code == "BucketAlreadyExists":
                    self._client.head_bucket(Bucket=self.bucket)  # ours (created concurrently) or not: tells
                    return
                raise

    # -- the interface -------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        object_key = self._object_key(key)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"blob data must be bytes, not {type(data).__name__}")
        with self._errors("put", key):
            self._client.put_object(
                Bucket=self.bucket, Key=object_key, Body=bytes(data), ContentType="application/octet-stream"
            )

    def put_retained(self, key: str, data: bytes, retain_until: datetime | None) -> bool:
        """With ``retain_until``: PutObject in Object Lock compliance mode (the bucket must have been
        created with Object Lock enabled; the store refuses otherwise, and so does this call). Nobody, the
        bucket's owner included, can delete or overwrite that version before the date."""
        if retain_until is None:
            self.put(key, data)
            return False
        object_key = self._object_key(key)
        with self._errors("put (object lock)", key):
            self._client.put_object(
                Bucket=self.bucket,
                Key=object_key,
                Body=bytes(data),
                ContentType="application/octet-stream",
                ObjectLockMode="COMPLIANCE",
                ObjectLockRetainUntilDate=retain_until,
            )
        return True

    def iter_retained(self, prefix: str = "") -> Iterator[tuple[str, bytes]]:
        list_prefix = self._list_prefix(normalize_prefix(prefix))
        strip = len(self.prefix) + 1 if self.prefix else 0
        paginator = self._client.get_paginator("list_object_versions")
        with self._errors(f"list versions {list_prefix!r}"):
            versions = [
                (item["Key"], item.get("VersionId"))
                for page in paginator.paginate(Bucket=self.bucket, Prefix=list_prefix)
                for item in page.get("Versions", ())
            ]
        for object_key, version in versions:
            key = object_key[strip:]
            try:
                validate_key(key)
            except ValueError:
                continue
            extra = {"VersionId": version} if version and version != "null" else {}
            try:
                with self._errors("get", key):
                    response = self._client.get_object(Bucket=self.bucket, Key=object_key, **extra)
                    with response["Body"] as body:
                        data = body.read()
            except BlobNotFound:
                continue
            yield key, data

    def get(self, key: str) -> bytes:
        object_key = self._object_key(key)
        with self._errors("get", key):
            response = self._client.get_object(Bucket=self.bucket, Key=object_key)
            with response["Body"] as body:
                return body.read()

    def delete(self, key: str) -> None:
        object_key = self._object_key(key)
        with self._errors("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=object_key)

    def exists(self, key: str) -> bool:
        object_key = self._object_key(key)
        try:
            with self._errors("head", key):
                self._client.head_object(Bucket=self.bucket, Key=object_key)
        except BlobNotFound:
            return False
        return True

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        list_prefix = self._list_prefix(normalize_prefix(prefix))
        strip = len(self.prefix) + 1 if self.prefix else 0
        paginator = self._client.get_paginator("list_objects_v2")
        with self._errors(f"list {list_prefix!r}"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=list_prefix):
                for item in page.get("Contents", ()):
                    key = item["Key"][strip:]
                    try:
                        validate_key(key)
                    except ValueError:
                        continue  # not one of ours (a folder marker, a foreign object): never yielded
                    yield key

    def iter_modified(self, prefix: str = "") -> Iterator[tuple[str, datetime]]:
        list_prefix = self._list_prefix(normalize_prefix(prefix))
        strip = len(self.prefix) + 1 if self.prefix else 0
        paginator = self._client.get_paginator("list_objects_v2")
        with self._errors(f"list {list_prefix!r}"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=list_prefix):
                for item in page.get("Contents", ()):
                    key = item["Key"][strip:]
                    try:
                        validate_key(key)
                    except ValueError:
                        continue
                    yield key, item["LastModified"]

    def delete_prefix(self, prefix: str) -> int:
        normalized = self._prefix_for_delete(prefix)
        keys = list(self.iter_keys(normalized))  # list first: never delete under a live listing cursor
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            with self._errors(f"delete under {normalized!r}"):
                response = self._client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": self._object_key(k)} for k in batch], "Quiet": True},
                )
            errors = response.get("Errors") or []
            if errors:
                sample = ", ".join(
                    f"{e.get('Key')}: {e.get('Code')} {e.get('Message', '')}".strip() for e in errors[:5]
                )
                raise BlobError(
                    f"S3 delete under {normalized!r}: {len(errors)} of {len(batch)} objects not deleted ({sample})"
                )
        return len(keys)
