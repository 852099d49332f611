"""Login with throttling and lockout, refresh-token rotation with reuse detection, logout, TOTP."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
import segno
from sqlalchemy import bindparam
from sqlmodel import Session, select

from backend.audit.models import Outcome
from backend.audit.service import record
from backend.auth.models import AuthSession, RefreshToken
from backend.auth.throttle import LoginThrottle, normalise_account
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
from backend.core.security import (
    check_password_policy,
    hash_password,
    needs_rehash,
    seal,
    unseal,
    verify_password,
)
from backend.users.models import User
from backend.users.service import get_by_email

TOTP_ISSUER = "DermaLink"


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime
    user: User


# Built once (every request runs it): building a select and its cache key on each call cost more Python
# than running it.
_LIVE_USER = (
    select(User, AuthSession.revoked_at, AuthSession.expires_at)
    .join(AuthSession, AuthSession.user_id == User.id)  # type: ignore[arg-type]
    .where(User.id == bindparam("user_id"), AuthSession.id == bindparam("session_id"))
)


class AuthService:
    def __init__(self, settings: Settings, tokens: TokenService, totp_key: bytes) -> None:
        self.settings = settings
        self.tokens = tokens
        self._totp_key = totp_key
        self.throttle = LoginThrottle(
            settings.rate_limit_storage,
            per_pair=settings.login_limit_pair,
            per_address=settings.login_limit_address,
            per_account=settings.login_limit_account,
        )

    # -- login ---------------------------------------------------------------------------------
    def _refuse_if_throttled(
        self, session: Session, ctx: AuditContext, action: str, account: str, resource_id: object
    ) -> None:
        refusal = self.throttle.check(ctx.client_address, account)
        if refusal is None:
            return
        record(
            session,
            ctx,
            action,
            outcome=Outcome.denied,
            resource_type="user",
            resource_id=resource_id,  # type: ignore[arg-type]
            reason="account locked" if refusal.account_locked else f"throttled ({refusal.scope})",
        )
        error = AccountLocked if refusal.account_locked else TooManyRequests
        wait = refusal.retry_after
        raise error(f"too many failed attempts: try again in {wait} s", headers={"Retry-After": str(wait)})

    def login(
        self, session: Session, ctx: AuditContext, email: str, password: str, totp_code: str | None
    ) -> IssuedTokens:
        now = utcnow()
        account = normalise_account(email)
        user = get_by_email(session, email)
        user_ctx = ctx.as_actor(user.id, user.role) if user else ctx
        # The throttle is keyed by the e-mail as typed, so an unknown e-mail meets the same limits.
        self._refuse_if_throttled(session, user_ctx, "auth.login", account, user.id if user else account)
        if user is None:
            verify_password(security.DUMMY_HASH, password)  # same cost as a real check
            self._failed(session, ctx, None, account, now, "unknown account")
            raise InvalidCredentials("e-mail or password is wrong")

        if not verify_password(user.password_hash, password) or not user.is_active:
            reason = "wrong password" if user.is_active else "account disabled"
            self._failed(session, user_ctx, user, account, now, reason)
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
                self._failed(session, user_ctx, user, account, now, "wrong totp code")
                raise InvalidCredentials("TOTP code is wrong or already used")

        if needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        user.failed_logins, user.last_failed_login_at, user.locked_until = 0, None, None
        self.throttle.clear_pair(ctx.client_address, account)
        session.add(user)
        record(session, user_ctx, "auth.login", resource_type="user", resource_id=user.id)
        return self._start_session(session, user, now)

    def _failed(
        self,
        session: Session,
        ctx: AuditContext,
        user: User | None,
        account: str,
        now: datetime,
        reason: str,
        action: str = "auth.login",
    ) -> None:
        exhausted = self.throttle.failed(ctx.client_address, account)
        resource_id = user.id if user else account
        if user is not None:
            user.failed_logins += 1
            user.last_failed_login_at = now
            session.add(user)
        record(
            session,
            ctx,
            action,
            outcome=Outcome.denied,
            resource_type="user",
            resource_id=resource_id,  # type: ignore[arg-type]
            reason=reason,
            detail={"failed_logins": user.failed_logins} if user else None,
        )
        if exhausted:
            refusal = self.throttle.check(ctx.client_address, account)
            wait = refusal.retry_after if refusal else 0
            locked_until = now + timedelta(seconds=wait)
            if user is not None:
                user.locked_until = locked_until  # shown to admins, who can unlock
            record(
                session,
                ctx,
                "auth.lockout",
                outcome=Outcome.denied,
                resource_type="user",
                resource_id=resource_id,  # type: ignore[arg-type]
                detail={"locked_until": locked_until.isoformat()},
            )

    def verify_current_password(self, session: Session, ctx: AuditContext, user: User, password: str) -> None:
        """Re-authentication for sensitive changes (password, TOTP). Guesses count against the same
        windows as logins, so a stolen access token cannot be used to guess the password behind it."""
        account = normalise_account(user.email)
        self._refuse_if_throttled(session, ctx, "auth.reauthenticate", account, user.id)
        if not verify_password(user.password_hash, password):
            self._failed(
                session, ctx, user, account, utcnow(), "wrong current password", action="auth.reauthenticate"
            )
            raise InvalidCredentials("current password is wrong")

    def change_password(
        self,
        session: Session,
        ctx: AuditContext,
        user: User,
        current_password: str,
        new_password: str,
        *,
        keep_session: uuid.UUID,
    ) -> int:
        """Set a new password and end every other login of this user (a thief's included); the login
        that made the change stays. Returns how many logins were ended."""
        self.verify_current_password(session, ctx, user, current_password)
        check_password_policy(
            new_password,
            email=user.email,
            min_length=self.settings.password_min_length,
            user_inputs=[user.full_name],
        )
        now = utcnow()
        user.password_hash = hash_password(new_password)
        session.add(user)
        others = session.exec(
            select(AuthSession).where(
                AuthSession.user_id == user.id,
                AuthSession.id != keep_session,
                AuthSession.revoked_at.is_(None),  # type: ignore[union-attr]
            )
        ).all()
        for login in others:
            self._revoke(session, login, now, "password changed")
        record(
            session,
            ctx,
            "auth.password_change",
            resource_type="user",
            resource_id=user.id,
            detail={"sessions_revoked": len(others)},
        )
        return len(others)

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

    def live_user(self, session: Session, user_id: uuid.UUID, session_id: uuid.UUID) -> User | None:
        """The user, if their account is active and ``session_id`` is a live login (not revoked, not
        expired) *of theirs*: a token whose ``sid`` names someone else's login (a signing-key leak, a bug
        in issuing) is not accepted on the strength of that login. One query: every request asks."""
        row = session.exec(_LIVE_USER, params={"user_id": user_id, "session_id": session_id}).first()
        if row is None:
            return None
        user, revoked_at, expires_at = row
        return user if user.is_active and revoked_at is None and expires_at > utcnow() else None

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

    def begin_totp_enrolment(
        self,
        session: Session,
        ctx: AuditContext,
        user: User,
        password: str | None,
        totp_code: str | None = None,
    ) -> dict[str, str]:
        """Start enrolling (or replacing) the authenticator.

        ``password`` re-authenticates the user (None only for trusted callers: the CLI and test fixtures),
        so a borrowed access token cannot bind an attacker's authenticator. Replacing an enabled one also
        needs a current code from it; the account then has no second factor until the new one is
        confirmed (and an admin cannot act as admin meanwhile).
        """
        if password is not None:
            self.verify_current_password(session, ctx, user, password)
        if user.totp_enabled:
            if not totp_code:
                raise BadRequest("TOTP is already enabled: to replace it, send a current code (totp_code)")
            if not self._check_totp(user, totp_code):
                self._failed(
                    session,
                    ctx,
                    user,
                    normalise_account(user.email),
                    utcnow(),
                    "wrong totp code",
                    action="auth.reauthenticate",
                )
                raise InvalidCredentials("TOTP code is wrong or already used")
            user.totp_enabled, user.totp_last_step = False, None
            record(session, ctx, "auth.totp_replace", resource_type="user", resource_id=user.id)
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
