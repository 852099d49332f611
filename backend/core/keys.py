"""The master key: generated once (0600) in the data directory, or given in the environment.

Every other key is derived from it with HKDF and a purpose label, so one secret file (or one KMS
entry later) backs the audit chain, the blind index and the key-encryption keys.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from backend.config import ConfigurationError, Settings

KEY_BYTES = 32


def _decode(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError as exc:
        raise ConfigurationError(f"{where} is not valid base64") from exc
    if len(key) != KEY_BYTES:
        raise ConfigurationError(f"{where} must hold {KEY_BYTES} bytes, found {len(key)}")
    return key


def create_key_file(path: Path) -> bytes:
    """Write a new random key with 0600 permissions; refuses to overwrite an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = os.urandom(KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(key).decode() + "\n")
    return key


def load_master_key(settings: Settings, *, create: bool = True) -> bytes:
    if settings.master_key is not None:
        return _decode(settings.master_key.get_secret_value(), "DERMALINK_MASTER_KEY")
    path = settings.master_key_file
    assert path is not None
    if not path.exists():
        if not create or settings.is_production:
            raise ConfigurationError(f"master key file {path} does not exist")
        return create_key_file(path)
    return _decode(path.read_text(), f"master key file {path}")


def derive_key(master: bytes, purpose: str) -> bytes:
    """A 32-byte subkey for one purpose ("audit-chain", "blind-index", ...)."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose.encode()).derive(master)


class Keyring:
    """The keys derived from the master key, by purpose."""

    def __init__(self, master: bytes) -> None:
        self.master = master
        self.audit = derive_key(master, "audit-chain")
        self.totp = derive_key(master, "totp-secrets")
        self.blind_index = derive_key(master, "blind-index")
        self.jwt_fallback = derive_key(master, "jwt-signing")
        self.key_encryption_root = derive_key(master, "kek-root")
        self.erasure_ledger = derive_key(master, "erasure-ledger")
