"""Access tokens (short-lived JWTs with a key id) and opaque refresh tokens.

Access tokens are HS256 JWTs signed with the current key; tokens signed with a previous key still
verify until they expire, so keys rotate without logging everyone out. Only ``HS256`` is accepted
(``alg=none`` and algorithm confusion are refused). A hospital identity provider (OIDC) can be added
as another `TokenVerifier` beside this one: the rest of the backend only sees `AccessClaims`.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey

from backend.core.clock import utcnow
from backend.core.errors import InvalidToken

ALGORITHM = "HS256"
ISSUER = "dermalink"


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    role: str
    session_id: uuid.UUID
    expires_at: datetime


def _key(secret: bytes) -> OctKey:
    kid = hashlib.sha256(secret).hexdigest()[:16]
    return OctKey.import_key(secret, {"kid": kid, "alg": ALGORITHM, "use": "sig"})


class TokenService:
    def __init__(self, current_secret: bytes, previous_secrets: list[bytes], access_minutes: int) -> None:
        self._current = _key(current_secret)
        self._keys = KeySet([self._current, *(_key(s) for s in previous_secrets)])
        self.access_lifetime = timedelta(minutes=access_minutes)
        self._registry = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": ISSUER},
            sub={"essential": True},
            exp={"essential": True},
            sid={"essential": True},
            typ={"essential": True, "value": "access"},
        )

    def issue_access(self, user_id: uuid.UUID, role: str, session_id: uuid.UUID) -> tuple[str, datetime]:
        now = utcnow()
        expires = now + self.access_lifetime
        claims = {
            "iss": ISSUER,
            "sub": str(user_id),
            "role": role,
            "sid": str(session_id),
            "typ": "access",
            "jti": uuid.uuid4().hex,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
        }
        header = {"alg": ALGORITHM, "kid": self._current.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self._current, algorithms=[ALGORITHM]), expires

    def verify_access(self, token: str) -> AccessClaims:
        if len(token) > 4096:
            raise InvalidToken("token is too long")
        try:
            decoded = jwt.decode(token, self._keys, algorithms=[ALGORITHM])
            self._registry.validate(decoded.claims)
            claims = decoded.claims
            return AccessClaims(
                user_id=uuid.UUID(claims["sub"]),
                role=str(claims["role"]),
                session_id=uuid.UUID(claims["sid"]),
                expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            )
        except JoseError as exc:
            raise InvalidToken(f"access token rejected: {exc.description or exc.error}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidToken("access token is malformed") from exc


def new_refresh_token() -> tuple[str, str]:
    """A random refresh token and the SHA-256 hash that is all the database keeps."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
