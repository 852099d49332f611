"""Single sign-on with the hospital's OpenID Provider, in three steps:

1. `begin`: a random ``state``, ``nonce`` and PKCE verifier are stored (``state`` only as a hash) and
   the browser goes to the provider; a cookie binds the attempt to that browser.
2. `complete` (the provider's callback): the state must be known, unused, unexpired and from this
   browser; the code is exchanged, the ID token validated (`backend.sso.oidc`), the role found from
   the configured claim, the DermaLink account linked or provisioned, and DermaLink's rules applied
   (disabled accounts stay disabled; admins need a second factor: the provider's ``amr``/``acr``, or
   DermaLink's TOTP at step 3). The browser goes back to the app with a one-time code.
3. `exchange`: the app trades that code (once, within two minutes) for DermaLink's own access and
   refresh tokens, exactly as a password login returns them.

Every refusal is an audited ``auth.login`` denial with ``detail.method = "oidc"``; a successful
sign-in is an ``auth.login`` like any other.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from backend.audit.models import Outcome
from backend.audit.service import record
from backend.auth.models import AuthSession
from backend.auth.service import AuthService, IssuedTokens
from backend.config import Settings
from backend.core.actor import AuditContext
from backend.core.clock import utcnow
from backend.core.errors import InvalidCredentials, InvalidToken, NotFound, TotpRequired
from backend.sso.models import ExternalIdentity, OidcLogin
from backend.sso.oidc import ProviderClient, SsoRefused
from backend.users.models import Clinic, Role, User
from backend.users.service import create_user, get_by_email

ATTEMPT_LIFETIME = timedelta(minutes=10)
HANDOFF_LIFETIME = timedelta(minutes=2)
IDENTITY_PROVIDER = "oidc"  # AuthSession.identity_provider of SSO logins


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def session_has_provider_mfa(session: Session, session_id: uuid.UUID | None) -> bool:
    """Whether this DermaLink login came from a single sign-on whose provider proved a second factor."""
    if session_id is None:
        return False
    return (
        session.exec(
            select(OidcLogin.id).where(OidcLogin.auth_session_id == session_id, OidcLogin.mfa.is_(True))  # type: ignore[attr-defined]
        ).first()
        is not None
    )


class SsoService:
    def __init__(self, settings: Settings, auth: AuthService) -> None:
        self.settings = settings
        self.auth = auth
        self.provider: ProviderClient | None = None
        if settings.sso_enabled:
            self.provider = ProviderClient(
                settings.oidc_issuer,
                settings.oidc_client_id,
                settings.oidc_client_secret.get_secret_value(),
                settings.oidc_scopes,
                settings.oidc_clock_skew_seconds,
            )

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    def _provider(self) -> ProviderClient:
        if self.provider is None:
            raise NotFound("single sign-on is not configured on this server")
        return self.provider

    def _refuse(
        self, session: Session, ctx: AuditContext, reason: str, user: User | None = None, **detail: Any
    ) -> SsoRefused:
        record(
            session,
            ctx.as_actor(user.id, user.role) if user else ctx,
            "auth.login",
            outcome=Outcome.denied,
            resource_type="user",
            resource_id=user.id if user else detail.pop("subject", None),
            reason=reason,
            detail={"method": "oidc", **detail},
        )
        return SsoRefused(reason)

    # -- step 1 --------------------------------------------------------------------------------
    def begin(self, session: Session, redirect_uri: str) -> tuple[str, str]:
        """Store a new attempt; returns the provider's authorization URL and the browser-binding value."""
        provider = self._provider()
        state, nonce, browser = (secrets.token_urlsafe(32) for _ in range(3))
        verifier = secrets.token_urlsafe(64)  # 86 characters, within PKCE's 43..128
        url = provider.authorization_url(redirect_uri, state, nonce, verifier)
        session.add(
            OidcLogin(
                state_hash=_hash(state),
                browser_hash=_hash(browser),
                nonce=nonce,
                code_verifier=verifier,
                redirect_uri=redirect_uri,
                expires_at=utcnow() + ATTEMPT_LIFETIME,
            )
        )
        return url, browser

    # -- step 2 --------------------------------------------------------------------------------
    def complete(
        self,
        session: Session,
        ctx: AuditContext,
        *,
        state: str,
        code: str | None,
        browser: str | None,
        issuer: str | None,
        error: str | None,
    ) -> str:
        """Validate the callback and return the one-time hand-off code for the app.

        The attempt is marked used before anything else, so a replayed callback fails even if this one
        fails later (the route commits refusals)."""
        provider = self._provider()
        now = utcnow()
        # Locked, so that two racing callbacks with one state cannot both pass the single-use check.
        query = select(OidcLogin).where(OidcLogin.state_hash == _hash(state)).with_for_update()
        attempt = session.exec(query).first()
        if attempt is None:
            raise self._refuse(session, ctx, "unknown state")
        if attempt.state_used_at is not None:
            raise self._refuse(session, ctx, "state already used (replayed callback)")
        attempt.state_used_at = now
        session.add(attempt)
        if _aware(attempt.expires_at) <= now:
            raise self._refuse(session, ctx, "sign-in attempt expired")
        if not browser or not secrets.compare_digest(_hash(browser), attempt.browser_hash):
            raise self._refuse(session, ctx, "callback from another browser than the one that started")
        if error:
            raise self._refuse(session, ctx, f"the identity provider answered: {error}"[:200])
        if issuer is not None and issuer.rstrip("/") != provider.issuer:  # RFC 9207 mix-up defence
            raise self._refuse(session, ctx, "callback names another issuer")
        if not code:
            raise self._refuse(session, ctx, "callback without a code")
        try:
            token = provider.exchange_code(attempt.redirect_uri, code, attempt.code_verifier)
            claims = provider.validate_id_token(token["id_token"], attempt.nonce, token.get("access_token"))
            missing = self.settings.oidc_role_claim not in claims or "email" not in claims
            if missing and token.get("access_token"):
                extra = provider.userinfo(token["access_token"])
                if extra.get("sub") == claims["sub"]:
                    claims = {**extra, **claims}
        except SsoRefused as exc:
            raise self._refuse(session, ctx, str(exc.detail)) from exc

        subject = str(claims["sub"])
        role = self._role(session, ctx, claims, subject)
        user = self._find_account(session, provider.issuer, subject, claims)
        if user is not None and not user.is_active:
            raise self._refuse(session, ctx, "account disabled", user)
        amr = _as_list(claims.get("amr"))
        acr = str(claims["acr"]) if claims.get("acr") is not None else None
        mfa = bool(set(amr) & set(self.settings.oidc_mfa_amr)) or (
            acr is not None and acr in self.settings.oidc_mfa_acr
        )
        needs_totp = False
        if role is Role.admin and not mfa:
            if user is None or not user.totp_enabled:
                raise self._refuse(
                    session,
                    ctx,
                    "admins need a second factor: the provider proved none (amr/acr) and there is no TOTP",
                    user,
                    subject=subject,
                )
            needs_totp = True
        user = self._link_or_provision(session, ctx, provider.issuer, subject, claims, user, role)

        handoff = secrets.token_urlsafe(32)
        attempt.user_id, attempt.issuer, attempt.subject = user.id, provider.issuer, subject
        attempt.amr, attempt.acr, attempt.mfa, attempt.needs_totp = amr, acr, mfa, needs_totp
        attempt.handoff_hash, attempt.handoff_expires_at = _hash(handoff), now + HANDOFF_LIFETIME
        session.add(attempt)
        return handoff

    def _role(self, session: Session, ctx: AuditContext, claims: dict[str, Any], subject: str) -> Role:
        values = _as_list(claims.get(self.settings.oidc_role_claim))
        roles = {self.settings.oidc_role_map[v] for v in values if v in self.settings.oidc_role_map}
        if not roles:
            raise self._refuse(
                session,
                ctx,
                f"no DermaLink role for this account's '{self.settings.oidc_role_claim}' claim",
                subject=subject,
                values=values[:20],
            )
        if len(roles) > 1:
            raise self._refuse(
                session, ctx, f"the account maps to several roles: {sorted(roles)}", subject=subject
            )
        return Role(roles.pop())

    def _find_account(
        self, session: Session, issuer: str, subject: str, claims: dict[str, Any]
    ) -> User | None:
        linked = session.exec(
            select(ExternalIdentity).where(
                ExternalIdentity.issuer == issuer, ExternalIdentity.subject == subject
            )
        ).first()
        if linked is not None:
            return session.get(User, linked.user_id)
        if self.settings.oidc_link_by_email and self._verified_email(claims):
            return get_by_email(session, claims["email"])
        return None

    def _verified_email(self, claims: dict[str, Any]) -> str | None:
        email = claims.get("email")
        if not email:
            return None
        if self.settings.oidc_require_email_verified and claims.get("email_verified") is not True:
            return None
        return str(email)

    def _clinic(self, session: Session, claims: dict[str, Any]) -> uuid.UUID | None:
        claim = self.settings.oidc_clinic_claim
        values = _as_list(claims.get(claim)) if claim else []
        if not values:
            return None
        name = self.settings.oidc_clinic_map.get(values[0]) if self.settings.oidc_clinic_map else values[0]
        clinic = session.exec(select(Clinic).where(Clinic.name == name)).first() if name else None
        return clinic.id if clinic else None

    def _link_or_provision(
        self,
        session: Session,
        ctx: AuditContext,
        issuer: str,
        subject: str,
        claims: dict[str, Any],
        user: User | None,
        role: Role,
    ) -> User:
        clinic_id = self._clinic(session, claims)
        if user is None:
            email = self._verified_email(claims)
            if not self.settings.oidc_provision or email is None:
                raise self._refuse(
                    session,
                    ctx,
                    "no DermaLink account for this identity (provisioning is off)",
                    subject=subject,
                )
            user = create_user(
                session,
                ctx,
                email=email,
                full_name=str(claims.get("name") or email),
                role=role,
                # Never told to anyone: the account signs in through the provider only.
                password=secrets.token_urlsafe(32),
                password_min_length=self.settings.password_min_length,
                clinic_id=clinic_id if role is Role.clinician else None,
            )
        changes: dict[str, list[Any]] = {}
        if user.role != role.value:
            changes["role"] = [user.role, role.value]
            user.role = role.value
        if clinic_id is not None and role is Role.clinician and user.clinic_id != clinic_id:
            changes["clinic_id"] = [str(user.clinic_id), str(clinic_id)]
            user.clinic_id = clinic_id
        if changes:
            user.updated_at = utcnow()
            session.add(user)
            record(
                session,
                ctx,
                "user.update",
                resource_type="user",
                resource_id=user.id,
                detail={"source": "oidc", **changes},
            )
        linked = session.exec(
            select(ExternalIdentity).where(
                ExternalIdentity.issuer == issuer, ExternalIdentity.subject == subject
            )
        ).first()
        if linked is None:
            session.add(
                ExternalIdentity(user_id=user.id, issuer=issuer, subject=subject, email=claims.get("email"))
            )
            record(
                session,
                ctx.as_actor(user.id, user.role),
                "auth.sso_link",
                resource_type="user",
                resource_id=user.id,
                detail={"issuer": issuer, "subject": subject},
            )
        return user

    # -- step 3 --------------------------------------------------------------------------------
    def exchange(self, session: Session, ctx: AuditContext, code: str, totp_code: str | None) -> IssuedTokens:
        now = utcnow()
        query = select(OidcLogin).where(OidcLogin.handoff_hash == _hash(code)).with_for_update()
        attempt = session.exec(query).first()
        if (
            attempt is None
            or attempt.handoff_used_at is not None
            or attempt.handoff_expires_at is None
            or _aware(attempt.handoff_expires_at) <= now
        ):
            record(
                session,
                ctx,
                "auth.login",
                outcome=Outcome.denied,
                reason="unknown, used or expired sign-on code",
                detail={"method": "oidc"},
            )
            raise InvalidToken("this sign-on code is unknown, already used or expired; sign in again")
        user = session.get(User, attempt.user_id)
        assert user is not None
        user_ctx = ctx.as_actor(user.id, user.role)
        if not user.is_active:
            attempt.handoff_used_at = now
            session.add(attempt)
            raise self._refuse(session, ctx, "account disabled", user)
        if attempt.needs_totp:
            if not totp_code:
                record(
                    session,
                    user_ctx,
                    "auth.login",
                    outcome=Outcome.denied,
                    resource_type="user",
                    resource_id=user.id,
                    reason="totp code missing",
                    detail={"method": "oidc"},
                )
                raise TotpRequired("this account needs a TOTP code (field totp_code) with the sign-on code")
            if not self.auth._check_totp(user, totp_code):
                attempt.handoff_used_at = now  # a wrong code ends this attempt: sign in again
                session.add_all([attempt, user])
                record(
                    session,
                    user_ctx,
                    "auth.login",
                    outcome=Outcome.denied,
                    resource_type="user",
                    resource_id=user.id,
                    reason="wrong totp code",
                    detail={"method": "oidc"},
                )
                raise InvalidCredentials("TOTP code is wrong or already used; sign in again")
        attempt.handoff_used_at = now
        login = AuthSession(
            user_id=user.id,
            expires_at=now + timedelta(days=self.settings.refresh_token_days),
            identity_provider=IDENTITY_PROVIDER,
        )
        session.add(login)
        session.flush()
        attempt.auth_session_id = login.id
        session.add_all([attempt, user])
        identity = session.exec(
            select(ExternalIdentity).where(
                ExternalIdentity.issuer == attempt.issuer, ExternalIdentity.subject == attempt.subject
            )
        ).first()
        if identity is not None:
            identity.last_login_at = now
            session.add(identity)
        record(
            session,
            user_ctx,
            "auth.login",
            resource_type="user",
            resource_id=user.id,
            detail={
                "method": "oidc",
                "issuer": attempt.issuer,
                "second_factor": "provider" if attempt.mfa else ("totp" if attempt.needs_totp else "none"),
            },
        )
        return self.auth._issue(session, user, login, now)
