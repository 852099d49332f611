"""Password hashing (Argon2id), the password policy, and sealing small secrets (AES-256-GCM)."""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from zxcvbn import zxcvbn

from backend.core.errors import ValidationFailed

_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters
# Verified against when the e-mail is unknown, so that a login takes as long either way.
DUMMY_HASH = _hasher.hash("dermalink-timing-equaliser")


def use_cheapest_hashing_for_tests() -> None:
    """Still Argon2id, with the library's cheapest parameters: for test suites only."""
    global _hasher, DUMMY_HASH
    _hasher = PasswordHasher.from_parameters(profiles.CHEAPEST)
    DUMMY_HASH = _hasher.hash("dermalink-timing-equaliser")


# zxcvbn's score 0-4; 3 means about 10^8 guesses or more ("safely unguessable" against online attacks and
# slow against offline ones with Argon2id).
MIN_PASSWORD_SCORE = 3
ZXCVBN_MAX_LENGTH = 72  # zxcvbn's own ceiling; longer passwords are judged on their first 72 characters
# Words every DermaLink password is likely to be built from: zxcvbn treats them as known, like its lists.
CONTEXT_WORDS = ("dermalink", "derma", "teledermatology", "hospital", "clinic", "clinician", "dermatologist")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def check_password_policy(
    password: str, *, email: str, min_length: int, user_inputs: Sequence[str] = ()
) -> None:
    """Length, variety, and a real strength estimate: zxcvbn (Dropbox's estimator, with its frequency
    lists of common and breached passwords, names, words and keyboard patterns) must judge the password
    at least `MIN_PASSWORD_SCORE`, knowing the user's e-mail, name and DermaLink's own vocabulary."""
    problems = []
    if len(password) < min_length:
        problems.append(f"must be at least {min_length} characters long")
    if len(password) > 256:
        problems.append("must be at most 256 characters long")
    if len(set(password)) < 5:
        problems.append("must contain at least 5 different characters")
    local = email.split("@")[0].lower()
    if len(local) >= 4 and local in password.lower():
        problems.append("must not contain the e-mail name")
    if not problems:
        words = [email, local, *email.split("@")[1:], *user_inputs, *CONTEXT_WORDS]
        estimate = zxcvbn(password[:ZXCVBN_MAX_LENGTH], user_inputs=[w for w in words if w])
        if estimate["score"] < MIN_PASSWORD_SCORE:
            feedback = estimate["feedback"]
            hints = " ".join(filter(None, [feedback.get("warning"), *feedback.get("suggestions", [])]))
            problems.append("is too easy to guess" + (f" ({hints.strip()})" if hints else ""))
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
