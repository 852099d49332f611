"""The blob storage interface, its typed errors and key validation.

A *key* is a relative path of segments made of ``[A-Za-z0-9._-]``, separated by ``/``
(for example ``patients/3f2a.../images/9b1c.bin``). Keys never start or end with ``/``,
contain no empty segment, no ``.`` or ``..`` segment, no NUL or other character, and are
at most :data:`MAX_KEY_LENGTH` characters long (segments at most :data:`MAX_SEGMENT_LENGTH`):
so a key can never name anything outside the store (no path traversal), on any backend.

A *prefix* (for :meth:`BlobStore.iter_keys` and :meth:`BlobStore.delete_prefix`) is a key
naming a "folder", optionally with a trailing ``/``, or ``""`` for the whole store. It matches
*whole segments*: ``patients/12`` matches ``patients/12/a.bin`` but never ``patients/123/a.bin``
(so erasing one patient can never touch another whose id shares a string prefix).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import datetime

from backend.core.errors import DermaLinkError

MAX_KEY_LENGTH = 512
MAX_SEGMENT_LENGTH = 128
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


class BlobError(DermaLinkError):
    """Any storage failure (misconfiguration, permission, unexpected server answer)."""

    status_code, type = 500, "storage_error"


class BlobNotFound(BlobError):
    """The key names no blob."""

    status_code, type = 404, "blob_not_found"

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"blob not found: {key!r}")


class BlobStoreUnavailable(BlobError):
    """The store cannot be reached right now (network down, timeout, server overloaded): retryable."""

    status_code, type = 503, "storage_unavailable"


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a valid key, else raise ``ValueError`` saying exactly why."""
    if not isinstance(key, str):
        raise TypeError(f"blob key must be a str, not {type(key).__name__}")
    if key == "":
        raise ValueError("blob key is empty")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"blob key is {len(key)} characters long; the maximum is {MAX_KEY_LENGTH}")
    if "\x00" in key:
        raise ValueError(f"blob key {key!r} contains a NUL character")
    if key.startswith("/"):
        raise ValueError(f"blob key {key!r} is absolute (starts with '/'); keys are relative paths")
    if "\\" in key:
        raise ValueError(f"blob key {key!r} contains a backslash; segments are separated by '/'")
    for index, segment in enumerate(key.split("/")):
        where = f"segment {index + 1} of blob key {key!r}"
        if segment == "":
            raise ValueError(f"{where} is empty (leading, trailing or doubled '/')")
        if segment in (".", ".."):
            raise ValueError(f"{where} is {segment!r}; relative path components are refused")
        if len(segment) > MAX_SEGMENT_LENGTH:
            raise ValueError(
                f"{where} is {len(segment)} characters long; the maximum is {MAX_SEGMENT_LENGTH}"
            )
        if not _SEGMENT.fullmatch(segment):
            bad = sorted({c for c in segment if not re.fullmatch(r"[A-Za-z0-9._-]", c)})
            raise ValueError(f"{where} contains characters outside [A-Za-z0-9._-]: {bad!r}")
    return key


def normalize_prefix(prefix: str) -> str:
    """Validate a prefix and return it without a trailing ``/`` (``""`` means the whole store)."""
    if not isinstance(prefix, str):
        raise TypeError(f"blob prefix must be a str, not {type(prefix).__name__}")
    if prefix == "":
        return ""
    stripped = prefix.removesuffix("/")
    if stripped == "":
        raise ValueError("blob prefix '/' is absolute; use '' for the whole store")
    try:
        validate_key(stripped)
    except ValueError as exc:
        raise ValueError(f"invalid blob prefix: {exc}") from None
    return stripped


class BlobStore(ABC):
    """Stores opaque byte strings (already encrypted by the caller) under validated keys."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing any blob there. Atomic: a concurrent or later
        reader sees the old blob or the new one, never a partial one, even after a crash."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Return the blob under ``key``; raise :class:`BlobNotFound` if there is none."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the blob under ``key``. Idempotent: deleting a missing key is not an error."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether a blob is stored under ``key``."""

    @abstractmethod
    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """Yield every key strictly below ``prefix`` (whole segments; ``""``: all), each once.

        The order is unspecified (local: ascending; SeaweedFS lists folder by folder): sort if it matters."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every blob strictly below ``prefix`` (whole segments) and return how many there were.

        Used to crypto-shred a patient's blobs. Idempotent; ``""`` (the whole store) is refused."""

    def iter_modified(self, prefix: str = "") -> Iterator[tuple[str, datetime]]:
        """Like :meth:`iter_keys`, with each blob's last-modified time (UTC): what the orphan sweeper needs
        to spare blobs of submissions still in flight."""
        raise NotImplementedError(f"{type(self).__name__} cannot list modification times")

    def iter_retained(self, prefix: str = "") -> Iterator[tuple[str, bytes]]:
        """Every stored record below ``prefix`` with its bytes, for records written with
        :meth:`put_retained`. Where the store keeps versions (S3 with Object Lock), every version is
        yielded, also those hidden by a later delete marker or overwrite: deleting or replacing a
        locked record does not make it disappear from here."""
        for key in self.iter_keys(prefix):
            try:
                yield key, self.get(key)
            except BlobNotFound:
                continue

    def put_retained(self, key: str, data: bytes, retain_until: datetime | None) -> bool:
        """Store a record that must outlive an intruder (audit checkpoints, the erasure ledger).

        Where the store supports write-once retention (S3 Object Lock), the object is kept in compliance
        mode until ``retain_until`` and this returns True; otherwise it is a plain ``put`` and returns
        False. Callers never overwrite these keys (each name is new)."""
        self.put(key, data)
        return False

    @staticmethod
    def _prefix_for_delete(prefix: str) -> str:
        normalized = normalize_prefix(prefix)
        if normalized == "":
            raise ValueError("refusing to delete_prefix('') (the whole store); name a prefix")
        return normalized
