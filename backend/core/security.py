"""Password hashing (Argon2id), the password policy, and sealing small secrets (AES-256-GCM)."""

from __future__ import annotations

import base64
import os

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backend.core.errors import ValidationFailed

_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters
# Verified against when the e-mail is unknown, so that a login takes as long either way.
DUMMY_HASH = _hasher.hash("dermalink-timing-equaliser")


def use_cheapest_hashing_for_tests() -> None:
    """Still Argon2id, with the library's cheapest parameters: for test suites only."""
    global _hasher, DUMMY_HASH
    _hasher = PasswordHasher.from_parameters(profiles.CHEAPEST)
    DUMMY_HASH = _hasher.hash("dermalink-timing-equaliser")


COMMON_PASSWORDS = frozenset(
    {"password1234", "123456789012", "qwertyuiopas", "letmein12345", "dermalink123", "administrator"}
)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def check_password_policy(password: str, *, email: str, min_length: int) -> None:
    problems = []
    if len(password) < min_length:
        problems.append(f"must be at least {min_length} characters long")
    if len(password) > 256:
        problems.append("must be at most 256 characters long")
    if len(set(password)) < 5:
        problems.append("must contain at least 5 different characters")
    if password.lower() in COMMON_PASSWORDS:
        problems.append("is a commonly used password")
    local = email.split("@")[0].lower()
    if len(local) >= 4 and local in password.lower():
        problems.append("must not contain the e-mail name")
    if problems:
        raise ValidationFailed("password " + "; ".join(problems))


def seal(key: bytes, plaintext: bytes, associated_data: bytes) -> str:
    nonce = os.urandom(12)
    return base64.b64encode(nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)).decode()


def unseal(key: bytes, sealed: str, associated_data: bytes) -> bytes:
    raw = base64.b64decode(sealed)
    try:
        return AESGCM(key).decrypt(raw[:12], raw[12:], associated_data)
    except InvalidTag as exc:
        raise ValueError("sealed value failed authentication (wrong key or tampered)") from exc
