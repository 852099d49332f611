"""Blob storage: where encrypted images and signature images live.

The store is chosen by one URL (the ``DERMALINK_BLOB_STORE_URL`` setting) through :func:`make_blob_store`:

``""`` (empty, the default)
    :class:`LocalBlobStore` under the given default root (e.g. ``<data_dir>/blobs``).
``file:///abs/path``
    :class:`LocalBlobStore` under ``/abs/path`` (must be absolute; no host part, no query).
``s3://bucket`` or ``s3://bucket/some/prefix?endpoint_url=http://127.0.0.1:8333&region=us-east-1``
    :class:`S3BlobStore` in ``bucket``, keys under the optional prefix. Query parameters (all optional):
    ``endpoint_url`` (an S3-compatible server; omit for AWS), ``region``, ``access_key`` + ``secret_key``
    (prefer the standard ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_PROFILE`` environment, which
    boto3 reads when these are absent, so that no secret sits in a URL), ``connect_timeout`` and
    ``read_timeout`` (seconds), ``max_attempts`` (botocore standard retries, attempts in all),
    ``create_bucket`` (``true``: create the bucket if missing). Unknown parameters are refused.

Values in the query are percent-decoded. Every implementation honours the :class:`BlobStore` contract
(see ``base.py``): atomic ``put``, ``get`` raising :class:`BlobNotFound`, idempotent ``delete``, ``exists``,
``iter_keys(prefix)`` (order unspecified), ``delete_prefix(prefix)`` for crypto-shredding a patient's blobs.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from .base import (
    MAX_KEY_LENGTH,
    BlobError,
    BlobNotFound,
    BlobStore,
    BlobStoreUnavailable,
    normalize_prefix,
    validate_key,
)
from .local import LocalBlobStore
from .s3 import S3BlobStore

__all__ = [
    "MAX_KEY_LENGTH",
    "BlobError",
    "BlobNotFound",
    "BlobStore",
    "BlobStoreUnavailable",
    "LocalBlobStore",
    "S3BlobStore",
    "make_blob_store",
    "normalize_prefix",
    "validate_key",
]

_S3_PARAMS = {
    "endpoint_url",
    "region",
    "access_key",
    "secret_key",
    "connect_timeout",
    "read_timeout",
    "max_attempts",
    "create_bucket",
}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def make_blob_store(url: str, default_root: Path) -> BlobStore:
    """Build the blob store a URL names (see the module docstring); raise ``ValueError`` on a bad URL."""
    url = (url or "").strip()
    if not url:
        return LocalBlobStore(Path(default_root))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"blob store URL {url!r}: file URLs take no host; write file:///absolute/path")
        if parts.query or parts.fragment:
            raise ValueError(f"blob store URL {url!r}: file URLs take no query or fragment")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ValueError(f"blob store URL {url!r}: the path must be absolute (file:///absolute/path)")
        if "\x00" in path or ".." in Path(path).parts:
            raise ValueError(f"blob store URL {url!r}: the path must not contain NUL or '..'")
        return LocalBlobStore(Path(path))
    if scheme == "s3":
        if not parts.netloc:
            raise ValueError("s3 blob store URL: name the bucket (s3://bucket/optional/prefix)")
        if "@" in parts.netloc:
            raise ValueError("s3 blob store URL: no credentials before the bucket; use the AWS environment")
        if parts.fragment:
            raise ValueError("s3 blob store URL: no fragment allowed")
        params: dict[str, str] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query)):
            if name not in _S3_PARAMS:
                raise ValueError(
                    f"blob store URL: unknown parameter {name!r}; known: {', '.join(sorted(_S3_PARAMS))}"
                )
            if name in params:
                raise ValueError(f"blob store URL: parameter {name!r} given twice")
            params[name] = value
        kwargs: dict[str, object] = {}
        for name in ("endpoint_url", "region", "access_key", "secret_key"):
            if params.get(name):
                kwargs[name] = params[name]
        for name, kind in (("connect_timeout", float), ("read_timeout", float), ("max_attempts", int)):
            if name in params:
                try:
                    kwargs[name] = kind(params[name])
                except ValueError:
                    raise ValueError(f"blob store URL: {name}={params[name]!r} is not a number") from None
        create = params.get("create_bucket", "false").lower()
        if create not in _TRUE | _FALSE:
            raise ValueError(f"blob store URL: create_bucket={params['create_bucket']!r} is not true/false")
        prefix = unquote(parts.path).lstrip("/")
        try:
            store = S3BlobStore(unquote(parts.netloc), prefix=prefix, **kwargs)  # type: ignore[arg-type]
        except ValueError as exc:
            raise ValueError(f"blob store URL: {exc}") from None
        if create in _TRUE:
            store.ensure_bucket()
        return store
    # The URL itself is not echoed: it may hold a secret.
    raise ValueError(f"blob store URL: unknown scheme {parts.scheme!r}; use file:///path or s3://bucket")
