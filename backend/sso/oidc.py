"""The hospital's OpenID Provider, seen from DermaLink: discovery, the authorization code flow with
PKCE (authlib's OAuth 2.0 client), and ID-token validation (signature against the provider's JWKS,
issuer, audience, expiry, nonce, ``at_hash``: authlib's `CodeIDToken` rules on joserfc).

Discovery and the JWKS are fetched on first use and cached; an ID token signed with a key id the
cache does not know makes one fresh JWKS fetch, so the provider can rotate keys without a restart.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from backend.core.errors import DermaLinkError

# Only asymmetric signatures: an ID token "signed" with the client secret (HS256) or unsigned is refused.
ALLOWED_ALGORITHMS = [
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
]
METADATA_TTL_SECONDS = 3600
HTTP_TIMEOUT_SECONDS = 10.0


class SsoRefused(DermaLinkError):
    """Single sign-on did not prove who the user is, or DermaLink's rules refuse them."""

    status_code, type = 401, "sso_refused"


class ProviderClient:
    def __init__(self, issuer: str, client_id: str, client_secret: str, scopes: str, leeway: int) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.scopes = scopes
        self.leeway = leeway
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._jwks: KeySet | None = None

    # -- discovery -----------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._metadata is None or time.monotonic() - self._metadata_at > METADATA_TTL_SECONDS:
                url = f"{self.issuer}/.well-known/openid-configuration"
                try:
                    response = httpx.get(url, timeout=HTTP_TIMEOUT_SECONDS)
                    response.raise_for_status()
                    metadata = response.json()
                except (httpx.HTTPError, ValueError) as exc:
                    raise SsoRefused(
                        f"the identity provider's discovery document is unavailable: {exc}"
                    ) from exc
                if str(metadata.get("issuer", "")).rstrip("/") != self.issuer:
                    raise SsoRefused("the discovery document names another issuer")
                self._metadata, self._metadata_at, self._jwks = metadata, time.monotonic(), None
            return self._metadata

    def _key_set(self, refresh: bool = False) -> KeySet:
        if self._jwks is None or refresh:
            try:
                response = httpx.get(self.metadata()["jwks_uri"], timeout=HTTP_TIMEOUT_SECONDS)
                response.raise_for_status()
                self._jwks = KeySet.import_key_set(response.json())
            except (httpx.HTTPError, ValueError, KeyError, JoseError) as exc:
                raise SsoRefused(f"the identity provider's signing keys are unavailable: {exc}") from exc
        return self._jwks

    def _client(self, redirect_uri: str) -> OAuth2Client:
        return OAuth2Client(
            client_id=self.client_id,
            client_secret=self.client_secret,
            scope=self.scopes,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=HTTP_TIMEOUT_SECONDS,
        )

    # -- the flow ------------------------------------------------------------------------------
    def authorization_url(self, redirect_uri: str, state: str, nonce: str, code_verifier: str) -> str:
        with self._client(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                self.metadata()["authorization_endpoint"],
                state=state,
                code_verifier=code_verifier,
                nonce=nonce,
            )
        return url

    def exchange_code(self, redirect_uri: str, code: str, code_verifier: str) -> dict[str, Any]:
        with self._client(redirect_uri) as client:
            try:
                token = client.fetch_token(
                    self.metadata()["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                )
            except (OAuthError, httpx.HTTPError, ValueError) as exc:
                raise SsoRefused(f"the identity provider refused the code: {exc}") from exc
        if "id_token" not in token:
            raise SsoRefused("the identity provider returned no ID token (is the 'openid' scope requested?)")
        return dict(token)

    def validate_id_token(self, id_token: str, nonce: str, access_token: str | None) -> dict[str, Any]:
        """Signature, then iss, aud, exp, iat, nonce, azp and at_hash; returns the claims."""
        supported = self.metadata().get("id_token_signing_alg_values_supported") or ALLOWED_ALGORITHMS
        registry = JWSRegistry(algorithms=[a for a in supported if a in ALLOWED_ALGORITHMS])
        try:
            try:
                decoded = jwt.decode(id_token, self._key_set(), registry=registry)
            except InvalidKeyIdError:  # the provider may have rotated its keys
                decoded = jwt.decode(id_token, self._key_set(refresh=True), registry=registry)
            params: dict[str, Any] = {"nonce": nonce, "client_id": self.client_id}
            if access_token:
                params["access_token"] = access_token
            claims = CodeIDToken(
                decoded.claims,
                decoded.header,
                {
                    "iss": {"essential": True, "value": self.issuer},
                    "aud": {"essential": True, "value": self.client_id},
                },
                params,
            )
            claims.validate(leeway=self.leeway)
        except BadSignatureError as exc:
            raise SsoRefused("the ID token's signature is not valid") from exc
        except ExpiredTokenError as exc:
            raise SsoRefused("the ID token has expired") from exc
        except (InvalidClaimError, MissingClaimError) as exc:
            raise SsoRefused(f"the ID token is not for DermaLink: {exc.description}") from exc
        except (JoseError, ValueError) as exc:
            raise SsoRefused(f"the ID token is not valid: {exc}") from exc
        return dict(claims)

    def userinfo(self, access_token: str) -> dict[str, Any]:
        endpoint = self.metadata().get("userinfo_endpoint")
        if not endpoint:
            return {}
        try:
            response = httpx.get(
                endpoint, headers={"Authorization": f"Bearer {access_token}"}, timeout=HTTP_TIMEOUT_SECONDS
            )
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SsoRefused(f"the identity provider's userinfo endpoint failed: {exc}") from exc
