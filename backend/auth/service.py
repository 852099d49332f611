"""Login with throttling and lockout, refresh-token rotation with reuse detection, logout, TOTP."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
import segno
from sqlmodel import Session, select

from backend.audit.models import Outcome
from backend.audit.service import record
from backend.auth.models import AuthSession, RefreshToken
from backend.auth.tokens import TokenService, hash_refresh_token, new_refresh_token
from backend.config import Settings
from backend.core import security
from backend.core.actor import AuditContext
from backend.core.clock import utcnow
from backend.core.errors import (
    AccountLocked,
    BadRequest,
    InvalidCredentials,
    InvalidToken,
    TooManyRequests,
    TotpRequired,
)
from backend.core.security import hash_password, needs_rehash, seal, unseal, verify_password
from backend.users.models import User
from backend.users.service import get_by_email

TOTP_ISSUER = "DermaLink"
MAX_SLOWDOWN_SECONDS = 60


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime
    user: User


class AuthService:
    def __init__(self, settings: Settings, tokens: TokenService, totp_key: bytes) -> None:
        self.settings = settings
        self.tokens = tokens
        self._totp_key = totp_key

    # -- login ---------------------------------------------------------------------------------
    def _retry_after(self, user: User, now: datetime) -> int:
        """Seconds before this account may try again (0: now). Lockout first, then slow-down."""
        if user.locked_until and user.locked_until > now:
            return int((user.locked_until - now).total_seconds()) + 1
        excess = user.failed_logins - self.settings.login_slowdown_after
        if excess >= 0 and user.last_failed_login_at:
            wait = min(2**excess, MAX_SLOWDOWN_SECONDS)
            allowed_at = user.last_failed_login_at + timedelta(seconds=wait)
            if allowed_at > now:
                return int((allowed_at - now).total_seconds()) + 1
        return 0

    def login(
        self, session: Session, ctx: AuditContext, email: str, password: str, totp_code: str | None
    ) -> IssuedTokens:
        now = utcnow()
        user = get_by_email(session, email)
        if user is None:
            verify_password(security.DUMMY_HASH, password)  # same cost as a real check
            record(
                session,
                ctx,
                "auth.login",
                outcome=Outcome.denied,
                reason="unknown account",
                resource_type="user",
                resource_id=email.strip().lower()[:254],
            )
            raise InvalidCredentials("e-mail or password is wrong")

        user_ctx = ctx.as_actor(user.id, user.role)
        if user.locked_until and user.locked_until <= now:  # an expired lock starts afresh
            user.locked_until, user.failed_logins = None, 0
        wait = self._retry_after(user, now)
        if wait:
            locked = bool(user.locked_until)
            record(
                session,
                user_ctx,
                "auth.login",
                outcome=Outcome.denied,
                resource_type="user",
                resource_id=user.id,
                reason="account locked" if locked else "throttled",
            )
            error = AccountLocked if locked else TooManyRequests
            raise error(f"too many failed logins: try again in {wait} s", headers={"Retry-After": str(wait)})

        if not verify_password(user.password_hash, password) or not user.is_active:
            reason = "wrong password" if user.is_active else "account disabled"
            self._failed(session, user_ctx, user, now, reason)
            raise InvalidCredentials("e-mail or password is wrong")

        if user.totp_enabled:
            if not totp_code:
                record(
                    session,
                    user_ctx,
                    "auth.login",
                    outcome=Outcome.denied,
                    resource_type="user",
                    resource_id=user.id,
                    reason="totp code missing",
                )
                raise TotpRequired("this account needs a TOTP code (field totp_code)")
            if not self._check_totp(user, totp_code):
                self._failed(session, user_ctx, user, now, "wrong totp code")
                raise InvalidCredentials("TOTP code is wrong or already used")

        if needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        user.failed_logins, user.last_failed_login_at, user.locked_until = 0, None, None
        session.add(user)
        record(session, user_ctx, "auth.login", resource_type="user", resource_id=user.id)
        return self._start_session(session, user, now)

    def _failed(self, session: Session, ctx: AuditContext, user: User, now: datetime, reason: str) -> None:
        user.failed_logins += 1
        user.last_failed_login_at = now
        record(
            session,
            ctx,
            "auth.login",
            outcome=Outcome.denied,
            resource_type="user",
            resource_id=user.id,
            reason=reason,
            detail={"failed_logins": user.failed_logins},
        )
        if user.failed_logins >= self.settings.login_lockout_after:
            user.locked_until = now + timedelta(minutes=self.settings.login_lockout_minutes)
            record(
                session,
                ctx,
                "auth.lockout",
                outcome=Outcome.denied,
                resource_type="user",
                resource_id=user.id,
                detail={"locked_until": user.locked_until.isoformat()},
            )
        session.add(user)

    def _start_session(self, session: Session, user: User, now: datetime) -> IssuedTokens:
        lifetime = timedelta(days=self.settings.refresh_token_days)
        login = AuthSession(user_id=user.id, expires_at=now + lifetime)
        session.add(login)
        session.flush()
        return self._issue(session, user, login, now)

    def _issue(self, session: Session, user: User, login: AuthSession, now: datetime) -> IssuedTokens:
        refresh, refresh_hash = new_refresh_token()
        session.add(RefreshToken(session_id=login.id, token_hash=refresh_hash, expires_at=login.expires_at))
        access, access_expires = self.tokens.issue_access(user.id, user.role, login.id)
        return IssuedTokens(access, access_expires, refresh, login.expires_at, user)

    # -- refresh and logout --------------------------------------------------------------------
    def refresh(self, session: Session, ctx: AuditContext, refresh_token: str) -> IssuedTokens:
        now = utcnow()
        row = session.exec(
            select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(refresh_token))
        ).first()
        if row is None:
            record(session, ctx, "auth.refresh", outcome=Outcome.denied, reason="unknown refresh token")
            raise InvalidToken("refresh token is not valid")
        login = session.get(AuthSession, row.session_id)
        user = session.get(User, login.user_id)
        user_ctx = ctx.as_actor(user.id, user.role)
        if row.used_at is not None:
            # A rotated token came back: someone holds a copy. End the whole login.
            self._revoke(session, login, now, "refresh token reuse")
            record(
                session,
                user_ctx,
                "auth.refresh_reuse",
                outcome=Outcome.denied,
                resource_type="auth_session",
                resource_id=login.id,
                reason="already-rotated refresh token presented; session revoked",
            )
            raise InvalidToken("refresh token was already used; this login has been revoked")
        if login.revoked_at is not None or row.expires_at <= now or not user.is_active:
            record(
                session,
                user_ctx,
                "auth.refresh",
                outcome=Outcome.denied,
                resource_type="auth_session",
                resource_id=login.id,
                reason="session revoked, expired or account disabled",
            )
            raise InvalidToken("refresh token is expired or revoked")
        row.used_at = now
        session.add(row)
        record(session, user_ctx, "auth.refresh", resource_type="auth_session", resource_id=login.id)
        return self._issue(session, user, login, now)

    def _revoke(self, session: Session, login: AuthSession, now: datetime, reason: str) -> None:
        if login.revoked_at is None:
            login.revoked_at, login.revoked_reason = now, reason
            session.add(login)

    def logout(self, session: Session, ctx: AuditContext, session_id: uuid.UUID) -> None:
        login = session.get(AuthSession, session_id)
        if login is not None:
            self._revoke(session, login, utcnow(), "logout")
        record(session, ctx, "auth.logout", resource_type="auth_session", resource_id=session_id)

    def session_is_active(self, session: Session, session_id: uuid.UUID) -> bool:
        login = session.get(AuthSession, session_id)
        return login is not None and login.revoked_at is None and login.expires_at > utcnow()

    # -- TOTP ----------------------------------------------------------------------------------
    def _aad(self, user: User) -> bytes:
        return f"totp:{user.id}".encode()

    def _secret(self, user: User) -> str | None:
        if not user.totp_secret_sealed:
            return None
        return unseal(self._totp_key, user.totp_secret_sealed, self._aad(user)).decode()

    def _check_totp(self, user: User, code: str) -> bool:
        secret = self._secret(user)
        if secret is None or not code.isdigit():
            return False
        totp = pyotp.TOTP(secret)
        now = utcnow()
        for offset in (0, -1, 1):  # one step of clock drift either way
            at = now + timedelta(seconds=offset * totp.interval)
            step = totp.timecode(at)
            if totp.verify(code, for_time=at, valid_window=0) and (user.totp_last_step or -1) < step:
                user.totp_last_step = step
                return True
        return False

    def begin_totp_enrolment(self, session: Session, ctx: AuditContext, user: User) -> dict[str, str]:
        if user.totp_enabled:
            raise BadRequest("TOTP is already enabled for this account")
        secret = pyotp.random_base32()
        user.totp_secret_sealed = seal(self._totp_key, secret.encode(), self._aad(user))
        session.add(user)
        record(session, ctx, "auth.totp_enrol_start", resource_type="user", resource_id=user.id)
        uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=TOTP_ISSUER)
        qr = segno.make(uri, error="m")
        return {"secret": secret, "otpauth_uri": uri, "qr_svg_data_uri": qr.svg_data_uri(scale=4)}

    def confirm_totp_enrolment(self, session: Session, ctx: AuditContext, user: User, code: str) -> None:
        if user.totp_enabled:
            raise BadRequest("TOTP is already enabled for this account")
        if not user.totp_secret_sealed:
            raise BadRequest("start TOTP enrolment first (POST /api/v1/auth/totp/enrol)")
        if not self._check_totp(user, code):
            record(
                session,
                ctx,
                "auth.totp_enrol_confirm",
                outcome=Outcome.denied,
                resource_type="user",
                resource_id=user.id,
                reason="wrong code",
            )
            raise BadRequest("TOTP code is wrong; check the device clock and try the next code")
        user.totp_enabled = True
        session.add(user)
        record(session, ctx, "auth.totp_enrol_confirm", resource_type="user", resource_id=user.id)

    def totp_now(self, user: User) -> str:
        """The current code (CLI and tests only)."""
        secret = self._secret(user)
        if secret is None:
            raise BadRequest("this account has no TOTP secret")
        return pyotp.TOTP(secret).now()
